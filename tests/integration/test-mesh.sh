#!/usr/bin/env bash
# The WireGuard mesh (TAP), with real wireguard-go: each node in its own
# network namespace on a bridge AND its own mount namespace with a private
# /run (wireguard-go's UAPI socket dir /var/run/wireguard is not per netns).
#  Part 1: lib/wireguard through tests/tools/arca-wgnode: two and three nodes
#          ping each other over arca0; an added peer leaves the existing
#          peer's session alone (UAPI get: same last handshake); a removed
#          peer is gone.
#  Part 2: arca-bootstrapper --mesh: init + joins bring arca0 up from the
#          join answer and the mesh refresh (POST /v1/mesh).
set -u
B=${ARCA_BUILD_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/build}
T=$B/tests/tools

n=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); echo "not ok $n - $*"; }
check() { # check "description" command...
    local what=$1; shift
    if "$@"; then ok "$what"; else not_ok "$what"; fi
}
skip_all() { echo "1..0 # SKIP $*"; exit 0; }

[ "$(id -u)" -eq 0 ] || skip_all "needs root for network and mount namespaces"
command -v ip >/dev/null || skip_all "ip (iproute2) is not installed"
command -v unshare >/dev/null && command -v nsenter >/dev/null || skip_all "unshare/nsenter (util-linux) missing"
[ -x /usr/bin/wireguard-go ] || skip_all "wireguard-go is not installed (package wireguard-go)"
PING=$(command -v ping || true)
[ -n "$PING" ] || { command -v busybox >/dev/null && PING="busybox ping"; } ||
    skip_all "no ping (iputils-ping or busybox-static)"
[ -c /dev/net/tun ] || skip_all "/dev/net/tun is missing (wireguard-go needs TUN)"
ip netns add "arca-probe-$$" 2>/dev/null || skip_all "cannot create network namespaces here"
ip netns del "arca-probe-$$"
unshare -m --propagation private true 2>/dev/null || skip_all "cannot create mount namespaces here"
[ -x "$T/arca-wgnode" ] || skip_all "binaries missing in $B (run make tests)"

W=$(mktemp -d /tmp/arca-mesh.XXXXXX)
P=am$$
NETS=()
cleanup() {
    for ns in "${NETS[@]}"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -CONT 2>/dev/null
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
    done
    sleep 0.2
    for ns in "${NETS[@]}"; do ip netns del "$ns" 2>/dev/null; done
    [ -n "${KEEP:-}" ] || rm -rf "$W"
}
trap cleanup EXIT
trap "exit 130" INT TERM

# --- underlay: a bridge in a switch namespace, one veth per host -----------------
SW=$P-sw
ip netns add "$SW"; NETS+=("$SW")
ip -n "$SW" link add br0 type bridge
ip -n "$SW" link set br0 up
host() { # host NAME ADDRESS
    local ns=$P-$1
    ip netns add "$ns"; NETS+=("$ns")
    ip link add "v$$$1" type veth peer name eth0 netns "$ns"
    ip link set "v$$$1" netns "$SW"
    ip -n "$SW" link set "v$$$1" master br0 up
    ip -n "$ns" addr add "$2/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
}
in_ns() { local ns=$P-$1; shift; ip netns exec "$ns" "$@"; }

# How a node is launched (docs/MESH.md): enter its network namespace, then a
# new mount namespace with private propagation, bind-mount the node's own
# directory over /run, and exec the program. `ip netns exec` must come first:
# it needs the real /run/netns.
node_exec() { # node_exec NAME program args... (run it in the background: it execs)
    local name=$1; shift
    mkdir -p "$W/$name/run"
    exec ip netns exec "$P-$name" unshare -m --propagation private -- \
        sh -c 'mount --bind "$0" /run && exec "$@"' "$W/$name/run" "$@"
}
# Run a command in the namespaces of a running node process (absolute paths:
# nsenter -m changes directory).
node_enter() { local pid=$1; shift; nsenter -t "$pid" -m -n "$@"; }
wait_for() { # wait_for SECONDS command...
    local deadline=$((SECONDS + $1)); shift
    until "$@"; do [ $SECONDS -ge $deadline ] && return 1; sleep 0.2; done
}
logged() { grep -q -- "$2" "$W/$1.log"; }
mping() { in_ns "$1" $PING -c 1 -W 2 "$2" >/dev/null 2>&1; } # mping FROM ADDRESS
not() { ! "$@"; }

