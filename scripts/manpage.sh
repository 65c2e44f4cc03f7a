#!/bin/sh
# manpage.sh EARLYSTOP VERSION - earlystop(1), made from the --help texts
# of the command and of every subcommand, so the page never drifts from them.
set -eu
bin=$1 version=$2
esc() { sed -e 's/\\/\\e/g' -e 's/^\./\\\&./' -e "s/^'/\\\\\\&'/"; }
cat <<MAN
.TH EARLYSTOP 1 "" "earlystop $version" "User Commands"
.SH NAME
earlystop \\- decide when a language model has thought enough
.SH SYNOPSIS
.B earlystop
.I command
.RI [ options ]
.SH DESCRIPTION
earlystop stops reasoning early and holds exact-match accuracy: within one
sample (a chain of thought stops once probed answers are settled) and across
samples (self-consistency stops drawing once the vote is settled).  Each
command below is printed as its \\fB\\-\\-help\\fR gives it.
.SH OVERVIEW
.nf
MAN
"$bin" --help 2>&1 | esc
echo ".fi"
for cmd in $("$bin" --help 2>&1 | sed -n 's/^  \([a-z][a-z-]*\) .*/\1/p'); do
    echo ".SH COMMAND: $cmd"
    echo ".nf"
    "$bin" "$cmd" --help 2>&1 | esc
    echo ".fi"
done
cat <<MAN
.SH FILES
.TP
.I data/model.bin
the built-in model (\\fBES_MODEL\\fR overrides)
.SH SEE ALSO
The documents under docs/ in the source: architecture, trace format, policies, import, model.
MAN
