#!/usr/bin/env python3
"""usage: load.py http PORT CONNS BATCHES PATH | load.py ws PORT CONNS MESSAGES [PATH]

A fixed amount of work for an instruction count (benches/instr/count.sh): not a load
generator for throughput (it is slow on purpose: one Python thread).

http: CONNS connections each send BATCHES batches of 16 pipelined GETs of PATH and read the
      16 answers before the next batch (CONNS * BATCHES * 16 requests);
ws:   CONNS connections upgrade (GET PATH, default /echo), then each sends MESSAGES masked
      binary frames of 20 bytes, one in flight, and reads each echo (CONNS * MESSAGES echoes).
Exits non-zero if the server closes early or answers something else."""
import base64
import os
import socket
import sys


def http(port, conns, batches, path):
    req = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode() * 16
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(conns)]
    for _ in range(batches):
        for s in socks:
            s.sendall(req)
        for s in socks:
            got = b""
            while not answers_whole(got, 16):
                d = s.recv(65536)
                if not d:
                    sys.exit("the server closed the connection")
                got += d
    for s in socks:
        s.close()


def answers_whole(got, n):
    """Whether `got` holds n whole answers (each head's Content-Length of body after it)."""
    at = 0
    for _ in range(n):
        end = got.find(b"\r\n\r\n", at)
        if end < 0:
            return False
        head = got[at:end].lower()
        if not head.startswith(b"http/1.1 200"):
            sys.exit(f"not a 200: {head[:40]!r}")
        length = int(head.split(b"content-length: ")[1].split(b"\r\n")[0])
        at = end + 4 + length
        if at > len(got):
            return False
    return True


def ws(port, conns, messages, path):
    key = base64.b64encode(os.urandom(16)).decode()
    socks = []
    for _ in range(conns):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(
            f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        got = b""
        while b"\r\n\r\n" not in got:
            got += s.recv(4096)
        if b" 101 " not in got.split(b"\r\n")[0]:
            sys.exit(f"no upgrade: {got[:80]!r}")
        socks.append(s)
    payload, mask = b"x" * 20, b"\x01\x02\x03\x04"
    frame = bytes([0x82, 0x80 | 20]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    for _ in range(messages):
        for s in socks:
            s.sendall(frame)
        for s in socks:
            got = b""
            while len(got) < 22:
                d = s.recv(4096)
                if not d:
                    sys.exit("the server closed the connection")
                got += d
            if got != bytes([0x82, 20]) + payload:
                sys.exit(f"a wrong echo: {got!r}")
    for s in socks:
        s.close()


if __name__ == "__main__":
    kind, port, conns, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    if kind == "http":
        http(port, conns, n, sys.argv[5])
    elif kind == "ws":
        ws(port, conns, n, sys.argv[5] if len(sys.argv) > 5 else "/echo")
    else:
        sys.exit(__doc__)