PLAN=28
echo "1..$PLAN"

# ============================ Part 1: lib/wireguard =============================
host a 10.251.0.1
host b 10.251.0.2
host c 10.251.0.3
for h in a b c; do
    read -r priv pub < <("$T/arca-wgnode" genkey)
    eval "PRIV_$h=$priv PUB_$h=$pub"
done
declare -A MESH=([a]=10.123.0.2 [b]=10.123.0.3 [c]=10.123.0.4)
declare -A UNDER=([a]=10.251.0.1 [b]=10.251.0.2 [c]=10.251.0.3)
peerline() { eval "echo \"\$PUB_$1 ${UNDER[$1]}:51820 ${MESH[$1]}/32\""; }
wgnode() { # wgnode NAME: start arca-wgnode up with $W/NAME.peers
    local priv; eval "priv=\$PRIV_$1"
    node_exec "$1" "$T/arca-wgnode" up arca0 "$priv" "${MESH[$1]}/16" "$W/$1.peers" >"$W/$1.log" 2>&1 &
    eval "PID_$1=$!"
}
handshake_of() { # handshake_of NODE PEER: "sec.nsec" of PEER's last handshake as NODE sees it
    local pid pub; eval "pid=\$PID_$1 pub=\$PUB_$2"
    node_enter "$pid" "$T/arca-wgnode" get arca0 | grep -F "peer $pub " | sed -n 's/.*handshake=\([0-9.]*\).*/\1/p'
}
has_peer() { local pid pub; eval "pid=\$PID_$1 pub=\$PUB_$2"; node_enter "$pid" "$T/arca-wgnode" get arca0 | grep -qF "peer $pub "; }

peerline b >"$W/a.peers"
peerline a >"$W/b.peers"
wgnode a
wgnode b
wait_for 20 logged a READY && wait_for 20 logged b READY
# 1-2: two nodes
check "two nodes: a reaches b over arca0 (wireguard-go, own mount namespaces)" wait_for 20 mping a 10.123.0.3
check "each node's UAPI socket is in its own /run, not the host's" \
    test -S "$W/a/run/wireguard/arca0.sock" -a -S "$W/b/run/wireguard/arca0.sock"
# Both sides may start a handshake at once; read the time once it settled.
settled() { # settled COMMAND...: its output once two reads 1 s apart agree
    local x y i
    x=$("$@")
    for i in 1 2 3 4 5 6 7 8 9 10; do sleep 1; y=$("$@"); [ "$x" = "$y" ] && break; x=$y; done
    echo "$y"
}
HS_AB=$(settled handshake_of a b)

# 3-6: a third node; a and b get it incrementally
peerline c >>"$W/a.peers"
peerline c >>"$W/b.peers"
{ peerline a; peerline b; } >"$W/c.peers"
wgnode c
wait_for 20 logged c READY
kill -HUP "$PID_a" "$PID_b"
check "adding a peer sends only that peer (upserted=1 removed=0)" \
    wait_for 10 logged a "SYNCED upserted=1 removed=0"
wait_for 10 logged b "SYNCED upserted=1 removed=0"
check "three nodes: a reaches c, b reaches c, c reaches a and b" \
    wait_for 20 eval 'mping a 10.123.0.4 && mping b 10.123.0.4 && mping c 10.123.0.2 && mping c 10.123.0.3'
