#!/usr/bin/env bash
# weft benchmark suite: one command measures weft against every peer, side by side.
#
# usage: benches/run.sh [--quick] [SCENARIO...]
#   scenarios (default: all): echo uring file file1g http hello https websocket udp redis alloc idle
#   pipeline codec instr
#   --quick   one pair per comparison, short loads: a smoke test of the suite
#   WEFT_BENCH_OUT=FILE writes the report there instead (to measure some scenarios again
#   without replacing the full report)
#
# It builds what it needs (weft's examples and bench binaries, the peers' load generators, the C
# file server, the Netty peers), installs missing Debian packages with apt-get (and says so),
# starts every server on 127.0.0.1, runs the loads as alternating A/B pairs (peers/bench/ab.sh),
# stops everything it started, and writes benches/RESULTS.md (benches/RESULTS-quick.md with
# --quick): the machine, the date, each figure as median (min-max), and the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PEERS=$ROOT/benches/peers   # the peers' sources (C, Java, nginx config) and the A/B scripts
T=$ROOT/target/peers
# The load generators and the raw tokio baseline are ours: benches/src/bin.
L=$ROOT/target/release
FILES=/tmp/peers-files
QUICK=0
SCENARIOS=()
for a in "$@"; do
  case "$a" in
    --quick) QUICK=1 ;;
    -h|--help) sed -n 2,12p "$0"; exit 0 ;;
    *) SCENARIOS+=("$a") ;;
  esac
