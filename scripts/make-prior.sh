#!/bin/sh
# make-prior.sh [OUT] - the meta-learner's prior (default data/prior.json):
# `earlystop meta-train` on every shared trace file (../shared/data/traces,
# or $ES_SHARED_DATA/traces) plus nine tasks of the built-in model, each
# generated here once and kept in $ES_PRIOR_TASKS (default
# build/prior-tasks): the three task kinds (last_letters, date,
# arithmetic) x three temperatures (0.7, 1.0, 1.3), 100 questions x 16
# samples each, a probe every 8, 16 or 32 tokens, seeds 1..9 (different
# questions for each).  `make prior` runs it.  docs/learning.md lists the
# task set; about 6 minutes on 2 busy cores, most of it generating (the
# generated files are kept, so a second run takes seconds).
set -eu
out=${1:-data/prior.json}
bin=${ES_BIN:-build/earlystop}
shared=${ES_SHARED_DATA:-../shared/data}
gen=${ES_PRIOR_TASKS:-build/prior-tasks}
[ -x "$bin" ] || { echo "make-prior: $bin not built (make)" >&2; exit 1; }
ls "$shared"/traces/*.jsonl >/dev/null 2>&1 || { echo "make-prior: no traces under $shared/traces" >&2; exit 1; }
mkdir -p "$gen"
seed=0
for task in last_letters date arithmetic; do
    for tp in 0.7:8 1.0:16 1.3:32; do
        t=${tp%:*} p=${tp#*:}
        seed=$((seed + 1))
        f="$gen/builtin_${task}_t${t}_p${p}.jsonl"
        if [ ! -s "$f" ]; then
            echo "make-prior: generating $f" >&2
            nice "$bin" generate --task "$task" --items 100 --samples 16 --temperature "$t" \
                --probe-every "$p" --seed "$seed" --no-text --out "$f" >/dev/null
        fi
    done
done
nice "$bin" meta-train "$shared"/traces/*.jsonl "$gen"/builtin_*.jsonl --out "$out"
