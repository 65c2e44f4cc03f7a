#!/bin/sh
# make-stopper.sh [OUT] - the shipped learned stoppers (docs/learning.md,
# "The shipped stopper"):
#
#   data/stopper.json (OUT): `learned`, compiled in as
#     src/core/rules/learned_builtin.c.
#     Across samples: `earlystop learn` on every shared trace file
#     (../shared/data/traces, or $ES_SHARED_DATA/traces), fitted-Q, reward
#     agree, two feature sets (margin, leader_wf, wf_share, and the same with
#     beta_logit), each budget taking the model Learn-then-Test certifies
#     cheapest on the held-out half of every file's items (the recipe that
#     generalised best leave one file out), seed 1.
#     Within a sample: a head on forced probes that carry a confidence
#     (--require p_conf), trained on the built-in model's seed-7 traces (600
#     questions x 16 samples a task, a probe every 16 tokens; never the
#     evaluation seed 1) beside that across head, --loss net, the budget held
#     on every task (--per-file).  It never fires on probes without a
#     confidence (no shared file has any), and it reads no text cues, so
#     drivers give it forced probes.
#   data/stopper-think.json: the same across heads, and a within head on the
#     text cues of paragraph probes (--require p_conclude) trained on the two
#     shared *_think files (marked by `earlystop cues`), --reward gold
#     --loss net: for reasoning engines behind `proxy` / `record` (paragraph
#     probes are free there).
#
# The built-in model's traces are generated once into build/stopper-traces/
# (about 3 minutes on 2 cores) and reused.  `make stopper` runs this and rebuilds.
set -eu
out=${1:-data/stopper.json}
bin=${ES_BIN:-build/earlystop}
shared=${ES_SHARED_DATA:-../shared/data}
[ -x "$bin" ] || { echo "make-stopper: $bin not built (make)" >&2; exit 1; }
ls "$shared"/traces/*.jsonl >/dev/null 2>&1 || { echo "make-stopper: no traces under $shared/traces" >&2; exit 1; }
root=$(pwd)
case $bin in /*) ;; *) bin=$root/$bin ;; esac
case $out in /*) ;; *) out=$root/$out ;; esac
think_out=$(dirname "$out")/stopper-think.json
work=$root/build/stopper-traces
mkdir -p "$work"
across=$work/across.json

# from inside traces/, so that the file's provenance names the files, not this machine
(cd "$shared"/traces && nice "$bin" learn *.jsonl --level across --learner fqi --reward agree \
    --features margin,leader_wf,wf_share --features margin,leader_wf,wf_share,beta_logit \
    --seed 1 --threads 2 --out "$across")

# the within head of `learned`: the built-in model's forced probes (features without the cues)
for t in arithmetic date last_letters; do
    f=$work/builtin_${t}_s7.jsonl
    [ -s "$f" ] || nice "$bin" generate --task "$t" --items 600 --samples 16 --probe-every 16 --seed 7 \
        --threads 2 --out "$f" >/dev/null
done
within=p_log_tokens,p_run,p_run_share,p_distinct_share,p_cur_share,p_changed,p_null,p_wf,p_has_conf,p_conf
within=$within,p_conf_trend,p_wconf,p_tokens_rel,p_agrees_leader
(cd "$work" && nice "$bin" learn builtin_arithmetic_s7.jsonl builtin_date_s7.jsonl builtin_last_letters_s7.jsonl \
    --level within --across-from across.json --require p_conf --per-file --loss net --within-features "$within" \
    --seed 1 --threads 2 --out "$out")

# the reasoning engines' stopper: cue heads on the *_think files
for t in r1qwen32b_gsm8k_think qwq32b_gsm8k_think; do
    "$bin" cues "$shared/traces/$t.jsonl" --out "$work/$t.jsonl" 2>/dev/null
done
(cd "$work" && nice "$bin" learn r1qwen32b_gsm8k_think.jsonl qwq32b_gsm8k_think.jsonl --level within \
    --across-from across.json --require p_conclude --reward gold --loss net --seed 1 --threads 2 --out "$think_out")

c=src/core/rules/learned_builtin.c
"$bin" learn --emit-c "$out" > "$c.tmp" && mv "$c.tmp" "$c"
echo "make-stopper: wrote $out, $think_out and $c (rebuild: make)" >&2
