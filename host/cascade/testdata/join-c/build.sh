#!/bin/sh
# Builds the C join cascade: ../join-c.wasm (checked in, so the tests run
# without clang), or the path given as $1.
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/../join-c.wasm}"
exec "$here/../../../../sdk/guest/c/build.sh" -o "$out" "$here/join.c"
