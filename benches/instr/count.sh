#!/bin/sh
# usage: benches/instr/count.sh plaintext|json|ws PORT SERVER_CMD...
#
# Instructions per request (or per WebSocket echo) of a server, counted by valgrind's callgrind:
# the same binary, load and environment give the same count to within ~0.2 % (how the server's
# reads happen to split the batches), whatever else the machine does, so
# two builds (or weft and a peer) compare exactly where wall-clock pairs vary by 10 % on this
# machine. It counts user-space instructions only: the kernel's work (most of a small echo's
# cost) is not in it, and an instruction is not a cycle. SERVER_CMD must listen on 127.0.0.1:PORT.
#
#   plaintext / json: 8 connections x 500 batches of 16 pipelined GETs (64000 requests)
#   ws:               10 connections x 2000 echoes of 20 bytes, one in flight (20000 echoes)
#
# After a warm-up of a tenth of the work, the counters are zeroed, the load runs, the counters
# are dumped; prints "instr/request N" (or "instr/message N").
set -eu
kind=$1 port=$2; shift 2
dir=$(dirname "$0")
out=$(mktemp -d /tmp/weft-instr.XXXXXX)
valgrind --tool=callgrind --callgrind-out-file="$out/cg.out" "$@" >/dev/null 2>"$out/valgrind.log" &
vp=$!
trap 'kill $vp 2>/dev/null || true; rm -rf "$out"' EXIT INT TERM
i=0
until python3 -c "import socket; socket.create_connection(('127.0.0.1', $port))" 2>/dev/null; do
  i=$((i + 1)); [ $i -lt 100 ] || { echo "the server did not listen on $port" >&2; exit 1; }
  sleep 0.2
done
case $kind in
  plaintext|json) load() { python3 "$dir/load.py" http "$port" 8 "$1" "/$kind"; }; n=500; per=$((8 * 16)); unit=request ;;
  ws) load() { python3 "$dir/load.py" ws "$port" 10 "$1"; }; n=2000; per=10; unit=message ;;
  *) echo "unknown load $kind" >&2; exit 2 ;;
esac
load $((n / 10))
callgrind_control -z $vp >/dev/null 2>&1
load $n
callgrind_control -d $vp >/dev/null 2>&1
# The dump is written by the server's process: wait for it.
i=0
until [ -s "$out/cg.out.1" ] && grep -q '^summary' "$out/cg.out.1"; do
  i=$((i + 1)); [ $i -lt 100 ] || { echo "no dump" >&2; exit 1; }
  sleep 0.1
done
# WEFT_INSTR_KEEP=FILE keeps the dump, for callgrind_annotate (where the instructions go).
[ -z "${WEFT_INSTR_KEEP:-}" ] || cp "$out/cg.out.1" "$WEFT_INSTR_KEEP"
awk -v n=$((n * per)) -v u=$unit '/^summary/ {printf "instr/%s %.0f\n", u, $2 / n}' "$out/cg.out.1"
