#!/usr/bin/env bash
# replay_vs_python.sh - how many times faster `earlystop eval --shuffles 200`
# replays AC-beta than the Python reference rule, per pass over the file.
#
# Usage: bench/replay_vs_python.sh [FILE]
#   FILE      default ${ES_SHARED_DATA:-../shared/data}/traces/esc_last_letters_gpt35_k40.jsonl
# Environment:
#   EARLYSTOP  the CLI to time (default build/earlystop)
#   BASE       a second CLI (e.g. an older commit built elsewhere), timed
#              interleaved with the first so that both see the same load
#   REPS       repetitions (default 7); SHUFFLES (default 200); EXTRA (default 20)
#   THREADS    pass --threads THREADS to the CLI (default: its own, all cores)
#   PYTHON     interpreter with scipy (default: python3, else /usr/bin/python3)
#
# One process at a time, interleaved per repetition:
#
#  Python, the reference rule (ref_eval.py unmodified, imported as a module),
#  3 passes of ref_eval.main(FILE) per repetition after a warm one:
#    wall: the time spent inside ref_eval.beta_prob during a pass: for each
#      item, Counter.most_common and two scipy.integrate.quad calls on each
#      growing prefix until P >= 0.95.  Interpreter start, scipy import, JSON
#      parsing, answer normalisation and the other figures are not in it, nor
#      the list slices and the majority/EM at each stop, so if anything the
#      Python side is under-counted.
#    cpu: process CPU time of a pass minus that of a pass with
#      ref_eval.integrate = None, which skips exactly ref_eval's AC-beta block
#      (medians of 3 each).
#  CLI, the same rule over SHUFFLES random orders:
#    T1 = `eval FILE --policy ac-beta --shuffles 200` and TX = the same with
#    EXTRA more ac-beta rows (thresholds 0.95 + i*1e-15: the same stops);
#    one AC-beta row per pass =
#    (TX - T1) / (EXTRA * SHUFFLES): everything the CLI spends on a row
#    (orders, replay on all its threads, merging, its 1000-resample bootstrap,
#    printing).  Load, the `full` row and the oracle rows are in both runs
#    and cancel.  wall: elapsed; cpu: user + sys of the process (all threads).
#  Ratios = Python pass / CLI row per pass:
#    wall, best: least disturbed runs on both sides (min(TX) - min(T1) for
#      the CLI; a busy machine only ever adds time, as timeit assumes);
#    wall, median: medians of repetitions;
#    cpu: medians; a per-core figure that does not credit the CLI's threads,
#      and the one least moved by other processes on a shared machine.
#  Also printed: the whole Python process (best) against the whole CLI
#  process / SHUFFLES (loading, `full`, oracles and bootstrap included on the
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

# prints "<wall inside beta_prob> <cpu of the pass>" for 3 passes with the
# rule, then "nocpu <cpu of the pass>" for 3 passes without it
PYDRIVER='
import io, sys, time, contextlib
sys.path.insert(0, sys.argv[1])
import ref_eval as R
rule, integrate = R.beta_prob, R.integrate
inside = [0.0]
def timed(answers):
    t = time.perf_counter()
    try:
        return rule(answers)
    finally:
        inside[0] += time.perf_counter() - t
R.beta_prob = timed
def one_pass(integ):
    R.integrate = integ
    inside[0] = 0.0
    c = time.process_time()
    with contextlib.redirect_stdout(io.StringIO()):
        R.main(sys.argv[2], False)
    return inside[0], time.process_time() - c
one_pass(integrate)
for _ in range(3):
    print("%.6f %.6f" % one_pass(integrate))
    print("nocpu %.6f" % one_pass(None)[1])
'

# "wall user+sys" seconds of one command, output discarded
timed() {
    local TIMEFORMAT='%3R %3U %3S' t
    t=$({ time "$@" >/dev/null 2>&1; } 2>&1) || die "$*: failed"
    echo "$t" | awk '{printf "%.3f %.3f\n", $1, $2 + $3}'
}

thr=()
[ -z "$THREADS" ] || thr=(--threads "$THREADS")
extra_rows=()
# eval lists a policy given twice once: each extra row's threshold is 0.95
# plus i * 1e-15, a different double that stops exactly where 0.95 does
# (no AC-beta probability lies that close to 0.95), so every row does the
# same work as the first.
for ((i = 1; i <= EXTRA; i++)); do extra_rows+=(--policy "ac-beta:threshold=$(printf '0.95%013d' "$i")"); done

# the extra rows must really be rows (a CLI that merged repeated specs would
# make the difference meaningless): count them once
check_rows() {
    local n
    n=$("$1" eval "$FILE" --policy ac-beta "${extra_rows[@]}" --shuffles 1 --csv | grep -c ',"ac-beta:threshold=0.95')
    [ "$n" -eq $((EXTRA + 1)) ] || die "$1: expected $((EXTRA + 1)) ac-beta rows, got $n"
}
check_rows "$EARLYSTOP"
[ -z "$BASE" ] || check_rows "$BASE"

