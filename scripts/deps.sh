#!/bin/sh
# Install the Debian packages earlystop needs that pkg-config cannot find.
# Runs apt-get only for what is missing, so a second run is a no-op.
set -eu
need=""
check() { # pkg-config-name debian-package
    pkg-config --exists "$1" 2>/dev/null || need="$need $2"
}
command -v pkg-config >/dev/null 2>&1 || need="$need pkg-config"
command -v cc >/dev/null 2>&1 || need="$need build-essential"
check jansson libjansson-dev
check cmocka libcmocka-dev
check libpcre2-8 libpcre2-dev
check libmicrohttpd libmicrohttpd-dev
check libcurl libcurl4-openssl-dev
# The end-to-end test installs the official OpenAI Node SDK from npm
# (tests/node, pinned by its lockfile) and runs it with node.
command -v node >/dev/null 2>&1 || need="$need nodejs"
command -v npm >/dev/null 2>&1 || need="$need npm"
if [ -n "$need" ]; then
    echo "deps: installing$need" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need >/dev/null
fi
exit 0
