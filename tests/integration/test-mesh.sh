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

echo "1..12"

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
HS_AB=$(handshake_of a b)

# 3-6: a third node; a and b get it incrementally
sleep 1.1 # a re-made session would have a later handshake time
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
