#!/usr/bin/env bash
# Bootstrap flows end to end (TAP): two control-plane nodes and workers, each
# in its own network namespace with its own swtpm and state directory, the
# etcd control-plane driver on the real etcd-server, and the owner's CLI in a
# namespace of its own. Checks init, joins, keys, secrets custody, refusals,
# retries and fail-over as the bootstrap-flows issue lists them.
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
skip_all() { echo "1..1"; echo "ok 1 # SKIP $*"; exit 0; }

[ "$(id -u)" -eq 0 ] || skip_all "needs root for network namespaces"
command -v ip >/dev/null || skip_all "ip (iproute2) is not installed"
ip netns add "arca-probe-$$" 2>/dev/null || skip_all "cannot create network namespaces here"
ip netns del "arca-probe-$$"
[ -x /usr/bin/swtpm ] || skip_all "swtpm is not installed (package swtpm)"
[ -x /usr/bin/etcd ] || skip_all "etcd-server is not installed (package etcd-server)"
command -v etcdctl >/dev/null || skip_all "etcdctl is not installed (package etcd-client)"
command -v tpm2_pcrextend >/dev/null || skip_all "tpm2-tools is not installed"
[ -x "$B/arca-bootstrapper" ] && [ -x "$B/arca-join-service" ] && [ -x "$T/arca-testnode" ] ||
    skip_all "binaries missing in $B (run make tests)"

W=$(mktemp -d /tmp/arca-cluster.XXXXXX)
P=arca$$
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

TCTI=swtpm:host=127.0.0.1,port=2321
tpm() { # tpm NAME: a fresh swtpm in the host's namespace, AK certified by the platform CA
    mkdir -p "$W/$1/tpm"
    in_ns "$1" swtpm socket --tpm2 --server type=tcp,port=2321,bindaddr=127.0.0.1 \
        --ctrl type=tcp,port=2322,bindaddr=127.0.0.1 --tpmstate dir="$W/$1/tpm" \
        --flags not-need-init,startup-clear >/dev/null 2>&1 &
    for _ in $(seq 100); do in_ns "$1" tpm2_pcrread -T "swtpm:port=2321" sha256:0 >/dev/null 2>&1 && break; sleep 0.05; done
    TSS2_LOG=all+none in_ns "$1" "$B/arca" platform provision --ca-dir "$W/ca" --tcti "$TCTI" >/dev/null
}
extend() { # extend NAME PCR
    in_ns "$1" tpm2_pcrextend -T "swtpm:port=2321" "$2:sha256=$(echo "drift $2" | sha256sum | cut -d' ' -f1)"
}
pcr() { in_ns "$1" tpm2_pcrread -T "swtpm:port=2321" "sha256:$2" | sed -n 's/.*0x\([0-9A-F]*\).*/\1/p'; }

CA=$W/ca/platform-ca.pem
bootstrapper() { # bootstrapper NAME ADDRESS [options...]
    local name=$1 addr=$2; shift 2
    mkdir -p "$W/$name/state"
    TSS2_LOG=all+none in_ns "$name" "$B/arca-bootstrapper" --tcti "$TCTI" --state-dir "$W/$name/state" \
        --node-name "$name" --underlay "$addr" --platform-ca "$CA" --join-service "$B/arca-join-service" \
        "$@" >"$W/$name.log" 2>&1 &
    eval "PID_$name=$!"
}
wait_for() { # wait_for SECONDS command...: poll until the command succeeds
    local deadline=$((SECONDS + $1)); shift
    until "$@"; do [ $SECONDS -ge $deadline ] && return 1; sleep 0.2; done
}
logged() { grep -q -- "$2" "$W/$1.log"; }
etcdq() { in_ns owner env ETCDCTL_API=3 etcdctl --endpoints "http://10.250.0.11:2379,http://10.250.0.12:2379" "$@"; }
member_count() { etcdq get --prefix "/arca/members/$1" --keys-only | grep -cx "/arca/members/$1"; }
field() { grep -o "\"$1\":\"[^\"]*\"" | head -1 | cut -d'"' -f4; } # first occurrence: the top level
b64hex() { base64 -d | od -An -v -tx1 | tr -d ' \n'; }
derive() { # derive MASTER_HEX SALT_HEX ID -> hex
    openssl kdf -keylen 32 -kdfopt digest:SHA256 -kdfopt "hexkey:$1" -kdfopt "hexsalt:$2" \
        -kdfopt "info:key-$3" HKDF | tr -d ':\n' | tr 'A-F' 'a-f'
}
probe() { # probe NS join|rejoin args...: the test node's raw answer
    local ns=$1; shift
    TSS2_LOG=all+none in_ns "$ns" "$T/arca-testnode" "$@" --tcti "$TCTI" --platform-ca "$CA"
}

echo "1..33"
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
check "the second control-plane node joins" wait_for 60 logged cp2 "Joined the cluster"
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
    >"$W/probe2.json" 2>&1
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
