#!/usr/bin/env bash
# End-to-end measured boot: build a UKI with `arca-measure uki assemble`
# (kernel + busybox initramfs on systemd-stub), boot it from an ESP under
# OVMF (q35, pflash) with a swtpm vTPM, read the guest's PCRs and firmware
# event log over the serial console, and check
#  - `arca-measure predict` equals the guest's PCRs 4, 9, 11, 12, 13;
#  - replaying the guest's event log reproduces every guest PCR but 10 (IMA);
#  - `arca-measure log` accepts the log against the predicted policy and,
#    against a UKI/policy with another command line or a tampered log,
#    refuses and names the event that differs.
# One boot, ~15-25 s under TCG.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/vm-lib.sh"
OVMF_CODE=/usr/share/OVMF/OVMF_CODE_4M.fd
OVMF_VARS=/usr/share/OVMF/OVMF_VARS_4M.fd
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
echo "1..12"

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
printf 'console=ttyS0 quiet loglevel=1 panic=-1' >"$W/cmdline"
printf 'console=ttyS0 quiet loglevel=1 panic=-1 init=/bin/sh' >"$W/cmdline-other"
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

# An ESP without mounting: a FAT file system on the whole disk.
esp=$W/esp.img
mkfs.vfat -C "$esp" $(( $(stat -c %s "$W/uki.efi") / 1024 + 4096 )) >/dev/null &&
    MTOOLS_SKIP_CHECK=1 mmd -i "$esp" ::/EFI ::/EFI/BOOT &&
    MTOOLS_SKIP_CHECK=1 mcopy -i "$esp" "$W/uki.efi" ::/EFI/BOOT/BOOTX64.EFI ||
    { fail "ESP built"; exit 1; }
cp "$OVMF_VARS" "$W/vars.fd"

# --- the boot --------------------------------------------------------------
start=$SECONDS
vm_boot --log "$W/serial" --no-kernel --disk "$esp" --tpm "$W/tpm" --tpm-flags not-need-init \
    --timeout 240 --mem 768 --qemu-arg -machine --qemu-arg q35 \
    --qemu-arg -drive --qemu-arg "if=pflash,format=raw,unit=0,readonly=on,file=$OVMF_CODE" \
    --qemu-arg -drive --qemu-arg "if=pflash,format=raw,unit=1,file=$W/vars.fd"
rc=$?
echo "# OVMF boot of the UKI took $((SECONDS - start)) s"
between() { tr -d '\r' <"$W/serial" | sed -n "/^$1\$/,/^$2\$/p" | sed '1d;$d'; }
between ARCA-PCRS-BEGIN ARCA-PCRS-END | tr 'A-F' 'a-f' >"$W/pcrs.txt"
between ARCA-LOG-BEGIN ARCA-LOG-END | base64 -d >"$W/eventlog.bin" 2>/dev/null
if [ $rc -eq 0 ] && [ "$(grep -c '^[0-9]* [0-9a-f]\{64\}$' "$W/pcrs.txt")" = 24 ] && [ -s "$W/eventlog.bin" ]; then
    ok "guest booted by OVMF reported its 24 PCRs and its event log ($(stat -c %s "$W/eventlog.bin") bytes)"
else
    fail "guest booted by OVMF reported its 24 PCRs and its event log (qemu exit $rc)"
    vm_log_tail "$W/serial"; exit 1
fi
guest() { sed -n "s/^$1 //p" "$W/pcrs.txt"; }

# --- prediction against the guest -------------------------------------------
"$MEASURE" predict --uki "$W/uki.efi" --policy "$W/policy.json" >"$W/predict.txt" 2>&1 ||
    { fail "arca-measure predict"; sed 's/^/# /' "$W/predict.txt"; }
predicted() { sed -n "s/^$1:sha256=\([0-9a-f]*\).*/\1/p" "$W/predict.txt"; }
for set in "4" "9" "11" "12 13"; do
    good=1 why=()
    for i in $set; do
        [ -n "$(predicted "$i")" ] && [ "$(predicted "$i")" = "$(guest "$i")" ] ||
            { good=0; why+=("PCR $i predicted $(predicted "$i"), guest $(guest "$i")"); }
    done
    if [ $good = 1 ]; then ok "predicted PCR ${set// /, } equals the guest's"
    else fail "predicted PCR ${set// /, } equals the guest's" "${why[@]}"; sed -n '/^# [0-9]/p' "$W/predict.txt" | sed 's/^/# /'; fi
done

# --- the guest's event log ----------------------------------------------------
"$MEASURE" log -q "$W/eventlog.bin" >"$W/replay.txt" 2>&1
good=1 why=()
for i in $(seq 0 23); do
    [ "$i" = 10 ] && continue # IMA's, not the firmware's
    r=$(sed -n "s/^$i:sha256=\([0-9a-f]*\).*/\1/p" "$W/replay.txt")
    [ -n "$r" ] && [ "$r" = "$(guest "$i")" ] || { good=0; why+=("PCR $i: replayed '$r', guest $(guest "$i")"); }
done
if [ $good = 1 ]; then ok "replaying the guest's event log reproduces the guest's PCRs (all but IMA's 10)"
else fail "replaying the guest's event log reproduces the guest's PCRs (all but IMA's 10)" "${why[@]}"; fi

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