bins=("$EARLYSTOP")
[ -z "$BASE" ] || bins+=("$BASE")

echo "replay_vs_python: $FILE, $REPS repetitions, --shuffles $SHUFFLES, $EXTRA extra rows," \
    "${THREADS:-default} threads, $(nproc) cores," \
    "python $($PY -c 'import sys, scipy; print(sys.version.split()[0], "scipy", scipy.__version__)')"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for ((r = 1; r <= REPS; r++)); do
    timed "$PY" "$REF" "$FILE" >>"$tmp/py_whole"
    "$PY" -c "$PYDRIVER" "$(dirname "$REF")" "$FILE" >"$tmp/py_out" || die "python driver failed"
    grep -v '^nocpu' "$tmp/py_out" >>"$tmp/py_rule"
    grep '^nocpu' "$tmp/py_out" | cut -d' ' -f2 >>"$tmp/py_nocpu"
    for b in "${!bins[@]}"; do
        timed "${bins[$b]}" eval "$FILE" --policy ac-beta "${thr[@]}" --shuffles "$SHUFFLES" >>"$tmp/t1_$b"
        timed "${bins[$b]}" eval "$FILE" --policy ac-beta "${extra_rows[@]}" "${thr[@]}" --shuffles "$SHUFFLES" \
            >>"$tmp/tx_$b"
    done
done
echo "load after:  $(cut -d' ' -f1-3 /proc/loadavg)"

calc() { awk "BEGIN {printf \"%.9g\", $1}"; }
col() { awk -v c="$1" '{print $c}' "$2"; }
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
minimum() { sort -g | head -1; }
range() { sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%.4f-%.4f", lo, hi}'; }
ratio() { # label python_seconds cli_row_seconds
    if awk -v r="$3" 'BEGIN {exit !(r > 0)}'; then
        printf "  ratio per pass (python / CLI), %-13s %6.0fx   [target >= 1000x]\n" "$1:" "$(calc "$2 / $3")"
    else
        echo "  ratio per pass, $1: n/a (load noise hid the rows' cost: raise EXTRA or REPS)"
    fi
}

py_whole=$(col 1 "$tmp/py_whole" | minimum)
py_best=$(col 1 "$tmp/py_rule" | minimum)
py_med=$(col 1 "$tmp/py_rule" | median)
py_cpu=$(calc "$(col 2 "$tmp/py_rule" | median) - $(median <"$tmp/py_nocpu")")
printf "python  ref_eval.py, whole process       wall best %.4f s, median %.4f s\n" "$py_whole" \
    "$(col 1 "$tmp/py_whole" | median)"
printf "python  AC-beta rule, one pass           wall best %.4f s, median %.4f s (%s); cpu %.4f s\n" \
    "$py_best" "$py_med" "$(col 1 "$tmp/py_rule" | range)" "$py_cpu"
for b in "${!bins[@]}"; do
    t1="$tmp/t1_$b" tx="$tmp/tx_$b"
    row_best=$(calc "($(col 1 "$tx" | minimum) - $(col 1 "$t1" | minimum)) / ($EXTRA * $SHUFFLES)")
    row_med=$(paste "$t1" "$tx" | awk -v k="$EXTRA" -v s="$SHUFFLES" '{printf "%.9f\n", ($3 - $1) / (k * s)}' | median)
    row_cpu=$(paste "$t1" "$tx" | awk -v k="$EXTRA" -v s="$SHUFFLES" '{printf "%.9f\n", ($4 - $2) / (k * s)}' | median)
    echo "${bins[$b]}:"
    printf "  eval --policy ac-beta --shuffles %s      wall best %.4f s, median %.4f s; cpu median %.4f s\n" \
        "$SHUFFLES" "$(col 1 "$t1" | minimum)" "$(col 1 "$t1" | median)" "$(col 2 "$t1" | median)"
    printf "  the same with %s more ac-beta rows      wall best %.4f s, median %.4f s; cpu median %.4f s\n" \
        "$EXTRA" "$(col 1 "$tx" | minimum)" "$(col 1 "$tx" | median)" "$(col 2 "$tx" | median)"
    printf "  one AC-beta row per pass               wall best %.1f us, median %.1f us; cpu %.1f us\n" \
        "$(calc "$row_best * 1e6")" "$(calc "$row_med * 1e6")" "$(calc "$row_cpu * 1e6")"
    ratio "wall, best" "$py_best" "$row_best"
    ratio "wall, median" "$py_med" "$row_med"
    ratio "cpu" "$py_cpu" "$row_cpu"
    printf "  whole process per pass (python / (CLI / %s)), wall best: %.0fx\n" "$SHUFFLES" \
        "$(calc "$py_whole / ($(col 1 "$t1" | minimum) / $SHUFFLES)")"
done
