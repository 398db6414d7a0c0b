#!/usr/bin/env bash
# The state disk in qemu guests (real dm-crypt + dm-integrity, a vTPM), TAP.
# Four boots, scenarios combined per boot to keep the VM time small. The
# test runs in a network namespace of its own; there the host side plays a
# small cloud: cp1, the first node of the owner's cluster (arca-bootstrapper
# with the etcd driver and its join service, initialized by `arca init`),
# runs on its own swtpm whose PCRs are extended with the guest's own
# measurements (its firmware event log and IMA list, read in boot 1), so
# it runs "the same image" as the guest; its AK is certified by the same
# platform CA. The guest reaches it at 10.0.2.2 (qemu user networking).
# From boot 1's measurements on, the owner's policy enforces PCRs 0-14 as
# the guest measured them and PCR 15 zero: cp1's join service checks the
# guest's join and rejoin against all of them, `arca recover` too.
#   boot 1  disk A blank: format + mount + bind-mounts + write; the real
#           arca-bootstrapper in the guest joins cp1 as worker w1 through
#           its join service (mutual aTLS) and re-keys the disk through its
#           hand-off; the key equals HKDF computed by the openssl tool;
#           stock `cryptsetup open` with that key reads the data; a wrong
#           key is refused and the disk untouched; disk B with a stock
#           cipher_null LUKS2 header is refused and untouched; the old
#           primary header written back (a re-key interrupted between its
#           two header writes): the newer valid copy wins.
#   boot 2  disk D blank: qemu is killed during the initial wipe.
#   boot 3  disk A initialized (through the newer header copy): waits for
#           its key. Rejoin is refused by every join service it is given: a
#           join service of the same cluster whose vTPM has another PCR 4
#           (refused by the guest in the handshake), one of another cluster
#           (same image; it does not know the disk: 404), an unreachable
#           one; the disk stays closed. `arca recover` with a policy whose
#           PCR 4 differs sends nothing, with another cluster's secrets is refused,
#           with the owner's secrets opens it; data intact; PCR 15 = node
#           lock with the cluster ID. Disk D: reformatted cleanly. Disk E
#           (data, no LUKS header): refused, untouched. Disk A closed, one
#           byte flipped on the raw disk: reading it gives an integrity
#           error, never data.
#   boot 4  disk A again, found by its virtio serial (--device auto) next
#           to a blank disk that stays untouched: its key comes by rejoin
#           through cp1's join service (POST /v1/rejoin); data intact;
#           PCR 15 = node lock.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/vm-lib.sh"
B=${ARCA_BUILD_DIR:-$here/../../build}
vm_require swtpm cryptsetup mkfs.ext4 openssl base64 od etcd etcdctl ip nft tpm2_pcrextend tpm2_pcrread ||
    { echo "1..0 # SKIP missing: $VM_MISSING"; exit 0; }
for f in arca arca-disk-mapper arca-bootstrapper arca-join-service arca-measure; do
    [ -x "$B/$f" ] || { echo "1..0 # SKIP $B/$f not built (run make)"; exit 0; }
done
# Run in a network namespace of our own (fixed ports for the host-side
# nodes, a firewall rule for the unreachable join service), plus one for
# the other cluster; whatever runs in them is ended when the test ends.
if [ -z "${ARCA_VMDISK_NS:-}" ]; then
    NS=arca-vmdisk-$$
    ip netns add "$NS" 2>/dev/null && ip netns add "$NS-o" 2>/dev/null || {
        ip netns del "$NS" 2>/dev/null
        echo "1..0 # SKIP cannot create network namespaces (needs root)"; exit 0; }
    ns_cleanup() {
        local n
        for n in "$NS" "$NS-o"; do ip netns pids "$n" 2>/dev/null | xargs -r kill -9 2>/dev/null; done
        sleep 0.2
        for n in "$NS" "$NS-o"; do ip netns del "$n" 2>/dev/null; done
    }
    trap ns_cleanup EXIT
    trap 'exit 130' INT TERM
    ARCA_VMDISK_NS=$NS ip netns exec "$NS" bash "$0" "$@"
    exit $?
fi
O=$ARCA_VMDISK_NS-o
ip link set lo up
ip netns exec "$O" ip link set lo up
ip link add vo type veth peer name eth0 netns "$O"
ip addr add 10.77.0.1/24 dev vo && ip link set vo up
ip -n "$O" addr add 10.77.0.2/24 dev eth0 && ip -n "$O" link set eth0 up
# 10.77.0.3 is a join service that never answers: its SYNs are dropped.
nft -f - <<'NFT'
table inet arcatest {
    chain out { type filter hook output priority 0; policy accept; ip daddr 10.77.0.3 drop; }
}
NFT
vm_workdir
W=$VM_WORK
T0=$SECONDS
HOSTPIDS=()
host_cleanup() {
    local p
    for p in "${HOSTPIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${HOSTPIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null
    done
    vm_cleanup
}
trap host_cleanup EXIT
trap 'host_cleanup; exit 130' INT TERM

