#!/usr/bin/env bash
# arca's main job for a newcomer, on a fresh Debian 12 machine (as root):
# install what is needed, build, and run a whole attested cluster on this
# machine with `arca mini up` (1 control plane + 2 workers unless told
# otherwise: scripts/demo.sh --workers 5). The cluster keeps running; the
# output says how to verify a node and how to tear it down.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "demo: run as root (network namespaces, a bridge, software TPMs)" >&2
    exit 1
fi
scripts/install-deps.sh
echo "== building"
make -j"$(nproc)" >/dev/null

name=mini
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do [ "${args[$i]}" = --name ] && name=${args[$((i + 1))]:-mini}; done
if [ -e "/run/arca-mini/$name/journal" ]; then
    echo "== a mini cluster \"$name\" runs already: build/arca mini status"
    exec build/arca mini status --name "$name"
fi
echo "== build/arca mini up ${args[*]}"
build/arca mini up "${args[@]}"
echo
node=w1
grep -q "^node w1 " "/run/arca-mini/$name/journal" || node=cp1 # --workers 0
echo "== one node's attestation in full (PCRs 4, 9, 15 shown): build/arca mini verify $node"
build/arca mini verify "$node" --name "$name" | sed -n '1,3p;/^ *4 /p;/^ *9 /p;/^ *15 /p;$p'
