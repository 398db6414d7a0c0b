#!/usr/bin/env bash
# arca mini end to end (TAP): clusters of 3 and 6 nodes in network
# namespaces come up, every node joined and attested (by `status`, which
# attests each node again over aTLS), a node whose measurements drift is
# reported refused, the mesh is full when the nodes run one, `add` puts one
# more node into a running cluster (every pair reaches it; a second add
# right after it rings every member too and converges as fast; `up` gives
# the host's shared ARP table room for the nodes), and `down`
# leaves no namespace, process, interface or file behind, also after an
# `up` or an `add` killed halfway.
set -u
B=${ARCA_BUILD_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/build}

n=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); echo "not ok $n - $*"; }
skip() { n=$((n + 1)); echo "ok $n # SKIP $*"; }
check() { # check "description" command...
    local what=$1; shift
    if "$@"; then ok "$what"; else not_ok "$what"; fi
}
skip_all() { echo "1..0 # SKIP $*"; exit 0; }

[ "$(id -u)" -eq 0 ] || skip_all "needs root for network namespaces"
command -v ip >/dev/null || skip_all "ip (iproute2) is not installed"
ip netns add "arca-probe-$$" 2>/dev/null || skip_all "cannot create network namespaces here"
ip netns del "arca-probe-$$"
[ -x /usr/bin/swtpm ] || skip_all "swtpm is not installed (package swtpm)"
[ -x /usr/bin/etcd ] || skip_all "etcd-server is not installed (package etcd-server)"
command -v tpm2_pcrextend >/dev/null || skip_all "tpm2-tools is not installed"
[ -x "$B/arca" ] && [ -x "$B/arca-bootstrapper" ] && [ -x "$B/arca-join-service" ] ||
    skip_all "binaries missing in $B (run make)"

W=$(mktemp -d /tmp/arca-mini-test.XXXXXX)
ID=$(($$ % 100000))
NAMES=()
cleanup() {
    for name in "${NAMES[@]}"; do "$B/arca" mini down --name "$name" >/dev/null 2>&1; done
    [ -n "${KEEP:-}" ] || rm -rf "$W"
}
trap cleanup EXIT
# A /24 of our own per cluster: the second octet from our pid, the third per cluster.
NET=$((100 + $$ % 120))
mini() { "$B/arca" mini "$@"; }
# Every process in cluster NAME's namespaces (swtpm, bootstrappers, join
# services, etcd, wireguard-go), remembered before down.
PIDS=""
remember() {
    PIDS=$(for ns in $(ip netns list 2>/dev/null | awk -v p="^arca-$1-" '$1 ~ p {print $1}'); do
        ip netns pids "$ns" 2>/dev/null; done)
}
# Nothing of cluster NAME left: namespaces, processes, bridge, state.
gone() {
    local name=$1 p
    for p in $PIDS; do # a zombie is dead, waiting for init to reap it
        case $(ps -o stat= -p "$p" 2>/dev/null) in
        "" | Z*) ;;
        *) echo "# process $p ($(ps -o comm= -p "$p")) is still alive"; return 1 ;;
        esac
    done
    ! ip netns list 2>/dev/null | grep -q "^arca-$name-" &&
        ! pgrep -f "/run/arca-mini/$name/" >/dev/null &&
        [ ! -e "/sys/class/net/arca-$name" ] &&
        ! ip -o link show | grep -q " v$name-" &&
        [ ! -e "/run/arca-mini/$name" ]
}
rows() { grep -cE "^($2) " "$1"; } # rows FILE REGEX: table rows of these nodes

echo "1..53"
start=$SECONDS

# --- 3 nodes: 1 control plane, 2 workers (the defaults) ----------------------
A=t${ID}a; NAMES+=("$A")
mini up --name "$A" --subnet "10.$NET.1.0/24" --timeout 90 >"$W/up3.out" 2>&1
rc=$?
check "mini up with 3 nodes succeeds" test $rc -eq 0
check "up says which control-plane driver it uses and why" grep -q "control plane: etcd (kubeadm is not installed" "$W/up3.out"
check "up says plainly that nodes have no state disk" grep -q "state disks:   none" "$W/up3.out"
# The nodes' namespaces share this kernel's ARP table (n nodes need about
# n * n entries; the default limit, 1024, holds about 30): up raises it, or
# packets between nodes are dropped once it is full (docs/MINI.md).
if grep -q "neighbours:    WARNING: cannot" "$W/up3.out"; then
    skip "up leaves room in the host's shared ARP table: $(sed -n 's/^ *neighbours: *WARNING: //p' "$W/up3.out" | cut -c1-100)"
