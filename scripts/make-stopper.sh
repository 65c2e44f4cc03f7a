#!/bin/sh
# make-stopper.sh [OUT] - the shipped learned stopper (default data/stopper.json):
# `earlystop learn` on every shared trace file (../shared/data/traces, or
# $ES_SHARED_DATA/traces), across samples, fitted-Q iteration, reward
# agree, two feature sets, margin, leader_wf, wf_share and the same with
# beta_logit, and the default lambdas: each budget (0.1, 0.25, 0.5, 1, 2
# points) takes the model (set, lambda) Learn-then-Test certifies cheapest on
# the held-out half of every file's items (the recipe that generalised best
# leave one file out, docs/learning.md), seed 1; then its C source,
# src/core/rules/learned_builtin.c, so that `learned` needs no file.  No
# within head: the one the two *_think files train certifies nothing across
# models, and one trained on the built-in model's costed probes beside this
# across head passes no budget under the default loss (docs/learning.md).
# `make stopper` runs it and rebuilds.  About 15 s on 2 busy cores.
set -eu
out=${1:-data/stopper.json}
bin=${ES_BIN:-build/earlystop}
shared=${ES_SHARED_DATA:-../shared/data}
[ -x "$bin" ] || { echo "make-stopper: $bin not built (make)" >&2; exit 1; }
ls "$shared"/traces/*.jsonl >/dev/null 2>&1 || { echo "make-stopper: no traces under $shared/traces" >&2; exit 1; }
root=$(pwd)
case $bin in /*) ;; *) bin=$root/$bin ;; esac
case $out in /*) ;; *) out=$root/$out ;; esac
# from inside traces/, so that the file's provenance names the files, not this machine
(cd "$shared"/traces && nice "$bin" learn *.jsonl --level across --learner fqi --reward agree \
    --features margin,leader_wf,wf_share --features margin,leader_wf,wf_share,beta_logit \
    --seed 1 --threads 2 --out "$out")
c=src/core/rules/learned_builtin.c
"$bin" learn --emit-c "$out" > "$c.tmp" && mv "$c.tmp" "$c"
echo "make-stopper: wrote $out and $c (rebuild: make)" >&2
