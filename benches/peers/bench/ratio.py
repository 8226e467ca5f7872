#!/usr/bin/env python3
"""usage: ratio.py A_FILE B_FILE KEY

Reads the runs ab.sh recorded (separated by "--- end of run") and compares, pair by pair, the
figure KEY of run i of A with that of run i of B. KEY is a `key=value` field of a load
generator's line (msgs/s, rate, req/s, p50, p99, bytes/s; units such as GB/s, MB/s or us are
dropped) or server_cpu (user + sys seconds from cpu-of.sh). Prints one line:

  KEY: A median (min-max), B median (min-max); A/B median R (min-max) over N pairs

Exits 1 when no pair has a usable (non-zero) figure on both sides."""
import re
import statistics
import sys


def runs(path):
    with open(path) as f:
        text = f.read()
    return [r for r in text.split("--- end of run\n") if r.strip()]


def figure(run, key):
    if key == "server_cpu":
        m = re.search(r"server_cpu\b.*?user=([0-9.]+)s\s+sys=([0-9.]+)s", run)
        return float(m.group(1)) + float(m.group(2)) if m else None
    m = re.search(r"(?:^|\s)" + re.escape(key) + r"=([0-9.]+)", run)
    return float(m.group(1)) if m else None


def show(xs):
    return f"{statistics.median(xs):.4g} ({min(xs):.4g}-{max(xs):.4g})"


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    a_file, b_file, key = sys.argv[1:]
    pairs = []
    for ra, rb in zip(runs(a_file), runs(b_file)):
        a, b = figure(ra, key), figure(rb, key)
        if a is not None and b is not None and a > 0 and b > 0:
            pairs.append((a, b))
    if not pairs:
        return 1
    a = [p[0] for p in pairs]
    b = [p[1] for p in pairs]
    r = [x / y for x, y in pairs]
    print(f"{key}: A {show(a)}, B {show(b)}; A/B median {statistics.median(r):.3f} "
          f"({min(r):.3f}-{max(r):.3f}) over {len(pairs)} pairs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
