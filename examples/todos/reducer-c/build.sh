#!/bin/sh
# Builds the C todos reducer: examples/todos/todos-c.wasm (checked in, so
# tests and CI run without clang), or the path given as $1.
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/../todos-c.wasm}"
exec "$here/../../../sdk/guest/c/build.sh" -o "$out" "$here/todos.c"
