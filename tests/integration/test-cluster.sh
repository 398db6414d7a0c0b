#!/usr/bin/env bash
# Bootstrap flows end to end (TAP): two control-plane nodes and workers, each
# in its own network namespace with its own swtpm and state directory, the
# etcd control-plane driver on the real etcd-server, and the owner's CLI in a
# namespace of its own. Checks init, joins, keys, secrets custody, refusals,
# retries and fail-over as the bootstrap-flows issue lists them. The nodes
# run the WireGuard mesh and the firewall: etcd runs on mesh addresses (and
# 127.0.0.1, where the join services and this test reach it), its peer
# traffic goes over arca0, and underlay TCP to 2379/2380 between nodes is
# refused.
set -u
NETNS_TEST=cluster
NETNS_MESH=1
ETCD_NS=cp1
ETCD_ENDPOINTS=http://127.0.0.1:2379
. "$(dirname "$0")/netns-lib.sh"

echo "1..47"
mkdir -p "$W/ca" "$W/owner"
"$B/arca" platform create-ca --dir "$W/ca" >/dev/null
host owner 10.250.0.2
host cp1 10.250.0.11
host cp2 10.250.0.12
host w1 10.250.0.21
host w2 10.250.0.22
host w3 10.250.0.23
host p1 10.250.0.31
host p2 10.250.0.32
for h in cp1 cp2 w1 w2 w3 p1 p2; do tpm $h; done

# --- owner: configuration and secrets; the policy is what these TPMs report ----
"$B/arca" config generate --dir "$W/owner" --name test --init 10.250.0.11 --driver etcd \
    --platform-ca ../ca/platform-ca.pem >"$W/generate.out"
HASH=$(sed -n 's/^init-secret-hash: //p' "$W/generate.out")
zero=0000000000000000000000000000000000000000000000000000000000000000
{
    echo "{"
    for i in 0 1 2 3 4 5 6 7 8 9 10 11 12 13; do echo "  \"$i\": {\"expected\": \"$zero\", \"warnOnly\": false},"; done
    echo "  \"14\": {\"expected\": \"$zero\", \"warnOnly\": false}"
    echo "}"
} >"$W/owner/measurements.json"

# 1-2: an init that fails (no node yet) loses nothing
before=$(sha256sum <"$W/owner/arca-owner.json")
in_ns owner "$B/arca" init --config "$W/owner/arca.conf" >"$W/init0.out" 2>&1
check "an init that cannot reach the node fails and says nothing is lost" \
    grep -q "Nothing is lost" "$W/init0.out"
check "the owner's secrets are unchanged and no cluster state was written" \
    test "$(sha256sum <"$W/owner/arca-owner.json")" = "$before" -a ! -e "$W/owner/arca-cluster.json"

# --- nodes: cp2 and w1 start joining before the cluster exists -----------------
# cp2's etcd client port on 127.0.0.1 is taken at first: its joins fail after
# arca0 came up, until the port is free again.
ip netns exec "$P-cp2" "$T/arca-fwtest" serve --tcp 2379 127.0.0.1 >"$W/block.out" 2>&1 & # execs: $! is the server
BLOCK=$!
wait_for 10 grep -q ready "$W/block.out"
bootstrapper cp1 10.250.0.11 --listen 10.250.0.11 --init-secret-hash "$HASH"
bootstrapper cp2 10.250.0.12 --role control-plane --join 10.250.0.11:30090
bootstrapper w1 10.250.0.21 --join 10.250.0.11:30090 --join 10.250.0.12:30090
wait_for 20 logged cp1 READY

# 3-5: init
check "arca init initializes the first node" \
    in_ns owner "$B/arca" init --config "$W/owner/arca.conf"
check "init wrote the cluster state and the admin credential" \
    test -s "$W/owner/arca-cluster.json" -a -s "$W/owner/arca-admin.conf"
check "the admin credential is private (0600)" \
    test "$(stat -c %a "$W/owner/arca-admin.conf")" = 600

# 6-8: joins
check "a control-plane join that fails after arca0 came up (etcd: port taken) names the reason" \
    wait_for 60 logged cp2 "Join through .* failed: etcd exited .*address already in use"
check "and takes arca0 and the firewall table down again (logged; seen between the retries)" \
    wait_for 60 eval 'logged cp2 "Mesh: arca0 removed (the init or join failed)" &&
                      ! in_ns cp2 ip link show arca0 >/dev/null 2>&1 && ! in_ns cp2 nft list table inet arca >/dev/null 2>&1'
kill $BLOCK; wait $BLOCK 2>/dev/null
check "the second control-plane node joins once the port is free" wait_for 60 logged cp2 "Joined the cluster"
check "a worker joins (after retrying while the cluster did not exist)" wait_for 60 logged w1 "Joined the cluster"
check "the worker's first retry came well under a second" \
    grep -q "next try in [0-9][0-9]\{0,2\} ms" "$W/w1.log"

