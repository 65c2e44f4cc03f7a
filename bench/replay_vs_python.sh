#!/usr/bin/env bash
# replay_vs_python.sh - how many times faster `earlystop eval --shuffles 200`
# replays AC-beta than the Python reference rule, per pass over the file.
#
# Usage: bench/replay_vs_python.sh [FILE]
#   FILE      default ${ES_SHARED_DATA:-../shared/data}/traces/esc_last_letters_gpt35_k40.jsonl
# Environment:
#   EARLYSTOP  the CLI to time (default build/earlystop)
#   BASE       a second CLI (e.g. an older commit built elsewhere), timed
#              interleaved with the first so the two ratios share the load
#   REPS       repetitions (default 7); SHUFFLES (default 200); EXTRA (default 20)
#   PYTHON     interpreter with scipy (default: python3, else /usr/bin/python3)
#   THREADS    pass --threads THREADS to the CLI (default: its own, all cores)
#
# What is timed (wall clock, one process at a time, interleaved per repetition):
#
#  Python, the reference rule (ref_eval.py unmodified, imported as a module):
#    the time spent inside ref_eval.beta_prob (Counter.most_common and two
#    scipy.integrate.quad calls, on each growing prefix of each item until
#    P >= 0.95) during one pass of main(FILE); best of 3 passes after a warm
#    one.  ref_eval's other work (interpreter start, scipy import, JSON
#    parsing, answer normalisation, the other figures) is not in it, nor are
#    the few list slices and the majority/EM at each AC-beta stop, so the
#    Python side is, if anything, under-counted.
#  CLI, the same rule over SHUFFLES random orders:
#    T1 = `eval FILE --policy ac-beta --shuffles 200` and
#    TX = the same with EXTRA more `--policy ac-beta` rows; one AC-beta row
#    per pass = (TX - T1) / (EXTRA * SHUFFLES).  That row's cost is all the
#    CLI spends on it: orders, replay on --threads' default (all cores),
#    merging, its 1000-resample bootstrap and printing.  Load, the `full` row
#    and the oracle rows are in both runs and cancel.
#  Headline ratio = Python AC-beta pass / CLI AC-beta row per pass (medians).
#  Also printed: the whole Python process against the whole CLI process
#  divided by SHUFFLES (load, `full`, oracles and bootstrap included on the
#  CLI side; interpreter start and scipy import on the Python side).
set -euo pipefail
cd "$(dirname "$0")/.."

FILE=${1:-${ES_SHARED_DATA:-../shared/data}/traces/esc_last_letters_gpt35_k40.jsonl}
REF=${REF:-../shared/ref/ref_eval.py}
EARLYSTOP=${EARLYSTOP:-build/earlystop}
BASE=${BASE:-}
REPS=${REPS:-7}
SHUFFLES=${SHUFFLES:-200}
EXTRA=${EXTRA:-20}
THREADS=${THREADS:-}

die() { echo "replay_vs_python: $*" >&2; exit 1; }
[ -r "$FILE" ] || die "$FILE: not readable (set ES_SHARED_DATA or pass FILE)"
[ -r "$REF" ] || die "$REF: not readable"
[ -x "$EARLYSTOP" ] || die "$EARLYSTOP: not built (make)"
[ -z "$BASE" ] || [ -x "$BASE" ] || die "BASE=$BASE: not executable"

PY=
for c in ${PYTHON:-python3 /usr/bin/python3}; do
    if command -v "$c" >/dev/null && "$c" -c 'import scipy.integrate' 2>/dev/null; then PY=$c; break; fi
done
[ -n "$PY" ] || die "no python3 with scipy (apt-get install -y python3-scipy, or set PYTHON)"

# the Python rule: seconds spent inside ref_eval.beta_prob during one pass
# of ref_eval.main(FILE), best of 3 passes after a warm-up pass
PYDRIVER='
import io, sys, time, contextlib
sys.path.insert(0, sys.argv[1])
import ref_eval as R
rule = R.beta_prob
inside = [0.0]
def timed(answers):
    t = time.perf_counter()
    try:
        return rule(answers)
    finally:
        inside[0] += time.perf_counter() - t
R.beta_prob = timed
def one_pass():
    inside[0] = 0.0
    with contextlib.redirect_stdout(io.StringIO()):
        R.main(sys.argv[2], False)
    return inside[0]
one_pass()
print("%.6f" % min(one_pass() for _ in range(3)))
'

