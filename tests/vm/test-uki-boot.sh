#!/usr/bin/env bash
# End-to-end measured boot: build a UKI with `arca-measure uki assemble`
# (kernel + busybox initramfs on systemd-stub), boot it from an ESP under
# OVMF (q35, pflash) with a swtpm vTPM, read the guest's PCRs and firmware
# event log over the serial console, and check
#  - `arca-measure predict` equals the guest's PCRs 4, 9, 11, 12, 13;
#  - replaying the guest's event log reproduces every guest PCR but 10 (IMA);
#  - `arca-measure log` accepts the log against the predicted policy and,
#    against a UKI/policy with another command line or a tampered log,
#    refuses and names the event that differs;
#  - a second boot with Secure Boot on (OVMF's snakeoil build and keys, the
#    UKI signed with sbsign): `predict --secure-boot` equals the guest's
#    PCRs 4, 9, 11, 12, 13 (the firmware does not measure the kernel then),
#    and the log replays to the guest's PCRs.
# Two boots side by side, ~25 s under TCG on an idle 2-core machine (the
# Secure Boot one is skipped, saying why, without sbsigntool or OVMF's
# snakeoil files).
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/vm-lib.sh"
OVMF_CODE=/usr/share/OVMF/OVMF_CODE_4M.fd
OVMF_VARS=/usr/share/OVMF/OVMF_VARS_4M.fd
# Debian's ovmf: firmware with Secure Boot and SMM, variables with the
# snakeoil PK, KEK and db enrolled, and that key (passphrase "snakeoil").
SB_CODE=/usr/share/OVMF/OVMF_CODE_4M.snakeoil.fd
SB_VARS=/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd
SB_KEY=/usr/share/ovmf/PkKek-1-snakeoil.key
SB_CERT=/usr/share/ovmf/PkKek-1-snakeoil.pem
STUB=/usr/lib/systemd/boot/efi/linuxx64.efi.stub
MEASURE=${ARCA_BUILD_DIR:-$here/../../build}/arca-measure

vm_require swtpm mkfs.vfat mmd mcopy base64 || { echo "1..0 # SKIP missing: $VM_MISSING"; exit 0; }
for f in "$OVMF_CODE" "$OVMF_VARS"; do
    [ -r "$f" ] || { echo "1..0 # SKIP missing: OVMF firmware $f (package ovmf)"; exit 0; }
done
[ -r "$STUB" ] || { echo "1..0 # SKIP missing: systemd-stub $STUB (package systemd-boot-efi)"; exit 0; }
[ -x "$MEASURE" ] || { echo "1..0 # SKIP missing: $MEASURE (run make)"; exit 0; }
vm_workdir
W=$VM_WORK
echo "1..19"

ok() { vm_tap_line OK "$1"; }
fail() { vm_tap_line FAIL "$1"; shift; for l in "$@"; do echo "# $l"; done; }
check() { local what=$1; shift; if "$@" >"$W/out" 2>&1; then ok "$what"; else fail "$what"; sed 's/^/# /' "$W/out" | tail -20; fi; }

# --- the image -------------------------------------------------------------
cat >"$W/scenario.sh" <<'SCEN'
. /lib/vmtest.sh
mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
vmtest_check event-log-readable test -r /sys/kernel/security/tpm0/binary_bios_measurements
echo ARCA-PCRS-BEGIN
for i in 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23; do
    echo "$i $(cat /sys/class/tpm/tpm0/pcr-sha256/$i)"
done
echo ARCA-PCRS-END
echo ARCA-LOG-BEGIN
base64 /sys/kernel/security/tpm0/binary_bios_measurements
echo ARCA-LOG-END
SCEN
printf 'console=ttyS0 quiet loglevel=1 panic=-1 no_timer_check' >"$W/cmdline"
printf 'console=ttyS0 quiet loglevel=1 panic=-1 no_timer_check init=/bin/sh' >"$W/cmdline-other"
printf 'ID=arca\nNAME="arca node"\nVERSION_ID=test\n' >"$W/osrel"
if vm_build_initramfs "$W/initrd" "$W/scenario.sh" &&
    "$MEASURE" uki assemble --stub "$STUB" --linux "$VM_VMLINUZ" --initrd "$W/initrd" \
        --cmdline "$W/cmdline" --osrel "$W/osrel" --output "$W/uki.efi" 2>"$W/out" &&
    "$MEASURE" uki assemble --stub "$STUB" --linux "$VM_VMLINUZ" --initrd "$W/initrd" \
        --cmdline "$W/cmdline-other" --osrel "$W/osrel" --output "$W/uki-other.efi" 2>>"$W/out"; then
    ok "UKI assembled by arca-measure uki assemble ($(($(stat -c %s "$W/uki.efi") / 1024)) KiB)"
