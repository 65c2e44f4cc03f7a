#!/bin/sh
# check-install.sh BUILD - what an engine's developer does: a clean
# `make install` into a temporary prefix (with DESTDIR staging too), then
# examples/embed.c built against the installed copy with pkg-config alone
# (no path into the source tree) and run, linked both shared and static.
set -eu
build=${1:-build}
tmp=$(mktemp -d /tmp/es-install-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
make -s --no-print-directory install BUILD="$build" PREFIX="$tmp/usr" >/dev/null
# staged: DESTDIR prefixes every path, the files name the final PREFIX
make -s --no-print-directory install BUILD="$build" DESTDIR="$tmp/stage" PREFIX=/opt/es >/dev/null
[ -f "$tmp/stage/opt/es/lib/pkgconfig/earlystop.pc" ] || { echo "check-install: DESTDIR staging missing" >&2; exit 1; }
grep -q '^prefix=/opt/es$' "$tmp/stage/opt/es/lib/pkgconfig/earlystop.pc" || { echo "check-install: .pc prefix not PREFIX" >&2; exit 1; }
for f in bin/earlystop include/earlystop.h include/earlystop_replay.h lib/libearlystop.a lib/libearlystop.so.0 \
         lib/libearlystop-io.so lib/pkgconfig/earlystop.pc lib/pkgconfig/earlystop-io.pc share/man/man1/earlystop.1; do
    [ -e "$tmp/usr/$f" ] || { echo "check-install: $f not installed" >&2; exit 1; }
done
export PKG_CONFIG_PATH="$tmp/usr/lib/pkgconfig"
cp examples/embed.c "$tmp/embed.c"
cd "$tmp"
cc -std=c11 -Wall -Werror embed.c $(pkg-config --cflags --libs earlystop) -o embed-shared
cc -std=c11 -Wall -Werror embed.c $(pkg-config --cflags earlystop) "$tmp/usr/lib/libearlystop.a" $(pkg-config --static --libs-only-l earlystop | sed 's/-learlystop//') -o embed-static
out=$(LD_LIBRARY_PATH="$tmp/usr/lib" ./embed-shared)
[ "$out" = "$(./embed-static)" ] || { echo "check-install: shared and static examples disagree" >&2; exit 1; }
echo "$out" | grep -q "^libearlystop " || { echo "check-install: example printed: $out" >&2; exit 1; }
ldd embed-shared | grep -q "libearlystop.so.0 => $tmp/usr/lib" 2>/dev/null || LD_LIBRARY_PATH="$tmp/usr/lib" ldd embed-shared | grep -q "libearlystop.so.0 => $tmp/usr/lib" \
    || { echo "check-install: embed-shared does not load the installed library" >&2; exit 1; }
"$tmp/usr/bin/earlystop" --help >/dev/null
man -l "$tmp/usr/share/man/man1/earlystop.1" >/dev/null 2>&1 || [ -s "$tmp/usr/share/man/man1/earlystop.1" ]
echo "  install: $(echo "$out" | head -1); example built with pkg-config, shared and static, same output"