else
    check "up left room for the largest cluster in the host's shared ARP table (gc_thresh3 >= 65536, gc_thresh2 >= 49152)" \
        test "$(sysctl -n net.ipv4.neigh.default.gc_thresh3)" -ge 65536 -a \
        "$(sysctl -n net.ipv4.neigh.default.gc_thresh2)" -ge 49152
fi
mini status --name "$A" >"$W/status3.out" 2>&1
rc=$?
check "status attests all 3 nodes again: verified, PCR 15 = the cluster's lock" \
    test $rc -eq 0 -a "$(grep -cE '^(cp1|w1|w2) .* verified +[0-9a-f]{12} \(cluster\)' "$W/status3.out")" = 3
check "every node is in the registry with its own mesh address" \
    test "$(awk '$1 ~ /^(cp1|w1|w2)$/ {print $4}' "$W/status3.out" | grep -E '^[0-9.]+$' | sort -u | wc -l)" = 3
check "the namespaces exist while the cluster runs" test "$(ip netns list 2>/dev/null | grep -c "^arca-$A-")" = 3
mini verify w1 --name "$A" >"$W/verify.out" 2>&1
check "mini verify NODE runs arca verify against that node" \
    grep -q "^verified" "$W/verify.out"
check "and shows the arca verify command line" \
    grep -q "arca verify --node 10.$NET.1.12 --config /run/arca-mini/$A/owner/arca.conf" "$W/verify.out"
mini up --name "$A" --subnet "10.$NET.2.0/24" >"$W/up-again.out" 2>&1
check "a second up of the same cluster is refused and names down" \
    grep -q "exists already.*arca mini down --name $A" "$W/up-again.out"
mini add --name "t${ID}x" >"$W/add-none.out" 2>&1
check "add to a cluster that does not exist fails and says so" \
    test $? -ne 0 -a -n "$(grep "No mini cluster \"t${ID}x\"" "$W/add-none.out")"

# add: one more worker joins the running cluster through its join service;
# add waits until every node reaches it over arca0.
mini add --name "$A" --timeout 60 >"$W/add.out" 2>&1
rc=$?
check "mini add (one worker) succeeds" test $rc -eq 0
check "add makes w3 at the next free address" grep -q "adding w3 (worker, 10.$NET.1.14)" "$W/add.out"
echo "# every node reached w3 over arca0 $(sed -n 's/^convergence: //p' "$W/add.out") after its join"
mini status --name "$A" >"$W/status4.out" 2>&1
rc=$?
check "status after add: all 4 nodes verified, w3 too, with the cluster's lock" \
    test $rc -eq 0 -a "$(grep -cE '^(cp1|w1|w2|w3) .* verified +[0-9a-f]{12} \(cluster\)' "$W/status4.out")" = 4
if grep -qE '^cp1 .*no mesh$' "$W/status4.out"; then
    skip "after add, every pair reaches each other over arca0 (the nodes run no mesh)"
else
    check "after add, every pair of the 4 nodes reaches each other over arca0" \
        test "$(grep -cE '^(cp1|w1|w2|w3) .* 3/3$' "$W/status4.out")" = 4