else
    fail "UKI assembled by arca-measure uki assemble"; sed 's/^/# /' "$W/out"; exit 1
fi

# Boot UKI from an ESP (a FAT file system on the whole disk, built without
# mounting) with firmware CODE and a copy of VARS; the guest's PCRs go to
# DIR/pcrs.txt ("N hex") and its event log to DIR/eventlog.bin.
boot_uki() {
    local uki=$1 code=$2 vars=$3 dir=$4 machine=$5 esp rc start
    shift 5
    mkdir -p "$dir"
    esp=$dir/esp.img
    mkfs.vfat -C "$esp" $(( $(stat -c %s "$uki") / 1024 + 4096 )) >/dev/null &&
        MTOOLS_SKIP_CHECK=1 mmd -i "$esp" ::/EFI ::/EFI/BOOT &&
        MTOOLS_SKIP_CHECK=1 mcopy -i "$esp" "$uki" ::/EFI/BOOT/BOOTX64.EFI || return 1
    cp "$vars" "$dir/vars.fd"
    start=$SECONDS
    vm_boot --log "$dir/serial" --no-kernel --disk "$esp" --tpm "$dir/tpm" --tpm-flags not-need-init \
        --timeout 300 --mem 768 --qemu-arg -machine --qemu-arg "$machine" "$@" \
        --qemu-arg -drive --qemu-arg "if=pflash,format=raw,unit=0,readonly=on,file=$code" \
        --qemu-arg -drive --qemu-arg "if=pflash,format=raw,unit=1,file=$dir/vars.fd"
    rc=$?
    echo "$rc" >"$dir/rc"
    echo "# OVMF boot of $(basename "$uki") took $((SECONDS - start)) s (qemu exit $rc)"
    tr -d '\r' <"$dir/serial" | sed -n '/^ARCA-PCRS-BEGIN$/,/^ARCA-PCRS-END$/p' | sed '1d;$d' |
        tr 'A-F' 'a-f' >"$dir/pcrs.txt"
    tr -d '\r' <"$dir/serial" | sed -n '/^ARCA-LOG-BEGIN$/,/^ARCA-LOG-END$/p' | sed '1d;$d' |
        base64 -d >"$dir/eventlog.bin" 2>/dev/null
    [ $rc -eq 0 ] && [ "$(grep -c '^[0-9]* [0-9a-f]\{64\}$' "$dir/pcrs.txt")" = 24 ] && [ -s "$dir/eventlog.bin" ]
}

# predicted_equal DIR PREDICT-OUTPUT TITLE-SUFFIX: one TAP line per PCR set.
predicted_equal() {
    local dir=$1 pred=$2 suffix=$3 set i good why
    for set in "4" "9" "11" "12 13"; do
        good=1 why=()
        for i in $set; do
            p=$(sed -n "s/^$i:sha256=\([0-9a-f]*\).*/\1/p" "$pred")
            g=$(sed -n "s/^$i //p" "$dir/pcrs.txt")
            [ -n "$p" ] && [ "$p" = "$g" ] || { good=0; why+=("PCR $i predicted '$p', guest '$g'"); }
        done
        if [ $good = 1 ]; then ok "predicted PCR ${set// /, } equals the guest's$suffix"
        else fail "predicted PCR ${set// /, } equals the guest's$suffix" "${why[@]}"; sed -n '/^# [0-9]/p' "$pred" | sed 's/^/# /'; fi
    done
}

