#!/bin/sh
# usage: mkfiles.sh [DIR=/tmp/peers-files]
# Makes the files the file benchmarks serve — 4k.bin, 100m.bin, 1g.bin of random bytes — unless
# they exist, then reads them once so that every server starts with them in the page cache.
set -eu
dir=${1:-/tmp/peers-files}
mkdir -p "$dir"
for spec in 4k:4096 100m:104857600 1g:1073741824; do
  name=${spec%%:*}; size=${spec##*:}
  f="$dir/$name.bin"
  if [ ! -f "$f" ] || [ "$(stat -c %s "$f")" != "$size" ]; then
    head -c "$size" /dev/urandom > "$f.tmp" && mv "$f.tmp" "$f"
  fi
  cat "$f" > /dev/null
done
echo "$dir"