# --- owner side: platform CA, owner secrets, policy --------------------------------
"$B/arca" platform create-ca --dir "$W/ca" >/dev/null 2>&1
zero=$(printf '0%.0s' $(seq 64))
# PCR 15 is zero until the node lock is taken: a node that already joined
# or was initialized in this boot must not be recovered.
printf '{"15": {"expected": "%s", "warnOnly": false}}\n' "$zero" >"$W/policy.json"
printf '{"15": {"expected": "%s", "warnOnly": false}}\n' "$(printf 'f%.0s' $(seq 64))" >"$W/policy-other.json"
gen() { # gen DIR POLICY
    "$B/arca" config generate --dir "$1" --name disktest --driver etcd --policy "$2" \
        --platform-ca "$W/ca/platform-ca.pem" >"$1.out" 2>&1
}
gen "$W/owner" "$W/policy.json" && gen "$W/other" "$W/policy.json" && gen "$W/badpolicy" "$W/policy-other.json" || {
    echo "1..1"; vm_tap_line FAIL "owner configuration generated"; exit 1; }
b64hex() { sed -n "s/.*\"$1\": *\"\\([^\"]*\\)\".*/\\1/p" "$2" | base64 -d | od -An -tx1 | tr -d ' \n'; }
mkdir -p "$W/etc"
b64hex masterSecret "$W/owner/arca-owner.json" >"$W/etc/master.hex"
b64hex masterSalt "$W/owner/arca-owner.json" >"$W/etc/salt.hex"
cp "$W/ca/platform-ca.pem" "$W/etc/platform-ca.pem"

# --- guest helpers, shared by the scenarios -----------------------------------------
cat >"$W/common.sh" <<'EOF'
. /lib/vmtest.sh
DM=/usr/bin/arca-disk-mapper
MKFS="--mkfs /usr/bin/mkfs.ext4"
derive() { # derive UUID > key: HKDF-SHA256 by the openssl tool, not by arca
    /usr/bin/openssl kdf -keylen 32 -kdfopt digest:SHA256 -kdfopt hexkey:$(cat /etc/arca-test/master.hex) \
        -kdfopt hexsalt:$(cat /etc/arca-test/salt.hex) -kdfopt info:key-$1 -binary HKDF
}
disk_hash() { /usr/bin/openssl dgst -sha256 -r "$1" | cut -d' ' -f1; }
at() { vmtest_note "t=$(cut -d' ' -f1 /proc/uptime) $*"; }
EOF
TCTI_LIB=$(ldconfig -p | sed -n 's/.*libtss2-tcti-device.so.0 .*=> //p' | head -1)
[ -n "$TCTI_LIB" ] || { echo "1..0 # SKIP missing: libtss2-tcti-device.so.0"; exit 0; }
FILES=("$B/arca-disk-mapper" cryptsetup mkfs.ext4 openssl "$TCTI_LIB=$TCTI_LIB"
    "$W/common.sh=/lib/common.sh" "$W/etc/master.hex=/etc/arca-test/master.hex"
    "$W/etc/salt.hex=/etc/arca-test/salt.hex")
FILES=("${FILES[@]}" "$W/etc/platform-ca.pem=/etc/arca-test/platform-ca.pem")
# etcd: the etcd driver wants its binary on every node, workers too.
FILES1=("${FILES[@]}" "$B/arca-bootstrapper" "$B/arca-join-service" etcd)

# --- boot 1 ---------------------------------------------------------------------------
cat >"$W/boot1.sh" <<'EOF'
. /lib/common.sh
# What the host needs to give cp1's vTPM the same PCRs: this boot's
# measurements (firmware event log, IMA list) and the values they produced.
mkdir -p /sys/kernel/security && mount -t securityfs securityfs /sys/kernel/security
vmtest_note "bioslog=$(base64 /sys/kernel/security/tpm0/binary_bios_measurements | tr -d '\n')"
vmtest_note "imalog=$(base64 /sys/kernel/security/ima/binary_runtime_measurements 2>/dev/null | tr -d '\n')"
p=""; for i in 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14; do p="$p$i=$(cat /sys/class/tpm/tpm0/pcr-sha256/$i) "; done
vmtest_note "pcrs=$p"
if $DM --device /dev/vda $MKFS setup >/tmp/setup.out 2>/dev/console && grep -q '^READY state=formatted' /tmp/setup.out; then
    vmtest_ok format-mount
else
    vmtest_fail format-mount "setup failed: $(cat /tmp/setup.out)"
fi
at formatted
UUID=$($DM --device /dev/vda uuid)
vmtest_note "uuid=$UUID"
if grep -q ' /run/state ext4 ' /proc/mounts && echo bind >/var/bind-test && [ "$(cat /run/state/var/bind-test)" = bind ] &&
    [ -d /run/state/kubernetes ] && grep -q ' /etc/kubernetes ' /proc/mounts; then
    vmtest_ok bind-mounts
else
    vmtest_fail bind-mounts "/run/state not ext4 or /var, /etc/kubernetes not bound to it"
fi
if $DM --device /dev/vda check | grep -q '^state=uninitialized' && [ -s /run/arca-disk/initial-key ]; then
    vmtest_ok token-uninitialized
else
    vmtest_fail token-uninitialized "$($DM --device /dev/vda check 2>&1)"
