#!/bin/sh
# Builds a nodb reducer written in C into a WebAssembly module:
#
#   sdk/guest/c/build.sh -o reducer.wasm reducer.c [more.c ...]
#
# The SDK (nodb.c) is compiled in. Needs clang and wasm-ld with the wasm32
# target (Debian: apt-get install clang lld). No libc: the module imports
# nothing but nodb_v1 functions. Extra flags for clang go in CFLAGS.
set -eu
sdk="$(cd "$(dirname "$0")" && pwd)"
CC="${CC:-clang}"
out=
if [ "${1:-}" = -o ] && [ $# -ge 3 ]; then
	out="$2"
	shift 2
else
	echo "usage: $0 -o out.wasm source.c ..." >&2
	exit 2
fi
# --target=wasm32-wasi -mexec-model=reactor: a WASI reactor (no _start; the
#   host calls _initialize, which nodb.c defines).
# -nostdlib: no libc, no crt1; nodb.c provides memcpy and friends.
# -flto: the SDK is inlined into the handlers (10-15% faster events).
# -mbulk-memory: memcpy/memset become memory.copy/memory.fill.
# --stack-first: the 64 KiB stack sits below the data, so an overflow traps
#   instead of overwriting globals.
# --strip-debug: no DWARF (and no source paths), but the name section stays
#   for readable traps.
# shellcheck disable=SC2086
exec "$CC" --target=wasm32-wasi -mexec-model=reactor -O2 -flto -nostdlib -mbulk-memory \
	-std=c11 -Wall -Wextra -Werror -I"$sdk" ${CFLAGS:-} \
	-Wl,--no-entry -Wl,--stack-first -Wl,-z,stack-size=65536 -Wl,--strip-debug \
	-o "$out" "$sdk/nodb.c" "$@"
