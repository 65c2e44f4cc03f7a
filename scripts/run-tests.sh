#!/bin/sh
# Run every cmocka test binary in BUILD/tests; fail if any fails.
# Tests find the shared data at ES_SHARED_DATA (default ../shared/data) and
# the CLI at ES_BIN (default BUILD/earlystop).
set -u
build=${1:-build}
: "${ES_SHARED_DATA:=../shared/data}"
ES_BIN=${ES_BIN:-$build/earlystop}
export ES_SHARED_DATA ES_BIN
fail=0; pass=0
for t in "$build"/tests/test_*; do
    [ -x "$t" ] || continue
    echo "== $t"
    if "$t"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAILED: $t"; fi
done
echo "test binaries: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