# 9-11: registry and control plane
check "the registry lists cp1, cp2 and w1 once each" \
    test "$(member_count cp1)$(member_count cp2)$(member_count w1)" = 111
check "both control-plane nodes are etcd members" \
    test "$(etcdq member list | grep -c started)" -ge 2
check "every node took the node lock with the same cluster ID (PCR 15)" \
    test -n "$(pcr cp1 15 | grep -v '^0*$')" -a "$(pcr cp1 15)" = "$(pcr cp2 15)" -a "$(pcr cp1 15)" = "$(pcr w1 15)"

# the control plane on the mesh
M1=$(mesh_ip cp1) M2=$(mesh_ip cp2)
listening() { in_ns "$1" ss -ltnH '( sport = :2379 or sport = :2380 )' | awk '{print $4}' | LC_ALL=C sort | tr '\n' ' '; }
check "etcd listens on the mesh address and 127.0.0.1 only, not the underlay (cp1: $(listening cp1); cp2: $(listening cp2))" \
    test -n "$M1" -a -n "$M2" -a "$(listening cp1)" = "$M1:2379 $M1:2380 127.0.0.1:2379 " \
    -a "$(listening cp2)" = "$M2:2379 $M2:2380 127.0.0.1:2379 "
etcdq member list >"$W/members.txt" 2>&1
check "etcd's members have their mesh addresses as peer and client URLs, no underlay address" \
    eval 'grep -q "cp1, http://$M1:2380, http://$M1:2379" "$W/members.txt" &&
          grep -q "cp2, http://$M2:2380, http://$M2:2379" "$W/members.txt" && ! grep -q "10\.250\." "$W/members.txt"'
peer_conns() { in_ns cp1 ss -tnH state established '( sport = :2380 or dport = :2380 )' | awk '{print $3, $4}'; }
check "etcd peer traffic between cp1 and cp2 flows over arca0 (connections on mesh addresses only: $(peer_conns | tr '\n' ';'))" \
    eval 'peer_conns | grep -q "$M2:" && ! peer_conns | grep -q "10\.250\."'
state_registry() { tr -d ' \n\t' <"$W/$1/state/arca/node.json" | grep -o '"registry":\[[^]]*\]'; }
check "control-plane nodes reach their registry locally; the worker has none (workers never talk to etcd)" \
    test "$(state_registry cp1)$(state_registry cp2)$(state_registry w1)" = \
         '"registry":["http://127.0.0.1:2379"]"registry":["http://127.0.0.1:2379"]"registry":[]'
check "the first node's registry record names its attestation key, and its refreshes are accepted" \
    eval 'etcdq get /arca/members/cp1 --print-value-only | grep -q "\"akName\":\"000b[0-9a-f]\{64\}\"" &&
          ! logged cp1 "is evicted"'

# the firewall keeps etcd off the underlay: a listener on cp1's underlay
# address, ports 2379 and 2380, answers this machine but no other node
in_ns cp1 "$T/arca-fwtest" serve --tcp 2379 --tcp 2380 10.250.0.11 >"$W/serve.out" 2>&1 &
wait_for 10 grep -q ready "$W/serve.out"
fwtcp() { in_ns "$1" "$T/arca-fwtest" tcp "$2" "$3" --timeout 2000; }
rejected() { in_ns "$1" nft list chain inet arca to_node | sed -n 's/.*tcp counter packets \([0-9]*\).*reject.*/\1/p'; }
fw_sets() { # fw_sets NAME=ADDRESS...: each node's set holds every other node's address
    local h a nodes
    for h in "$@"; do
        nodes=$(in_ns "${h%%=*}" nft list set inet arca nodes4 2>/dev/null | tr -d '\n')
        for a in "$@"; do
            [ "$a" = "$h" ] || echo "$nodes" | grep -q "${a#*=}" || return 1
        done
    done
}
check "every node runs table inet arca with the other nodes' underlay addresses" \
    wait_for 10 fw_sets cp1=10.250.0.11 cp2=10.250.0.12 w1=10.250.0.21
check "a listener on cp1's underlay address, tcp 2379 and 2380, answers this machine (owner, not a node)" \
    test "$(fwtcp owner 10.250.0.11 2379)$(fwtcp owner 10.250.0.11 2380)" = openopen
before=$(rejected cp2)
r2379=$(fwtcp cp2 10.250.0.11 2379) r2380=$(fwtcp cp2 10.250.0.11 2380) w2380=$(fwtcp w1 10.250.0.11 2380)
check "underlay TCP from cp2 and w1 to it is refused by their firewall (cp2: $r2379 $r2380, w1: $w2380; cp2 rejected $before -> $(rejected cp2))" \
    test "$r2379$r2380$w2380" = refusedrefusedrefused -a "$(rejected cp2)" -ge $((before + 2))
