#!/usr/bin/env bash
# Memory after a burst: three identical bursts against resp-server (50 clients SET 5,000 random
# keys of 64 KiB, about 320 MB), each followed by FLUSHALL; prints VmRSS after the burst, right
# after the flush, and 12 s later. Run it with LD_PRELOAD=... or MALLOC_* variables to compare
# allocators (figures and the decision in RELIABILITY.md, "Memory after a burst").
#
# usage: benches/alloc-bursts.sh   (needs redis-tools; builds resp-server in release)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v redis-benchmark >/dev/null || { echo "redis-benchmark is missing: apt-get install redis-tools" >&2; exit 1; }
cargo build --release -q -p weft-examples --bin resp-server
port=16390
target/release/resp-server --addr 127.0.0.1:$port --threads 2 >/dev/null 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done
rss() { awk '/VmRSS/ {printf "%.0f MB", $2/1024}' /proc/$pid/status; }
echo "start: $(rss)"
for i in 1 2 3; do
  redis-benchmark -p $port -t set -d 65536 -n 5000 -r 1000000 -c 50 -q >/dev/null 2>&1
  a=$(rss)
  redis-cli -p $port flushall >/dev/null
  sleep 0.5
  b=$(rss)
  sleep 12
  echo "burst $i: after the burst $a, after FLUSHALL $b, 12 s later $(rss)"
done
