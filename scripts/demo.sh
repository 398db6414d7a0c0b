#!/usr/bin/env bash
# Single-node attestation demo: a software TPM plays the node's vTPM, this
# machine plays the platform that certifies its attestation key, the
# bootstrapper serves its evidence over aTLS on port 9000, and `arca verify`
# checks it against a measurement policy predicted from the "boot"
# measurements. Then the node's measurements drift and verification fails.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD

scripts/install-deps.sh
make -j"$(nproc)" >/dev/null

work=$(mktemp -d /tmp/arca-demo.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

port=${ARCA_DEMO_TPM_PORT:-23320}
node_port=${ARCA_DEMO_PORT:-9000}
mkdir -p "$work/tpm"
swtpm socket --tpm2 --server type=tcp,port=$port --ctrl type=tcp,port=$((port + 1)) \
    --tpmstate dir="$work/tpm" --flags not-need-init,startup-clear &
pids+=($!)
export ARCA_TCTI="swtpm:host=127.0.0.1,port=$port" TSS2_LOG=all+none
for _ in $(seq 50); do tpm2_pcrread -T "swtpm:port=$port" sha256:0 >/dev/null 2>&1 && break; sleep 0.1; done

echo "== platform: create a platform CA and certify the node's attestation key"
build/arca platform create-ca --dir "$work/platform"
build/arca platform provision --ca-dir "$work/platform"

# "Boot": firmware and stub would measure the image into PCRs 4, 9 and 11.
hex2bin() { printf "$(echo "$1" | sed 's/../\\x&/g')"; }
zero=0000000000000000000000000000000000000000000000000000000000000000
declare -A expected
for pcr in 4 9 11; do
    digest=$(printf 'arca demo image, PCR %s' "$pcr" | sha256sum | cut -d' ' -f1)
    tpm2_pcrextend -T "swtpm:port=$port" "$pcr:sha256=$digest"
    expected[$pcr]=$({ hex2bin $zero; hex2bin "$digest"; } | sha256sum | cut -d' ' -f1)
done

cat >"$work/measurements.json" <<JSON
{
  "4": {"expected": "${expected[4]}", "warnOnly": false},
  "9": {"expected": "${expected[9]}", "warnOnly": false},
  "11": {"expected": "${expected[11]}", "warnOnly": false},
  "15": {"expected": "$zero", "warnOnly": false}
}
JSON
cat >"$work/arca.conf" <<CONF
# arca cluster configuration (demo)
[cluster]
name = demo

[attestation]
variant = qemu-vtpm
policy = measurements.json
platform-ca = platform/platform-ca.pem
CONF

echo "== node: start arca-bootstrapper (init server on port $node_port)"
build/arca-bootstrapper --port "$node_port" --listen 127.0.0.1 >"$work/bootstrapper.out" &
pids+=($!)
for _ in $(seq 100); do grep -q READY "$work/bootstrapper.out" && break; sleep 0.1; done

echo "== owner: arca verify --node 127.0.0.1:$node_port --config arca.conf"
build/arca verify --node "127.0.0.1:$node_port" --config "$work/arca.conf"

echo
echo "== node: measurements drift (PCR 9 extended), verify again"
tpm2_pcrextend -T "swtpm:port=$port" "9:sha256=$(echo drift | sha256sum | cut -d' ' -f1)"
if build/arca verify --node "127.0.0.1:$node_port" --config "$work/arca.conf" | grep -v not-in-policy; then
    echo "unexpected: a drifted node verified" >&2
    exit 1
fi
echo
echo "The drifted node was refused, as it must be."
