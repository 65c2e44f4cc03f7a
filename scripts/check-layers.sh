#!/bin/sh
# check-layers.sh BUILD VERSION - the layers hold, as built:
#  - the core shared library needs libc and libm and nothing else (an
#    inference engine embeds it);
#  - every shared library exports es_* symbols only (-fvisibility=hidden
#    plus ES_API on the public declarations);
#  - each library needs only the layers below it (they were linked with
#    -Wl,--no-undefined, so a call upwards would not have linked at all).
set -eu
build=${1:-build}
version=${2:?version}
fail=0
needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort | tr '\n' ' '; }
check_needs() { # lib allowed...
    lib=$1; shift
    for n in $(needed "$build/$lib.so.$version"); do
        ok=0
        for a in "$@"; do case "$n" in $a) ok=1 ;; esac; done
        if [ "$ok" = 0 ]; then
            echo "check-layers: $lib needs $n, beyond what its layer may use ($*)" >&2
            fail=1
        fi
    done
}
check_needs libearlystop 'libc.so.*' 'libm.so.*'
check_needs libearlystop-replay 'libc.so.*' 'libm.so.*' 'libearlystop.so.*'
check_needs libearlystop-lm 'libc.so.*' 'libm.so.*' 'libearlystop.so.*'
check_needs libearlystop-io 'libc.so.*' 'libm.so.*' 'libearlystop.so.*' 'libearlystop-replay.so.*' 'libjansson.so.*' 'libpcre2-8.so.*'
check_needs libearlystop-tune 'libc.so.*' 'libm.so.*' 'libearlystop.so.*' 'libearlystop-replay.so.*'
check_needs libearlystop-online 'libc.so.*' 'libm.so.*' 'libearlystop.so.*' 'libearlystop-replay.so.*'
check_needs libearlystop-meta 'libc.so.*' 'libm.so.*' 'libearlystop.so.*' 'libearlystop-replay.so.*' 'libearlystop-tune.so.*' 'libjansson.so.*'
check_needs libearlystop-serve 'libc.so.*' 'libm.so.*' 'libearlystop.so.*' 'libearlystop-replay.so.*' 'libearlystop-io.so.*' 'libearlystop-lm.so.*' 'libjansson.so.*' 'libmicrohttpd.so.*' 'libcurl.so.*'
check_needs libearlystop-learn 'libc.so.*' 'libm.so.*' 'libearlystop.so.*' 'libearlystop-replay.so.*' 'libearlystop-tune.so.*'
for lib in libearlystop libearlystop-replay libearlystop-io libearlystop-lm libearlystop-tune \
    libearlystop-online libearlystop-meta libearlystop-serve libearlystop-learn; do
    f="$build/$lib.so.$version"
    bad=$(nm -D --defined-only "$f" | awk '{print $NF}' | grep -v '^es_' || true)
    if [ -n "$bad" ]; then
        echo "check-layers: $lib exports symbols outside the es_ API: $(echo $bad | head -c 300)" >&2
        fail=1
    fi
    soname=$(readelf -d "$f" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
    [ "$soname" = "$lib.so.${version%%.*}" ] || { echo "check-layers: $lib has soname '$soname'" >&2; fail=1; }
done
n=$(nm -D --defined-only "$build/libearlystop.so.$version" | wc -l)
[ "$fail" = 0 ] && echo "  layers: libearlystop needs $(needed "$build/libearlystop.so.$version")and exports $n es_ symbols; every library exports es_* only"
exit $fail
