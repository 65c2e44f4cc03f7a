#!/bin/sh
# llama2c_compare.sh - the built-in model against llama2.c's run.c at the
# same shape and weights, timed interleaved in one run; then batched
# self-consistency; then both again with a CPU hog on every core.
#
#   bench/llama2c_compare.sh [BUILD]        (BUILD default: build)
#
# Builds ../shared/ref/llama2.c/run.c with its fastest flags (gcc -Ofast
# -march=native; -fopenmp for 2 threads) through bench/llama2c_driver.c,
# which times run.c's forward() and sampler on the loop bench_model's
# `stream` mode times on ours: BOS, then every position of the 256-token
# context, softmax and one draw per token.  The model is exported to
# llama2.c's checkpoint format.  Binaries and the export go to a temporary
# directory that is removed at the end; nothing built from run.c is kept.
#
# Each round measures every configuration once, in alternating order, so a
# change in the machine's load hits all alike; the figures are medians over
# rounds, the ratios medians of per-round ratios.  Besides wall-clock tok/s,
# tokens per CPU-second (process CPU time) are shown for 1 thread: on a
# machine shared with other work they tell code speed from core share.
#
# Environment: ROUNDS (5), CONTEXTS (10 per measurement), HOG_ROUNDS (3),
# HOG_CONTEXTS (2), GEN_K (32 samples per batched measurement), HOG_GEN_K
# (8), LLAMA2C
# (../shared/ref/llama2.c), CC (gcc).
set -eu
build=${1:-build}
ref=${LLAMA2C:-../shared/ref/llama2.c}
rounds=${ROUNDS:-5}
contexts=${CONTEXTS:-10}
hog_rounds=${HOG_ROUNDS:-3}
hog_contexts=${HOG_CONTEXTS:-2}
gen_k=${GEN_K:-32}
hog_gen_k=${HOG_GEN_K:-8}
cc=${CC:-gcc}
bench="$build/bench/bench_model"

[ -f "$ref/run.c" ] || { echo "llama2c_compare: no $ref/run.c" >&2; exit 1; }
[ -x "$bench" ] || { echo "llama2c_compare: no $bench (make $bench)" >&2; exit 1; }