fi
dd if=/dev/urandom of=/run/state/data bs=64k count=32 2>/dev/null
sha256sum /run/state/data | cut -d' ' -f1 >/run/state/data.sha256
sync
cp /run/arca-disk/initial-key /tmp/initial.key
head -c 16384 /dev/vda >/tmp/old-primary
derive "$UUID" >/tmp/derived.key
head -c 32 /dev/urandom >/tmp/wrong.key
# The real bootstrapper joins cp1 (on the host, 10.0.2.2) as a worker; its
# rekey_disk hand-off runs `arca-disk-mapper rekey`.
vmtest_net_up
TSS2_LOG=all+none /usr/bin/arca-bootstrapper --tcti device:/dev/tpmrm0 --state-dir /run/state --node-name w1 \
    --underlay 10.0.2.15 --platform-ca /etc/arca-test/platform-ca.pem --join 10.0.2.2:30090 \
    --disk-device /dev/vda >/dev/console 2>&1 &
BP=$!
i=0
while [ $i -lt 360 ] && ! $DM --device /dev/vda check 2>/dev/null | grep -q '^state=initialized'; do sleep 0.5; i=$((i+1)); done
at initialized
if $DM --device /dev/vda check | grep -q '^state=initialized' && [ ! -e /run/arca-disk/initial-key ] &&
    [ -s /run/state/arca/node.json ]; then
    vmtest_ok rekey-by-bootstrapper
else
    vmtest_fail rekey-by-bootstrapper "the disk was not re-keyed after the join"
fi
sleep 1
kill $BP; wait $BP
# Idempotent with the key the openssl tool derives: the join service gave
# HKDF(master secret, salt, "key-" + UUID).
if $DM --device /dev/vda rekey --uuid "$UUID" </tmp/derived.key 2>/dev/console; then
    vmtest_ok rekey
else
    vmtest_fail rekey "the independently derived key does not match the disk's"
fi
if ! $DM --device /dev/vda rekey --uuid "$UUID" </tmp/wrong.key 2>/tmp/err && grep -q 'initialized already' /tmp/err; then
    vmtest_ok rekey-refuses-other-key
else
    vmtest_fail rekey-refuses-other-key "$(cat /tmp/err)"
fi
$DM --device /dev/vda close 2>/dev/console
at rekeyed
# Stock cryptsetup with the derived key: interoperability.
if /usr/bin/cryptsetup open --key-file /tmp/derived.key /dev/vda stock 2>/dev/console && mount /dev/mapper/stock /mnt &&
    [ "$(sha256sum /mnt/data | cut -d' ' -f1)" = "$(cat /mnt/data.sha256)" ]; then
    vmtest_ok stock-cryptsetup-open
else
    vmtest_fail stock-cryptsetup-open "cryptsetup open with the derived key failed or data differs"
fi
umount /mnt; /usr/bin/cryptsetup close stock
if ! /usr/bin/cryptsetup open --test-passphrase --key-file /tmp/initial.key /dev/vda 2>/dev/null; then
    vmtest_ok initial-key-gone
else
    vmtest_fail initial-key-gone "the initial key still opens the disk"
fi
at stock
H1=$(disk_hash /dev/vda)
if ! $DM --device /dev/vda open </tmp/wrong.key 2>/tmp/err && grep -q 'does not open' /tmp/err &&
    [ "$(disk_hash /dev/vda)" = "$H1" ] && [ ! -e /dev/mapper/arca-state ]; then
    vmtest_ok wrong-key-refused-disk-untouched
else
    vmtest_fail wrong-key-refused-disk-untouched "$(cat /tmp/err)"
fi
at wrong-key
# A LUKS2 header from stock cryptsetup that asks for cipher_null.
/usr/bin/cryptsetup luksFormat -q --type luks2 --cipher cipher_null-ecb --key-size 256 --pbkdf pbkdf2 \
    --pbkdf-force-iterations 1000 --key-file /tmp/derived.key /dev/vdb 2>/dev/console
H2=$(disk_hash /dev/vdb)
if ! $DM --device /dev/vdb --name other --state-dir /run/other --bind none $MKFS setup >/dev/null 2>/tmp/err &&
    grep -q 'segments.0.encryption: "cipher_null-ecb"' /tmp/err && [ "$(disk_hash /dev/vdb)" = "$H2" ]; then
    vmtest_ok cipher-null-refused-disk-untouched
else
    vmtest_fail cipher-null-refused-disk-untouched "$(cat /tmp/err)"
fi
# As if the power failed between the re-key's two header writes: the old
# primary header (uninitialized, its keyslot area wiped) with the new
# secondary. The newer valid copy must win; boot 3 then opens the disk
# through it.
dd if=/tmp/old-primary of=/dev/vda conv=notrunc,fsync 2>/dev/null
if $DM --device /dev/vda check >/tmp/out 2>/tmp/err && grep -q '^state=initialized' /tmp/out &&
    grep -q 'newer valid header copy' /tmp/err; then
    vmtest_ok interrupted-rekey-uses-newer-copy
else
    vmtest_fail interrupted-rekey-uses-newer-copy "$(cat /tmp/out /tmp/err)"
