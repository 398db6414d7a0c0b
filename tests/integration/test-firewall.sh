#!/usr/bin/env bash
# The node firewall (lib/firewall.c, table inet arca) on real nftables (TAP).
# Three hosts in network namespaces on a bridge (the underlay): A and B are
# nodes, C is not (the owner, the internet). A and B also share a veth pair
# named arca0 on both ends, standing in for the WireGuard mesh. The firewall
# is applied in B with A's underlay addresses as the node set; probes from A,
# B and C check what passes: the allowed ports, nothing else from A's
# underlay address, everything over arca0, C untouched, replies to B's own
# connections, atomic node-set updates and removal.
set -u
B=${ARCA_BUILD_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/build}
FW=$B/tests/tools/arca-fwtest

n=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); echo "not ok $n - $*"; }
check() { # check "description" command...
    local what=$1; shift
    if "$@"; then ok "$what"; else not_ok "$what"; fi
}
skip_all() { echo "1..0 # SKIP $*"; exit 0; }

[ "$(id -u)" -eq 0 ] || skip_all "needs root for network namespaces and nftables"
command -v ip >/dev/null || skip_all "ip (iproute2) is not installed"
command -v nft >/dev/null || skip_all "nft (package nftables) is not installed"
command -v jq >/dev/null || skip_all "jq is not installed (compares nft -j output)"
[ -x "$FW" ] || skip_all "$FW missing (run make tests)"
P=arcafw$$
ip netns add "$P-probe" 2>/dev/null || skip_all "cannot create network namespaces here"
ip netns exec "$P-probe" nft add table inet probe 2>/dev/null || { ip netns del "$P-probe"; skip_all "nftables does not work in a network namespace here"; }
ip netns del "$P-probe"

W=$(mktemp -d /tmp/arca-fw.XXXXXX)
NETS=()
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for ns in "${NETS[@]}"; do ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null; done
    for ns in "${NETS[@]}"; do ip netns del "$ns" 2>/dev/null; done
    rm -rf "$W"
}
trap cleanup EXIT

in_ns() { local ns=$P-$1; shift; ip netns exec "$ns" "$@"; }

# --- underlay: a bridge in a switch namespace, one veth per host ------------
ip netns add "$P-sw"; NETS+=("$P-sw")
ip -n "$P-sw" link add br0 type bridge
ip -n "$P-sw" link set br0 up
host() { # host NAME NUMBER
    local ns=$P-$1
    ip netns add "$ns"; NETS+=("$ns")
    ip link add "f$$$1" type veth peer name eth0 netns "$ns"
    ip link set "f$$$1" netns "$P-sw"
    ip -n "$P-sw" link set "f$$$1" master br0 up
    ip -n "$ns" addr add "10.77.0.$2/24" dev eth0
    ip -n "$ns" addr add "fd77::$2/64" dev eth0 nodad
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
    # A reply to a packet that came in over arca0 with an underlay source
    # leaves over the underlay (asymmetric, on purpose).
    in_ns "$1" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
}
host a 1
host b 2
host c 3
# The mesh stand-in: a veth pair named arca0 in both A and B.
ip link add "m$$" netns "$P-a" type veth peer name "n$$" netns "$P-b"
ip -n "$P-a" link set "m$$" name arca0
ip -n "$P-b" link set "n$$" name arca0
ip -n "$P-a" addr add 10.99.0.1/24 dev arca0
ip -n "$P-b" addr add 10.99.0.2/24 dev arca0
ip -n "$P-a" link set arca0 up
ip -n "$P-b" link set arca0 up
for h in a b; do in_ns $h sysctl -qw net.ipv4.conf.arca0.rp_filter=0 net.ipv4.conf.eth0.rp_filter=0; done
# A "pod" behind B (B routes for it): A reaches 10.88.0.2 over the underlay
# and 10.88.0.3 over arca0; C reaches both over the underlay.
ip netns add "$P-pod"; NETS+=("$P-pod")
ip link add "p$$" netns "$P-b" type veth peer name eth0 netns "$P-pod"
ip -n "$P-b" addr add 10.88.0.1/24 dev "p$$"
ip -n "$P-b" link set "p$$" up
ip -n "$P-pod" addr add 10.88.0.2/24 dev eth0
ip -n "$P-pod" addr add 10.88.0.3/24 dev eth0
ip -n "$P-pod" link set eth0 up
ip -n "$P-pod" link set lo up
ip -n "$P-pod" route add default via 10.88.0.1
in_ns b sysctl -qw net.ipv4.ip_forward=1
ip -n "$P-a" route add 10.88.0.2/32 via 10.77.0.2     # over the underlay
ip -n "$P-a" route add 10.88.0.0/24 via 10.99.0.2     # over arca0 (the other addresses)
ip -n "$P-c" route add 10.88.0.0/24 via 10.77.0.2

