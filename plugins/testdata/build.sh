#!/bin/sh
# Rebuilds the checked-in .wasm fixtures from their .wat sources.
# Needs wat2wasm (Debian package wabt). Go fixtures (testdata/go/...) are
# built by the tests themselves.
set -eu
cd "$(dirname "$0")"
for f in *.wat; do
	wat2wasm --enable-all -o "${f%.wat}.wasm" "$f"
done