# replays_to_guest DIR TITLE-SUFFIX
replays_to_guest() {
    local dir=$1 suffix=$2 good=1 why=() i r
    "$MEASURE" log -q "$dir/eventlog.bin" >"$dir/replay.txt" 2>&1
    for i in $(seq 0 23); do
        [ "$i" = 10 ] && continue # IMA's, not the firmware's
        r=$(sed -n "s/^$i:sha256=\([0-9a-f]*\).*/\1/p" "$dir/replay.txt")
        [ -n "$r" ] && [ "$r" = "$(sed -n "s/^$i //p" "$dir/pcrs.txt")" ] || { good=0; why+=("PCR $i: replayed '$r'"); }
    done
    if [ $good = 1 ]; then ok "replaying the guest's event log reproduces the guest's PCRs (all but IMA's 10)$suffix"
    else fail "replaying the guest's event log reproduces the guest's PCRs (all but IMA's 10)$suffix" "${why[@]}"; fi
}

# --- the boots: without and with Secure Boot, side by side (one core each) --
sbmissing=()
for f in "$SB_CODE" "$SB_VARS" "$SB_KEY" "$SB_CERT"; do [ -r "$f" ] || sbmissing+=("$f (package ovmf)"); done
command -v sbsign >/dev/null || sbmissing+=("sbsign (package sbsigntool)")
sb_signed=0
if [ ${#sbmissing[@]} -eq 0 ] &&
    openssl pkey -in "$SB_KEY" -passin pass:snakeoil -out "$W/sb.key" 2>/dev/null &&
    sbsign --key "$W/sb.key" --cert "$SB_CERT" --output "$W/uki-signed.efi" "$W/uki.efi" >/dev/null 2>&1; then
    sb_signed=1
fi
boot_uki "$W/uki.efi" "$OVMF_CODE" "$OVMF_VARS" "$W/plain" q35 &
plain_pid=$!
if [ $sb_signed = 1 ]; then
    boot_uki "$W/uki-signed.efi" "$SB_CODE" "$SB_VARS" "$W/sb" q35,smm=on \
        --qemu-arg -global --qemu-arg driver=cfi.pflash01,property=secure,value=on &
    sb_pid=$!
fi
wait $plain_pid
plain_rc=$?
sb_rc=1
[ $sb_signed = 1 ] && { wait $sb_pid; sb_rc=$?; }

if [ $plain_rc = 0 ]; then
    ok "guest booted by OVMF reported its 24 PCRs and its event log ($(stat -c %s "$W/plain/eventlog.bin") bytes)"
else
    fail "guest booted by OVMF reported its 24 PCRs and its event log (qemu exit $(cat "$W/plain/rc" 2>/dev/null); 124: timeout, 137: killed)"
    echo "# serial log: $(wc -c <"$W/plain/serial" 2>/dev/null) bytes; PCR lines: $(wc -l <"$W/plain/pcrs.txt" 2>/dev/null); event log: $(stat -c %s "$W/plain/eventlog.bin" 2>/dev/null) bytes"
    vm_log_tail "$W/plain/serial"; exit 1
fi
cp "$W/plain/pcrs.txt" "$W/pcrs.txt"; cp "$W/plain/eventlog.bin" "$W/eventlog.bin"; cp "$W/plain/serial" "$W/serial"
guest() { sed -n "s/^$1 //p" "$W/pcrs.txt"; }

# --- prediction against the guest -------------------------------------------
"$MEASURE" predict --uki "$W/uki.efi" --policy "$W/policy.json" >"$W/predict.txt" 2>&1 ||
    sed 's/^/# predict: /' "$W/predict.txt"
predicted_equal "$W" "$W/predict.txt" ""

# --- the guest's event log ----------------------------------------------------
replays_to_guest "$W/plain" ""

check "log --policy (predicted) --pcrs (guest) --uki: no mismatch, exit 0" \
    "$MEASURE" log -q "$W/eventlog.bin" --policy "$W/policy.json" --pcrs "$W/pcrs.txt" --uki "$W/uki.efi"

# A policy made from a UKI with another command line: refused, and --uki
# names the events that differ (PCR 9's load options, PCR 11's .cmdline).
"$MEASURE" predict --uki "$W/uki-other.efi" -o json >"$W/policy-other.json" 2>/dev/null
"$MEASURE" log -q "$W/eventlog.bin" --policy "$W/policy-other.json" --uki "$W/uki-other.efi" >"$W/other.txt" 2>&1
rc=$?
if [ $rc = 1 ] && grep -q '^PCR 9: MISMATCH' "$W/other.txt" &&
    grep -q '^PCR 9: event #[0-9]* has .*LOADED_IMAGE::LoadOptions (.cmdline)' "$W/other.txt" &&
    grep -q '^PCR 11: event #[0-9]* has .*(.cmdline (contents)' "$W/other.txt" &&
    grep -q '^PCR 4: event #[0-9]* has .*UKI (Authenticode)' "$W/other.txt"; then
    ok "log against another command line's policy: exit 1, names the load options, .cmdline and UKI events"
else
    fail "log against another command line's policy: exit 1, names the load options, .cmdline and UKI events (exit $rc)"
    sed 's/^/# /' "$W/other.txt" | tail -30
fi

# The firmware PCRs come from a reference log, warn-only.
"$MEASURE" predict --uki "$W/uki.efi" --firmware-log "$W/eventlog.bin" -o json >"$W/policy-fw.json" 2>"$W/out"
if "$MEASURE" log -q "$W/eventlog.bin" --policy "$W/policy-fw.json" --pcrs "$W/pcrs.txt" >"$W/out" 2>&1 &&
    [ "$(grep -c '"warnOnly": true' "$W/policy-fw.json")" = 7 ] &&
    [ "$(grep -c '"warnOnly": false' "$W/policy-fw.json")" = 5 ]; then
    ok "predict --firmware-log: PCRs 0-3, 5-7 warn-only from the log, 4, 9, 11-13 enforced; the guest matches"
else
    fail "predict --firmware-log: PCRs 0-3, 5-7 warn-only from the log, 4, 9, 11-13 enforced; the guest matches"
    sed 's/^/# /' "$W/policy-fw.json" "$W/out" | tail -30
fi

# A tampered log (one byte of the UKI's PCR 4 digest flipped) no longer
# reproduces the guest's PCR 4, and the explanation says so.
off=$(python3 - "$W/eventlog.bin" "$(grep -m1 'UKI (Authenticode)' "$W/predict.txt" | awk '{print $5}')" <<'PY'
import sys
d = open(sys.argv[1], 'rb').read()
print(d.find(bytes.fromhex(sys.argv[2])))
PY
)
if [ -n "$off" ] && [ "$off" -gt 0 ]; then
    cp "$W/eventlog.bin" "$W/tampered.bin"
    printf '\xff' | dd of="$W/tampered.bin" bs=1 seek="$off" conv=notrunc status=none
    "$MEASURE" log -q "$W/tampered.bin" --policy "$W/policy.json" --pcrs "$W/pcrs.txt" >"$W/tampered.txt" 2>&1
    rc=$?
    if [ $rc = 1 ] && grep -q '^PCR 4: the log does not reproduce the reported value' "$W/tampered.txt" &&
        grep -q '^PCR 4: MISMATCH' "$W/tampered.txt" && ! grep -q '^PCR 9: MISMATCH' "$W/tampered.txt"; then
        ok "a log with one PCR 4 digest byte flipped: exit 1, PCR 4 alone departs from the guest and the policy"
    else
        fail "a log with one PCR 4 digest byte flipped: exit 1, PCR 4 alone departs (exit $rc)"; sed 's/^/# /' "$W/tampered.txt" | tail -20
    fi
else
    fail "a log with one PCR 4 digest byte flipped (the UKI's digest is not in the log)"
fi

vm_tap "$W/serial" event-log-readable

# --- the same UKI, signed, booted with Secure Boot on -------------------------
if [ ${#sbmissing[@]} -gt 0 ]; then
    for i in 1 2 3 4 5 6 7; do vm_tap_line OK "# SKIP Secure Boot boot: missing ${sbmissing[*]}"; done
    exit 0
fi
[ $sb_signed = 1 ] || { fail "UKI signed with the snakeoil db key"; exit 1; }
if [ $sb_rc = 0 ] && "$MEASURE" log "$W/sb/eventlog.bin" | grep -q 'EV_EFI_VARIABLE_AUTHORITY .*"db"'; then
    ok "signed UKI booted with Secure Boot on (PCR 7 records the db certificate that admitted it)"
else
    fail "signed UKI booted with Secure Boot on (PCR 7 records the db certificate that admitted it) (qemu exit $(cat "$W/sb/rc" 2>/dev/null))"
    vm_log_tail "$W/sb/serial"; exit 1
fi
"$MEASURE" predict --uki "$W/uki-signed.efi" --secure-boot >"$W/predict-sb.txt" 2>&1 ||
    sed 's/^/# predict: /' "$W/predict-sb.txt"
predicted_equal "$W/sb" "$W/predict-sb.txt" " (Secure Boot, predict --secure-boot)"
replays_to_guest "$W/sb" " (Secure Boot)"
"$MEASURE" predict --uki "$W/uki-signed.efi" >"$W/predict-nosb.txt" 2>&1
p=$(sed -n 's/^4:sha256=\([0-9a-f]*\).*/\1/p' "$W/predict-nosb.txt")
if [ -n "$p" ] && [ "$p" != "$(sed -n 's/^4 //p' "$W/sb/pcrs.txt")" ]; then
    ok "without --secure-boot the prediction of PCR 4 does not match the Secure Boot guest (the kernel event)"
else
    fail "without --secure-boot the prediction of PCR 4 does not match the Secure Boot guest (the kernel event)"
fi