done
[ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=(echo uring file file1g http hello https websocket udp redis alloc idle pipeline codec instr)
if [ $QUICK = 1 ]; then RUNS=1; SECS=1; WRK_SECS=2; OUT=$ROOT/benches/RESULTS-quick.md
else RUNS=5; SECS=3; WRK_SECS=5; OUT=$ROOT/benches/RESULTS.md; fi
OUT=${WEFT_BENCH_OUT:-$OUT}
WORK=$(mktemp -d /tmp/weft-bench.XXXXXX)

cleanup() {
  # Servers are started from command substitutions (subshells): their PIDs
  # are kept in a file, not in a shell variable.
  if [ -f "$WORK/pids" ]; then
    while read -r p; do kill "$p" 2>/dev/null || true; done < "$WORK/pids"
  fi
  for p in 19132 19153 19163; do
    [ -f /tmp/peers-nginx-$p/nginx.pid ] && kill "$(cat /tmp/peers-nginx-$p/nginx.pid)" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

log() { echo "== $*" >&2; }

# ---------------------------------------------------------------- setup
setup() {
  local need=()
  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
  command -v wrk >/dev/null || need+=(wrk)
  [ -d /usr/share/java ] && ls /usr/share/java/netty-*.jar >/dev/null 2>&1 || need+=(libnetty-java)
  command -v javac >/dev/null || need+=(default-jdk-headless)
  command -v gcc >/dev/null || need+=(gcc)
  command -v redis-server >/dev/null || need+=(redis-server)
  command -v redis-benchmark >/dev/null || need+=(redis-tools)
  if [ ${#need[@]} -gt 0 ]; then
    log "installing with apt-get: ${need[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
  log "building weft (release) and the load generators"
  # With the io_uring transport compiled in: it is chosen at run time (WEFT_TRANSPORT=io_uring),
  # so every other scenario still measures the readiness transport.
  cargo build --release -q -p weft-examples -p weft-benches --features weft-examples/uring
  mkdir -p "$T"
  gcc -O2 -pthread -o "$T/sendfile-server" "$PEERS/c/file-server.c"
  # shellcheck disable=SC1091
  . "$PEERS/netty/classpath.sh"
  rm -rf "$T/netty-classes" && mkdir -p "$T/netty-classes"
  javac -d "$T/netty-classes" -cp "$NETTY_CP" "$PEERS"/netty/src/peers/*.java
  log "building the Rust peers (hyper, actix-web, tokio-tungstenite, fastwebsockets)"
  (cd "$PEERS/rust" && CARGO_TARGET_DIR="$T/rust" cargo build --release -q)
  [ -f $FILES/1g.bin ] && [ -f $FILES/100m.bin ] && [ -f $FILES/4k.bin ] || "$PEERS/mkfiles.sh" "$FILES" >/dev/null
  cat $FILES/100m.bin $FILES/1g.bin > /dev/null   # warm the page cache
  # netty.sh CLASS ARGS...: a Netty peer from our own build of the peers' sources.
  {
    echo '#!/bin/sh'
    echo ". '$PEERS/netty/classpath.sh'"
    echo 'exec java ${JAVA_OPTS:--Xms256m -Xmx1g -XX:+UseParallelGC} -Dio.netty.leakDetection.level=disabled \'
    echo "  -cp '$T/netty-classes':\"\$NETTY_CP\" \"peers.\$1\" \"\$2\" \"\$3\" \"\$4\" \"\$5\""
  } > "$WORK/netty.sh"
  # wrk.sh ARGS...: wrk, then one "wrk rps=N bytes/s=X" line for ratio.py.
  cp "$ROOT/benches/wrk-line.sh" "$WORK/wrk.sh"
  cp "$ROOT/benches/redis-line.sh" "$WORK/redis.sh"
  chmod +x "$WORK/netty.sh" "$WORK/wrk.sh" "$WORK/redis.sh"
}

# ---------------------------------------------------------------- servers
# start NAME PORT CMD...: runs CMD in the background, waits until PORT accepts.
start() {
  local name=$1 port=$2; shift 2
  if (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then
    echo "port $port is taken (a server left running?): cannot start $name" >&2; exit 1
  fi
  "$@" > "$WORK/$name.log" 2>&1 &
  local pid=$!
  echo "$pid" >> "$WORK/pids"
  for _ in $(seq 1 300); do
    if (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then
      echo "$pid"; return 0
    fi
    kill -0 "$pid" 2>/dev/null || { cat "$WORK/$name.log" >&2; echo "server $name died" >&2; exit 1; }
    sleep 0.1
  done
  echo "server $name did not listen on $port" >&2; exit 1
}

# start_udp NAME PORT CMD...: runs a UDP server in the background, waits for its
# "listening on" line (a datagram port cannot be probed by connecting).
start_udp() {
  local name=$1 port=$2; shift 2
  if ss -Hlun "sport = :$port" 2>/dev/null | grep -q .; then
    echo "udp port $port is taken (a server left running?): cannot start $name" >&2; exit 1
  fi
  "$@" > "$WORK/$name.log" 2>&1 &
  local pid=$!
  echo "$pid" >> "$WORK/pids"
  for _ in $(seq 1 300); do
    if grep -q "^listening on" "$WORK/$name.log" 2>/dev/null; then echo "$pid"; return 0; fi
    kill -0 "$pid" 2>/dev/null || { cat "$WORK/$name.log" >&2; echo "server $name died" >&2; exit 1; }
    sleep 0.1
  done
  echo "server $name did not start on $port" >&2; exit 1
}

stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# ---------------------------------------------------------------- A/B and the report
ROWS=()
# ab LABEL KEYS A_NAME A_PID A_CMD B_NAME B_PID B_CMD
ab() {
  local label=$1 keys=$2 an=$3 apid=$4 acmd=$5 bn=$6 bpid=$7 bcmd=$8
  local a="$WORK/a.txt" b="$WORK/b.txt"
  rm -f "$a" "$b"
  log "$label: $an vs $bn ($RUNS pairs)"
  sh "$PEERS/bench/ab.sh" "$RUNS" "$a" "$b" "sh $PEERS/bench/cpu-of.sh $apid $acmd" "sh $PEERS/bench/cpu-of.sh $bpid $bcmd" || true
  for k in $keys; do
    local line
    line=$(python3 "$PEERS/bench/ratio.py" "$a" "$b" "$k" 2>/dev/null) \
      || line="$k: no usable figures (a side reported none or only zeros)"
    ROWS+=("| $label | $an vs $bn | $line |")
    echo "   $line" >&2
  done
  cp "$a" "$WORK/raw-$(echo "$label-$an" | tr ' /' '__').txt"
  cp "$b" "$WORK/raw-$(echo "$label-$bn" | tr ' /' '__').txt"
}

NOTES=()
note() { NOTES+=("$*"); echo "   $*" >&2; }

# ---------------------------------------------------------------- scenarios
sc_echo() {
  local w t n
  # One event-loop thread each (tokio-echo's default): the same thread count for every server.
  w=$(start weft-echo 19101 "$ROOT/target/release/echo-server" --addr 127.0.0.1:19101 --threads 1)
  t=$(start tokio-echo 19102 "$L/tokio-echo" --addr 127.0.0.1:19102 --threads 1)
  n=$(start netty-echo 19103 "$WORK/netty.sh" EchoServer 19103 nio 1)
  for size in 64 4096; do
    local load="$L/echo-load --conns 50 --msg-size $size --pipeline 16 --secs $SECS --warmup 1"
    ab "echo ${size}B" "msgs/s p99 server_cpu" weft "$w" "$load --addr 127.0.0.1:19101" tokio-echo "$t" "$load --addr 127.0.0.1:19102"
    ab "echo ${size}B" "msgs/s p99 server_cpu" weft "$w" "$load --addr 127.0.0.1:19101" netty-nio "$n" "$load --addr 127.0.0.1:19103"
  done
  stop "$w"; stop "$t"; stop "$n"
}

# io_uring: its ceiling, uring-echo (benches/src/bin, raw io_uring: multishot accept and receive
# into provided buffers, DEFER_TASKRUN), and weft's io_uring transport (echo-server with
# WEFT_TRANSPORT=io_uring) against tokio-echo and weft's readiness transport, one thread each, the
# echo load of sc_echo; then the 1 GiB file through the io_uring transport (splice) against the C
# sendfile server.
sc_uring() {
  local u t w wu f c
  u=$(start uring-echo 19105 "$L/uring-echo" --addr 127.0.0.1:19105)
  t=$(start tokio-echo-1 19106 "$L/tokio-echo" --addr 127.0.0.1:19106 --threads 1)
  w=$(start weft-echo-1 19107 "$ROOT/target/release/echo-server" --addr 127.0.0.1:19107 --threads 1)
  wu=$(start weft-uring-echo 19108 env WEFT_TRANSPORT=io_uring "$ROOT/target/release/echo-server" --addr 127.0.0.1:19108 --threads 1)
  for size in 64 4096; do
    local load="$L/echo-load --conns 50 --msg-size $size --pipeline 16 --secs $SECS --warmup 1"
    ab "echo ${size}B" "msgs/s p99 server_cpu" uring-echo "$u" "$load --addr 127.0.0.1:19105" tokio-echo "$t" "$load --addr 127.0.0.1:19106"
    ab "echo ${size}B" "msgs/s p99 server_cpu" weft-io_uring "$wu" "$load --addr 127.0.0.1:19108" tokio-echo "$t" "$load --addr 127.0.0.1:19106"
    ab "echo ${size}B" "msgs/s p99 server_cpu" weft-io_uring "$wu" "$load --addr 127.0.0.1:19108" weft "$w" "$load --addr 127.0.0.1:19107"
  done
  stop "$u"; stop "$t"; stop "$w"; stop "$wu"
  local fr
  f=$(start weft-uring-file 19109 env WEFT_TRANSPORT=io_uring "$ROOT/target/release/file-server" --addr 127.0.0.1:19109 --root $FILES)
  c=$(start c-sendfile-u 19110 "$T/sendfile-server" 19110 $FILES sendfile)
  fr=$(start weft-file-u 19104 "$ROOT/target/release/file-server" --addr 127.0.0.1:19104 --root $FILES)
  local fload="$L/file-load --file 1g.bin --conns 1 --requests 3"
  ab "file 1GiB" "rate server_cpu" weft-io_uring "$f" "$fload --addr 127.0.0.1:19109" c-sendfile "$c" "$fload --addr 127.0.0.1:19110"
  ab "file 1GiB" "rate server_cpu" weft-io_uring "$f" "$fload --addr 127.0.0.1:19109" weft "$fr" "$fload --addr 127.0.0.1:19104"
  stop "$f"; stop "$c"; stop "$fr"
}

sc_file() {
  local w c n k
  w=$(start weft-file 19111 "$ROOT/target/release/file-server" --addr 127.0.0.1:19111 --root $FILES)
  c=$(start c-sendfile 19112 "$T/sendfile-server" 19112 $FILES sendfile)
  n=$(start netty-file 19113 "$WORK/netty.sh" FileServer 19113 $FILES nio 0)
  k=$(start c-copy 19114 "$T/sendfile-server" 19114 $FILES copy)
  for conns in 1 4; do
    local load="$L/file-load --file 100m.bin --conns $conns --requests 10"
    ab "file 100MiB x$conns" "rate server_cpu" weft "$w" "$load --addr 127.0.0.1:19111" c-sendfile "$c" "$load --addr 127.0.0.1:19112"
    ab "file 100MiB x$conns" "rate server_cpu" weft "$w" "$load --addr 127.0.0.1:19111" netty-fileregion "$n" "$load --addr 127.0.0.1:19113"
    ab "file 100MiB x$conns" "rate server_cpu" weft "$w" "$load --addr 127.0.0.1:19111" c-copy-loop "$k" "$load --addr 127.0.0.1:19114"
  done
  stop "$w"; stop "$c"; stop "$n"; stop "$k"
}

sc_file1g() {
  local w c k
  w=$(start weft-file 19121 "$ROOT/target/release/file-server" --addr 127.0.0.1:19121 --root $FILES)
  c=$(start c-sendfile 19122 "$T/sendfile-server" 19122 $FILES sendfile)
  k=$(start c-copy 19124 "$T/sendfile-server" 19124 $FILES copy)
  local load="$L/file-load --file 1g.bin --conns 1 --requests 3"
  ab "file 1GiB" "rate server_cpu" weft "$w" "$load --addr 127.0.0.1:19121" c-sendfile "$c" "$load --addr 127.0.0.1:19122"
  ab "file 1GiB" "rate server_cpu" weft "$w" "$load --addr 127.0.0.1:19121" c-copy-loop "$k" "$load --addr 127.0.0.1:19124"
  # Server user CPU alone, weft: sendfile keeps it near zero.
  local u
  u=$(sh "$PEERS/bench/cpu-of.sh" "$w" $load --addr 127.0.0.1:19121 | grep server_cpu)
  note "weft file-server, 3 x 1 GiB: $u"
  stop "$w"; stop "$c"; stop "$k"
}

sc_http() {
  local w x
  w=$(start weft-http 19131 bash -c "cd $FILES && exec $ROOT/target/release/http-file-server --addr 127.0.0.1:19131 --threads 1")
  x=$(start nginx 19132 sh "$PEERS/nginx/run.sh" 19132 $FILES 1)
  local xw
  xw=$(ps -o pid= --ppid "$x" | head -1 | tr -d ' '); [ -n "$xw" ] || xw=$x
  for spec in "4k.bin 50" "100m.bin 4"; do
    set -- $spec
    ab "http $1 c$2" "rps bytes/s server_cpu" \
      weft "$w" "$WORK/wrk.sh -t1 -c$2 -d${WRK_SECS}s http://127.0.0.1:19131/$1" \
      nginx "$xw" "$WORK/wrk.sh -t1 -c$2 -d${WRK_SECS}s http://127.0.0.1:19132/$1"
  done
  stop "$w"; kill "$(cat /tmp/peers-nginx-19132/nginx.pid 2>/dev/null)" 2>/dev/null || true; stop "$x"
}

# The TechEmpower pair: plaintext with 16 requests pipelined per connection
# (256 connections), JSON without pipelining (64); every server on one thread. weft runs on its
# default readiness transport, and once more (`weft-io_uring`, the same binary) on io_uring
# against hyper.
sc_hello() {
  local w wu h a x xw
  w=$(start weft-hello 19160 "$ROOT/target/release/http-hello" --addr 127.0.0.1:19160 --threads 1)
  wu=$(start weft-hello-uring 19164 env WEFT_TRANSPORT=io_uring "$ROOT/target/release/http-hello" --addr 127.0.0.1:19164 --threads 1)
  h=$(start hyper 19161 "$T/rust/release/hyper-hello" 19161)
  a=$(start actix-web 19162 "$T/rust/release/actix-hello" 19162)
  x=$(start nginx-hello 19163 sh "$PEERS/nginx/run.sh" 19163 "$FILES" 1 hello)
  xw=$(ps -o pid= --ppid "$x" | head -1 | tr -d ' '); [ -n "$xw" ] || xw=$x
  local pl="$WORK/wrk.sh -t1 -c256 -d${WRK_SECS}s -s $PEERS/bench/pipeline.lua"
  ab "plaintext c256 p16" "rps server_cpu" weft "$w" "$pl http://127.0.0.1:19160/plaintext" hyper "$h" "$pl http://127.0.0.1:19161/plaintext"
  ab "plaintext c256 p16" "rps server_cpu" weft "$w" "$pl http://127.0.0.1:19160/plaintext" actix-web "$a" "$pl http://127.0.0.1:19162/plaintext"
  ab "plaintext c256 p16" "rps server_cpu" weft "$w" "$pl http://127.0.0.1:19160/plaintext" nginx "$xw" "$pl http://127.0.0.1:19163/plaintext"
  ab "plaintext c256 p16" "rps server_cpu" weft-io_uring "$wu" "$pl http://127.0.0.1:19164/plaintext" hyper "$h" "$pl http://127.0.0.1:19161/plaintext"
  local js="$WORK/wrk.sh -t1 -c64 -d${WRK_SECS}s"
  ab "json c64" "rps server_cpu" weft "$w" "$js http://127.0.0.1:19160/json" hyper "$h" "$js http://127.0.0.1:19161/json"
  ab "json c64" "rps server_cpu" weft "$w" "$js http://127.0.0.1:19160/json" actix-web "$a" "$js http://127.0.0.1:19162/json"
  ab "json c64" "rps server_cpu" weft-io_uring "$wu" "$js http://127.0.0.1:19164/json" hyper "$h" "$js http://127.0.0.1:19161/json"
  stop "$w"; stop "$wu"; stop "$h"; stop "$a"
  kill "$(cat /tmp/peers-nginx-19163/nginx.pid 2>/dev/null)" 2>/dev/null || true; stop "$x"
}

# WebSocket echo: websocket-chat's /echo against tokio-tungstenite and fastwebsockets, every
# server on one thread; each connection keeps one binary message in flight. weft once more on
# io_uring (`weft-io_uring`) against fastwebsockets.
sc_websocket() {
  local w wu t f
  w=$(start weft-ws 19171 "$ROOT/target/release/websocket-chat" --addr 127.0.0.1:19171 --threads 1)
  wu=$(start weft-ws-uring 19174 env WEFT_TRANSPORT=io_uring "$ROOT/target/release/websocket-chat" --addr 127.0.0.1:19174 --threads 1)
  t=$(start tungstenite 19172 "$T/rust/release/tungstenite-echo" 19172)
  f=$(start fastwebsockets 19173 "$T/rust/release/fastwebsockets-echo" 19173)
  for spec in "100 20" "200 16384"; do
    set -- $spec
    local load="$L/ws-load --conns $1 --msg-size $2 --secs $SECS --warmup 1"
    ab "websocket echo $1x$2B" "msgs/s p99 server_cpu" \
      weft "$w" "$load --addr 127.0.0.1:19171" fastwebsockets "$f" "$load --addr 127.0.0.1:19173"
    ab "websocket echo $1x$2B" "msgs/s p99 server_cpu" \
      weft "$w" "$load --addr 127.0.0.1:19171" tokio-tungstenite "$t" "$load --addr 127.0.0.1:19172"
    ab "websocket echo $1x$2B" "msgs/s p99 server_cpu" \
      weft-io_uring "$wu" "$load --addr 127.0.0.1:19174" fastwebsockets "$f" "$load --addr 127.0.0.1:19173"
  done
  stop "$w"; stop "$wu"; stop "$t"; stop "$f"
}

# Instructions per request and per echo, counted by callgrind (benches/instr/count.sh): exact
# where the wall-clock pairs above vary by ~10 % on this machine, but user space only (no
# kernel work, which is most of a small echo's cost). weft against hyper (plaintext and JSON,
# 16 pipelined requests a batch) and fastwebsockets (20-byte echoes); one thread each.
sc_instr() {
  command -v valgrind >/dev/null || { log "installing valgrind"; apt-get install -y -qq valgrind >/dev/null; }
  local c="$ROOT/benches/instr/count.sh" w p
  for load in plaintext json; do
    log "instructions per $load request: weft vs hyper"
    w=$("$c" "$load" 19180 "$ROOT/target/release/http-hello" --addr 127.0.0.1:19180 --threads 1 | awk '{print $2}')
    p=$("$c" "$load" 19181 "$T/rust/release/hyper-hello" 19181 | awk '{print $2}')
    ROWS+=("| instructions per $load request (callgrind) | weft vs hyper | A $w, B $p; A/B $(python3 -c "print(f'{$w/$p:.3f}')") |")
  done
  log "instructions per 20 B WebSocket echo: weft vs fastwebsockets"
  w=$("$c" ws 19182 "$ROOT/target/release/websocket-chat" --addr 127.0.0.1:19182 --threads 1 | awk '{print $2}')
  p=$("$c" ws 19183 "$T/rust/release/fastwebsockets-echo" 19183 | awk '{print $2}')
  ROWS+=("| instructions per 20 B echo (callgrind) | weft vs fastwebsockets | A $w, B $p; A/B $(python3 -c "print(f'{$w/$p:.3f}')") |")
}

# Redis protocol: resp-server against redis-server (Debian's, no persistence), one thread each,
# then two (resp-server --threads 2 against io-threads 2), with redis-benchmark: SET and GET
# pipelined 16 deep on 50 connections, and GET one at a time.
sc_redis() {
  local w r n=$((QUICK ? 200000 : 1000000))
  local rs="redis-server --save '' --appendonly no --bind 127.0.0.1 --protected-mode no"
  w=$(start resp-server 19181 "$ROOT/target/release/resp-server" --addr 127.0.0.1:19181 --threads 1)
  r=$(start redis-server 19182 sh -c "exec $rs --port 19182")
  ab "redis SET/GET c50 P16 1 thread" "set get server_cpu" \
    weft "$w" "$WORK/redis.sh -p 19181 -t set,get -n $n -P 16 -c 50" \
    redis "$r" "$WORK/redis.sh -p 19182 -t set,get -n $n -P 16 -c 50"
  ab "redis GET c50 1 thread" "get server_cpu" \
    weft "$w" "$WORK/redis.sh -p 19181 -t get -n $((n / 5)) -c 50" \
    redis "$r" "$WORK/redis.sh -p 19182 -t get -n $((n / 5)) -c 50"
  stop "$w"; stop "$r"
  w=$(start resp-server-2 19183 "$ROOT/target/release/resp-server" --addr 127.0.0.1:19183 --threads 2)
  r=$(start redis-server-io2 19184 sh -c "exec $rs --port 19184 --io-threads 2 --io-threads-do-reads yes")
  ab "redis SET/GET c50 P16 2 threads" "set get server_cpu" \
    weft "$w" "$WORK/redis.sh -p 19183 -t set,get -n $n -P 16 -c 50" \
    redis "$r" "$WORK/redis.sh -p 19184 -t set,get -n $n -P 16 -c 50"
  stop "$w"; stop "$r"
}

# UDP echo: udp-echo (1 thread) with and without GRO against a plain tokio UdpSocket loop, with
# the same load client (udp-load: 4 flows, GSO and GRO on, as a QUIC stack's client has them):
# 64-byte datagrams (32 in flight per flow), and 1,200-byte ones whose windows of 54 leave the
# client as 64 KiB segmented sends. Then dns-server under dnsperf, for its queries/s.
sc_udp() {
  local g w t d
  g=$(start_udp weft-udp-gro 19181 "$ROOT/target/release/udp-echo" --addr 127.0.0.1:19181 --gro)
  w=$(start_udp weft-udp 19182 "$ROOT/target/release/udp-echo" --addr 127.0.0.1:19182)
  t=$(start_udp tokio-udp 19183 "$L/tokio-udp-echo" --addr 127.0.0.1:19183)
  for spec in "64 32" "1200 54"; do
    set -- $spec
    local load="$L/udp-load --flows 4 --size $1 --window $2 --gro --secs $SECS --warmup 1"
    ab "udp echo ${1}B" "pkts/s bytes/s server_cpu" \
      weft-gro "$g" "$load --addr 127.0.0.1:19181" tokio-udp "$t" "$load --addr 127.0.0.1:19183"
    ab "udp echo ${1}B" "pkts/s bytes/s server_cpu" \
      weft "$w" "$load --addr 127.0.0.1:19182" tokio-udp "$t" "$load --addr 127.0.0.1:19183"
  done
  stop "$g"; stop "$w"; stop "$t"
  command -v dnsperf >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dnsperf >/dev/null; }
  d=$(start_udp dns-server 19184 "$ROOT/target/release/dns-server" --addr 127.0.0.1:19184 --rrl-rate 0)
  printf 'www.example.test A\nwww.example.test AAAA\nalias.example.test A\ntxt.example.test TXT\nnope.example.test A\n' > "$WORK/queries.txt"
  local out qps lost
  out=$(sh "$PEERS/bench/cpu-of.sh" "$d" dnsperf -s 127.0.0.1 -p 19184 -d "$WORK/queries.txt" -l $((SECS * 3)) -c 4 2>&1)
  qps=$(echo "$out" | awk '/Queries per second/ {print $4}')
  lost=$(echo "$out" | awk '/Queries lost/ {print $3}')
  note "dns-server (1 thread) under dnsperf -c 4 for $((SECS * 3)) s: $qps queries/s, $lost lost; $(echo "$out" | grep server_cpu)"
  stop "$d"
}

sc_https() {
  log "https vs http (100 MiB file), and against nginx over TLS (4 KiB and 100 MiB)"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -days 2 \
    -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost" >/dev/null 2>&1
  local s p x xw
  s=$(start weft-https 19151 bash -c "cd $FILES && exec $ROOT/target/release/http-file-server --addr 127.0.0.1:19151 --threads 1 --tls-cert $WORK/cert.pem --tls-key $WORK/key.pem")
  p=$(start weft-http 19152 bash -c "cd $FILES && exec $ROOT/target/release/http-file-server --addr 127.0.0.1:19152 --threads 1")
  ab "https 100m.bin c4" "bytes/s server_cpu" \
    weft-https "$s" "$WORK/wrk.sh -t1 -c4 -d${WRK_SECS}s https://127.0.0.1:19151/100m.bin" \
    weft-http "$p" "$WORK/wrk.sh -t1 -c4 -d${WRK_SECS}s http://127.0.0.1:19152/100m.bin"
  # nginx with ssl (OpenSSL, one worker), TLS 1.3 and the suite rustls negotiates with wrk's
  # OpenSSL (TLS_AES_256_GCM_SHA384), the same certificate.
  x=$(start nginx-https 19153 sh "$PEERS/nginx/run.sh" 19153 "$FILES" 1 https "$WORK/cert.pem" "$WORK/key.pem")
  xw=$(ps -o pid= --ppid "$x" | head -1 | tr -d ' '); [ -n "$xw" ] || xw=$x
  ab "https 4k.bin c50" "rps server_cpu" \
    weft-https "$s" "$WORK/wrk.sh -t1 -c50 -d${WRK_SECS}s https://127.0.0.1:19151/4k.bin" \
    nginx-https "$xw" "$WORK/wrk.sh -t1 -c50 -d${WRK_SECS}s https://127.0.0.1:19153/4k.bin"
  ab "https 100m.bin c4" "bytes/s server_cpu" \
    weft-https "$s" "$WORK/wrk.sh -t1 -c4 -d${WRK_SECS}s https://127.0.0.1:19151/100m.bin" \
    nginx-https "$xw" "$WORK/wrk.sh -t1 -c4 -d${WRK_SECS}s https://127.0.0.1:19153/100m.bin"
  stop "$s"; stop "$p"
  kill "$(cat /tmp/peers-nginx-19153/nginx.pid 2>/dev/null)" 2>/dev/null || true; stop "$x"
}

sc_alloc() {
  log "allocations per echoed message"
  local line
  line=$("$ROOT/target/release/echo-alloc" --secs "$SECS" 2>&1 | tail -1)
  note "allocations (echo path, steady state): $line"
}

sc_idle() {
  log "memory per idle connection (10,000 connections)"
  ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
  local n=10000
  [ $QUICK = 1 ] && n=2000
  local w t
  w=$(start weft-echo 19141 "$ROOT/target/release/echo-server" --addr 127.0.0.1:19141)
  t=$(start tokio-echo 19142 "$L/tokio-echo" --addr 127.0.0.1:19142)
  for pair in "weft:$w:19141" "tokio-echo:$t:19142"; do
    IFS=: read -r name pid port <<<"$pair"
    local line
    line=$(python3 "$ROOT/benches/idle.py" "$pid" "$port" "$n")
    note "idle connections, $name: $line"
  done
  stop "$w"; stop "$t"
}

sc_pipeline() {
  log "pipeline overhead"
  note "pipeline: $("$ROOT/target/release/pipeline" 2>&1 | tail -3 | tr '\n' ';')"
}

sc_codec() {
  log "decode throughput"
  note "codec: $("$ROOT/target/release/decode" 2>&1 | tail -4 | tr '\n' ';')"
}

# ---------------------------------------------------------------- main
setup
for s in "${SCENARIOS[@]}"; do
  case "$s" in
    echo|uring|file|file1g|http|hello|https|websocket|udp|redis|alloc|idle|pipeline|codec|instr) "sc_$s" ;;
    *) echo "unknown scenario: $s" >&2; exit 2 ;;
  esac
done

{
  echo "# weft benchmark results"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -sr)"
  echo "- command: benches/run.sh $*"
  echo "- runs: $RUNS alternating A/B pairs per comparison after one warm-up pair; server and load share the 2 cores"
  echo
  if [ ${#ROWS[@]} -gt 0 ]; then
    echo "| scenario | A vs B | figure: A median (min, max) \| B median (min, max) \| A/B ratio: median min max |"
    echo "|---|---|---|"
    printf '%s\n' "${ROWS[@]}"
    echo
  fi
  if [ ${#NOTES[@]} -gt 0 ]; then
    echo "## Single-side figures"
    echo
    for n in "${NOTES[@]}"; do echo "- $n"; done
  fi
} > "$OUT"
log "wrote $OUT"
