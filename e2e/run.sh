#!/usr/bin/env bash
# End-to-end tests of nodb with the JavaScript client and the todos web app.
#
#   e2e/run.sh            from anywhere; exit status 0 when everything passes
#
# Installs the pinned npm dependencies (npm ci), builds bin/nodb (always: it
# embeds sdk/client/js, which the web page imports) and the example reducer
# (when missing), runs the JS client's unit tests, then the end-to-end tests,
# each of which starts its own `nodb serve` on a free port with a temporary
# data directory and removes it afterwards.
#
# Needs: Node 20+ and npm, Go, and Debian's chromium (apt-get install -y
# chromium) for the browser test.
# Environment: NODB_BIN=path (use this binary, do not build), CHROMIUM=path
# (default /usr/bin/chromium), NODB_E2E_SKIP_BROWSER=1, NODB_E2E_EVENTS=N
# (interop events, default 3000), NODB_E2E_SEED=N (replay a random run).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
GO=${GO:-go}

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
	echo "e2e/run.sh: Node.js 20 or newer is required (found: $(node --version 2>/dev/null || echo none))" >&2
	exit 1
fi

echo "== npm ci (sdk/client/js, e2e)"
(cd sdk/client/js && npm ci --no-audit --no-fund --loglevel=error)
(cd e2e && npm ci --no-audit --no-fund --loglevel=error)

if [ -z "${NODB_BIN:-}" ]; then
	# Built every time (cached builds take a second or two): the binary embeds
	# sdk/client/js, which the web page imports from /nodb-client/.
	echo "== go build -o bin/nodb ./host/cmd/nodb"
	if ! $GO build -o bin/nodb ./host/cmd/nodb; then
		if [ -x bin/nodb ]; then
			echo "e2e/run.sh: WARNING: go build failed; testing the existing bin/nodb (its embedded JS client may be stale)" >&2
		else
			exit 1
		fi
	fi
fi
if [ ! -f examples/todos/todos.wasm ] || [ ! -f examples/todos/todo-stats.wasm ]; then
	echo "== make examples"
	make examples
fi

echo "== JS client unit tests (node --test sdk/client/js/test)"
(cd sdk/client/js && node --test test/)

echo "== end-to-end tests against real nodb processes"
cd "$ROOT/e2e"
timeout 900 node --test interop.test.js resume.test.js errors.test.js auth.test.js browser.test.js
