#!/bin/sh
# Builds conform.wasm (checked in, so the test runs without clang), or the
# path given as $1, from conform.c and the C SDK.
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/conform.wasm}"
exec "$here/../../build.sh" -o "$out" "$here/conform.c"