fi
rang() { grep -q "a join service rang the doorbell" "/run/arca-mini/$A/nodes/$1/bootstrapper.log"; }
if grep -q "mesh:          WireGuard" "$W/up3.out"; then
    check "the join service rang every member when w3 joined: each refreshed at once, not at its interval" \
        eval 'rang cp1 && rang w1 && rang w2'
    # Attacker's side: a worker rings w3 over arca0. WireGuard vouches that
    # it is w1, but only control-plane peers may ring: ignored, and said.
    W1_MESH=$(awk '$1 == "w1" {print $4}' "$W/status4.out")
    W3_MESH=$(awk '$1 == "w3" {print $4}' "$W/status4.out")
    ip netns exec "arca-$A-w1" bash -c "printf arca/mesh-bell/1 >/dev/udp/$W3_MESH/51821"
    for _ in $(seq 20); do
        grep -q "doorbell from $W1_MESH, which is no control-plane" "/run/arca-mini/$A/nodes/w3/bootstrapper.log" && break
        sleep 0.1
    done
    check "a doorbell from a worker peer is ignored (only control-plane peers may ring)" \
        grep -q "ignoring a datagram on the doorbell port: doorbell from $W1_MESH, which is no control-plane" \
        "/run/arca-mini/$A/nodes/w3/bootstrapper.log"
else
    skip "the doorbell (the nodes run no mesh)"
    skip "a doorbell from a worker peer is ignored"
fi

# A second add right after the first: its doorbells must reach every member
# too (they once were dropped by the kernel when the host's ARP table was
# full, and members learned of the new node only at their next refresh).
bells() { grep -c "a join service rang the doorbell" "/run/arca-mini/$A/nodes/$1/bootstrapper.log"; }
before="$(bells cp1) $(bells w1) $(bells w2) $(bells w3)"
mini add --name "$A" --timeout 60 >"$W/add2.out" 2>&1
rc=$?
conv1=$(sed -n 's/^convergence: \([0-9.]*\) s$/\1/p' "$W/add.out")
conv2=$(sed -n 's/^convergence: \([0-9.]*\) s$/\1/p' "$W/add2.out")
echo "# every node reached w4 over arca0 ${conv2:-?} s after its join (w3: ${conv1:-?} s)"
check "a second add (w4) right after the first succeeds" test $rc -eq 0 -a -n "$(grep "adding w4" "$W/add2.out")"
if [ -r /proc/net/stat/arp_cache ]; then
    check "and saw no overflow of the host's ARP table (no packet between nodes dropped)" \
        test -z "$(grep "ARP table was full" "$W/add.out" "$W/add2.out")"
else
    skip "no overflow of the host's ARP table: /proc/net/stat/arp_cache is not readable here"
fi
if grep -q "mesh:          WireGuard" "$W/up3.out"; then
    read -r b1 b2 b3 b4 <<<"$before"
    for _ in $(seq 20); do # a doorbell's log line may trail the add's last probe
        after="$(bells cp1) $(bells w1) $(bells w2) $(bells w3)"
        read -r a1 a2 a3 a4 <<<"$after"
        [ "$a1" -gt "$b1" ] && [ "$a2" -gt "$b2" ] && [ "$a3" -gt "$b3" ] && [ "$a4" -gt "$b4" ] && break
        sleep 0.1
    done
    check "every member (cp1, w1, w2, w3) accepted a doorbell for w4 too ($before -> $after)" \
        test "$a1" -gt "$b1" -a "$a2" -gt "$b2" -a "$a3" -gt "$b3" -a "$a4" -gt "$b4"
    # With the doorbell every node reaches a new one in about a second;
    # a member that waits for its regular refresh takes up to 10 s.
    check "both adds converge in less than 6 s (w3: ${conv1:-?} s, w4: ${conv2:-?} s)" \
        awk -v a="${conv1:-99}" -v b="${conv2:-99}" 'BEGIN { exit !(a < 6 && b < 6) }'
else
    skip "every member accepted a doorbell for w4 (the nodes run no mesh)"
    skip "both adds converge quickly (the nodes run no mesh)"
fi

# The firewall (on by default): between nodes' underlay addresses
# only WireGuard and the arca ports; the same port over arca0 passes; a
# machine that is not a node (this host) is not affected.
FW=$B/tests/tools/arca-fwtest
CP1=10.$NET.1.11
CP1_MESH=$(awk '$1 == "cp1" {print $4}' "$W/status3.out")
check "up says the firewall is on" grep -q "firewall:      nftables table inet arca on every node" "$W/up3.out"
ip netns exec "arca-$A-cp1" "$FW" serve --tcp 7777 >"$W/serve.out" 2>&1 &
SERVE=$!
for _ in $(seq 50); do grep -q ready "$W/serve.out" && break; sleep 0.1; done
probe() { ip netns exec "arca-$A-$1" "$FW" tcp "$2" 7777 --timeout 2000; }
check "w1 -> cp1 tcp 7777 over the underlay: refused by w1's own firewall" test "$(probe w1 "$CP1")" = refused
check "w1 -> cp1 tcp 7777 over arca0 passes" test "$(probe w1 "$CP1_MESH")" = open
check "this host (not a node) -> cp1 tcp 7777 over the underlay passes" \
    test "$("$FW" tcp "$CP1" 7777 --timeout 2000)" = open
