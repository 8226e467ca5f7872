#!/bin/sh
# Runs wrk with the given arguments and prints one "wrk rps=N bytes/s=X" line for
# benches/peers/bench/ratio.py (wrk's "GB" and "MB" are binary units).
wrk "$@" | awk '/Requests\/sec/ {r=$2}
  /Transfer\/sec/ {t=$2; n=t+0; if (t ~ /GB/) n*=1073741824; else if (t ~ /MB/) n*=1048576; else if (t ~ /KB/) n*=1024; b=n}
  END {printf "wrk rps=%s bytes/s=%.0f\n", r, b}'
