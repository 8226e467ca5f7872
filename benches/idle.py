#!/usr/bin/env python3
"""usage: idle.py SERVER_PID PORT N
Opens N idle TCP connections to 127.0.0.1:PORT (each sends nothing), waits until the server
has accepted them all (its descriptor count), and prints the server's RSS growth per connection.
"""
import os, socket, sys, time

pid, port, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])

def rss_kb():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

def fds():
    return len(os.listdir(f"/proc/{pid}/fd"))

base_rss, base_fds = rss_kb(), fds()
socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    socks.append(s)
deadline = time.time() + 30
while fds() < base_fds + n and time.time() < deadline:
    time.sleep(0.05)
time.sleep(0.5)  # let the server settle (no traffic flows)
grown = rss_kb() - base_rss
print(f"conns={n} rss_growth={grown}KB per_conn={grown * 1024 / n:.0f}B accepted={fds() - base_fds}")
for s in socks:
    s.close()