ip netns exec "arca-$A-w1" nft delete table inet arca
check "without w1's own table, cp1's firewall drops it: w1 -> cp1 tcp 7777 times out" \
    test "$(probe w1 "$CP1")" = timeout
kill $SERVE 2>/dev/null; wait $SERVE 2>/dev/null

# Attacker's side: a node whose measurements drift is refused by status.
ip netns exec "arca-$A-w2" tpm2_pcrextend -T swtpm:port=2321 \
    "9:sha256=$(echo drift | sha256sum | cut -d' ' -f1)" >/dev/null 2>&1
drift_t0=$SECONDS
mini status --name "$A" >"$W/status-drift.out" 2>&1
rc=$?
check "status fails when one node's measurements drift" test $rc -ne 0
check "and names that node refused, with the PCR" \
    grep -qE "^w2 .* REFUSED" "$W/status-drift.out" && grep -q "w2: .*PCR 9" "$W/status-drift.out"

# ... and evicted: at its next refresh the join service removes it, and every
# other node (cp1, w1 and the added w3 and w4) drops it at its own next refresh, so within two refresh
# intervals (the join service's default, 10 s; the agents wait 80-100 % of
# it), plus a little for the work itself.
wg_peers() { # wg_peers NODE: how many WireGuard peers the node's arca0 has
    local pid
    pid=$(pgrep -of "/run/arca-mini/$A/nodes/$1/state") || { echo -1; return; }
    nsenter -t "$pid" -m -n wg show arca0 peers 2>/dev/null | grep -c .
}
if command -v wg >/dev/null && grep -q "mesh:          WireGuard" "$W/up3.out"; then
    evicted=
    while [ $((SECONDS - drift_t0)) -lt 23 ]; do
        if [ "$(wg_peers cp1)" = 3 ] && [ "$(wg_peers w1)" = 3 ] && [ "$(wg_peers w3)" = 3 ] &&
            [ "$(wg_peers w4)" = 3 ] && [ "$(wg_peers w2)" = 0 ]; then
            evicted=$((SECONDS - drift_t0)); break
        fi
        sleep 0.5
    done
    echo "# drifted node dropped by every peer after ${evicted:-more than 23} s (2 refresh intervals: 20 s)"
    check "the drifted node is dropped by every peer within two refresh intervals" test -n "$evicted"
    check "and the others keep each other" test "$(wg_peers cp1)" = 3 -a "$(wg_peers w1)" = 3 -a "$(wg_peers w3)" = 3 -a \
        "$(wg_peers w4)" = 3
    # The drifted node itself: refused in the handshake, which it tells
    # from an outage (a join service it verified sent certificate_revoked).
    check "the drifted node learns it was refused, drops all its peers and logs why" \
        test "$(wg_peers w2)" = 0 -a -n "$(grep "refused by join service .*not allowed by the policy (TLS alert certificate_revoked)" \
            "/run/arca-mini/$A/nodes/w2/bootstrapper.log")"
else
    skip "eviction by every peer (wg from wireguard-tools is missing, or the nodes run no mesh)"
    skip "and the others keep each other"
    skip "the drifted node learns it was refused"
fi

# An add killed while it creates its nodes: down must remove them too.
mini add --name "$A" --workers 2 >"$W/addkill.out" 2>&1 &
pid=$!
for _ in $(seq 300); do ip netns list 2>/dev/null | grep -q "^arca-$A-w6" && break; sleep 0.01; done
kill -9 $pid; wait $pid 2>/dev/null
check "(an add was killed while creating w5 and w6)" grep -q "^node w6 worker" "/run/arca-mini/$A/journal"
remember "$A"
check "(the cluster runs processes in its namespaces: $(echo $PIDS | wc -w))" test -n "$PIDS"
mini down --name "$A" >"$W/down3.out" 2>&1
check "down removes the cluster, added nodes included" test $? -eq 0
check "nothing is left: no namespace, process, interface or state" gone "$A"
t3=$((SECONDS - start))

