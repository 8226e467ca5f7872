#!/bin/sh
# usage: cpu-of.sh PID[,PID...] CMD [ARG...]
#
# Runs CMD (its output passes through), then prints the CPU time the server process(es) used
# while it ran, all threads included, from /proc/PID/stat (utime + stime, in clock ticks):
#   server_cpu pids=PID[,PID...] user=U.UUs sys=S.SSs
set -u
pids=$1; shift
ticks() { # field 14 (utime) or 15 (stime) of each pid, summed; the name may hold spaces
  total=0
  for p in $(echo "$pids" | tr ',' ' '); do
    v=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk -v f="$1" '{print $(f - 2)}')
    total=$((total + ${v:-0}))
  done
  echo "$total"
}
hz=$(getconf CLK_TCK)
u0=$(ticks 14); s0=$(ticks 15)
"$@"
status=$?
u1=$(ticks 14); s1=$(ticks 15)
awk -v p="$pids" -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v hz="$hz" \
  'BEGIN { printf "server_cpu pids=%s user=%.2fs sys=%.2fs\n", p, u / hz, s / hz }'
exit $status