# Figures (not checks): 32 MiB over TCP from a to b (bash /dev/tcp into
# busybox nc), over arca0 and over the underlay with the same tools; the
# ratio is the mesh's cost relative to that reference, measured in this run.
xfer_ms() { # xfer_ms ADDRESS PORT: milliseconds until b has received 32 MiB from a (0: no figure)
    in_ns b timeout 20 sh -c "busybox nc -l -p $2 | wc -c; date +%s%N" >"$W/xfer.$2" 2>/dev/null &
    local srv=$! t0 i
    for i in 1 2 3 4 5 6 7 8 9 10; do # until the listener accepts
        sleep 0.2
        t0=$(date +%s%N)
        in_ns a timeout 20 bash -c "dd if=/dev/zero bs=1M count=32 2>/dev/null >/dev/tcp/$1/$2" 2>/dev/null && break
    done
    wait $srv
    if [ "$(head -1 "$W/xfer.$2")" = 33554432 ]; then echo $((($(tail -1 "$W/xfer.$2") - t0) / 1000000)); else echo 0; fi
}
if command -v busybox >/dev/null; then
    MS_MESH=$(xfer_ms 10.123.0.3 5001); MS_UNDER=$(xfer_ms 10.251.0.2 5002)
    [ "$MS_MESH" -gt 0 ] && [ "$MS_UNDER" -gt 0 ] && echo "# figure: 32 MiB a->b: arca0 (wireguard-go) ${MS_MESH} ms = $((32 * 8 * 1000 / (MS_MESH + 1))) Mbit/s, underlay ${MS_UNDER} ms = $((32 * 8 * 1000 / (MS_UNDER + 1))) Mbit/s, mesh takes $(((MS_MESH * 10) / (MS_UNDER + 1)))/10 x the time"
fi
HS_AB2=$(handshake_of a b)
check "the existing peer's session was untouched (last handshake $HS_AB, after the update $HS_AB2)" \
    test -n "$HS_AB" -a "$HS_AB" != "0.000000000" -a "$HS_AB" = "$HS_AB2"
kill -HUP "$PID_a"
check "the same list again changes nothing (upserted=0 removed=0)" \
    wait_for 10 logged a "SYNCED upserted=0 removed=0"

# 7-9: c removed from a
peerline b >"$W/a.peers"
kill -HUP "$PID_a"
check "removing a peer sends only the removal (upserted=0 removed=1)" \
    wait_for 10 logged a "SYNCED upserted=0 removed=1"
check "the removed peer is gone from the device (UAPI get), the other one is there" \
    eval 'not has_peer a c && has_peer a b'
check "a no longer reaches c, still reaches b" eval 'not mping a 10.123.0.4 && mping a 10.123.0.3'
check "b's session is still the same after the removal" test "$(handshake_of a b)" = "$HS_AB"
kill -TERM "$PID_a" "$PID_b" "$PID_c"
check "a clean stop deletes arca0" wait_for 10 sh -c "! ip netns exec $P-a ip link show arca0 >/dev/null 2>&1"
gone() { ! kill -0 "$PID_a" 2>/dev/null && ! kill -0 "$PID_b" 2>/dev/null && ! kill -0 "$PID_c" 2>/dev/null; }
check "and the nodes exit, wireguard-go with them" \
    eval 'wait_for 10 gone && test -z "$(ip netns pids $P-a; ip netns pids $P-b; ip netns pids $P-c)"'

# ===================== Part 2: arca-bootstrapper --mesh =========================
PART2=13
part2_skip() { for i in $(seq $PART2 $PLAN); do echo "ok $i # SKIP $*"; done; exit 0; }
[ -x /usr/bin/swtpm ] || part2_skip "swtpm is not installed (package swtpm)"
[ -x /usr/bin/etcd ] || part2_skip "etcd-server is not installed (package etcd-server)"
command -v etcdctl >/dev/null || part2_skip "etcdctl is not installed (package etcd-client)"
command -v tpm2_pcrread >/dev/null || part2_skip "tpm2-tools is not installed"
command -v nft >/dev/null || part2_skip "nft is not installed (package nftables)"
[ -x "$B/arca-bootstrapper" ] && [ -x "$B/arca-join-service" ] && [ -x "$B/arca" ] ||
    part2_skip "binaries missing in $B (run make)"
grep -q "/v1/mesh" "$B/arca-join-service" || part2_skip "this arca-join-service does not serve /v1/mesh"