serve() { # serve HOST ARGS...: a probe server, waits until it is bound
    local out=$W/serve-$1
    in_ns "$@" >"$out" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do grep -q ready "$out" 2>/dev/null && return 0; sleep 0.05; done
    echo "# server in $1 did not start: $(cat "$out")"; return 1
}
serve b "$FW" serve --tcp 9000 --tcp 30090 --tcp 9999 --tcp 2379 --tcp 10250 --tcp 22 --udp 51820 --udp 4789
serve a "$FW" serve --tcp 9000 --tcp 2379 --udp 51820 --udp 4789
serve pod "$FW" serve --tcp 2379 --tcp 9000 --udp 4789

OPEN_MS=4000   # generous under load: an accepted probe answers in microseconds
DROP_MS=800    # a dropped SYN or datagram never answers
probe() { # probe FROM EXPECT tcp|udp ADDR PORT [options]: the probe prints EXPECT
    local from=$1 expect=$2; shift 2
    local t=$OPEN_MS; [ "$expect" = open ] || t=$DROP_MS
    local got; got=$(in_ns "$from" "$FW" "$@" --timeout "$t")
    [ "$got" = "$expect" ] || { echo "# $from -> $*: expected $expect, got $got"; return 1; }
}
rules() { # the table as JSON without handles and counter values (they change on every apply)
    in_ns b nft -j list table inet arca 2>/dev/null | jq -S 'del(.. | .handle?) | del(.nftables[0].metainfo)
        | walk(if type == "object" and (.counter? | type) == "object" then .counter = {} else . end)'
}
has_table() { in_ns b nft list table inet arca >/dev/null 2>&1; }
NODES_A=(10.77.0.1 fd77::1)

# --- before: the probes work and see everything ---------------------------
check "without the firewall, A reaches B's tcp 2379 over the underlay" probe a open tcp 10.77.0.2 2379
check "without the firewall, A reaches B's udp 4789 over the underlay" probe a open udp 10.77.0.2 4789
check "without the firewall, A reaches the pod behind B over the underlay (B routes)" probe a open tcp 10.88.0.2 2379
# A connection A opened to B:2379 before the firewall existed.
in_ns a "$FW" hold 10.77.0.2 2379 --go "$W/go" --timeout $DROP_MS >"$W/hold" 2>&1 &
PIDS+=($!); HOLD=$!
for _ in $(seq 200); do grep -q connected "$W/hold" && break; sleep 0.05; done
check "A holds a connection to B's tcp 2379 opened before the firewall" grep -qx connected "$W/hold"

# --- libnftables cannot be loaded: -ENOPKG, a clear reason, nothing applied
# The library is loaded (dlopen) in the child forked per transaction; a
# libnftables.so.1 that is not a library, first on LD_LIBRARY_PATH, makes
# that load fail as a missing or broken package would.
mkdir "$W/nolib" && echo "not a library" >"$W/nolib/libnftables.so.1"
nopkg() {
    local rc=0
    LD_LIBRARY_PATH=$W/nolib in_ns b "$FW" apply "${NODES_A[@]}" 2>"$W/nopkg" || rc=$?
    [ "$rc" -eq 9 ] || { echo "# exit $rc, not 9 (ENOPKG): $(cat "$W/nopkg")"; return 1; }
    grep -qF "cannot load libnftables.so.1 (package libnftables1): $W/nolib/libnftables.so.1: " "$W/nopkg" ||
        { echo "# the reason does not name the library and why: $(cat "$W/nopkg")"; return 1; }
}
check "without a loadable libnftables, apply fails with ENOPKG naming the library and the loader's reason" nopkg
no_table() { ! has_table; }
check "... and table inet arca does not exist" no_table

# --- apply ---------------------------------------------------------------
check "firewall_apply in B with A's underlay addresses" in_ns b "$FW" apply "${NODES_A[@]}"
check "table inet arca exists" has_table

for port in 9000 30090 9999; do
    check "A's underlay address reaches B's bootstrap port tcp $port" probe a open tcp 10.77.0.2 $port
done
check "A's underlay address reaches B's WireGuard port udp 51820" probe a open udp 10.77.0.2 51820
# Forget the neighbours so IPv6 address resolution between A and B happens
# under the firewall (neighbour discovery must pass it).
in_ns a ip -6 neigh flush dev eth0; in_ns b ip -6 neigh flush dev eth0
check "A's underlay IPv6 address reaches B's bootstrap port tcp 9000 (neighbour discovery passes)" probe a open tcp fd77::2 9000
for port in 2379 10250 22; do
    check "A's underlay address is dropped at B's tcp $port" probe a timeout tcp 10.77.0.2 $port
