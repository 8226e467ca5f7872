#!/usr/bin/env bash
# The whole test suite, on a fresh machine that has only the Rust toolchain.
#
# The tests drive real outside clients (curl, openssl s_client, redis-cli, redis-benchmark, wrk,
# h2load, ab, Python's http.client and websockets, headless Chromium, dig, dnsperf, socat, nc)
# and servers (nginx), and
# prove zero-copy with strace; this installs the Debian packages that are missing (apt-get, as
# root or through sudo), then runs every test binary even if one fails (--no-fail-fast). The load
# generators the tests use are the project's own (benches/src/bin), built on first use.
#
# usage: ./test.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")"

# command -> the Debian package that provides it
declare -A pkg=(
  [curl]=curl [openssl]=openssl [strace]=strace [sha256sum]=coreutils
  [redis-cli]=redis-tools [redis-benchmark]=redis-tools
  [wrk]=wrk [h2load]=nghttp2-client [ab]=apache2-utils [nginx]=nginx-light [python3]=python3
  [pip3]=python3-pip [chromium]=chromium
  [dig]=bind9-dnsutils [dnsperf]=dnsperf [socat]=socat [nc]=netcat-openbsd
)
need=()
for cmd in "${!pkg[@]}"; do
  command -v "$cmd" >/dev/null || need+=("${pkg[$cmd]}")
done
if [ ${#need[@]} -gt 0 ]; then
  mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
  echo "test.sh: installing ${need[*]}" >&2
  if [ "$(id -u)" = 0 ]; then sudo=(); elif command -v sudo >/dev/null; then sudo=(sudo); else
    echo "test.sh: missing ${need[*]}; install them with: apt-get install ${need[*]}" >&2
    exit 1
  fi
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${need[@]}" || {
    echo "test.sh: could not install ${need[*]} (apt-get install ${need[*]})" >&2
    exit 1
  }
fi
# Python's `websockets` (from PyPI), the plain WebSocket client of the
# example tests.
if ! python3 -c 'import websockets' 2>/dev/null; then
  echo "test.sh: installing the Python package websockets" >&2
  python3 -m pip install -q --user websockets 2>/dev/null \
    || python3 -m pip install -q --user --break-system-packages websockets 2>/dev/null \
    || python3 -m pip install -q websockets || {
    echo "test.sh: could not install websockets (python3 -m pip install websockets)" >&2
    exit 1
  }
fi
status=0
cargo test --workspace --no-fail-fast "$@" || status=$?
# The transport suite again on the io_uring transport (Netty's idea of running socket tests over
# every transport): the same tests, every channel on a ring. Skipped, loudly, where the kernel
# refuses io_uring.
if python3 -c 'import ctypes,sys; sys.exit(0 if ctypes.CDLL(None).syscall(425, 1, ctypes.create_string_buffer(120)) >= 0 else 1)' 2>/dev/null; then
  WEFT_TRANSPORT=io_uring cargo test -p weft-transport --features uring --no-fail-fast "$@" || status=$?
  # And the examples' suites that meet hostile and awkward peers (peers that never read,
  # half-close, trickle or send garbage; timeouts; the HTTP and WebSocket servers with real
  # clients), with every example server on io_uring: the environment reaches the servers the
  # tests start.
  WEFT_TRANSPORT=io_uring cargo test -p weft-examples --features uring --no-fail-fast \
    --test attacks --test half_close --test hardening --test bad_input --test timeouts \
    --test http_file_server --test websocket_chat --test hostile "$@" || status=$?
else
  echo "test.sh: this kernel refuses io_uring; the io_uring passes (the transport suite, the examples' hostile-peer suites) are skipped" >&2
fi
exit $status