fi
EOF

# --- boot 2: killed during the wipe ---------------------------------------------------
cat >"$W/boot2.sh" <<'EOF'
. /lib/common.sh
$DM --device /dev/vda $MKFS setup 2>/dev/console
echo "VMTEST fail killed: the format finished before qemu was killed"
EOF

# --- boot 3 ---------------------------------------------------------------------------
cat >"$W/boot3.sh" <<'EOF'
. /lib/common.sh
vmtest_net_up
# The header region: both headers and the keyslots area, up to the data.
HDRSIZE=$($DM --device /dev/vda check | sed -n 's/.*data-offset=\([0-9]*\).*/\1/p')
HDR=$(head -c "$HDRSIZE" /dev/vda | sha256sum | cut -d' ' -f1)
# Rejoin through join services that must all fail: same cluster but
# another PCR 4, another cluster, unreachable.
$DM --device /dev/vda --tcti device:/dev/tpmrm0 --platform-ca /etc/arca-test/platform-ca.pem \
    --join 10.0.2.2:30091 --join 10.77.0.2:30090 --join 10.77.0.3:30090 $MKFS setup >/dev/console 2>&1 &
pid=$!
i=0
while kill -0 $pid 2>/dev/null && [ $i -lt 900 ]; do sleep 0.2; i=$((i+1)); done
if wait $pid && grep -q ' /run/state ext4 ' /proc/mounts; then vmtest_ok recovered-open; else vmtest_fail recovered-open "setup did not open the disk"; fi
if [ -s /run/state/data ] && [ "$(sha256sum /run/state/data | cut -d' ' -f1)" = "$(cat /run/state/data.sha256)" ]; then
    vmtest_ok data-intact
else
    vmtest_fail data-intact "data differs after recovery"
fi
if [ -n "$HDRSIZE" ] && [ "$(head -c "$HDRSIZE" /dev/vda | sha256sum | cut -d' ' -f1)" = "$HDR" ]; then
    vmtest_ok header-untouched-by-recovery
else
    vmtest_fail header-untouched-by-recovery "the header region changed"
fi
vmtest_note "pcr15=$(cat /sys/class/tpm/tpm0/pcr-sha256/15 2>/dev/null)"
# Disk D, killed in the wipe at the last boot: reformatted.
$DM --device /dev/vdb check >/tmp/check 2>&1
vmtest_note "disk-d-before=$(cat /tmp/check)"
if grep -q '^state=uninitialized' /tmp/check &&
    $DM --device /dev/vdb --name d --state-dir /run/d --run-dir /run/arca-d --bind none $MKFS setup >/tmp/out 2>/dev/console &&
    grep -q '^READY state=formatted' /tmp/out && echo hello >/run/d/file && sync && [ "$(cat /run/d/file)" = hello ]; then
    vmtest_ok interrupted-wipe-reformatted
else
    vmtest_fail interrupted-wipe-reformatted "$(cat /tmp/check /tmp/out 2>/dev/null)"
fi
# Disk E: not blank (data at 2 MiB), no LUKS header: never formatted.
HE=$(disk_hash /dev/vdc)
if ! $DM --device /dev/vdc --name e --state-dir /run/e --run-dir /run/arca-e --bind none $MKFS setup >/dev/null 2>/tmp/err &&
    grep -q 'neither blank nor an arca state disk' /tmp/err && [ "$(disk_hash /dev/vdc)" = "$HE" ]; then
    vmtest_ok foreign-data-refused-disk-untouched
else
    vmtest_fail foreign-data-refused-disk-untouched "$(cat /tmp/err)"
fi
# Flip one byte of disk A's data area while it is closed.
UUID=$($DM --device /dev/vda uuid)
$DM --device /dev/vda close 2>/dev/console
derive "$UUID" >/tmp/derived.key
SIZE=$(( $(cat /sys/block/vda/size) * 512 ))
OFF=$(( SIZE / 4 * 3 + 1234 ))
v=$(dd if=/dev/vda bs=1 skip=$OFF count=1 2>/dev/null | od -An -tu1 | tr -d ' ')
printf "\\$(printf %o $(( v ^ 1 )))" | dd of=/dev/vda bs=1 seek=$OFF conv=notrunc,fsync 2>/dev/null
echo 3 >/proc/sys/vm/drop_caches
/usr/bin/cryptsetup open --key-file /tmp/derived.key /dev/vda flip 2>/dev/console
if ! dd if=/dev/mapper/flip of=/dev/null bs=64k 2>/tmp/dd.err; then
    vmtest_note "dd: $(tail -1 /tmp/dd.err)"
    if dmesg | grep -qiE 'INTEGRITY AEAD ERROR|checksum failed'; then vmtest_ok flipped-byte-read-error
    else vmtest_fail flipped-byte-read-error "read failed but no integrity error in the kernel log: $(dmesg | tail -3)"; fi
else
    vmtest_fail flipped-byte-read-error "the whole device read without error after a flipped byte"
fi
/usr/bin/cryptsetup close flip
EOF