done
check "A's underlay address is dropped at B's udp 4789" probe a timeout udp 10.77.0.2 4789
check "A's underlay IPv6 address is dropped at B's tcp 2379" probe a timeout tcp fd77::2 2379
check "A reaches B's udp 51820 from any source port" \
    probe a open udp 10.77.0.2 51820 --sport 40000
touch "$W/go"; wait "$HOLD"
check "a connection A opened to B's tcp 2379 before the firewall is cut" grep -qx timeout "$W/hold"

check "A reaches B's tcp 2379 over arca0 (mesh addresses)" probe a open tcp 10.99.0.2 2379
check "A reaches B's tcp 2379 over arca0 from its underlay address (only the interface differs)" \
    probe a open tcp 10.99.0.2 2379 --from 10.77.0.1
check "A reaches B's udp 4789 over arca0" probe a open udp 10.99.0.2 4789
check "C (not a node) reaches B's tcp 2379 over the underlay" probe c open tcp 10.77.0.2 2379
check "C (not a node) reaches B's udp 4789 over the underlay" probe c open udp 10.77.0.2 4789
check "C (not a node) reaches B over IPv6 tcp 22" probe c open tcp fd77::2 22

# Routed traffic (the forward hook).
check "A's underlay address is dropped on its way through B to the pod's tcp 2379" probe a timeout tcp 10.88.0.2 2379
check "... and to the pod's udp 4789" probe a timeout udp 10.88.0.2 4789
check "A reaches the pod behind B over arca0, from its underlay address (only the interface differs)" \
    probe a open tcp 10.88.0.3 2379 --from 10.77.0.1
check "C (not a node) reaches the pod behind B over the underlay" probe c open tcp 10.88.0.2 2379
check "the pod's connection to A's tcp 2379 over the underlay is refused by B" probe pod refused tcp 10.77.0.1 2379
check "the pod reaches A's bootstrap port tcp 9000 over the underlay (replies pass B)" probe pod open tcp 10.77.0.1 9000
check "replies to B's connection to A's tcp 9000 arrive" probe b open tcp 10.77.0.1 9000
check "replies to B's datagram to A's udp 51820 (ephemeral source port) arrive" probe b open udp 10.77.0.1 51820
check "B's own connection to A's tcp 2379 over the underlay is refused locally" probe b refused tcp 10.77.0.1 2379
check "B's own datagram to A's udp 4789 over the underlay fails locally (EPERM)" probe b eperm udp 10.77.0.1 4789
check "B reaches A's tcp 2379 over arca0" probe b open tcp 10.99.0.1 2379
check "B's loopback traffic is untouched (tcp 2379 on 127.0.0.1)" probe b open tcp 127.0.0.1 2379
check "the drop counter of from_node counted A's dropped packets" \
    bash -c "ip netns exec $P-b nft list chain inet arca from_node | grep -Eq 'counter packets [1-9]'"

# --- idempotence ---------------------------------------------------------
rules >"$W/rules1"
check "applying the same configuration again succeeds" in_ns b "$FW" apply "${NODES_A[@]}"
rules >"$W/rules2"
check "applying twice yields the same ruleset (nft -j list table inet arca)" \
    bash -c "[ -s '$W/rules1' ] && cmp -s '$W/rules1' '$W/rules2'"
in_ns b "$FW" apply fd77::1 ::ffff:10.77.0.1 10.77.0.1 >/dev/null
rules >"$W/rules3"
check "order, duplicates and IPv4-mapped spelling give the same ruleset" cmp -s "$W/rules1" "$W/rules3"
check "A is still dropped at tcp 2379 after re-applying" probe a timeout tcp 10.77.0.2 2379

# --- bad input -----------------------------------------------------------
in_ns b "$FW" apply 10.77.0.1 '10.77.0.1; flush ruleset' >"$W/bad" 2>&1; rc=$?
check "a malformed address is refused (EINVAL)" [ $rc -eq 6 ]
check "the refusal names the address and its position" grep -q "node address 1 '10.77.0.1; flush ruleset' is not an IPv4 or IPv6 address" "$W/bad"
rules >"$W/rules4"
check "a refused apply changes nothing" cmp -s "$W/rules1" "$W/rules4"
in_ns b "$FW" update 10.77.0.3 999.1.1.1 >"$W/bad" 2>&1; rc=$?
check "update_nodes refuses a malformed address and names it" \
    bash -c "[ $rc -eq 6 ] && grep -q \"'999.1.1.1'\" '$W/bad'"
in_ns b "$FW" apply --mesh 'arca0" accept' 10.77.0.1 >"$W/bad" 2>&1; rc=$?
check "a mesh interface name that is not a name is refused" \
    bash -c "[ $rc -eq 6 ] && grep -q 'mesh interface' '$W/bad'"
rules >"$W/rules4"
check "refused updates change nothing" cmp -s "$W/rules1" "$W/rules4"