host owner 10.252.0.2
host cp1 10.252.0.11
host w1 10.252.0.21
host w2 10.252.0.22
TCTI=swtpm:host=127.0.0.1,port=2321
tpm() { # a fresh swtpm in the node's namespace, AK certified by the platform CA
    mkdir -p "$W/$1/tpm"
    in_ns "$1" swtpm socket --tpm2 --server type=tcp,port=2321,bindaddr=127.0.0.1 \
        --ctrl type=tcp,port=2322,bindaddr=127.0.0.1 --tpmstate dir="$W/$1/tpm" \
        --flags not-need-init,startup-clear >/dev/null 2>&1 &
    for _ in $(seq 100); do in_ns "$1" tpm2_pcrread -T "swtpm:port=2321" sha256:0 >/dev/null 2>&1 && break; sleep 0.05; done
    TSS2_LOG=all+none in_ns "$1" "$B/arca" platform provision --ca-dir "$W/ca" --tcti "$TCTI" >/dev/null
}
mkdir -p "$W/ca" "$W/owner"
"$B/arca" platform create-ca --dir "$W/ca" >/dev/null
for h in cp1 w1 w2; do tpm $h; done
"$B/arca" config generate --dir "$W/owner" --name meshtest --init 10.252.0.11 --driver etcd \
    --platform-ca ../ca/platform-ca.pem >"$W/generate.out"
HASH=$(sed -n 's/^init-secret-hash: //p' "$W/generate.out")
zero=0000000000000000000000000000000000000000000000000000000000000000
{ echo "{"; for i in $(seq 0 13); do echo "  \"$i\": {\"expected\": \"$zero\", \"warnOnly\": false},"; done
  echo "  \"14\": {\"expected\": \"$zero\", \"warnOnly\": false}"; echo "}"; } >"$W/owner/measurements.json"

bootstrapper() { # bootstrapper NAME ADDRESS [options...]: in its netns and mount namespace
    local name=$1 addr=$2; shift 2
    mkdir -p "$W/$name/state"
    node_exec "$name" env TSS2_LOG=all+none "$B/arca-bootstrapper" --tcti "$TCTI" --state-dir "$W/$name/state" \
        --node-name "$name" --underlay "$addr" --platform-ca "$W/ca/platform-ca.pem" \
        --join-service "$B/arca-join-service" --mesh wireguard-go --mesh-refresh-ms 500 \
        "$@" >"$W/$name.log" 2>&1 &
    eval "PID_$name=$!"
}
mesh_ip() { sed -n 's/.*Mesh: arca0 up (wireguard-go), address \([0-9.]*\)\/.*/\1/p' "$W/$1.log" | head -1; }
# "sec.nsec" of the last handshake with the peer whose allowed IP is $2, as node $1 sees it
hs() { local pid; eval "pid=\$PID_$1"; node_enter "$pid" "$T/arca-wgnode" get arca0 | grep -F "allowed=$2/32" | sed -n 's/.*handshake=\([0-9.]*\).*/\1/p'; }
peers_of() { local pid; eval "pid=\$PID_$1"; node_enter "$pid" "$T/arca-wgnode" get arca0 | grep -c '^peer '; }
nodes4() { in_ns "$1" nft list set inet arca nodes4 2>/dev/null | tr -d '\n' ; }
all_reach() { # all_reach NODE...: every pair pings over the mesh
    local a b
    for a in "$@"; do for b in "$@"; do
        [ "$a" = "$b" ] || mping "$a" "$(mesh_ip "$b")" || return 1
    done; done
}

in_ns w2 env TSS2_LOG=all+none "$B/arca-bootstrapper" --tcti "$TCTI" --state-dir "$W/w2/state0" --node-name w2 \
    --underlay 10.252.0.22 --mesh wireguard-go >"$W/noca.log" 2>&1
rc=$?
check "--mesh without a platform CA is refused (refreshes must verify join services)" \
    eval 'test $rc -ne 0 && grep -q "cannot verify join services" "$W/noca.log"'
# cp1's bootstrapper holds a descriptor without close-on-exec (fd 7, as
# tpm2-tss leaves the TPM device's): its join service must not inherit it.
printf '#!/bin/sh\nif [ -e /proc/$$/fd/7 ]; then echo inherited >"%s"; else echo clean >"%s"; fi\nexec "%s" "$@"\n' \
    "$W/js-fd7" "$W/js-fd7" "$B/arca-join-service" >"$W/js-wrap"
chmod +x "$W/js-wrap"
exec 7</dev/null
bootstrapper cp1 10.252.0.11 --listen 10.252.0.11 --init-secret-hash "$HASH" --join-service "$W/js-wrap"
exec 7<&-
bootstrapper w1 10.252.0.21 --join 10.252.0.11:30090 --firewall
wait_for 60 logged cp1 READY
in_ns owner "$B/arca" init --config "$W/owner/arca.conf" >"$W/init.out" 2>&1
check "the first node is initialized and brings arca0 up (wireguard-go) with no peers" \
    wait_for 60 logged cp1 "Mesh: arca0 up (wireguard-go), address .*, 0 peers"
