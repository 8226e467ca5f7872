#!/bin/sh
# Runs redis-benchmark with the given arguments (-q is added) and prints one
# "redis set=N get=N" line (requests/s; a test not run is left out) for
# benches/peers/bench/ratio.py.
redis-benchmark -q "$@" 2>&1 | tr '\r' '\n' | awk '
  /^SET: .*requests per second/ {s=$2}
  /^GET: .*requests per second/ {g=$2}
  END {printf "redis"; if (s != "") printf " set=%s", s; if (g != "") printf " get=%s", g; printf "\n"}'
