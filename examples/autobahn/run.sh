#!/usr/bin/env bash
# Autobahn|Testsuite against weft, both ways, and the verdict against the committed summary.
#
# - server: `wstest -m fuzzingclient` against websocket-chat's /echo endpoint;
# - client: `wstest -m fuzzingserver`, driven by `websocket-client autobahn`.
#
# Cases 1-10 (framing, pings, reserved bits, opcodes, fragmentation, UTF-8, close, limits), and
# of 12-13 (permessage-deflate, every offer and parameter group) the sub-cases 1-6 and 11:
# messages of 16 B to 1 KiB, and 8 KiB ones in 256-byte fragments. The larger sub-cases, 1000
# messages of up to 128 KiB each, take the suite's Python 2 a quarter of an hour per direction
# (WEFT_AUTOBAHN_ALL=1 runs every case). Every case must be OK, NON-STRICT or INFORMATIONAL, and
# no case may do worse than summary.json says (a regression fails even when the suite would
# still accept it). The reports (HTML and JSON) are left in target/autobahn/reports.
#
# usage: examples/autobahn/run.sh [--update]   (--update rewrites summary.json from this run)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
target="${CARGO_TARGET_DIR:-$root/target}"
wstest=$("$here/setup.sh")
cd "$root"
cargo build -q --release -p weft-examples --bin websocket-chat --bin websocket-client
bin="$target/release"

work="$target/autobahn/run"
rm -rf "$work" "$target/autobahn/reports"
mkdir -p "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() { # port: waits up to 60 s for a listener
  for _ in $(seq 600); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "autobahn: nothing listens on port $1" >&2
  return 1
}

limit=900 # seconds per direction
if [ "${WEFT_AUTOBAHN_ALL:-0}" = 1 ]; then
  list='"*"'
  limit=5400
else
  list='"1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*"'
  for g in 12.1 12.2 12.3 12.4 12.5 13.1 13.2 13.3 13.4 13.5 13.6 13.7; do
    for n in 1 2 3 4 5 6 11; do list+=", \"$g.$n\""; done
  done
fi
cases="\"cases\": [$list], \"exclude-cases\": [], \"exclude-agent-cases\": {}"

# weft as the server.
port=$(free_port)
"$bin/websocket-chat" --addr "127.0.0.1:$port" >"$work/server.log" 2>&1 &
pids+=($!)
wait_port "$port"
cat >"$work/fuzzingclient.json" <<EOF
{"outdir": "$target/autobahn/reports/servers",
 "servers": [{"agent": "weft", "url": "ws://127.0.0.1:$port/echo"}], $cases}
EOF
echo "autobahn: fuzzingclient against websocket-chat /echo" >&2
(cd "$work" && timeout "$limit" "$wstest" -m fuzzingclient -s fuzzingclient.json >fuzzingclient.log 2>&1) || {
  tail -20 "$work/fuzzingclient.log" >&2
  exit 1
}

# weft as the client.
port=$(free_port)
cat >"$work/fuzzingserver.json" <<EOF
{"url": "ws://127.0.0.1:$port", "outdir": "$target/autobahn/reports/clients", $cases}
EOF
(cd "$work" && exec "$wstest" -m fuzzingserver -s fuzzingserver.json --webport 0 >fuzzingserver.log 2>&1) &
pids+=($!)
wait_port "$port"
echo "autobahn: websocket-client against fuzzingserver" >&2
timeout "$limit" "$bin/websocket-client" autobahn "ws://127.0.0.1:$port" --agent weft

python3 "$here/verdict.py" "$target/autobahn/reports" "$here/summary.json" "$@"
