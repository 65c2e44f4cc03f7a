#!/bin/sh
# install.sh BUILD DESTDIR PREFIX BINDIR LIBDIR INCLUDEDIR MANDIR VERSION SOVERSION "LAYERS" "HEADERS"
# `make install`: headers, static and shared libraries (versioned sonames
# and their links), the CLI, its man page and one pkg-config file per
# library, each Requires: the layers below it.
set -eu
build=$1 destdir=$2 prefix=$3 bindir=$4 libdir=$5 includedir=$6 mandir=$7 version=$8 soversion=$9
shift 9
layers=$1 headers=$2
d() { printf '%s%s' "$destdir" "$1"; }
install -d "$(d "$bindir")" "$(d "$libdir")" "$(d "$libdir")/pkgconfig" "$(d "$includedir")" "$(d "$mandir")/man1"
for h in $headers; do install -m 644 "$h" "$(d "$includedir")/"; done
for l in $layers; do
    install -m 644 "$build/lib$l.a" "$(d "$libdir")/"
    install -m 755 "$build/lib$l.so.$version" "$(d "$libdir")/"
    ln -sf "lib$l.so.$version" "$(d "$libdir")/lib$l.so.$soversion"
    ln -sf "lib$l.so.$soversion" "$(d "$libdir")/lib$l.so"
done
install -m 755 "$build/earlystop" "$(d "$bindir")/"
install -m 644 "$build/earlystop.1" "$(d "$mandir")/man1/"
# pkg-config: name, description, Requires, private libraries
pc() {
    cat > "$(d "$libdir")/pkgconfig/$1.pc" <<PC
prefix=$prefix
libdir=$libdir
includedir=$includedir

Name: $1
Description: $2
Version: $version
Requires: $3
Requires.private: $4
Libs: -L\${libdir} -l$1
Libs.private: $5
Cflags: -I\${includedir}
PC
}
pc earlystop "earlystop core: stopping policies for LM reasoning (libc + libm only)" "" "" "-lm"
pc earlystop-replay "earlystop replay: recorded traces, replay, oracles, reports" "earlystop = $version" "" "-lm -pthread"
pc earlystop-io "earlystop io: trace files, import, policy files" "earlystop-replay = $version" "jansson libpcre2-8" "-pthread"
pc earlystop-lm "earlystop built-in reasoning model" "earlystop = $version" "" "-lm -pthread"
pc earlystop-tune "earlystop tuning: fronts, exact sweeps, Learn-then-Test" "earlystop-replay = $version" "" "-lm -pthread"
pc earlystop-online "earlystop online: the controller in the loop of a replayed stream" "earlystop-replay = $version" "" "-lm"
pc earlystop-meta "earlystop meta-learning: a prior over tasks, adapt from k items" "earlystop-tune = $version" "jansson" "-lm"
pc earlystop-serve "earlystop serving: OpenAI-compatible server and early-stopping proxy" "earlystop-io = $version, earlystop-lm = $version" "libmicrohttpd libcurl jansson" "-pthread"
pc earlystop-learn "earlystop learned stoppers: episodes, fitted-Q, REINFORCE, operating points" "earlystop-tune = $version" "" "-lm -pthread"
