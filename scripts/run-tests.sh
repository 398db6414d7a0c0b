#!/usr/bin/env bash
# Run Criterion test binaries and fuzz-corpus replays; print one summary line.
# usage: run-tests.sh TEST... -- REPLAY...
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
passed=0 failed=0 skipped=0
tests=() replays=()
while [ $# -gt 0 ]; do
    [ "$1" = -- ] && { shift; replays=("$@"); break; }
    tests+=("$1"); shift
done

log=$(mktemp); trap 'rm -f "$log"' EXIT
for t in "${tests[@]}"; do
    name=$(basename "$t")
    echo "== $name"
    case "$t" in
    *.sh)
        # Shell tests speak TAP: "ok N - what", "not ok N - what", "ok N # SKIP why".
        ARCA_TEST_JOBS=${ARCA_TEST_JOBS:-2} bash "$t" >"$log" 2>&1
        rc=$?
        grep -E '^(not ok|ok .*# SKIP|# )' "$log" | sed 's/^/   /'
        p=$(grep -E '^ok ' "$log" | grep -vc '# SKIP')
        s=$(grep -cE '^ok .*# SKIP' "$log")
        f=$(grep -c '^not ok' "$log")
        if [ $rc -ne 0 ] && [ $f -eq 0 ]; then
            echo "   $name: exit $rc"; tail -30 "$log" | sed 's/^/   /'; f=1
        fi
        echo "   $name: $p passed, $f failed, $s skipped"
        passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
        continue
        ;;
    esac
    "$t" --verbose=1 --jobs "${ARCA_TEST_JOBS:-2}" >"$log" 2>&1
    rc=$?
    grep -E '^\[(----|FAIL|SKIP|WARN)\]|Synthesis|Assertion|ERROR|AddressSanitizer|runtime error' "$log" | sed 's/^/   /'
    syn=$(grep -o 'Tested: [0-9]* | Passing: [0-9]* | Failing: [0-9]* | Crashing: [0-9]*' "$log" | tail -1)
    s=$(grep -c '^\[SKIP\]' "$log")
    if [ -z "$syn" ]; then
        echo "   $name: no Criterion summary (exit $rc)"; tail -20 "$log" | sed 's/^/   /'
        failed=$((failed + 1)); continue
    fi
    set -- $(echo "$syn" | tr -dc '0-9 ' )
    p=$2 f=$(( $3 + $4 ))
    [ $rc -ne 0 ] && [ $f -eq 0 ] && f=1
    passed=$((passed + p - s)) failed=$((failed + f)) skipped=$((skipped + s))
done

for r in "${replays[@]}"; do
    name=$(basename "$r" -replay)
    corpus="$here/tests/fuzz/corpus/$name"
    if [ ! -d "$corpus" ]; then
        echo "== $name: no corpus at $corpus"; failed=$((failed + 1)); continue
    fi
    if out=$("$r" "$corpus" 2>&1); then
        echo "== $name: $out"; passed=$((passed + 1))
    else
        echo "== $name: corpus replay FAILED"; echo "$out" | tail -20 | sed 's/^/   /'
        failed=$((failed + 1))
    fi
done

echo "check: $passed passed, $failed failed, $skipped skipped"
[ $failed -eq 0 ]
