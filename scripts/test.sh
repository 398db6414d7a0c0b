#!/usr/bin/env bash
# All tests, exactly as CI runs them: install what they need, then the
# suite, then the same suite under AddressSanitizer + UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
make -j2 check
make -j2 check-asan
