#!/bin/sh
# make demo: the main job on the data the project ships.  Replays the
# published stopping rules and the oracles on the demo traces in data/, tunes
# them, runs the learned stopper and meta-learning, then the built-in model live.
set -eu
build=${1:-build}
bin="$build/earlystop"
echo "== earlystop stats: what the demo traces hold"
"$bin" stats data/*.jsonl
echo
echo "== earlystop eval: published stopping rules against full self-consistency and the oracle"
"$bin" eval data/*.jsonl --policy ac-beta --policy esc --policy ac-dirichlet \
    --policy majority --policy entropy --policy budget:samples=5 --shuffles 20 --seed 1
echo
echo "== earlystop tune: the tokens-vs-EM front of every rule, and a policy certified to lose at most"
echo "   2 points of EM (Learn-then-Test, delta 0.1) on items it never saw"
"$bin" tune data/*.jsonl --max-em-drop 2 --delta 0.1 --split 0.7 --shuffles 10 \
    --out "$build/demo-policy.json" --plot "$build/demo-front.svg"
echo "(the front is drawn in $build/demo-front.svg; the policy is $build/demo-policy.json)"
echo
echo "== earlystop eval: the shipped learned stopper (data/stopper.json) at its two operating points"
echo "   (it was trained on files that include these two: in-sample figures)"
"$bin" eval data/*.jsonl --policy learned --policy learned:max_em_drop=0.5 --policy ac-beta --shuffles 20 --seed 1
echo
echo "== earlystop adapt: a policy for one file from 16 of its items, without their gold answers,"
echo "   from the shipped prior (data/prior.json), then checked on the file's other items"
"$bin" adapt --prior data/prior.json data/verifycot_date_gpt35_k10.jsonl --items 16 --labels none --seed 1 --evaluate
echo
echo "== earlystop run: the built-in model (data/model.bin), stopped live inside generation"
"$bin" run --task date --items 20 --samples 16 --policy ac-beta --seed 7 --progress
