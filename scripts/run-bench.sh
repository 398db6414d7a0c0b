#!/usr/bin/env bash
# Run benchmark binaries and print what they report, one block each, and a
# summary line. A benchmark prints its figures against their targets; a
# missed target is reported there and is not a failure here. A benchmark
# that cannot run to its end is (non-zero exit); exit 77 means it was
# skipped because the machine lacks something, which it names.
# usage: run-bench.sh BENCH...
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
export ARCA_BUILD_DIR=${ARCA_BUILD_DIR:-$here/build}

if [ $# -eq 0 ]; then
    echo "bench: no benchmarks given"
    exit 0
fi

ran=0 failed=0 skipped=0
for b in "$@"; do
    name=$(basename "$b")
    echo "== $name"
    if [ ! -x "$b" ]; then
        echo "   $name: not found or not executable: $b"
        failed=$((failed + 1)); continue
    fi
    "$b" 2>&1 | sed -u 's/^/   /'
    rc=${PIPESTATUS[0]}
    case $rc in
        0) ran=$((ran + 1)) ;;
        77) skipped=$((skipped + 1)) ;;
        *) echo "   $name: FAILED (exit $rc)"; failed=$((failed + 1)) ;;
    esac
done

echo "bench: $ran ran, $failed failed, $skipped skipped"
[ $failed -eq 0 ]
