#!/usr/bin/env bash
# arca-measure against independent implementations, without a VM:
#  - the Authenticode image hash of several PE files (systemd-stub, systemd-boot,
#    the kernel, a UKI built by arca-measure) equals pesign's, osslsigncode's
#    and sbsigntool's;
#  - PCR 11 equals systemd-measure calculate for several section and phase sets;
#  - policy signatures interoperate with openssl dgst both ways, and each
#    check of verify refuses what it should (from the attacker's side);
#  - malformed PE files and event logs are refused with a reason.
set -u
here=$(cd "$(dirname "$0")/../.." && pwd)
MEASURE=${ARCA_BUILD_DIR:-$here/build}/arca-measure
STUB=/usr/lib/systemd/boot/efi/linuxx64.efi.stub
BOOT=/usr/lib/systemd/boot/efi/systemd-bootx64.efi
SDMEASURE=/usr/lib/systemd/systemd-measure

missing=()
for t in pesign:pesign osslsigncode:osslsigncode sbsign:sbsigntool sbverify:sbsigntool sbattach:sbsigntool \
         openssl:openssl; do
    command -v "${t%%:*}" >/dev/null || missing+=("${t%%:*} (package ${t#*:})")
done
[ -r "$STUB" ] || missing+=("$STUB (package systemd-boot-efi)")
[ -x "$SDMEASURE" ] || missing+=("$SDMEASURE (package systemd)")
[ -x "$MEASURE" ] || missing+=("$MEASURE (run make)")
kernel=$(ls /boot/vmlinuz-* 2>/dev/null | sort -V | tail -1)
[ -n "$kernel" ] || missing+=("a kernel in /boot (package linux-image-amd64)")
if [ ${#missing[@]} -gt 0 ]; then echo "1..0 # SKIP missing: ${missing[*]}"; exit 0; fi

W=$(mktemp -d "${TMPDIR:-/tmp}/test-measure.XXXXXX")
trap 'rm -rf "$W"' EXIT
n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
fail() { n=$((n + 1)); failed=1; echo "not ok $n - $1"; shift; for l in "$@"; do echo "# $l"; done; }
lc() { tr 'A-F' 'a-f'; }
ours() { "$MEASURE" pe-hash "$1" 2>&1 | awk '{print $1}'; }

# --- inputs -------------------------------------------------------------------
head -c 300000 /dev/urandom >"$W/initrd"
printf 'console=ttyS0 root=/dev/vda1 ro' >"$W/cmdline"
printf 'ID=arca\nNAME=arca\n' >"$W/osrel"
printf 'BM' >"$W/splash"; head -c 777 /dev/urandom >>"$W/splash"
printf '\xd0\x0d\xfe\xed' >"$W/dtb"; head -c 100 /dev/urandom >>"$W/dtb"
openssl ecparam -name prime256v1 -genkey -noout -out "$W/pcrkey.pem" 2>/dev/null
openssl ec -in "$W/pcrkey.pem" -pubout -out "$W/pcrpkey" 2>/dev/null
"$MEASURE" uki assemble --linux "$kernel" --initrd "$W/initrd" --cmdline "$W/cmdline" --osrel "$W/osrel" \
    --output "$W/uki.efi" 2>"$W/err" || { fail "uki assemble" "$(cat "$W/err")"; }
pefiles=("$STUB" "$kernel" "$W/uki.efi")
[ -r "$BOOT" ] && pefiles+=("$BOOT")

# --- Authenticode hash --------------------------------------------------------
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$W/sign.key" -out "$W/sign.crt" -days 1 \
    -subj /CN=arca-test 2>/dev/null
for f in "${pefiles[@]}"; do
    name=$(basename "$f")
    mine=$(ours "$f")
    theirs=$(pesign -h -i "$f" 2>&1 | sed -n 's/^hash: //p' | lc)
    if [ -n "$theirs" ] && [ "$mine" = "$theirs" ]; then ok "Authenticode SHA-256 of $name equals pesign's"
    else fail "Authenticode SHA-256 of $name equals pesign's" "ours $mine, pesign '$theirs'"; fi

    # osslsigncode signs (covering its own hash of the image) and verifies
    # (recomputing it): both digests must equal ours of the signed file.
    rm -f "$W/o.efi"
    if osslsigncode sign -certs "$W/sign.crt" -key "$W/sign.key" -h sha256 -in "$f" -out "$W/o.efi" >/dev/null 2>&1; then
        v=$(osslsigncode verify -in "$W/o.efi" 2>&1)
        cur=$(echo "$v" | sed -n 's/^Current message digest *: *\([0-9A-Fa-f]*\).*/\1/p' | tail -1 | lc)
        calc=$(echo "$v" | sed -n 's/^Calculated message digest *: *\([0-9A-Fa-f]*\).*/\1/p' | tail -1 | lc)
        mine=$(ours "$W/o.efi")
        if [ -n "$calc" ] && [ "$mine" = "$calc" ] && [ "$mine" = "$cur" ]; then
            ok "Authenticode SHA-256 of $name signed by osslsigncode equals its signed and its computed digest"
        else
            fail "Authenticode SHA-256 of $name signed by osslsigncode equals its signed and its computed digest" \
                "ours $mine, signed '$cur', computed '$calc'"
        fi
    else
        fail "osslsigncode signs $name"
    fi

    # sbsign signs its own hash; sbverify recomputes and checks it; the
    # digest inside the detached PKCS#7 must be ours of the signed file.
    rm -f "$W/s.efi" "$W/s.p7"
    if sbsign --key "$W/sign.key" --cert "$W/sign.crt" --output "$W/s.efi" "$f" >/dev/null 2>&1 &&
        sbverify --cert "$W/sign.crt" "$W/s.efi" >/dev/null 2>&1 &&
        sbattach --detach "$W/s.p7" "$W/s.efi" >/dev/null 2>&1; then
        theirs=$(openssl asn1parse -inform DER -in "$W/s.p7" | grep -m1 'l=  32 prim: OCTET STRING' |
            sed 's/.*\[HEX DUMP\]://' | lc)
        mine=$(ours "$W/s.efi")
        if [ -n "$theirs" ] && [ "$mine" = "$theirs" ]; then
            ok "Authenticode SHA-256 of $name signed by sbsign equals the digest it signed (sbverify agrees)"
        else
            fail "Authenticode SHA-256 of $name signed by sbsign equals the digest it signed" "ours $mine, sbsign '$theirs'"
        fi
    else
        fail "sbsign signs and sbverify verifies $name"
    fi
done

# --- PCR 11 against systemd-measure ------------------------------------------
# name|assemble options|systemd-measure options|phases
sets=(
    "linux|--linux $kernel|--linux=$kernel"
    "four|--linux $kernel --osrel $W/osrel --cmdline $W/cmdline --initrd $W/initrd|--linux=$kernel --osrel=$W/osrel --cmdline=$W/cmdline --initrd=$W/initrd"
    "seven|--linux $kernel --osrel $W/osrel --cmdline $W/cmdline --initrd $W/initrd --splash $W/splash --dtb $W/dtb --pcrpkey $W/pcrpkey|--linux=$kernel --osrel=$W/osrel --cmdline=$W/cmdline --initrd=$W/initrd --splash=$W/splash --dtb=$W/dtb --pcrpkey=$W/pcrpkey"
)
phases=("" "enter-initrd" "enter-initrd:leave-initrd" "enter-initrd:leave-initrd:sysinit:ready"
    "enter-initrd:leave-initrd:sysinit:ready:shutdown:final")
for s in "${sets[@]}"; do
    IFS='|' read -r name aopts mopts <<<"$s"
    # shellcheck disable=SC2086
    "$MEASURE" uki assemble $aopts --output "$W/u-$name.efi" 2>"$W/err" || { fail "uki assemble $name" "$(cat "$W/err")"; continue; }
    good=1 why=()
    for p in "${phases[@]}"; do
        mine=$("$MEASURE" predict --uki "$W/u-$name.efi" --phases "$p" 2>&1 | sed -n 's/^11:sha256=//p')
        # shellcheck disable=SC2086
        theirs=$("$SDMEASURE" calculate $mopts --bank=sha256 --phase="$p" 2>&1 | sed -n 's/^11:sha256=//p' | lc)
        [ -n "$theirs" ] && [ "$mine" = "$theirs" ] || { good=0; why+=("phases '$p': ours '$mine', systemd-measure '$theirs'"); }
    done
    if [ $good = 1 ]; then ok "PCR 11 of a UKI with sections '$name' equals systemd-measure calculate for ${#phases[@]} phase paths"
    else fail "PCR 11 of a UKI with sections '$name' equals systemd-measure calculate" "${why[@]}"; fi
done

# --- signed policies ----------------------------------------------------------
"$MEASURE" predict --uki "$W/uki.efi" --policy "$W/policy.json" >/dev/null 2>"$W/err" || fail "predict --policy" "$(cat "$W/err")"
openssl ecparam -name prime256v1 -genkey -noout -out "$W/owner.pem" 2>/dev/null
openssl ec -in "$W/owner.pem" -pubout -out "$W/owner.pub" 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out "$W/other.pem" 2>/dev/null
openssl ec -in "$W/other.pem" -pubout -out "$W/other.pub" 2>/dev/null
openssl ecparam -name secp384r1 -genkey -noout -out "$W/p384.pem" 2>/dev/null
openssl ec -in "$W/p384.pem" -pubout -out "$W/p384.pub" 2>/dev/null

if "$MEASURE" sign --key "$W/owner.pem" "$W/policy.json" 2>"$W/err" &&
    openssl dgst -sha256 -verify "$W/owner.pub" -signature "$W/policy.json.sig" "$W/policy.json" 2>&1 | grep -q 'Verified OK'; then
    ok "arca-measure sign: openssl dgst -sha256 -verify accepts the signature"
else fail "arca-measure sign: openssl dgst -sha256 -verify accepts the signature" "$(cat "$W/err")"; fi

openssl dgst -sha256 -sign "$W/owner.pem" -out "$W/openssl.sig" "$W/policy.json"
if out=$("$MEASURE" verify --pubkey "$W/owner.pub" --signature "$W/openssl.sig" "$W/policy.json" 2>&1) &&
    echo "$out" | grep -q 'signature OK (5 enforced PCRs, 0 warn-only)'; then
    ok "arca-measure verify accepts openssl dgst -sha256 -sign's signature"
else fail "arca-measure verify accepts openssl dgst -sha256 -sign's signature" "$out"; fi

# Each refusal with only that thing wrong.
refused() { # what expected-text command...
    local what=$1 want=$2 out rc
    shift 2
    out=$("$@" 2>&1); rc=$?
    if [ $rc -ne 0 ] && echo "$out" | grep -q -- "$want"; then ok "$what"
    else fail "$what" "exit $rc: $out"; fi
}
sed 's/"warnOnly": false/"warnOnly": true/' "$W/policy.json" >"$W/policy-warn.json"
cp "$W/policy.json.sig" "$W/policy-warn.json.sig"
refused "verify refuses a policy changed after signing (one PCR made warn-only)" "REFUSED" \
    "$MEASURE" verify --pubkey "$W/owner.pub" "$W/policy-warn.json"
refused "verify refuses another P-256 key" "REFUSED" \
    "$MEASURE" verify --pubkey "$W/other.pub" "$W/policy.json"
refused "verify refuses a P-384 key" "not an ECDSA P-256 key" \
    "$MEASURE" verify --pubkey "$W/p384.pub" "$W/policy.json"
head -c 20 "$W/policy.json.sig" >"$W/short.sig"
refused "verify refuses a truncated signature" "REFUSED" \
    "$MEASURE" verify --pubkey "$W/owner.pub" --signature "$W/short.sig" "$W/policy.json"
cp "$W/policy.json" "$W/unsigned.json"
refused "verify without a signature file names it" "unsigned.json.sig" \
    "$MEASURE" verify --pubkey "$W/owner.pub" "$W/unsigned.json"
printf 'not a policy\n' >"$W/junk.json"
refused "sign refuses a file that is not a policy" "not a valid measurement policy" \
    "$MEASURE" sign --key "$W/owner.pem" "$W/junk.json"
refused "sign refuses a P-384 key" "P-256" \
    "$MEASURE" sign --key "$W/p384.pem" --output "$W/p384.sig" "$W/policy.json"
openssl dgst -sha256 -sign "$W/owner.pem" -out "$W/junk.json.sig" "$W/junk.json"
refused "verify refuses a validly signed file that is not a policy" "not a valid policy" \
    "$MEASURE" verify --pubkey "$W/owner.pub" "$W/junk.json"

# --- malformed input through the CLI -------------------------------------------
head -c 1000 "$STUB" >"$W/trunc.efi"
refused "pe-hash refuses a truncated PE, naming it" "truncated" "$MEASURE" pe-hash "$W/trunc.efi"
refused "predict refuses a PE without .linux" "no .linux section" "$MEASURE" predict --uki "$STUB" --stub-version 252
printf 'MZ-this-is-no-kernel' >"$W/fake-linux"
"$MEASURE" uki assemble --linux "$W/fake-linux" --output "$W/fake.efi" 2>/dev/null
refused "predict refuses a .linux that is not a PE image" ".linux is not a PE image" "$MEASURE" predict --uki "$W/fake.efi"
printf 'console=ttyS0 caf\xc3\xa9' >"$W/cmdline-utf8"
"$MEASURE" uki assemble --linux "$kernel" --cmdline "$W/cmdline-utf8" --output "$W/utf8.efi" 2>/dev/null
refused "predict refuses a non-ASCII .cmdline (not modelled)" "not ASCII" "$MEASURE" predict --uki "$W/utf8.efi"
head -c 100 /dev/urandom >"$W/junk.log"
refused "log refuses a log that is not crypto-agile" "Cannot read the event log" "$MEASURE" log "$W/junk.log"

# --- arca-measure log on a recorded real boot ------------------------------------
LOGS=$here/tests/data/eventlog
rec=$LOGS/ovmf-uki-direct.bin
if out=$("$MEASURE" log -q "$rec" --pcrs "$LOGS/ovmf-uki-direct-pcrs.txt" 2>&1) &&
    echo "$out" | grep -q '^the log reproduces the reported values'; then
    ok "log --pcrs: the recorded boot's log reproduces the guest's PCRs (\"N HEX\" lines)"
else fail "log --pcrs: the recorded boot's log reproduces the guest's PCRs" "$out"; fi
{ echo "  sha1:"; echo "    0 : 0x$(printf '%040d' 0)"; echo "  sha256:"
  sed 's/^\([0-9]*\) \(.*\)/    \1 : 0x\2/' "$LOGS/ovmf-uki-direct-pcrs.txt" | tr 'a-f' 'A-F'; } >"$W/pcrread.txt"
if "$MEASURE" log -q "$rec" --pcrs "$W/pcrread.txt" >/dev/null 2>&1; then ok "log --pcrs reads tpm2_pcrread's output (sha256 section only)"
else fail "log --pcrs reads tpm2_pcrread's output (sha256 section only)"; fi
awk '$1 == 9 { $2 = sprintf("%064d", 0) } { print }' "$LOGS/ovmf-uki-direct-pcrs.txt" >"$W/pcrs-9.txt"
refused "log --pcrs with PCR 9 changed: exit 1, names PCR 9 alone" "^PCR 9: the log does not reproduce" \
    "$MEASURE" log -q "$rec" --pcrs "$W/pcrs-9.txt"
if out=$("$MEASURE" log -q "$rec" --pcrs "$W/pcrs-9.txt" 2>&1); [ "$(echo "$out" | grep -c 'does not reproduce')" = 1 ]; then
    ok "  ... and no other PCR"
else fail "  ... and no other PCR" "$out"; fi
grep -v '^20 ' "$LOGS/ovmf-uki-direct-pcrs.txt" >"$W/pcrs-short.txt"
refused "log --pcrs refuses a file without PCR 20" "PCR 20 is missing" "$MEASURE" log -q "$rec" --pcrs "$W/pcrs-short.txt"
events=$("$MEASURE" log "$rec" | grep -v '^#' | grep -vc ':sha256=')
if "$MEASURE" log -o json "$rec" >"$W/log.jsonl" 2>"$W/err" &&
    python3 - "$W/log.jsonl" "$events" <<'PY'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
objs = [json.loads(l) for l in lines]
ev = [o for o in objs if "index" in o]
assert len(ev) == int(sys.argv[2]), (len(ev), sys.argv[2])
assert all(set(("pcr", "type", "digests", "description")) <= set(o) for o in ev)
assert len(objs[-1]["replayed"]["sha256"]) == 24
PY
then ok "log -o json: one JSON object per event with pcr, type, digests, description, then the replayed banks"
else fail "log -o json: one JSON object per event with pcr, type, digests, description, then the replayed banks" "$(cat "$W/err")"; fi

echo "1..$n"
exit $failed