# --- boot 4: rejoin ---------------------------------------------------------------------
cat >"$W/boot4.sh" <<'EOF'
. /lib/common.sh
vmtest_net_up
# Disk A has the virtio serial arca-state; the other disk is blank: found
# by the wrong name it would be formatted.
for d in vda vdb; do [ "$(cat /sys/block/$d/serial)" = arca-state ] || BLANK=/dev/$d; done
HB=$(disk_hash $BLANK)
$DM --device auto --tcti device:/dev/tpmrm0 --platform-ca /etc/arca-test/platform-ca.pem \
    --join 10.0.2.2:30090 $MKFS setup >/tmp/setup.out 2>/tmp/setup.err &
pid=$!
i=0
while kill -0 $pid 2>/dev/null && [ $i -lt 900 ]; do sleep 0.2; i=$((i+1)); done
at setup-done
cat /tmp/setup.err >/dev/console
if grep -q 'State disk: /dev/vd.* (found as /dev/vd' /tmp/setup.err && ! grep -q "State disk: $BLANK " /tmp/setup.err &&
    [ "$(disk_hash $BLANK)" = "$HB" ]; then
    vmtest_ok found-by-virtio-serial
else
    vmtest_fail found-by-virtio-serial "$(grep 'State disk' /tmp/setup.err)"
fi
if wait $pid && grep -q '^READY state=rejoin' /tmp/setup.out && grep -q ' /run/state ext4 ' /proc/mounts; then
    vmtest_ok rejoin-open
else
    vmtest_fail rejoin-open "setup did not open the disk by rejoin: $(cat /tmp/setup.out)"
fi
if [ -s /run/state/data ] && [ "$(sha256sum /run/state/data | cut -d' ' -f1)" = "$(cat /run/state/data.sha256)" ]; then
    vmtest_ok rejoin-data-intact
else
    vmtest_fail rejoin-data-intact "data differs after rejoin"
fi
vmtest_note "pcr15=$(cat /sys/class/tpm/tpm0/pcr-sha256/15 2>/dev/null)"
EOF

# --- host-side nodes ----------------------------------------------------------------------
CA=$W/ca/platform-ca.pem
TCTI_CP1=swtpm:host=127.0.0.1,port=2321
TCTI_DRIFT=swtpm:host=127.0.0.1,port=2331
host_tpm() { # host_tpm NAME PORT [netns]: a swtpm with an AK certified by the platform CA
    local ns=() ok=1
    [ -n "${3:-}" ] && ns=(ip netns exec "$3")
    mkdir -p "$W/$1/tpm"
    "${ns[@]}" swtpm socket --tpm2 --server type=tcp,port=$2,bindaddr=127.0.0.1 \
        --ctrl type=tcp,port=$(($2 + 1)),bindaddr=127.0.0.1 --tpmstate dir="$W/$1/tpm" \
        --flags not-need-init,startup-clear >/dev/null 2>&1 &
    HOSTPIDS+=($!)
    for _ in $(seq 50); do
        TSS2_LOG=all+none "${ns[@]}" "$B/arca" platform provision --ca-dir "$W/ca" \
            --tcti "swtpm:host=127.0.0.1,port=$2" >/dev/null 2>&1 && { ok=0; break; }
        sleep 0.1
    done
    return $ok
}
# The guest's measurements as "PCR SHA256-DIGEST" lines, in order: the
# firmware event log (arca-measure) and the IMA list, whose SHA-256 bank
# gets SHA-256 of each entry's template data.
ima_extends() {
    local f=$1 off=0 size pcr nl dl u32
    size=$(stat -c %s "$f")
    u32() { od -An -tu4 -j "$1" -N4 "$f" | tr -d ' '; }
    while [ $((off + 32)) -le "$size" ]; do
        pcr=$(u32 $off); nl=$(u32 $((off + 24)))
        [ "$nl" -le 255 ] || return 1
        dl=$(u32 $((off + 28 + nl)))
        [ $((off + 32 + nl + dl)) -le "$size" ] || return 1
        echo "$pcr $(tail -c +$((off + 32 + nl + 1)) "$f" | head -c "$dl" | sha256sum | cut -c1-64)"
        off=$((off + 32 + nl + dl))
    done
}
guest_extends() { # guest_extends SERIAL-LOG
    note() { tr -d '\r' <"$1" | sed -n "s/^VMTEST note $2=//p" | head -1; }
    note "$1" bioslog | base64 -d >"$W/bios.log" && note "$1" imalog | base64 -d >"$W/ima.log" || return 1
    "$B/arca-measure" log -o json "$W/bios.log" |
        sed -n 's/.*"sha256":"\([0-9a-f]\{64\}\)".*"pcr":\([0-9]*\),.*"extends":true.*/\2 \1/p'
    ima_extends "$W/ima.log"
}
replay() { # replay TCTI [netns] < extends
    local ns=() pcr d
    [ -n "${2:-}" ] && ns=(ip netns exec "$2")
    while read -r pcr d; do
        "${ns[@]}" tpm2_pcrextend -T "$1" "$pcr:sha256=$d" || return 1
    done
}
pcrs_of() { # pcrs_of TCTI: "0=HEX 1=HEX ... 14=HEX " as the guest reports them
    tpm2_pcrread -T "$1" sha256:0,1,2,3,4,5,6,7,8,9,10,11,12,13,14 |
        sed -n 's/^ *\([0-9]*\) *: *0x\([0-9A-Fa-f]*\).*/\1=\2/p' | tr 'a-f' 'A-F' | tr '\n' ' '
}
node() { # node NAME UNDERLAY [netns]: arca-bootstrapper (etcd driver), ready for `arca init`
    local ns=()
    [ -n "${3:-}" ] && ns=(ip netns exec "$3")
    mkdir -p "$W/$1/state"
    TSS2_LOG=all+none "${ns[@]}" "$B/arca-bootstrapper" --tcti "$TCTI_CP1" --state-dir "$W/$1/state" \
        --node-name "$1" --underlay "$2" --platform-ca "$CA" --join-service "$B/arca-join-service" \
        --kubernetes-dir "$W/$1/k8s" >"$W/$1.log" 2>&1 &
    HOSTPIDS+=($!)
}
init_node() { # init_node CONFIG-DIR ADDRESS NAME
    for _ in $(seq 100); do grep -q '^READY port=' "$W/$3.log" 2>/dev/null && break; sleep 0.1; done
    TSS2_LOG=all+none "$B/arca" init --config "$1/arca.conf" --node "$2:9000" >"$W/$3.init" 2>&1
}
wait_port() { # wait_port HOST PORT [netns]
    local ns=()
    [ -n "${3:-}" ] && ns=(ip netns exec "$3")
    for _ in $(seq 100); do "${ns[@]}" bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null && return 0; sleep 0.1; done
    return 1
}

