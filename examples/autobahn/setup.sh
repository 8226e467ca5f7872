#!/usr/bin/env bash
# Installs Autobahn|Testsuite's `wstest` into a private Python 2.7 prefix and prints the command
# that runs it.
#
# The suite runs only on Python 2, which Debian 12 no longer ships. Debian 11's python2.7
# packages (and the libssl1.1 and libffi7 they need) are fetched with apt-get from a private
# package list (nothing is installed system-wide), unpacked with dpkg -x, and given pip from
# PyPI; the suite's dependencies come from PyPI at the pins of requirements-py27.txt.
#
# The prefix is cached under target/autobahn/ and rebuilt when this script or the pins change.
#
# usage: examples/autobahn/setup.sh   (prints the path of a `wstest` wrapper)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dir="${CARGO_TARGET_DIR:-$root/target}/autobahn"
stamp_want=$(cat "$here/setup.sh" "$here/requirements-py27.txt" | sha256sum | cut -c1-16)
wrapper="$dir/wstest"
if [ -x "$wrapper" ] && [ "$(cat "$dir/stamp" 2>/dev/null)" = "$stamp_want" ]; then
  echo "$wrapper"
  exit 0
fi

log() { echo "autobahn setup: $*" >&2; }
rm -rf "$dir"
mkdir -p "$dir/apt/lists/partial" "$dir/apt/archives/partial" "$dir/debs" "$dir/prefix"
prefix="$dir/prefix"

# Debian 11 (bullseye) packages, through a private apt state.
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bullseye main" \
  >"$dir/apt/sources.list"
touch "$dir/apt/status"
apt=(apt-get -q
  -o "Dir::State=$dir/apt" -o "Dir::State::status=$dir/apt/status"
  -o "Dir::Cache=$dir/apt" -o "Dir::Etc::SourceList=$dir/apt/sources.list"
  -o "Dir::Etc::SourceParts=/dev/null" -o "APT::Sandbox::User=$(id -un)")
log "fetching Debian 11's python2.7"
"${apt[@]}" update >&2
(cd "$dir/debs" && "${apt[@]}" download \
  python2.7 python2.7-minimal libpython2.7 libpython2.7-minimal libpython2.7-stdlib \
  python2.7-dev libpython2.7-dev libssl1.1 libffi7 >&2)
for deb in "$dir"/debs/*.deb; do
  dpkg -x "$deb" "$prefix"
done

# The interpreter, with its own libraries and headers.
env_vars=(
  "LD_LIBRARY_PATH=$prefix/usr/lib/x86_64-linux-gnu"
  "PYTHONHOME=$prefix/usr"
  "PYTHONNOUSERSITE=1"
  "PIP_DISABLE_PIP_VERSION_CHECK=1"
  "CFLAGS=-I$prefix/usr/include -I$prefix/usr/include/python2.7"
  "LDFLAGS=-L$prefix/usr/lib/x86_64-linux-gnu"
)
py=(env "${env_vars[@]}" "$prefix/usr/bin/python2.7")
"${py[@]}" -c 'import ssl, zlib, ctypes' || {
  log "the unpacked python2.7 does not start"
  exit 1
}

# pip for Python 2 (20.3.4 is its last), fetched by the machine's Python 3 pip.
log "installing pip and the pinned packages"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 2.7 \
  --implementation cp --abi cp27mu --platform any -d "$dir/wheels" pip==20.3.4 >&2
"${py[@]}" "$dir/wheels/pip-20.3.4-py2.py3-none-any.whl/pip" install -q --no-warn-script-location \
  pip==20.3.4 setuptools==44.0.0 wheel==0.37.1 2>&1 | grep -v DEPRECATION >&2 || true
"${py[@]}" -m pip install -q --no-warn-script-location -r "$here/requirements-py27.txt" 2>&1 \
  | grep -v DEPRECATION >&2 || true
"${py[@]}" -c 'import autobahntestsuite, wsaccel' || {
  log "the suite did not install"
  exit 1
}

{
  echo '#!/bin/sh'
  printf 'exec env'
  printf " '%s'" "${env_vars[@]}"
  printf " '%s' '%s' \"\$@\"\n" "$prefix/usr/bin/python2.7" "$prefix/usr/local/bin/wstest"
} >"$wrapper"
chmod +x "$wrapper"
echo "$stamp_want" >"$dir/stamp"
log "ready: $wrapper"
echo "$wrapper"