# --- 6 nodes: 2 control planes, 4 workers -------------------------------------
B6=t${ID}b; NAMES+=("$B6")
t=$SECONDS
mini up --name "$B6" --subnet "10.$NET.3.0/24" --control-planes 2 --workers 4 --timeout 120 >"$W/up6.out" 2>&1
rc=$?
check "mini up with 6 nodes (2 control planes) succeeds" test $rc -eq 0
mini status --name "$B6" >"$W/status6.out" 2>&1
check "status: all 6 nodes verified and joined" \
    test "$(grep -cE '^(cp[12]|w[1-4]) .* verified +[0-9a-f]{12} \(cluster\)' "$W/status6.out")" = 6
if grep -qE '^cp1 .*no mesh$' "$W/status6.out"; then
    skip "every pair of nodes reaches each other over arca0 (no mesh: $(sed -n 's/^  mesh: *none (\(.*\))$/\1/p' "$W/up6.out"))"
else
    check "every pair of nodes reaches each other over arca0" \
        test "$(grep -cE '^(cp[12]|w[1-4]) .* 5/5$' "$W/status6.out")" = 6
fi
# With 2 control planes and the firewall on, etcd runs on mesh addresses:
# not bound to the underlay, peer URLs and peer connections on arca0, and
# underlay TCP to 2379/2380 between nodes refused (the sender's table) or
# dropped (the receiver's), while this host reaches the same listener.
in6() { ip netns exec "arca-$B6-$1" "${@:2}"; }
M1=$(awk '$1 == "cp1" {print $4}' "$W/status6.out") M2=$(awk '$1 == "cp2" {print $4}' "$W/status6.out")
U1=10.$NET.3.11
check "up says the firewall is on with 2 control planes" grep -q "firewall:      nftables table inet arca" "$W/up6.out"
etcd_ports=$(in6 cp1 ss -ltnH '( sport = :2379 or sport = :2380 )' | awk '{print $4}' | LC_ALL=C sort | tr '\n' ' ')
check "cp1's etcd listens on its mesh address and 127.0.0.1 only ($etcd_ports)" \
    test -n "$M1" -a "$etcd_ports" = "$M1:2379 $M1:2380 127.0.0.1:2379 "
if command -v etcdctl >/dev/null; then
    in6 cp1 env ETCDCTL_API=3 etcdctl --endpoints http://127.0.0.1:2379 member list >"$W/members6.txt" 2>&1
    check "etcd's members have mesh peer URLs only" \
        eval 'grep -q "http://$M1:2380" "$W/members6.txt" && grep -q "http://$M2:2380" "$W/members6.txt" &&
              ! grep -q "10\.$NET\." "$W/members6.txt"'
else
    skip "etcd's members have mesh peer URLs only (etcdctl is missing: package etcd-client)"
fi
peer_conns=$(in6 cp1 ss -tnH state established '( sport = :2380 or dport = :2380 )' | awk '{print $3 "-" $4}' | tr '\n' ' ')
check "etcd peer traffic between cp1 and cp2 flows over arca0 ($peer_conns)" \
    eval 'echo "$peer_conns" | grep -q "$M2:" && ! echo "$peer_conns" | grep -q "10\.$NET\."'
in6 cp1 "$FW" serve --tcp 2379 --tcp 2380 "$U1" >"$W/serve6.out" 2>&1 &
SERVE=$!
for _ in $(seq 50); do grep -q ready "$W/serve6.out" && break; sleep 0.1; done
check "a listener on cp1's underlay 2379/2380 answers this host; from cp2 refused by cp2's firewall" \
    test "$("$FW" tcp "$U1" 2379)$("$FW" tcp "$U1" 2380)$(in6 cp2 "$FW" tcp "$U1" 2379)$(in6 cp2 "$FW" tcp "$U1" 2380)" = \
         openopenrefusedrefused
