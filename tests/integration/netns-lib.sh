# Shared by the network-namespace cluster tests (sourced, not run): TAP
# helpers, the checks for what they need (skipping with a reason), a
# bridge in a switch namespace with one namespace per host, a swtpm per
# host with its AK certified by the platform CA in $W/ca, bootstrappers,
# etcd queries, key derivation with openssl and the arca-testnode probe.
# The sourcing test sets NETNS_TEST (a name for its work directory) and
# ETCD_ENDPOINTS (what etcdq asks, from the namespace ETCD_NS, default
# "owner"), then `set -u`. With NETNS_MESH=1 the bootstrappers run the
# WireGuard mesh (wireguard-go, each node in a mount namespace of its own
# with a private /run, docs/MESH.md) and the firewall (table inet arca).
: "${NETNS_TEST:?}" "${ETCD_ENDPOINTS:?}"
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
if [ -n "${NETNS_MESH:-}" ]; then
    [ -x /usr/bin/wireguard-go ] || skip_all "wireguard-go is not installed (package wireguard-go)"
    [ -c /dev/net/tun ] || skip_all "/dev/net/tun is missing (wireguard-go needs TUN)"
    command -v nft >/dev/null || skip_all "nft is not installed (package nftables)"
    command -v ss >/dev/null || skip_all "ss (iproute2) is not installed"
    unshare -m --propagation private true 2>/dev/null || skip_all "cannot create mount namespaces here"
fi

W=$(mktemp -d "/tmp/arca-$NETNS_TEST.XXXXXX")
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
    local -a run=(in_ns "$name")
    mkdir -p "$W/$name/state" "$W/$name/run"
    if [ -n "${NETNS_MESH:-}" ]; then
        # `ip netns exec` first (it needs the real /run/netns), then a mount
        # namespace whose /run is the node's own; every step execs, so the
        # pid is the bootstrapper's.
        run=(ip netns exec "$P-$name" unshare -m --propagation private -- \
            sh -c 'mount --bind "$0" /run && exec "$@"' "$W/$name/run")
        set -- --mesh wireguard-go --mesh-refresh-ms 500 --firewall "$@"
    fi
    TSS2_LOG=all+none "${run[@]}" "$B/arca-bootstrapper" --tcti "$TCTI" --state-dir "$W/$name/state" \
        --node-name "$name" --underlay "$addr" --platform-ca "$CA" --join-service "$B/arca-join-service" \
        "$@" >"$W/$name.log" 2>&1 &
    eval "PID_$name=$!"
}
# The mesh address a node's arca0 came up with (NETNS_MESH).
mesh_ip() { sed -n 's/.*Mesh: arca0 up ([a-z-]*), address \([0-9.]*\)\/.*/\1/p' "$W/$1.log" | head -1; }
wait_for() { # wait_for SECONDS command...: poll until the command succeeds
    local deadline=$((SECONDS + $1)); shift
    until "$@"; do [ $SECONDS -ge $deadline ] && return 1; sleep 0.2; done
}
logged() { grep -q -- "$2" "$W/$1.log"; }
etcdq() { in_ns "${ETCD_NS:-owner}" env ETCDCTL_API=3 etcdctl --endpoints "$ETCD_ENDPOINTS" "$@"; }
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