in_ns b unshare --user "$FW" apply 10.77.0.1 >"$W/bad" 2>&1; rc=$?
check "without CAP_NET_ADMIN apply fails with EPERM and nft's reason" \
    bash -c "[ $rc -eq 8 ] && grep -q 'applying table inet arca: nft: .*Operation not permitted' '$W/bad'"
rules >"$W/rules4"
check "the unprivileged attempt changed nothing" cmp -s "$W/rules1" "$W/rules4"

# --- update_nodes --------------------------------------------------------
check "update_nodes to C's address only" in_ns b "$FW" update 10.77.0.3 fd77::3
check "the node sets hold exactly C's addresses" bash -c \
    "ip netns exec $P-b nft -j list table inet arca | jq -e '[.nftables[].set? | select(.) | {(.name): .elem}] | add == {nodes4: [\"10.77.0.3\"], nodes6: [\"fd77::3\"]}' >/dev/null"
check "after the update A's underlay address reaches tcp 2379" probe a open tcp 10.77.0.2 2379
check "after the update C's underlay address is dropped at tcp 2379" probe c timeout tcp 10.77.0.2 2379
check "after the update C's underlay IPv6 address is dropped at tcp 2379" probe c timeout tcp fd77::2 2379
check "after the update C still reaches B's join service tcp 30090" probe c open tcp 10.77.0.2 30090
check "update_nodes back to A" in_ns b "$FW" update "${NODES_A[@]}"
rules >"$W/rules5"
check "the ruleset equals the freshly applied one (only the sets changed)" cmp -s "$W/rules1" "$W/rules5"

# Atomicity: A floods B's udp 4789 while B replaces the node set again and
# again; A is in every set, so no datagram may get an echo. The control run
# does the same with two nft commands per update (flush, then add), which
# leaves a window without A, and the same flood sees it.
flood() { in_ns a "$FW" udpflood 10.77.0.2 4789 --ms 60000 --go "$W/stop.$1" >"$W/flood.$1"; }
flood atomic & FLOOD=$!
sleep 0.3
in_ns b "$FW" churn --rounds 200 10.77.0.1 fd77::1 10.77.0.50 then 10.77.0.1 10.77.0.51 fd77::1 fd77::52 >"$W/churn" 2>&1
rc=$?
touch "$W/stop.atomic"; wait $FLOOD
check "200 node-set updates (update_nodes) succeed" [ $rc -eq 0 ]
read -r _ sent _ echoed <"$W/flood.atomic"
echo "# atomic updates: $(cat "$W/churn"); flood sent $sent echoed $echoed"
check "200 node-set updates while A floods: no datagram from A passes" [ "${echoed:-1}" -eq 0 ]
check "the flood ran (more than 1000 datagrams sent)" [ "${sent:-0}" -gt 1000 ]
flood split & FLOOD=$!
sleep 0.3
for i in $(seq 60); do
    in_ns b nft flush set inet arca nodes4
    in_ns b nft add element inet arca nodes4 "{ 10.77.0.1, 10.77.0.$((50 + i % 2)) }"
done
touch "$W/stop.split"; wait $FLOOD
read -r _ sent _ echoed <"$W/flood.split"
echo "# split updates (control): flood sent $sent echoed $echoed"
check "control: the flood does see the window of a non-atomic update (flush, then add)" [ "${echoed:-0}" -gt 0 ]
check "update_nodes ends with A in the set" in_ns b "$FW" update "${NODES_A[@]}"

# Loopback is never judged: even with its own address in the node set, B
# reaches its own services through it.
in_ns b "$FW" apply "${NODES_A[@]}" 10.77.0.2 fd77::2
check "B listed in its own node set still reaches its own tcp 2379 (loopback)" probe b open tcp 10.77.0.2 2379
check "... and over IPv6" probe b open tcp fd77::2 2379

# --- remove --------------------------------------------------------------
check "firewall_remove" in_ns b "$FW" remove
check "no table inet arca is left" bash -c "! ip netns exec $P-b nft list table inet arca >/dev/null 2>&1"
check "firewall_remove again (no table) succeeds" in_ns b "$FW" remove
check "after removal A reaches tcp 2379 over the underlay again" probe a open tcp 10.77.0.2 2379
in_ns b "$FW" update 10.77.0.1 >"$W/bad" 2>&1; rc=$?
check "update_nodes without an applied table is ENOENT and says so" \
    bash -c "[ $rc -eq 5 ] && grep -q 'table inet arca is not applied' '$W/bad'"
check "apply with an empty node set drops nothing" bash -c \
    "ip netns exec $P-b '$FW' apply && [ \"\$(ip netns exec $P-a '$FW' tcp 10.77.0.2 2379 --timeout $OPEN_MS)\" = open ]"
in_ns b "$FW" remove

echo "1..$n"