in6 cp2 nft delete table inet arca
check "and without cp2's table, dropped by cp1's firewall (underlay TCP to 2380 times out)" \
    test "$(in6 cp2 "$FW" tcp "$U1" 2380 --timeout 2000)" = timeout
kill $SERVE 2>/dev/null; wait $SERVE 2>/dev/null
# A control-plane node added: it joins as one (etcd member, join service).
mini add --name "$B6" --control-planes 1 --timeout 90 >"$W/add-cp.out" 2>&1
rc=$?
check "mini add --control-planes 1 adds cp3 to the 6-node cluster" \
    test $rc -eq 0 -a -n "$(grep "adding cp3 (control plane, 10.$NET.3.17)" "$W/add-cp.out")"
mini status --name "$B6" >"$W/status7.out" 2>&1
check "status: all 7 nodes verified and joined, cp3 a control plane that every node reaches" \
    test "$(grep -cE '^(cp[123]|w[1-4]) .* verified +[0-9a-f]{12} \(cluster\)' "$W/status7.out")" = 7 -a \
    -n "$(grep -E '^cp3 +control-plane ' "$W/status7.out")" -a \
    "$(grep -cE '^(cp[123]|w[1-4]) .* (6/6|no mesh)$' "$W/status7.out")" = 7
# Attacker's side: a node that attests fine but whose node lock holds
# another value than this cluster's ID is not counted as a member.
ip netns exec "arca-$B6-w4" tpm2_pcrextend -T swtpm:port=2321 \
    "15:sha256=$(echo other cluster | sha256sum | cut -d' ' -f1)" >/dev/null 2>&1
mini status --name "$B6" >"$W/status-lock.out" 2>&1
rc=$?
check "a node whose PCR 15 is not this cluster's lock: status fails, the node shows OTHER, 6/7 joined" \
    test $rc -ne 0 -a -n "$(grep -E '^w4 .* verified +[0-9a-f]{12} \(OTHER\)' "$W/status-lock.out")" -a \
         -n "$(grep '7/7 nodes verified, 6/7 joined' "$W/status-lock.out")"
remember "$B6"
mini down --name "$B6" >/dev/null 2>&1
check "down removes the 6-node cluster, nothing left" gone "$B6"
t6=$((SECONDS - t))

# --- up killed halfway, then down ----------------------------------------------
C=t${ID}c; NAMES+=("$C")
mini up --name "$C" --subnet "10.$NET.4.0/24" --workers 4 >"$W/upkill1.out" 2>&1 &
pid=$!
# Kill it while nodes are being created (namespaces exist, TPMs starting).
for _ in $(seq 200); do [ "$(ip netns list 2>/dev/null | grep -c "^arca-$C-")" -ge 2 ] && break; sleep 0.01; done
kill -9 $pid; wait $pid 2>/dev/null
remember "$C"
mini down --name "$C" >"$W/downkill1.out" 2>&1
check "down after an up killed while creating nodes succeeds" test $? -eq 0
check "and leaves nothing behind" gone "$C"

D=t${ID}d; NAMES+=("$D")
mini up --name "$D" --subnet "10.$NET.5.0/24" --workers 4 >"$W/upkill2.out" 2>&1 &
pid=$!
# Kill it after init, while the nodes join (daemons, etcd, join services run).
for _ in $(seq 300); do grep -qs "cluster initialized" "$W/upkill2.out" && break; sleep 0.05; done
kill -9 $pid; wait $pid 2>/dev/null
running() { pgrep -f "$1" >/dev/null; }
check "(the second up was killed after init, with etcd and join services running)" \
    running "/run/arca-mini/$D/nodes/cp1/state/etcd"
remember "$D"
mini down --name "$D" >"$W/downkill2.out" 2>&1
check "down after an up killed while nodes join leaves nothing behind" gone "$D"
mini down --name "$D" >"$W/downtwice.out" 2>&1
check "down of a cluster that is gone says so and succeeds" test $? -eq 0

echo "# wall time: ${t3}s for 3 nodes (up, status x2, verify, down), ${t6}s for 6 nodes, $((SECONDS - start))s in all"
