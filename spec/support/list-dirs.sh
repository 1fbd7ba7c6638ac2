#!/bin/sh
# A KUBECTL_EXTERNAL_DIFF program for spec/e2e/diff_spec.lua: writes the
# files of the two directories it is given (LIVE/<file>, MERGED/<file>) to
# the list file $1 and exits 1 when they differ (as diff does).
list=$1 live=$2 merged=$3
: >"$list"
for f in "$live"/*; do [ -e "$f" ] && echo "LIVE/${f##*/}" >>"$list"; done
for f in "$merged"/*; do [ -e "$f" ] && echo "MERGED/${f##*/}" >>"$list"; done
diff -r -N "$live" "$merged" >/dev/null
