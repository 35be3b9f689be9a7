# nodb — make targets. `make run` and `make test` are the README's quick start.
GO        ?= go
BIN       := bin/nodb
DATA      ?= ./data
ADDR      ?= 127.0.0.1:7070
BENCH     ?=
GOTESTFLAGS ?=
WASM_ENV  := GOOS=wasip1 GOARCH=wasm

.PHONY: all build examples examples-c fixtures test test-go test-e2e test-race run bench fuzz clean

all: build

build: examples $(BIN)

$(BIN): FORCE
	$(GO) build -o $(BIN) ./host/cmd/nodb

FORCE:

# Reducers and cascades of the examples, compiled to WebAssembly.
examples:
	@if [ -d examples/todos/reducer ]; then \
		echo "$(WASM_ENV) $(GO) build -buildmode=c-shared -o examples/todos/todos.wasm ./examples/todos/reducer"; \
		$(WASM_ENV) $(GO) build -buildmode=c-shared -o examples/todos/todos.wasm ./examples/todos/reducer; \
	fi
	@if [ -d examples/todos/stats ]; then \
		echo "$(WASM_ENV) $(GO) build -buildmode=c-shared -o examples/todos/todo-stats.wasm ./examples/todos/stats"; \
		$(WASM_ENV) $(GO) build -buildmode=c-shared -o examples/todos/todo-stats.wasm ./examples/todos/stats; \
	fi

# Plugins written in C with the C guest SDK (sdk/guest/c): the todos example
# (examples/todos/todos-c.wasm), the SDK's conformance module and the join
# cascade of the cascade tests (host/cascade/testdata/join-c.wasm). The .wasm
# files are checked in, so nothing else needs clang; rebuilt when clang and
# wasm-ld are present (Debian: apt-get install clang lld).
examples-c:
	@if command -v clang >/dev/null && command -v wasm-ld >/dev/null; then \
		echo examples/todos/reducer-c/build.sh; examples/todos/reducer-c/build.sh; \
		echo sdk/guest/c/conformance/testdata/build.sh; sdk/guest/c/conformance/testdata/build.sh; \
		echo host/cascade/testdata/join-c/build.sh; host/cascade/testdata/join-c/build.sh; \
	else \
		echo "examples-c: clang or wasm-ld not found; keeping the checked-in .wasm files"; \
	fi

# Hostile and broken Wasm fixtures written in WAT (checked in; rebuilt when wat2wasm is present).
fixtures:
	@if [ -x plugins/testdata/build.sh ] && command -v wat2wasm >/dev/null; then plugins/testdata/build.sh; fi

test: build fixtures test-go test-e2e

test-go:
	$(GO) mod tidy -diff
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt -w these files: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) test $(GOTESTFLAGS) -timeout 15m ./...

# Every Go test again under the race detector (~5-6 min on 2 cores); CI
# runs it after make test.
test-race:
	$(GO) test -race $(GOTESTFLAGS) -timeout 20m ./...

# The JavaScript client's unit tests, Node.js interop/resume tests and the
# browser test (Debian chromium via playwright-core). Needs Node.js 20+.
test-e2e: build
	NODB_BIN=$(CURDIR)/$(BIN) e2e/run.sh

run: build
	$(BIN) serve --data $(DATA) --addr $(ADDR) --plugin todos=examples/todos/todos.wasm --plugin todo-stats=examples/todos/todo-stats.wasm $(if $(wildcard examples/todos/web/index.html),--web examples/todos/web)

bench: build
	$(GO) run ./bench/cmd/nodbbench -bench "$(BENCH)" -out bench/out/results.json

# Run each fuzz target for a while (CI runs only the seed corpora, via `make test`).
FUZZTIME ?= 30s
fuzz:
	$(GO) test ./abi -run '^$$' -fuzz FuzzJSONToCBOR -fuzztime $(FUZZTIME)
	$(GO) test ./abi -run '^$$' -fuzz FuzzJSONObject -fuzztime $(FUZZTIME)
	$(GO) test ./abi -run '^$$' -fuzz FuzzJSONString -fuzztime $(FUZZTIME)
	$(GO) test ./abi/wire -run '^$$' -fuzz FuzzDecodeRequest -fuzztime $(FUZZTIME)
	$(GO) test ./abi/wire -run '^$$' -fuzz FuzzDecodePublishFast -fuzztime $(FUZZTIME)
	$(GO) test ./host/eventlog/filelog -run '^$$' -fuzz FuzzDecodeFrame -fuzztime $(FUZZTIME)
	$(GO) test ./host/eventlog/filelog -run '^$$' -fuzz FuzzScanSegment -fuzztime $(FUZZTIME)
	$(GO) test ./host/statetree -run '^$$' -fuzz FuzzFromJSON -fuzztime $(FUZZTIME)
	$(GO) test ./host/statetree -run '^$$' -fuzz FuzzDecodeCBOR -fuzztime $(FUZZTIME)
	$(GO) test ./host/statetree -run '^$$' -fuzz FuzzApplyPatch -fuzztime $(FUZZTIME)
	$(GO) test ./host/statetree -run '^$$' -fuzz FuzzParsePath -fuzztime $(FUZZTIME)

clean:
	rm -rf bin bench/out