in_ns cp2 nft delete table inet arca
r2379=$(fwtcp cp2 10.250.0.11 2379)
check "and dropped by cp1's firewall when cp2 has none (cp2: $r2379)" test "$r2379" = timeout
etcd_health() { in_ns cp2 env ETCDCTL_API=3 etcdctl --endpoints "http://$M1:2379" --command-timeout=10s endpoint health >"$W/health.out" 2>&1; }
wait_for 30 etcd_health
check "while cp2 reaches cp1's etcd over arca0 ($(tail -1 "$W/health.out"))" grep -q "is healthy" "$W/health.out"

# 10-11: custody of the master secret
check "the control-plane joiner keeps the master secret, mode 0600" \
    test "$(stat -c %a "$W/cp2/state/arca/master.json" 2>/dev/null)" = 600
check "the worker has no master secret and no policy" \
    test ! -e "$W/w1/state/arca/master.json" -a ! -e "$W/w1/state/arca/policy.json"

# 12-15: what a worker receives, and its disk key
MASTER=$(field masterSecret <"$W/owner/arca-owner.json" | b64hex)
SALT=$(field masterSalt <"$W/owner/arca-owner.json" | b64hex)
U1=11111111-2222-4333-8444-555555555555
U2=66666666-7777-4888-8999-aaaaaaaaaaaa
probe p1 join --join 10.250.0.12:30090 --name probe1 --role worker --disk-uuid $U1 --endpoint 10.250.0.31:51820 \
    >"$W/probe1.json" 2>"$W/probe1.err"
check "a worker's join answer carries a disk key" grep -q '"diskKey"' "$W/probe1.json"
check "no worker receives the master secret (answer inspected)" \
    test -s "$W/probe1.json" -a -z "$(grep -E 'masterSecret|masterSalt' "$W/probe1.json")"
check "the disk key equals the owner's HKDF(master, salt, \"key-\"+UUID)" \
    test "$(field diskKey <"$W/probe1.json" | b64hex)" = "$(derive "$MASTER" "$SALT" $U1)"
probe p1 join --join 10.250.0.12:30090 --name probe1 --role worker --disk-uuid $U1 --endpoint 10.250.0.31:51820 \
    >"$W/probe1b.json" 2>&1
check "joining again (a retried join) leaves one registry entry and the same address" \
    test "$(member_count probe1)" = 1 -a "$(field meshAddress <"$W/probe1.json")" = "$(field meshAddress <"$W/probe1b.json")"

# 16-17: keys differ per disk
probe p2 join --join 10.250.0.11:30090 --name probe2 --role worker --disk-uuid $U2 --endpoint 10.250.0.32:51820 \
    >"$W/probe2dup.out" 2>&1
check "a joiner announcing another member's WireGuard key is refused (every agent would refuse the peer list)" \
    grep -q "HTTP 409.*is member 'probe1''s already" "$W/probe2dup.out"
K2=QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=
probe p2 join --join 10.250.0.11:30090 --name probe2 --role worker --disk-uuid $U2 --endpoint 10.250.0.32:51820 \
    --wg-key $K2 >"$W/probe2.json" 2>&1
check "another disk gets another key, also the owner's derivation" \
    test "$(field diskKey <"$W/probe2.json" | b64hex)" = "$(derive "$MASTER" "$SALT" $U2)" -a \
         "$(field diskKey <"$W/probe2.json")" != "$(field diskKey <"$W/probe1.json")"
check "mesh addresses are distinct" \
    test "$(field meshAddress <"$W/probe2.json")" != "$(field meshAddress <"$W/probe1.json")"

# 18-19: rejoin
probe p1 rejoin --join 10.250.0.11:30090 --disk-uuid $U1 >"$W/rejoin.json" 2>&1
check "rejoin returns the same disk key for the same UUID" \
    test -n "$(field diskKey <"$W/rejoin.json")" -a "$(field diskKey <"$W/rejoin.json")" = "$(field diskKey <"$W/probe1.json")"
probe p1 rejoin --join 10.250.0.11:30090 --disk-uuid 99999999-9999-4999-8999-999999999999 >"$W/rejoin2.out" 2>&1
check "rejoin refuses a UUID that never joined this cluster" grep -q "HTTP 404.*unknown disk" "$W/rejoin2.out"

# 20-21: a joiner outside the policy
extend p2 4
probe p2 join --join 10.250.0.11:30090 --name probe2b --role worker --disk-uuid $U2 --endpoint 10.250.0.32:51820 \
    --any-pcrs >"$W/drift.out" 2>&1
