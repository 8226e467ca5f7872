#!/bin/sh
# usage: ab.sh RUNS A_OUT B_OUT 'A COMMAND' 'B COMMAND'
#
# Alternating A/B pairs: one unrecorded warm-up of each command, then A, B, A, B ... RUNS times
# each. Each run's output is appended to its file, followed by a line "--- end of run", so that
# ratio.py can compare run i of A with run i of B (measured seconds apart, under the same
# conditions). A failing run is recorded as it is (its figures, if any, are still read).
set -u
runs=$1 a_out=$2 b_out=$3 a_cmd=$4 b_cmd=$5
sh -c "$a_cmd" >/dev/null 2>&1 || true
sh -c "$b_cmd" >/dev/null 2>&1 || true
i=0
while [ "$i" -lt "$runs" ]; do
  { sh -c "$a_cmd" 2>&1; echo "--- end of run"; } >> "$a_out"
  { sh -c "$b_cmd" 2>&1; echo "--- end of run"; } >> "$b_out"
  i=$((i + 1))
done