tmp=$(mktemp -d)
hogs=""
cleanup() {
    for p in $hogs; do kill "$p" 2>/dev/null || true; done
    for p in $hogs; do wait "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

"$cc" -Ofast -march=native -I"$ref" bench/llama2c_driver.c -o "$tmp/run1" -lm
"$cc" -Ofast -march=native -fopenmp -I"$ref" bench/llama2c_driver.c -o "$tmp/run2" -lm
"$bench" export "$tmp/model.bin"

# the same weights: the greedy continuation of BOS must be the same tokens
"$tmp/run1" "$tmp/model.bin" greedy >"$tmp/greedy.ref"
"$bench" greedy >"$tmp/greedy.ours"
if cmp -s "$tmp/greedy.ref" "$tmp/greedy.ours"; then same="identical"; else same="DIFFERENT"; fi

# measure NAME CMD...: appends "wall cpu" to $tmp/NAME
measure() {
    name=$1
    shift
    "$@" >>"$tmp/$name"
}

# median of column COL of file NAME
med() {
    sort -g -k"$2,$2" "$tmp/$1" | awk -v c="$2" '{v[NR] = $c} END {
        if (!NR) { print "nan"; exit }
        print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}

# median over rounds of A's column COL / B's column COL (line by line)
ratio() {
    paste "$tmp/$1" "$tmp/$2" | awk -v c="$3" '{n = NF / 2; print $c / $(n + c)}' | sort -g |
        awk '{v[NR] = $1} END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}

# one round of the four single-stream configurations, order alternating
stream_round() {
    suffix=$1 n=$2 r=$3
    if [ $((r % 2)) -eq 0 ]; then
        measure "ref1$suffix" "$tmp/run1" "$tmp/model.bin" time "$n"
        measure "ours1$suffix" "$bench" stream 1 "$n"
        measure "ref2$suffix" env OMP_NUM_THREADS=2 "$tmp/run2" "$tmp/model.bin" time "$n"
        measure "ours2$suffix" "$bench" stream 2 "$n"
    else
        measure "ours2$suffix" "$bench" stream 2 "$n"
        measure "ref2$suffix" env OMP_NUM_THREADS=2 "$tmp/run2" "$tmp/model.bin" time "$n"
        measure "ours1$suffix" "$bench" stream 1 "$n"
        measure "ref1$suffix" "$tmp/run1" "$tmp/model.bin" time "$n"
    fi
}

# one round of the batched sampling path: batch 1, 8 and 16 on 1 and 2 threads
gen_round() {
    suffix=$1 r=$2 k=$3
    cfgs="1:1 1:8 1:16 2:1 2:8 2:16"
    [ $((r % 2)) -eq 0 ] || cfgs="2:16 2:8 2:1 1:16 1:8 1:1"
    for cfg in $cfgs; do
        th=${cfg%:*} b=${cfg#*:}
        measure "gen${th}_$b$suffix" "$bench" gen "$th" "$b" "$k"
    done
}

report() {
    suffix=$1
    printf '  %-28s %12s %12s %12s\n' "" "run.c" "ours" "ours/run.c"
    printf '  %-28s %12.0f %12.0f %11.2fx\n' "1 thread, tok/s (wall)" "$(med "ref1$suffix" 1)" \
        "$(med "ours1$suffix" 1)" "$(ratio "ours1$suffix" "ref1$suffix" 1)"
    printf '  %-28s %12.0f %12.0f %11.2fx\n' "1 thread, tok per CPU-s" "$(med "ref1$suffix" 2)" \
        "$(med "ours1$suffix" 2)" "$(ratio "ours1$suffix" "ref1$suffix" 2)"
    printf '  %-28s %12.0f %12.0f %11.2fx\n' "2 threads, tok/s (wall)" "$(med "ref2$suffix" 1)" \
        "$(med "ours2$suffix" 1)" "$(ratio "ours2$suffix" "ref2$suffix" 1)"
    printf '  %-28s %11.2fx %11.2fx\n' "2 threads / 1 thread (wall)" "$(ratio "ref2$suffix" "ref1$suffix" 1)" \
        "$(ratio "ours2$suffix" "ours1$suffix" 1)"
}

gen_report() {
    suffix=$1 k=$2
    printf '  %-36s %9s %9s %9s %9s %9s\n' "sampling path, $k samples, probes/16" "batch 1" "batch 8" "batch 16" \
        "8 / 1" "16 / 1"
    for th in 1 2; do
        printf '  %-36s %9.0f %9.0f %9.0f %8.2fx %8.2fx\n' "$th thread(s), tok/s (wall)" "$(med "gen${th}_1$suffix" 1)" \
            "$(med "gen${th}_8$suffix" 1)" "$(med "gen${th}_16$suffix" 1)" \
            "$(ratio "gen${th}_8$suffix" "gen${th}_1$suffix" 1)" "$(ratio "gen${th}_16$suffix" "gen${th}_1$suffix" 1)"
    done
    printf '  %-36s %9.0f %9.0f %9.0f %8.2fx %8.2fx\n' "1 thread, tok per CPU-s" "$(med "gen1_1$suffix" 2)" \
        "$(med "gen1_8$suffix" 2)" "$(med "gen1_16$suffix" 2)" \
        "$(ratio "gen1_8$suffix" "gen1_1$suffix" 2)" "$(ratio "gen1_16$suffix" "gen1_1$suffix" 2)"
}

cores=$(nproc)
echo "== llama2.c run.c against the built-in model: same shape and weights ($cores cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
echo "   run.c: $cc -Ofast -march=native [-fopenmp, OMP_NUM_THREADS=2] via bench/llama2c_driver.c"
echo "   ours:  $bench stream (the shipped build, no -march; AVX2 picked at run time)"
echo "   greedy continuation of BOS, 255 tokens: $same"
echo "   loop: full 256-token contexts (forward, softmax, one draw); $contexts contexts per measurement, $rounds rounds"
r=0
while [ "$r" -lt "$rounds" ]; do stream_round "" "$contexts" "$r"; r=$((r + 1)); done
report ""
echo
echo "== batched self-consistency, ours (bench_model gen: the generator, sampler, token confidence, probes)"
r=0
while [ "$r" -lt "$rounds" ]; do gen_round "" "$r" "$gen_k"; r=$((r + 1)); done
gen_report "" "$gen_k"
echo
echo "== the same with a CPU hog on every core ($cores busy-loop processes)"
i=0
while [ "$i" -lt "$cores" ]; do
    sh -c 'while :; do :; done' &
    hogs="$hogs $!"
    i=$((i + 1))
done
r=0
while [ "$r" -lt "$hog_rounds" ]; do stream_round "_hog" "$hog_contexts" "$r"; r=$((r + 1)); done
report "_hog"
r=0
while [ "$r" -lt "$hog_rounds" ]; do gen_round "_hog" "$r" "$hog_gen_k"; r=$((r + 1)); done
gen_report "_hog" "$hog_gen_k"
