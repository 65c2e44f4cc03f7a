#!/bin/sh
# Run every cmocka test binary in BUILD/tests; fail if any fails.
#
# One line per binary ("TEST  test_x  12 passed, 2 skipped"); a failing
# binary's output (less the passing tests' lines) follows its line.  Every
# output is kept in BUILD/tests/log/NAME.log.  At the end: totals, and the
# reasons the tests printed for skipping (e.g. no ../shared/data).
# V=1 prints every binary's whole output too.
#
# Tests find the shared data at ES_SHARED_DATA (default ../shared/data) and
# the CLI at ES_BIN (default BUILD/earlystop).
set -u
build=${1:-build}
: "${ES_SHARED_DATA:=../shared/data}"
ES_BIN=${ES_BIN:-$build/earlystop}
V=${V:-0}
export ES_SHARED_DATA ES_BIN
logdir="$build/tests/log"
mkdir -p "$logdir"
reasons="$logdir/skip-reasons"
: >"$reasons"

fail=0; pass=0; tests_pass=0; tests_skip=0; tests_fail=0
for t in "$build"/tests/test_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    log="$logdir/$name.log"
    "$t" >"$log" 2>&1
    rc=$?
    if [ "$V" = 1 ]; then echo "== $t"; cat "$log"; fi
    # counts from cmocka's lines ("[  SKIPPED ] name" right after a test ran;
    # the list at the end repeats them); the reasons are the lines a test
    # printed that say "skipping" or "skipped" (stdout and stderr interleave, so they are not
    # matched to tests).
    counts=$(awk -v reasons="$reasons" '
        /^\[  PASSED  \] [0-9]+ test/ { passed = $4; next }
        /^\[  FAILED  \] [0-9]+ test/ { failed = $4; listing = 1; next }
        /^\[  SKIPPED \] [0-9]+ test/ { listing = 1; next }
        /^\[  SKIPPED \] / && !listing { skipped++; next }
        /^\[/ { next }
        /SKIPPED TEST/ { next }
        tolower($0) ~ /skipping|skipped/ { print >> reasons }
        END { printf "%d %d %d\n", passed, skipped, failed }' "$log")
    set -- $counts
    p=$1 s=$2 f=$3
    tests_pass=$((tests_pass + p)); tests_skip=$((tests_skip + s)); tests_fail=$((tests_fail + f))
    line="$p passed"
    [ "$s" -gt 0 ] && line="$line, $s skipped"
    [ "$f" -gt 0 ] && line="$line, $f failed"
    if [ "$rc" -eq 0 ]; then
        pass=$((pass + 1))
        printf '  %-5s %-22s %s\n' TEST "$name" "$line"
    else
        fail=$((fail + 1))
        printf '  %-5s %-22s FAILED (exit %s): %s\n' TEST "$name" "$rc" "$line"
        # its output less the lines of the tests that passed
        [ "$V" = 1 ] || grep -v '^\[ RUN      \]\|^\[       OK \]' "$log" | sed 's/^/    /'
    fi
done
echo "tests: $pass binaries passed, $fail failed; $tests_pass tests passed, $tests_skip skipped, $tests_fail failed (logs: $logdir)"
if [ -s "$reasons" ]; then
    echo "why tests skipped (or skipped a part), as they said it:"
    sort "$reasons" | uniq -c | sort -rn | sed 's/^ *\([0-9]*\) /  \1x /'
fi
[ "$fail" -eq 0 ]
