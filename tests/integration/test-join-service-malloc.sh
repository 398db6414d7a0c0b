#!/usr/bin/env bash
# arca-join-service turns glibc's per-thread malloc caches off (TAP): the
# tunable is read only as a program starts, so the join service starts
# itself once more with GLIBC_TUNABLES set (join-service/main.c). Checks:
# it runs the same with its arguments kept (--features, --help); it starts
# itself again exactly once, under its own path (so that its process name
# stays arca-join-service) and with glibc.malloc.tcache_count=0; a
# GLIBC_TUNABLES given by the caller is used as given, without a restart;
# a bad option is still refused, and the restart does not loop.
set -u
B=${ARCA_BUILD_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/build}
JS=$B/arca-join-service
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT

echo "1..6"
n=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); echo "not ok $n - $1"; }
check() { if eval "$2"; then ok "$1"; else not_ok "$1"; fi; }

env -u GLIBC_TUNABLES "$JS" --features >"$W/features" 2>"$W/err"
check "--features after the restart: the service's features" \
    'grep -qx join "$W/features" && grep -qx mesh "$W/features"'
env -u GLIBC_TUNABLES "$JS" --help >"$W/help" 2>&1
check "--help after the restart" 'grep -q "^Usage: arca-join-service" "$W/help"'

if ! command -v strace >/dev/null; then
    for i in 3 4 5 6; do echo "ok $i # SKIP strace is not installed"; done
    exit 0
fi
env -u GLIBC_TUNABLES strace -f -v -s 256 -e trace=execve -o "$W/trace" "$JS" --features >/dev/null 2>&1
check "started again once, by its own path, with the tunable" \
    '[ "$(grep -c "execve(" "$W/trace")" = 2 ] &&
     grep "execve(" "$W/trace" | tail -1 | grep -q "execve(\"$JS\", \[\"$JS\", \"--features\"\].*\"GLIBC_TUNABLES=glibc.malloc.tcache_count=0\""'
GLIBC_TUNABLES=glibc.malloc.mxfast=0 strace -f -e trace=execve -o "$W/trace2" "$JS" --features >/dev/null 2>&1
check "a given GLIBC_TUNABLES is used as given: no restart" '[ "$(grep -c "execve(" "$W/trace2")" = 1 ]'
env -u GLIBC_TUNABLES strace -f -v -s 256 -e trace=execve -o "$W/trace3" "$JS" --no-such-option >/dev/null 2>&1
check "a bad option is refused after the restart too (exit 2)" \
    'env -u GLIBC_TUNABLES "$JS" --no-such-option >/dev/null 2>&1; [ $? = 2 ]'
check "the restart does not loop" '[ "$(grep -c "execve(" "$W/trace3")" = 2 ]'
