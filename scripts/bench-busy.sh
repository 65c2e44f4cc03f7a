#!/bin/sh
# Run a benchmark on a busy machine: one CPU hog (a shell busy loop) per
# online core for as long as the command runs, then stop them.  2 threads
# must never be much slower than 1 here (OpenMP's spinning wait was).
#
#   scripts/bench-busy.sh [COMMAND ARGS...]   default: build/bench/bench_load
#   HOGS=N   hogs to start (default: the online cores)
#
# The hogs are this script's children, stopped by their own ids on exit,
# also on Ctrl-C.
set -eu
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- build/bench/bench_load
n=${HOGS:-$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)}
pids=""
stop() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    for p in $pids; do wait "$p" 2>/dev/null || true; done
    pids=""
}
trap stop EXIT
trap 'stop; exit 130' INT TERM
i=0
while [ "$i" -lt "$n" ]; do
    sh -c 'while :; do :; done' &
    pids="$pids $!"
    i=$((i + 1))
done
echo "bench-busy: $n CPU hog(s) running: $*" >&2
"$@"
