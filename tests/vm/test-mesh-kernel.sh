#!/usr/bin/env bash
# Kernel WireGuard backend of lib/wireguard (tests/vm, qemu TCG guest): the
# host has no WireGuard module, the guest kernel has. In the guest, two
# network namespaces joined by a veth pair each run tests/tools/arca-wgnode
# with backend "kernel" (ip link add type wireguard + wg set, private key
# through a memfd): they ping over arca0; adding a third peer leaves the
# first peer's latest handshake alone; removing it makes it disappear.
set -u
here=$(cd "$(dirname "$0")" && pwd)
B=${ARCA_BUILD_DIR:-$(cd "$here/../.." && pwd)/build}
. "$here/vm-lib.sh"
VM_MODULES_EXTRA="wireguard veth"
export VM_MODULES_EXTRA
vm_require wg ip || { echo "1..0 # SKIP missing: $VM_MISSING"; exit 0; }
[ -x "$B/tests/tools/arca-wgnode" ] || { echo "1..0 # SKIP $B/tests/tools/arca-wgnode is not built (make tests)"; exit 0; }
vm_workdir
echo "1..8"

read -r PRIV_A PUB_A < <("$B/tests/tools/arca-wgnode" genkey)
read -r PRIV_B PUB_B < <("$B/tests/tools/arca-wgnode" genkey)
read -r _ PUB_C < <("$B/tests/tools/arca-wgnode" genkey)
cat >"$VM_WORK/scenario.sh" <<SCEN
. /lib/vmtest.sh
IP=/usr/sbin/ip
WG=/usr/bin/wg
N=/usr/bin/arca-wgnode
\$IP netns add a && \$IP netns add b
\$IP link add va type veth peer name vb
\$IP link set va netns a && \$IP link set vb netns b
\$IP -n a addr add 10.9.0.1/24 dev va && \$IP -n a link set va up && \$IP -n a link set lo up
\$IP -n b addr add 10.9.0.2/24 dev vb && \$IP -n b link set vb up && \$IP -n b link set lo up
echo "$PUB_B 10.9.0.2:51820 10.123.0.3/32" >/tmp/a.peers
echo "$PUB_A 10.9.0.1:51820 10.123.0.2/32" >/tmp/b.peers
\$IP netns exec a \$N up arca0 $PRIV_A 10.123.0.2/16 /tmp/a.peers kernel >/tmp/a.log 2>&1 &
PA=\$!
\$IP netns exec b \$N up arca0 $PRIV_B 10.123.0.3/16 /tmp/b.peers kernel >/tmp/b.log 2>&1 &
PB=\$!
for i in \$(seq 100); do grep -q READY /tmp/a.log && grep -q READY /tmp/b.log && break; sleep 0.1; done
cat /tmp/a.log /tmp/b.log
vmtest_check kernel-backend grep -q "READY kernel" /tmp/a.log
vmtest_check key-set sh -c "test \"\\\$(\$IP netns exec a \$WG show arca0 public-key)\" = $PUB_A"
ok=0; for i in \$(seq 20); do \$IP netns exec a ping -c1 -W1 10.123.0.3 >/dev/null 2>&1 && { ok=1; break; }; done
[ \$ok = 1 ] && vmtest_ok ping || vmtest_fail ping "a cannot reach b over arca0"
HS1=\$(\$IP netns exec a \$WG show arca0 latest-handshakes | grep "$PUB_B" | cut -f2)
sleep 1.1
echo "$PUB_C 10.9.0.3:51820 10.123.0.4/32" >>/tmp/a.peers
kill -HUP \$PA
for i in \$(seq 50); do grep -q "SYNCED upserted=1 removed=0" /tmp/a.log && break; sleep 0.1; done
vmtest_check add-one grep -q "SYNCED upserted=1 removed=0" /tmp/a.log
HS2=\$(\$IP netns exec a \$WG show arca0 latest-handshakes | grep "$PUB_B" | cut -f2)
echo "handshakes: \$HS1 \$HS2"
[ -n "\$HS1" ] && [ "\$HS1" != 0 ] && [ "\$HS1" = "\$HS2" ] && \$IP netns exec a \$WG show arca0 peers | grep -q "$PUB_C" &&
    vmtest_ok session-kept || vmtest_fail session-kept "handshake \$HS1 -> \$HS2"
echo "$PUB_B 10.9.0.2:51820 10.123.0.3/32" >/tmp/a.peers
kill -HUP \$PA
for i in \$(seq 50); do grep -q "SYNCED upserted=0 removed=1" /tmp/a.log && break; sleep 0.1; done
! \$IP netns exec a \$WG show arca0 peers | grep -q "$PUB_C" && \$IP netns exec a ping -c1 -W2 10.123.0.3 >/dev/null 2>&1 &&
    vmtest_ok removed || vmtest_fail removed "peer C still there or B unreachable"
kill -TERM \$PA \$PB
for i in \$(seq 50); do \$IP -n a link show arca0 >/dev/null 2>&1 || break; sleep 0.1; done
vmtest_check link-deleted sh -c "! \$IP -n a link show arca0 >/dev/null 2>&1"
SCEN
vm_build_initramfs "$VM_WORK/initrd" "$VM_WORK/scenario.sh" "$B/tests/tools/arca-wgnode" \
    "$(command -v ip)=/usr/sbin/ip" "$(command -v wg)=/usr/bin/wg" ||
    { vm_tap_line FAIL "initramfs built"; exit 1; }
start=$SECONDS
vm_boot --log "$VM_WORK/log" --initrd "$VM_WORK/initrd" --timeout 180
rc=$?
echo "# boot took $((SECONDS - start)) s"
if [ $rc -eq 0 ] && grep -q '^VMTEST end' "$VM_WORK/log"; then
    vm_tap_line OK "guest booted, ran the scenario and powered off"
else
    vm_tap_line FAIL "guest booted, ran the scenario and powered off (qemu exit $rc)"
    vm_log_tail "$VM_WORK/log"
fi
vm_tap "$VM_WORK/log" kernel-backend key-set ping add-one session-kept removed link-deleted || vm_log_tail "$VM_WORK/log"
