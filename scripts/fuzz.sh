#!/bin/sh
# Build every fuzz/fuzz_*.c as a libFuzzer target (clang, ASan + UBSan) against
# the core, replay, io, tune and meta layers' sources, and run each for a bounded time on
# a copy of its seed corpus.  Fails when a target fails to build or finds a crash / leak.
#
#   FUZZ_SECONDS  run time per target (default 30)
#   FUZZ_JOBS     parallel fuzzing processes per target (default 1)
#   FUZZ_TARGETS  space-separated subset (e.g. "fuzz_trace"), default all
#   CLANG         compiler (default clang)
#
# Corpus: fuzz/corpus/<target>/ (e.g. fuzz/corpus/fuzz_trace/); the working
# copy and anything new the fuzzer finds live in build-fuzz/corpus/<target>/,
# crash artifacts in build-fuzz/artifacts/.
set -eu
cd "$(dirname "$0")/.."

FUZZ_SECONDS=${FUZZ_SECONDS:-30}
FUZZ_JOBS=${FUZZ_JOBS:-1}
CLANG=${CLANG:-clang}
OUT=build-fuzz

command -v "$CLANG" >/dev/null 2>&1 || { echo "fuzz: $CLANG not found (install clang)" >&2; exit 1; }
PKG_CFLAGS=$(pkg-config --cflags jansson libpcre2-8)
# the serve layer's parsers (request bodies, event streams) need jansson only
PKG_LIBS=$(pkg-config --libs jansson libpcre2-8)

# The library is built with coverage (fuzzer-no-link) so the fuzzer sees its
# branches; the target alone adds the libFuzzer main.
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
CFLAGS="-std=c11 -g -O1 $SAN -pthread -Iinclude -Isrc -Isrc/common -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE $PKG_CFLAGS"

mkdir -p "$OUT/obj" "$OUT/corpus" "$OUT/artifacts"
objs=""
# each layer sees its own internal headers, as in the Makefile
for src in src/core/*.c src/core/rules/*.c src/replay/*.c src/io/*.c src/tune/*.c src/meta/*.c src/serve/util.c \
           src/serve/oai.c src/serve/sse.c src/serve/family.c; do
    [ -f "$src" ] || continue
    layer=$(echo "$src" | cut -d/ -f1-2)
    obj="$OUT/obj/$(echo "$src" | tr / _ | sed 's/\.c$/.o/')"
    if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ -n "$(find include src -name '*.h' -newer "$obj" 2>/dev/null | head -1)" ]; then
        "$CLANG" $CFLAGS -I"$layer" -fsanitize=fuzzer-no-link -c "$src" -o "$obj"
    fi
    objs="$objs $obj"
done
rm -f "$OUT/libfuzz.a"
ar rcs "$OUT/libfuzz.a" $objs

targets=""
for f in fuzz/fuzz_*.c; do
    [ -f "$f" ] || continue
    t=$(basename "$f" .c)
    if [ -n "${FUZZ_TARGETS:-}" ]; then
        case " $FUZZ_TARGETS " in *" $t "*) ;; *) continue ;; esac
    fi
    echo "fuzz: building $t" >&2
    "$CLANG" $CFLAGS -fsanitize=fuzzer "$f" "$OUT/libfuzz.a" $PKG_LIBS -lm -o "$OUT/$t"
    targets="$targets $t"
done
[ -n "$targets" ] || { echo "fuzz: no fuzz/fuzz_*.c targets" >&2; exit 1; }

# -jobs makes libFuzzer fork workers that log to ./fuzz-N.log: only when asked
par=""
[ "$FUZZ_JOBS" -gt 1 ] && par="-jobs=$FUZZ_JOBS -workers=$FUZZ_JOBS"

fail=0
for t in $targets; do
    corpus="$OUT/corpus/$t"
    mkdir -p "$corpus"
    # seeds: fuzz/corpus/<target>/, or fuzz/corpus/<name without fuzz_>/
    for seeds in "fuzz/corpus/$t" "fuzz/corpus/${t#fuzz_}"; do
        [ -d "$seeds" ] && cp -R "$seeds"/. "$corpus"/ 2>/dev/null || true
    done
    echo "fuzz: running $t for ${FUZZ_SECONDS}s ($(ls "$corpus" | wc -l) corpus files)" >&2
    if "$OUT/$t" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
            $par -artifact_prefix="$OUT/artifacts/$t-" "$corpus" \
            >"$OUT/$t.log" 2>&1; then
        echo "fuzz: $t ok: $(grep -E 'stat::number_of_executed_units' "$OUT/$t.log" | tail -1)" >&2
    else
        fail=1
        echo "fuzz: $t FAILED (log: $OUT/$t.log; artifacts: $OUT/artifacts/$t-*)" >&2
        grep -E 'ERROR|SUMMARY|==[0-9]+==|runtime error' "$OUT/$t.log" | head -20 >&2 || true
    fi
done
exit $fail
