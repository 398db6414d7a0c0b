#!/usr/bin/env bash
# Mesh refresh and eviction in network namespaces (TAP): a first node
# (arca-bootstrapper, etcd driver and its join service) and two probe nodes,
# each in its own network namespace with its own swtpm. The probes join,
# take their node lock as a node does (TPM2_PCR_Event(15, cluster ID), here
# with tpm2_pcrevent) and refresh (POST /v1/mesh). Checks: a refresh returns
# the peers and records the node's new key; a refresh under another
# member's name or before the node lock is refused and removes nobody; a
# probe whose swtpm gets PCR 4 extended (tpm2_pcrextend) is evicted at its
# next refresh and vanishes from the other's peers. Attacks on the evidence
# (replay, nonce, AK chain, signature) and expiry after --member-timeout
# are in test-mesh-server (C, same binaries).
set -u
NETNS_TEST=evict
ETCD_ENDPOINTS=http://10.251.0.11:2379
. "$(dirname "$0")/netns-lib.sh"

lockpcr() { # lockpcr NAME JOIN_JSON: the node lock, as the bootstrapper takes it
    field clusterId <"$2" | base64 -d >"$W/$1.cid"
    in_ns "$1" tpm2_pcrevent -T "swtpm:port=2321" 15 "$W/$1.cid" >/dev/null
}
K1=QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=
K2=QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=
# The keys they join with (a join service refuses a key another member holds).
K3=Q0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0M=
K4=REREREREREREREREREREREREREREREREREREREREREQ=

echo "1..10"
mkdir -p "$W/ca" "$W/owner"
"$B/arca" platform create-ca --dir "$W/ca" >/dev/null
host owner 10.251.0.2
host cp1 10.251.0.11
host p1 10.251.0.31
host p2 10.251.0.32
for h in cp1 p1 p2; do tpm $h; done
"$B/arca" config generate --dir "$W/owner" --name evict --init 10.251.0.11 --driver etcd \
    --platform-ca ../ca/platform-ca.pem >"$W/generate.out"
HASH=$(sed -n 's/^init-secret-hash: //p' "$W/generate.out")
zero=0000000000000000000000000000000000000000000000000000000000000000
{
    echo "{"
    for i in 0 1 2 3 4 5 6 7 8 9 10 11 12 13; do echo "  \"$i\": {\"expected\": \"$zero\", \"warnOnly\": false},"; done
    echo "  \"14\": {\"expected\": \"$zero\", \"warnOnly\": false}"
    echo "}"
} >"$W/owner/measurements.json"
bootstrapper cp1 10.251.0.11 --listen 10.251.0.11 --init-secret-hash "$HASH"
wait_for 20 logged cp1 READY
in_ns owner "$B/arca" init --config "$W/owner/arca.conf" >"$W/init.out" 2>&1
wait_for 20 logged cp1 "Join service started"
U1=11111111-2222-4333-8444-555555555551
U2=11111111-2222-4333-8444-555555555552
JS=10.251.0.11:30090
wait_for 20 probe p1 join --join $JS --name p1 --role worker --disk-uuid $U1 --endpoint 10.251.0.31:51820 \
    --wg-key $K3 >"$W/p1.json" 2>"$W/p1.err"
probe p2 join --join $JS --name p2 --role worker --disk-uuid $U2 --endpoint 10.251.0.32:51820 \
    --wg-key $K4 >"$W/p2.json" 2>"$W/p2.err"

# 1-2: refused before the node lock, nobody removed
probe p1 mesh --join $JS --name p1 --wg-key $K1 --endpoint 10.251.0.31:51820 >"$W/early.out" 2>&1
check "a refresh before the node lock is refused naming PCR 15" grep -q "HTTP 403.*PCR 15.*has not taken its node lock" "$W/early.out"
check "and p1 stays a member" test "$(member_count p1)" = 1

lockpcr p1 "$W/p1.json"
lockpcr p2 "$W/p2.json"

# 3-5: a refresh returns the peers and records the new key
probe p1 mesh --join $JS --name p1 --wg-key $K1 --endpoint 10.251.0.31:51821 >"$W/m1.json" 2>"$W/m1.err"
check "p1's refresh answers with its join address" \
    test -n "$(field meshAddress <"$W/m1.json")" -a "$(field meshAddress <"$W/m1.json")" = "$(field meshAddress <"$W/p1.json")"
check "and lists cp1 and p2 as peers" eval 'grep -q "\"name\":\"cp1\"" "$W/m1.json" && grep -q "\"name\":\"p2\"" "$W/m1.json"'
check "the registry holds p1's new key and endpoint" \
    eval 'etcdq get /arca/members/p1 --print-value-only | grep -q "$K1.*10.251.0.31:51821"'

# 6: another member's name
probe p2 mesh --join $JS --name p1 --wg-key $K2 --endpoint 10.251.0.32:51820 >"$W/steal.out" 2>&1
check "p2 refreshing as p1 is refused and p1's entry is unchanged" \
    eval 'grep -q "HTTP 403.*another attestation key" "$W/steal.out" && etcdq get /arca/members/p1 --print-value-only | grep -q "$K1"'

# 7-10: p1's measurements drift: evicted at its next refresh
extend p1 4
probe p1 mesh --join $JS --name p1 --wg-key $K1 --endpoint 10.251.0.31:51821 --any-pcrs >"$W/drift.out" 2>&1
check "the drifted node's refresh is refused naming PCR 4" grep -q "PCR 4: expected" "$W/cp1.log"
check "p1 is evicted from the registry (record and address)" \
    wait_for 10 eval 'test "$(member_count p1)" = 0 && test -z "$(etcdq get /arca/mesh-nodes/p1 --print-value-only)"'
probe p2 mesh --join $JS --name p2 --wg-key $K2 --endpoint 10.251.0.32:51820 >"$W/m2.json" 2>"$W/m2.err"
check "p2's next refresh no longer lists p1" \
    eval 'grep -q "\"name\":\"cp1\"" "$W/m2.json" && ! grep -q "\"name\":\"p1\"" "$W/m2.json"'
check "p2 stays a member" test "$(member_count p2)" = 1