# --- run -------------------------------------------------------------------------------
truncate -s 64M "$W/a.img"
truncate -s 24M "$W/b.img"
truncate -s 48M "$W/d.img"
truncate -s 8M "$W/e.img"
head -c 4096 /dev/urandom | dd of="$W/e.img" bs=4096 seek=512 conv=notrunc status=none
echo "1..37"

# vTPM with an AK certified by the platform CA, as the cloud would provide.
P=$(vm_free_port)
mkdir -p "$W/tpm"
swtpm socket --tpm2 --server type=tcp,port=$P,bindaddr=127.0.0.1 --ctrl type=tcp,port=$((P + 1)),bindaddr=127.0.0.1 \
    --tpmstate dir="$W/tpm" --flags not-need-init,startup-clear >/dev/null 2>&1 &
sp=$!
ok=1
for _ in $(seq 50); do
    TSS2_LOG=all+none "$B/arca" platform provision --ca-dir "$W/ca" --tcti "swtpm:host=127.0.0.1,port=$P" \
        >/dev/null 2>&1 && { ok=0; break; }
    sleep 0.1
done
kill $sp 2>/dev/null; wait $sp 2>/dev/null
[ $ok -eq 0 ] && vm_tap_line OK "vTPM AK provisioned" || vm_tap_line FAIL "vTPM AK provisioned"

# The host's vTPMs: cp1 and the other cluster's node run the guest's image,
# "drift" is cp1's join service on a machine whose PCR 4 differs.
host_tpm cp1 2321 && host_tpm drift 2331 && host_tpm other 2321 "$O" &&
    vm_tap_line OK "host vTPMs provisioned" || vm_tap_line FAIL "host vTPMs provisioned"

vm_build_initramfs "$W/initrd1" "$W/boot1.sh" "${FILES1[@]}" || { vm_tap_line FAIL "initramfs"; exit 1; }
t=$SECONDS
vm_boot --log "$W/log1" --initrd "$W/initrd1" --disk "$W/a.img" --disk "$W/b.img" --tpm "$W/tpm" \
    --net-user "" --timeout 400 &
bootpid=$!
for _ in $(seq 900); do
    grep -q '^VMTEST note pcrs=' "$W/log1" 2>/dev/null && break
    kill -0 $bootpid 2>/dev/null || break
    sleep 0.2
done
GUEST_PCRS=$(tr -d '\r' <"$W/log1" | sed -n 's/^VMTEST note pcrs=//p' | head -1)
if guest_extends "$W/log1" >"$W/extends" && [ -s "$W/extends" ] && replay "$TCTI_CP1" <"$W/extends" &&
    replay "$TCTI_DRIFT" <"$W/extends" && replay "$TCTI_CP1" "$O" <"$W/extends" &&
    [ -n "$GUEST_PCRS" ] && [ "$(pcrs_of "$TCTI_CP1")" = "$GUEST_PCRS" ] &&
    [ "$(ip netns exec "$O" bash -c "$(declare -f pcrs_of); pcrs_of $TCTI_CP1")" = "$GUEST_PCRS" ]; then
    vm_tap_line OK "cp1's vTPM replays the guest's measurements: PCRs 0-14 equal ($(wc -l <"$W/extends") extends)"
else
    vm_tap_line FAIL "cp1's vTPM replays the guest's measurements: PCRs 0-14 equal"
    echo "# guest: $GUEST_PCRS"; echo "# cp1:   $(pcrs_of "$TCTI_CP1")"