check "a worker joins; its arca0 starts with the peer from the join answer, firewall applied" \
    wait_for 60 logged w1 "Mesh: arca0 up (wireguard-go), address .*, 1 peers, firewall"
check "the first node learns the worker through the refresh; they reach each other over arca0" \
    wait_for 30 all_reach cp1 w1
HS1=$(settled hs w1 "$(mesh_ip cp1)")
bootstrapper w2 10.252.0.22 --join 10.252.0.11:30090
check "a second worker joins; all three reach each other over arca0" \
    eval 'wait_for 60 logged w2 "Mesh: arca0 up" && wait_for 30 all_reach cp1 w1 w2'
check "w1's session with cp1 was not touched by w2's arrival (last handshake $HS1)" \
    test -n "$HS1" -a "$HS1" != "0.000000000" -a "$(hs w1 "$(mesh_ip cp1)")" = "$HS1"
check "w1's firewall node set follows its peers (cp1 and w2)" \
    eval 'wait_for 10 eval "nodes4 w1 | grep -q 10.252.0.11 && nodes4 w1 | grep -q 10.252.0.22"'

# join-service outage: the tunnels stay
JS=$(pgrep -f "arca-join-service --state-dir $W/cp1/state")
check "cp1's join service has no TPM: it attests over the bootstrapper's channel and never loaded a TCTI" \
    eval 'tr "\\0" " " </proc/$JS/cmdline | grep -q -- "--attester-fd [0-9]" && ! grep -q libtss2-tcti- /proc/$JS/maps'
check "cp1's join service inherits no descriptor of the bootstrapper but its channel (fd 7 left open there)" \
    eval 'test -e /proc/$PID_cp1/fd/7 && test "$(cat "$W/js-fd7")" = clean'
kill -STOP $JS
check "with the join service stopped, the worker says no join service answers and keeps its peers" \
    eval 'wait_for 30 logged w1 "no join service answered the refresh" && test "$(peers_of w1)" = 2'
check "the tunnels stay up during the outage; w1's session with cp1 is the same" \
    eval 'all_reach cp1 w1 w2 && test "$(hs w1 "$(mesh_ip cp1)")" = "$HS1"'
kill -CONT $JS
check "refreshes succeed again once the join service is back" wait_for 30 logged w1 "answers again"

# w2 removed from the membership: w2 drops everything, the others drop w2
W2IP=$(mesh_ip w2)
in_ns cp1 env ETCDCTL_API=3 etcdctl --endpoints http://127.0.0.1:2379 del /arca/members/w2 >/dev/null
check "the removed node is told it is evicted and drops all its peers (logged plainly)" \
    eval 'wait_for 30 logged w2 "it is evicted from the cluster. Dropping all 2 mesh peers" && test "$(peers_of w2)" = 0'
check "the other nodes drop it: gone from w1's device (UAPI get) and from its firewall set" \
    eval 'wait_for 30 eval "test -z \"\$(hs w1 $W2IP)\"" && ! nodes4 w1 | grep -q 10.252.0.22'
check "w2 is unreachable over the mesh; cp1 and w1 still reach each other on the same session" \
    eval 'not mping w1 "$W2IP" && all_reach cp1 w1 && test "$(hs w1 "$(mesh_ip cp1)")" = "$HS1"'

# wireguard-go dies: the agent remakes arca0 with the same key and peers
WGGO=$(for p in $(ip netns pids $P-w1); do
    tr '\0' ' ' </proc/$p/cmdline 2>/dev/null | grep -q '^/usr/bin/wireguard-go -f arca0' && echo $p; done | head -1)
kill -9 $WGGO
check "when wireguard-go dies, arca0 is remade and cp1 and w1 reach each other again" \
    eval 'wait_for 20 logged w1 "arca0 remade" && wait_for 30 all_reach cp1 w1'
kill -TERM "$PID_w1"
check "a clean shutdown removes arca0 and the firewall table" \
    wait_for 20 eval "! in_ns w1 ip link show arca0 >/dev/null 2>&1 && ! in_ns w1 nft list table inet arca >/dev/null 2>&1"