now() { echo "$EPOCHREALTIME"; }
# wall seconds of one command, output discarded
wall() {
    local t0 t1
    t0=$(now)
    "$@" >/dev/null
    t1=$(now)
    awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.6f\n", b - a}'
}

extra_rows=()
[ -z "$THREADS" ] || extra_rows+=(--threads "$THREADS")
for ((i = 0; i < EXTRA; i++)); do extra_rows+=(--policy ac-beta); done

# the extra rows must really be rows (a CLI that merged repeated specs would
# make the difference meaningless): count them once
check_rows() {
    local n
    n=$("$1" eval "$FILE" --policy ac-beta "${extra_rows[@]}" --shuffles 1 --csv | grep -c ',"ac-beta')
    [ "$n" -eq $((EXTRA + 1)) ] || die "$1: expected $((EXTRA + 1)) ac-beta rows, got $n"
}
check_rows "$EARLYSTOP"
[ -z "$BASE" ] || check_rows "$BASE"

bins=("$EARLYSTOP")
[ -z "$BASE" ] || bins+=("$BASE")

echo "replay_vs_python: $FILE, $REPS repetitions, --shuffles $SHUFFLES, $EXTRA extra rows, ${THREADS:-default} threads, $(nproc) cores, python $($PY -c 'import sys, scipy; print(sys.version.split()[0], "scipy", scipy.__version__)')"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for ((r = 1; r <= REPS; r++)); do
    wall "$PY" "$REF" "$FILE" >>"$tmp/py_whole"
    "$PY" -c "$PYDRIVER" "$(dirname "$REF")" "$FILE" >>"$tmp/py_rule"
    for b in "${!bins[@]}"; do
        wall "${bins[$b]}" eval "$FILE" --policy ac-beta ${THREADS:+--threads "$THREADS"} --shuffles "$SHUFFLES" >>"$tmp/t1_$b"
        wall "${bins[$b]}" eval "$FILE" --policy ac-beta "${extra_rows[@]}" --shuffles "$SHUFFLES" >>"$tmp/tx_$b"
    done
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"

calc() { awk "BEGIN {printf \"%.9g\", $1}"; }
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
range() { sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%.4f-%.4f", lo, hi}'; }

py_whole=$(median <"$tmp/py_whole")
py_ac=$(median <"$tmp/py_rule")
printf "python  ref_eval.py whole process     median %.4f s  (%s)\n" "$py_whole" "$(range <"$tmp/py_whole")"
printf "python  AC-beta rule, one pass        median %.4f s  (%s)\n" "$py_ac" "$(range <"$tmp/py_rule")"
for b in "${!bins[@]}"; do
    paste "$tmp/t1_$b" "$tmp/tx_$b" | awk -v k="$EXTRA" -v s="$SHUFFLES" '{printf "%.9f\n", ($2 - $1) / (k * s)}' >"$tmp/row_$b"
    t1=$(median <"$tmp/t1_$b")
    row=$(median <"$tmp/row_$b")
    # per repetition ratios too: their spread says how far to trust the median
    paste "$tmp/py_rule" "$tmp/row_$b" | awk '$2 > 0 {print $1 / $2}' >"$tmp/ratio_$b"
    echo "${bins[$b]}:"
    printf "  eval --policy ac-beta --shuffles %s   median %.4f s  (%s); with %s more rows %.4f s\n" "$SHUFFLES" "$t1" \
        "$(range <"$tmp/t1_$b")" "$EXTRA" "$(median <"$tmp/tx_$b")"
    printf "  one AC-beta row per pass            median %.1f us  (%s ms)\n" "$(calc "$row * 1e6")" \
        "$(awk '{print $1 * 1000}' "$tmp/row_$b" | range)"
    if awk -v r="$row" 'BEGIN {exit !(r > 0)}'; then
        printf "  ratio, AC-beta rule per pass (python / CLI):        %6.0fx  (per repetition %s)  [target >= 1000x]\n" \
            "$(calc "$py_ac / $row")" "$(range <"$tmp/ratio_$b" | sed 's/\.[0-9]*//g')"
    else
        echo "  ratio, AC-beta rule per pass: n/a (the load's noise hid the rows' cost: raise EXTRA or REPS)"
    fi
    printf "  ratio, whole process per pass (python / (CLI/%s)):  %6.0fx\n" "$SHUFFLES" \
        "$(calc "$py_whole / ($t1 / $SHUFFLES)")"
done