fi
# The owner's policy from here on: every PCR 0-14 as the guest measured
# them, PCR 15 zero, all enforced (the join services check the guest's
# joins and rejoins against it, `arca recover` the waiting guest). The
# "bad" policy differs in PCR 4 only.
policy_of() { # policy_of [PCR4-VALUE]: JSON policy from $GUEST_PCRS ("0=HEX ... 14=HEX")
    local kv sep="{"
    for kv in $GUEST_PCRS; do
        local i=${kv%%=*} v
        v=$(echo "${kv#*=}" | tr 'A-F' 'a-f')
        [ "$i" = 4 ] && [ -n "$1" ] && v=$1
        printf '%s"%s": {"expected": "%s", "warnOnly": false}' "$sep" "$i" "$v"; sep=", "
    done
    printf '%s"15": {"expected": "%s", "warnOnly": false}}\n' "$sep" "$zero"
}
if [ "$(echo $GUEST_PCRS | wc -w)" = 15 ]; then
    policy_of "" >"$W/policy.json" && policy_of "$(echo drift | sha256sum | cut -c1-64)" >"$W/policy-other.json"
fi
tpm2_pcrextend -T "$TCTI_DRIFT" "4:sha256=$(echo drift | sha256sum | cut -c1-64)"
node cp1 127.0.0.1
node other 10.77.0.2 "$O"
if init_node "$W/owner" 127.0.0.1 cp1 && wait_port 127.0.0.1 30090; then
    vm_tap_line OK "arca init of cp1 (etcd driver), its join service up"
else
    vm_tap_line FAIL "arca init of cp1 (etcd driver), its join service up"; sed 's/^/# /' "$W/cp1.init"; vm_log_tail "$W/cp1.log"
fi
# cp1's join service again, on the drifted vTPM (same cluster, same registry).
TSS2_LOG=all+none "$B/arca-join-service" --state-dir "$W/cp1/state" --tcti "$TCTI_DRIFT" --listen 127.0.0.1 \
    --port 30091 --underlay 127.0.0.1 --platform-ca "$CA" >"$W/drift.log" 2>&1 &
HOSTPIDS+=($!)
if init_node "$W/other" 10.77.0.2 other && wait_port 10.77.0.2 30090 "$O" && wait_port 127.0.0.1 30091; then
    vm_tap_line OK "another cluster (same image) and the drifted join service up"
else
    vm_tap_line FAIL "another cluster (same image) and the drifted join service up"; sed 's/^/# /' "$W/other.init"
    vm_log_tail "$W/drift.log"