check "a node with a PCR outside the policy is refused" test "$(member_count probe2b)" = 0
check "the refusal names the PCR" grep -q "PCR 4: expected" "$W/cp1.log"

# 22-24: the join service killed during a join: the node retries and joins, once
JS1=$(pgrep -f "arca-join-service --state-dir $W/cp1/state")
kill -9 $JS1
bootstrapper w2 10.250.0.22 --join 10.250.0.11:30090
check "the bootstrapper restarts its join service" wait_for 20 logged cp1 "restarting it"
check "the worker joins after the join service came back" wait_for 60 logged w2 "Joined the cluster"
check "its failed attempts left no duplicate registry entry" test "$(member_count w2)" = 1

# 25-26: the first control-plane node's services stopped: a new worker joins through the second
kill -STOP "$PID_cp1"
kill -9 "$(pgrep -f "arca-join-service --state-dir $W/cp1/state")"
bootstrapper w3 10.250.0.23 --join 10.250.0.11:30090 --join 10.250.0.12:30090
check "a new worker joins through the second control-plane node" \
    wait_for 60 logged w3 "Joined the cluster through 10.250.0.12:30090"
check "and is registered once" test "$(member_count w3)" = 1
kill -CONT "$PID_cp1"

# 27-28: a second init
in_ns owner "$B/arca" init --config "$W/owner/arca.conf" >"$W/init2.out" 2>&1
check "a second arca init is refused by the CLI" grep -q "initialized already" "$W/init2.out"
mv "$W/owner/arca-cluster.json" "$W/owner/arca-cluster.json.saved"
in_ns owner "$B/arca" init --config "$W/owner/arca.conf" >"$W/init3.out" 2>&1
check "and by the node itself" grep -q "HTTP 409" "$W/init3.out"
mv "$W/owner/arca-cluster.json.saved" "$W/owner/arca-cluster.json"

# 29-31: a join service whose evidence does not verify is refused before anything is sent
wait_for 20 logged cp1 "Join service started (pid" # cp1's join service is back
extend cp2 9
probe p1 join --join 10.250.0.12:30090 --name probe3 --role worker --disk-uuid $U1 --endpoint 10.250.0.31:51820 \
    >"$W/rogue.out" 2>&1
check "the joiner refuses the drifted join service" grep -q "PCR 9: expected" "$W/rogue.out"
check "nothing reached the join service: no registry entry" test "$(member_count probe3)" = 0
check "nothing reached the join service: no request logged" test -z "$(grep probe3 "$W/cp2.log")"

# The kubeadm driver (tests/doubles/kubeadm: no Kubernetes binaries here) on a
# node of its own cluster, with a standalone registry (--registry): the node
# IP kubeadm is configured with is the node's mesh address, which the double,
# told the mesh CIDR, insists on.
host k1 10.250.0.41
tpm k1
mkdir -p "$W/kowner" "$W/kbin" "$W/k1/regetcd"
printf '#!/bin/sh\necho "kubelet (test stub): the driver must not run me" >&2\nexit 1\n' >"$W/kbin/kubelet"
chmod 755 "$W/kbin/kubelet"
in_ns k1 etcd --name reg --data-dir "$W/k1/regetcd" --listen-client-urls http://127.0.0.1:2379 \
    --advertise-client-urls http://127.0.0.1:2379 --listen-peer-urls http://127.0.0.1:2380 \
    --initial-advertise-peer-urls http://127.0.0.1:2380 --initial-cluster reg=http://127.0.0.1:2380 \
    >"$W/k1/regetcd.log" 2>&1 &
"$B/arca" config generate --dir "$W/kowner" --name ktest --init 10.250.0.41 --driver kubeadm \
    --platform-ca ../ca/platform-ca.pem >"$W/kgenerate.out"
cp "$W/owner/measurements.json" "$W/kowner/"
PATH="$(cd "$(dirname "$0")/../doubles" && pwd):$W/kbin:$PATH" KUBEADM_DOUBLE_STATE="$W/k1/double" \
    KUBEADM_DOUBLE_NODE_CIDR=10.123.0.0/16 \
    bootstrapper k1 10.250.0.41 --listen 10.250.0.41 --init-secret-hash "$(sed -n 's/^init-secret-hash: //p' "$W/kgenerate.out")" \
    --registry http://127.0.0.1:2379 --kubernetes-dir "$W/k1/kube"
wait_for 20 logged k1 READY
in_ns owner "$B/arca" init --config "$W/kowner/arca.conf" >"$W/kinit.out" 2>&1
check "kubeadm driver: init succeeds and kubeadm's node IP is the node's mesh address ($(cat "$W/k1/double/node-ips" 2>/dev/null))" \
    test "$(cat "$W/k1/double/node-ips" 2>/dev/null)" = "k1 $(mesh_ip k1)" -a "$(mesh_ip k1)" = 10.123.0.2