fi
wait $bootpid
echo "# boot 1: $((SECONDS - t)) s"
UUID_A=$(tr -d '\r' <"$W/log1" | sed -n 's/^VMTEST note uuid=//p' | head -1)
owner=$(ETCDCTL_API=3 etcdctl --endpoints http://127.0.0.1:2379 get "/arca/disks/$UUID_A" --print-value-only 2>&1)
if [ -n "$UUID_A" ] && [ "$owner" = w1 ]; then
    vm_tap_line OK "the guest joined cp1's cluster as w1: cp1's registry holds disk A for w1"
else
    vm_tap_line FAIL "the guest joined cp1's cluster as w1 (disk '$UUID_A' -> '$owner')"; vm_log_tail "$W/cp1.log"
fi
vm_tap "$W/log1" format-mount bind-mounts token-uninitialized rekey-by-bootstrapper rekey rekey-refuses-other-key \
    stock-cryptsetup-open initial-key-gone wrong-key-refused-disk-untouched cipher-null-refused-disk-untouched \
    interrupted-rekey-uses-newer-copy
# PCR 15 after TPM2_PCR_Event(15, cluster ID): extend of SHA-256(cluster ID).
CID=$(tr -d ' \n' <"$W/owner/arca-cluster.json" 2>/dev/null | sed -n 's/.*"clusterId":"\([0-9a-f]*\)".*/\1/p')
hexbin() { printf "$(sed 's/../\\x&/g')"; }
ev=$(printf '%s' "$CID" | hexbin | openssl dgst -sha256 -r | cut -c1-64)
PCR15=$(printf '%s%s' "$zero" "$ev" | hexbin | openssl dgst -sha256 -r | cut -c1-64)

vm_build_initramfs "$W/initrd2" "$W/boot2.sh" "${FILES[@]}" || { vm_tap_line FAIL "initramfs"; exit 1; }
t=$SECONDS
vm_boot --log "$W/log2" --initrd "$W/initrd2" --disk "$W/d.img" --timeout 300 --kill-on 'wiping /dev/vda: [1-9][0-9]?%'
rc=$?
echo "# boot 2: $((SECONDS - t)) s (qemu exit $rc)"
if [ $rc -eq 137 ]; then vm_tap_line OK "qemu killed during the initial wipe"
else vm_tap_line FAIL "qemu killed during the initial wipe (exit $rc)"; vm_log_tail "$W/log2"; fi

HP=$(vm_free_port)
vm_build_initramfs "$W/initrd3" "$W/boot3.sh" "${FILES[@]}" || { vm_tap_line FAIL "initramfs"; exit 1; }
t=$SECONDS
vm_boot --log "$W/log3" --initrd "$W/initrd3" --disk "$W/a.img" --disk "$W/d.img" --disk "$W/e.img" --tpm "$W/tpm" \
    --net-user "hostfwd=tcp:127.0.0.1:$HP-:9999" --timeout 300 &
bootpid=$!
for _ in $(seq 600); do
    grep -q 'WAITING recover-port' "$W/log3" 2>/dev/null && break
    kill -0 $bootpid 2>/dev/null || break
    grep -q 'No key for disk\|Cannot open the TPM' "$W/log3" 2>/dev/null && break
    sleep 0.2
done
# Every rejoin refused (the refusals come from the guest's rejoin child);
# the unreachable join service is still being waited for while the owner
# recovers.
for _ in $(seq 600); do
    grep -q 'Rejoin through 10.0.2.2:30091 failed' "$W/log3" && grep -q 'Rejoin through 10.77.0.2:30090 failed' "$W/log3" && break
    kill -0 $bootpid 2>/dev/null || break
    sleep 0.2
done
if grep -a 'Rejoin through 10.0.2.2:30091 failed' "$W/log3" | grep -q 'PCR 4'; then
    vm_tap_line OK "rejoin: cp1's join service on a vTPM with another PCR 4 is refused by the guest"
else
    vm_tap_line FAIL "rejoin: cp1's join service on a vTPM with another PCR 4 is refused by the guest"; vm_log_tail "$W/log3"
fi
if grep -a 'Rejoin through 10.77.0.2:30090 failed' "$W/log3" | grep -q 'answered 404'; then
    vm_tap_line OK "rejoin: another cluster's join service does not know the disk (404)"
else
    vm_tap_line FAIL "rejoin: another cluster's join service does not know the disk (404)"; vm_log_tail "$W/log3"
fi
if ! grep -aq 'unlocked by rejoin\|^READY state=' "$W/log3"; then
    vm_tap_line OK "rejoin refused everywhere: the disk stays closed"
else
    vm_tap_line FAIL "rejoin refused everywhere: the disk stays closed"
fi
recover() { TSS2_LOG=all+none "$B/arca" recover --config "$1/arca.conf" --node "127.0.0.1:$HP" >"$W/recover.out" 2>&1; }
if ! recover "$W/badpolicy" && grep -q 'PCR 4' "$W/recover.out"; then
    vm_tap_line OK "recover: a node that fails the owner's policy (PCR 4) gets no secret"
else
    vm_tap_line FAIL "recover: a node that fails the owner's policy (PCR 4) gets no secret"; sed 's/^/# /' "$W/recover.out"
fi
if ! recover "$W/other" && grep -q 'does not open disk' "$W/recover.out"; then
    vm_tap_line OK "recover: another cluster's secrets are refused (403)"
else
    vm_tap_line FAIL "recover: another cluster's secrets are refused (403)"; sed 's/^/# /' "$W/recover.out"
fi
if recover "$W/owner" && grep -q 'recovered: disk' "$W/recover.out"; then
    vm_tap_line OK "recover: the owner's secrets open the disk"
else
    vm_tap_line FAIL "recover: the owner's secrets open the disk"; sed 's/^/# /' "$W/recover.out"
fi
wait $bootpid
echo "# boot 3: $((SECONDS - t)) s"
if grep -aq '^READY state=recover' "$W/log3"; then vm_tap_line OK "the disk opened by recovery"
else vm_tap_line FAIL "the disk opened by recovery"; fi
vm_tap "$W/log3" recovered-open data-intact header-untouched-by-recovery interrupted-wipe-reformatted \
    foreign-data-refused-disk-untouched flipped-byte-read-error
pcr15_tap() { # pcr15_tap LOG WHAT
    local got
    got=$(tr -d '\r' <"$1" | sed -n 's/^VMTEST note pcr15=//p' | tr 'A-F' 'a-f')
    if [ "$got" = "$PCR15" ]; then vm_tap_line OK "$2: PCR 15 holds the node lock with the cluster ID"
    else vm_tap_line FAIL "$2: PCR 15 holds the node lock with the cluster ID (got '$got', expected $PCR15)"; fi
}
pcr15_tap "$W/log3" recover

# --- boot 4 ---------------------------------------------------------------------------
vm_build_initramfs "$W/initrd4" "$W/boot4.sh" "${FILES[@]}" || { vm_tap_line FAIL "initramfs"; exit 1; }
t=$SECONDS
truncate -s 8M "$W/blank.img"
vm_boot --log "$W/log4" --initrd "$W/initrd4" --disk "$W/blank.img" --disk-serial "$W/a.img" arca-state --tpm "$W/tpm" \
    --net-user "" --timeout 300
echo "# boot 4: $((SECONDS - t)) s"
vm_tap "$W/log4" found-by-virtio-serial rejoin-open rejoin-data-intact
if grep -aq "Disk .* unlocked by rejoin through 10.0.2.2:30090" "$W/log4"; then
    vm_tap_line OK "the key came from cp1's join service (POST /v1/rejoin)"
else
    vm_tap_line FAIL "the key came from cp1's join service (POST /v1/rejoin)"
fi
pcr15_tap "$W/log4" rejoin
echo "# total VM test time: $((SECONDS - T0)) s"
