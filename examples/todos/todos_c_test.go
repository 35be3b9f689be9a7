package todos_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nodb-dev/nodb/abi"
	"github.com/nodb-dev/nodb/host/eventlog"
	"github.com/nodb-dev/nodb/host/eventlog/memlog"
	"github.com/nodb-dev/nodb/host/statetree"
	"github.com/nodb-dev/nodb/host/view"
	"github.com/nodb-dev/nodb/internal/gowasm"
	"github.com/nodb-dev/nodb/plugins"
	"github.com/nodb-dev/nodb/sdk/guest/c/conformance"
)

// The C todos reducer (reducer-c/todos.c, checked in as todos-c.wasm) must
// behave exactly like the Go one (reducer, built here): same state, same
// changes, same rejections with the same messages, on a stream that hits
// every rule of the reducer.

const cWasm = "todos-c.wasm"

var goWasm struct {
	once sync.Once
	b    []byte
	err  error
}

// goTodosWasm builds the Go todos reducer (examples/todos/reducer) once.
func goTodosWasm(t *testing.T) []byte {
	b, err := buildGoTodos()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func buildGoTodos() ([]byte, error) {
	goWasm.once.Do(func() { goWasm.b, goWasm.err = gowasm.Module(context.Background(), "", "./reducer") })
	return goWasm.b, goWasm.err
}

func readCWasm(t *testing.T) []byte {
	b, err := os.ReadFile(cWasm)
	if err != nil {
		t.Fatalf("%v (build it with make examples-c)", err)
	}
	return b
}

// newReducer compiles wasm in rt and returns a view.WasmReducer for it.
func newReducer(t *testing.T, rt *plugins.Runtime, wasm []byte) (*view.WasmReducer, *plugins.Module) {
	t.Helper()
	ctx := context.Background()
	mod, err := rt.Compile(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	red, err := view.NewWasmReducer(ctx, mod, "todos", plugins.InstanceConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { red.Close() })
	return red, mod
}

func newRuntime(t *testing.T) *plugins.Runtime {
	t.Helper()
	rt, err := plugins.NewRuntime(context.Background(), plugins.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(context.Background()) })
	return rt
}

// event is one generated event; kind says which rule it aims at.
type event struct {
	typ, payload, kind string
}

// genEvents returns n todo events that exercise every rule of the reducer:
// adds (fresh, duplicate, re-added after delete, missing/empty/non-string
// id, duplicate keys, odd texts), toggles/renames/deletes of live, deleted
// and never-seen todos, ids with '/' and '~', ids the host refuses in paths
// (__proto__, 5000 bytes), non-map payloads, clear-completed, and types the
// reducer does not consume.
func genEvents(n int, seed uint64) []event {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	var live, gone []string
	next := 0
	q := strconv.Quote
	fresh := func() string {
		next++
		switch rng.IntN(20) {
		case 0:
			return "a/b" + strconv.Itoa(next)
		case 1:
			return "x~y~1" + strconv.Itoa(next)
		case 2:
			return "é世" + strconv.Itoa(next)
		}
		return "t" + strconv.Itoa(next)
	}
	text := func() string {
		switch rng.IntN(12) {
		case 0:
			return `,"text":5`
		case 1:
			return ``
		case 2:
			return `,"text":"` + strings.Repeat("long words ", 30) + `"`
		case 3:
			return `,"text":"q\"uo\\te \u00e9 \ud83d\ude00"`
		}
		return `,"text":"buy ` + strconv.Itoa(rng.IntN(1000)) + `"`
	}
	special := []string{"__proto__", "constructor", "prototype", strings.Repeat("z", 5000), "~", "/", "-", "0"}
	pick := func() (string, string) { // an id for toggle/rename/delete
		switch r := rng.IntN(100); {
		case r < 70 && len(live) > 0:
			return live[rng.IntN(len(live))], "live"
		case r < 82 && len(gone) > 0:
			return gone[rng.IntN(len(gone))], "deleted"
		case r < 88:
			return "never" + strconv.Itoa(rng.IntN(50)), "never"
		case r < 94:
			return special[rng.IntN(len(special))], "special"
		}
		return "", "noid"
	}
	idField := func(id, kind string) string {
		if kind == "noid" {
			switch rng.IntN(4) {
			case 0:
				return `"id":""`
			case 1:
				return `"id":42`
			case 2:
				return `"id":null`
			}
			return `"other":"x"`
		}
		return `"id":` + q(id)
	}
	remove := func(id string) {
		if i := slices.Index(live, id); i >= 0 {
			live = slices.Delete(live, i, i+1)
			gone = append(gone, id)
		}
	}
	evs := make([]event, 0, n)
	for len(evs) < n {
		var e event
		switch r := rng.IntN(100); {
		case r < 32: // add
			var id, kind string
			switch s := rng.IntN(100); {
			case s < 70 || len(live) == 0:
				id, kind = fresh(), "add"
			case s < 80:
				id, kind = live[rng.IntN(len(live))], "duplicate"
			case s < 86 && len(gone) > 0:
				id, kind = gone[rng.IntN(len(gone))], "re-add"
			case s < 92:
				id, kind = special[rng.IntN(len(special))], "special"
			case s < 96:
				kind = "noid"
			default:
				// duplicate keys: the first one counts
				id, kind = fresh(), "dupkey"
				e = event{"todo/add", `{"id":` + q(id) + `,"id":"other` + id + `","text":"dup"}`, "add/dupkey"}
			}
			if e.typ == "" {
				e = event{"todo/add", "{" + idField(id, kind) + text() + "}", "add/" + kind}
			}
			if kind == "add" || kind == "re-add" || kind == "dupkey" {
				if !slices.Contains(live, id) {
					live = append(live, id)
					if i := slices.Index(gone, id); i >= 0 {
						gone = slices.Delete(gone, i, i+1)
					}
				}
			}
		case r < 57:
			id, kind := pick()
			e = event{"todo/toggle", "{" + idField(id, kind) + "}", "toggle/" + kind}
		case r < 72:
			id, kind := pick()
			e = event{"todo/rename", "{" + idField(id, kind) + text() + "}", "rename/" + kind}
		case r < 88:
			id, kind := pick()
			e = event{"todo/delete", "{" + idField(id, kind) + "}", "delete/" + kind}
			remove(id)
		case r < 91:
			payloads := []string{`{}`, `null`, ``, `"x"`, `{"id":"t1"}`}
			e = event{"todo/clear-completed", payloads[rng.IntN(len(payloads))], "clear"}
			// the done flags are not modelled: ids may stay in live
		case r < 95:
			payloads := []string{`[1,2]`, `"str"`, `null`, ``, `7`, `{"id":["x"]}`, `{"id":{"a":1}}`}
			types := []string{"todo/add", "todo/toggle", "todo/rename", "todo/delete"}
			e = event{types[rng.IntN(len(types))], payloads[rng.IntN(len(payloads))], "badpayload"}
		default:
			types := []string{"todo/unknown", "other/event", "todo/add/x", "todo"}
			e = event{types[rng.IntN(len(types))], `{"id":"t1","text":"x"}`, "unconsumed"}
		}
		evs = append(evs, e)
	}
	return evs
}

func records(evs []event) []eventlog.Record {
	recs := make([]eventlog.Record, len(evs))
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	for i, e := range evs {
		recs[i] = eventlog.Record{Seq: uint64(i + 1), Producer: "p" + strconv.Itoa(i%3), PSeq: uint64(i/3 + 1),
			Time: t0 + int64(i)*1e6, Type: e.typ, Payload: []byte(e.payload)}
	}
	return recs
}

// TestSameAsGo reduces the generated stream with both reducers, event by
// event, and compares each event's outcome (committed changes as RFC 6902
// ops, or the rejection's message) and the state.
func TestSameAsGo(t *testing.T) {
	rt := newRuntime(t)
	goRed, _ := newReducer(t, rt, goTodosWasm(t))
	cRed, _ := newReducer(t, rt, readCWasm(t))
	ctx := context.Background()

	evs := genEvents(9000, 1) // three epochs: instances re-created twice
	recs := records(evs)
	goRoot, cRoot := statetree.EmptyMap(), statetree.EmptyMap()
	apply := func(red view.Reducer, root *statetree.Value, rec *eventlog.Record) (string, error) {
		if !red.Consumes(rec.Type) {
			return "not consumed", nil
		}
		tx := root.Begin()
		if err := red.Reduce(ctx, rec, tx); err != nil {
			if !errors.Is(err, view.ErrRejected) {
				return "", err
			}
			return "rejected: " + err.Error(), nil
		}
		var ops []statetree.Op
		*root, ops = tx.Commit()
		b, err := json.Marshal(ops)
		return "ops " + string(b), err
	}
	outcomes := map[string]int{}    // kind -> events that changed the state
	rejections := map[string]int{}  // kind -> rejected events
	messages := map[string]string{} // a rejection message per kind, for the log
	for i := range recs {
		rec := &recs[i]
		want, err := apply(goRed, &goRoot, rec)
		if err != nil {
			t.Fatalf("Go reducer, event %d %s %s: %v", rec.Seq, rec.Type, rec.Payload, err)
		}
		got, err := apply(cRed, &cRoot, rec)
		if err != nil {
			t.Fatalf("C reducer, event %d %s %s: %v", rec.Seq, rec.Type, rec.Payload, err)
		}
		if got != want {
			t.Fatalf("event %d %s %s (%s):\n C: %s\nGo: %s", rec.Seq, rec.Type, rec.Payload, evs[i].kind, got, want)
		}
		switch {
		case strings.HasPrefix(got, "rejected"):
			rejections[evs[i].kind]++
			messages[evs[i].kind] = got[strings.LastIndex(got, "): ")+3:]
		case got != "ops null" && got != "ops []" && got != "not consumed":
			outcomes[evs[i].kind]++
		}
		if i%1000 == 999 || i == len(recs)-1 {
			if a, b := goRoot.Hash(), cRoot.Hash(); a != b {
				t.Fatalf("after event %d: root %s (C) != %s (Go)", rec.Seq, b, a)
			}
		}
	}
	t.Logf("%d events; changed the state, by kind: %v", len(recs), outcomes)
	t.Logf("rejected, by kind: %v", rejections)
	for k, m := range messages {
		if len(m) > 100 {
			m = m[:100] + "..."
		}
		t.Logf("  %s: %s", k, m)
	}
	// The stream must really exercise the rules it claims to.
	for _, k := range []string{"add/add", "toggle/live", "rename/live", "delete/live", "clear", "add/dupkey", "add/re-add"} {
		if outcomes[k] == 0 {
			t.Errorf("no %s event changed the state", k)
		}
	}
	for _, k := range []string{"add/duplicate", "add/noid", "add/special", "toggle/noid", "delete/special", "badpayload"} {
		if rejections[k] == 0 {
			t.Errorf("no %s event was rejected", k)
		}
	}
	for _, k := range []string{"toggle/deleted", "rename/never", "delete/deleted", "unconsumed"} {
		if outcomes[k] != 0 || rejections[k] != 0 {
			t.Errorf("%s events should be no-ops: %d changed the state, %d rejected", k, outcomes[k], rejections[k])
		}
	}
	todos, _ := cRoot.Lookup("todos")
	if todos.Len() < 100 {
		t.Errorf("only %d todos at the end", todos.Len())
	}
}

// TestSameAsGoInView runs both reducers as views over one in-memory log:
// same root hash, same rejection count and last rejection.
func TestSameAsGoInView(t *testing.T) {
	rt := newRuntime(t)
	ctx := context.Background()
	log := memlog.New()
	recs := records(genEvents(9000, 2))
	for i := 0; i < len(recs); i += 1000 {
		if err := log.Append(ctx, recs[i:min(i+1000, len(recs))]); err != nil {
			t.Fatal(err)
		}
	}
	run := func(wasm []byte) view.Status {
		red, _ := newReducer(t, rt, wasm)
		v, err := view.New(view.Config{Name: "todos", Reducer: red, Log: log})
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- v.Run(rctx) }()
		wctx, wcancel := context.WithTimeout(ctx, 2*time.Minute)
		err = v.WaitFor(wctx, log.LastSeq())
		wcancel()
		cancel()
		<-done
		if err != nil {
			t.Fatalf("%v (status %+v)", err, v.Status())
		}
		return v.Status()
	}
	g, c := run(goTodosWasm(t)), run(readCWasm(t))
	t.Logf("Go: root %s, %d rejected; C: root %s, %d rejected", g.RootHash[:16], g.Rejected, c.RootHash[:16], c.Rejected)
	if c.RootHash != g.RootHash || c.Rejected != g.Rejected || c.LastRejection != g.LastRejection {
		t.Fatalf("views differ:\n C: %+v\nGo: %+v", c, g)
	}
	if g.Rejected < 100 || c.Seq != uint64(len(recs)) {
		t.Fatalf("%d rejected, at seq %d", g.Rejected, c.Seq)
	}
}

// TestModule checks what the host learns about the C module at load: the
// event types it consumes, in order, and its imports (nodb_v1 only).
func TestModule(t *testing.T) {
	rt := newRuntime(t)
	wasm := readCWasm(t)
	_, mod := newReducer(t, rt, wasm)
	want := []string{"todo/add", "todo/toggle", "todo/rename", "todo/delete", "todo/clear-completed"}
	if got := mod.Info().Consumes; !slices.Equal(got, want) {
		t.Fatalf("consumes %q, want %q", got, want)
	}
	if bytes.Contains(wasm, []byte("wasi_snapshot_preview1")) {
		t.Error("the module imports WASI")
	}
	if len(wasm) > 32<<10 {
		t.Errorf("todos-c.wasm is %d bytes; it should stay small", len(wasm))
	}
}

// TestCheckedInWasmIsCurrent rebuilds todos-c.wasm from reducer-c/todos.c and
// the SDK
// and compares it with the checked-in file. It needs clang and wasm-ld of
// the version that built the checked-in file (recorded in its producers
// section); otherwise it skips.
func TestCheckedInWasmIsCurrent(t *testing.T) {
	conformance.CheckBuild(t, readCWasm(t), "reducer-c/build.sh")
}

// stubState answers the todos reducers' state calls without a state tree:
// a todo exists unless the path is a todo's own ("/todos/ID", so an add
// succeeds), done is false, writes succeed, and /todos is a fixed map
// (todos, for clear-completed). With it a benchmark measures the guest and
// the ABI boundary, not the host's state.
type stubState struct {
	todos               []byte
	sets, gets, deletes int
}

// Has implements plugins.State.
func (s *stubState) Has(path string) (bool, error) {
	_, ok, err := s.Get(path)
	return ok, err
}

// Get implements plugins.State.
func (s *stubState) Get(path string) ([]byte, bool, error) {
	s.gets++
	switch {
	case path == "/todos":
		return s.todos, true, nil
	case strings.HasSuffix(path, "/done"):
		return []byte{0xf4}, true, nil
	case strings.HasSuffix(path, "/text"):
		return []byte("\x63abc"), true, nil
	}
	return nil, false, nil
}

// Set implements plugins.State.
func (s *stubState) Set(string, []byte) error { s.sets++; return nil }

// Delete implements plugins.State.
func (s *stubState) Delete(string) error { s.deletes++; return nil }

// stubTodos returns the CBOR of n todos with random 8-byte ids, in the
// host's key order, every other one done.
func stubTodos(n int) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	const alpha = "abcdefghijklmnopqrstuvwxyz0123456789"
	ids := make([]string, n)
	for i := range ids {
		id := make([]byte, 8)
		for j := range id {
			id[j] = alpha[rng.IntN(len(alpha))]
		}
		ids[i] = string(id)
	}
	slices.Sort(ids) // the host's order, all ids being 8 bytes
	enc := abi.AppendHead(nil, abi.MajorMap, uint64(len(ids)))
	for i, id := range ids {
		enc = abi.AppendString(enc, id)
		enc = abi.AppendHead(enc, abi.MajorMap, 2)
		enc = abi.AppendBool(abi.AppendString(enc, "done"), i%2 == 0)
		enc = abi.AppendString(enc, "text")
		enc = abi.AppendString(enc, "buy item number "+strconv.Itoa(i)+" and some more words")
	}
	return enc
}

// BenchmarkGuest is the cost of one event in the guest and across the ABI
// (frame, host calls, nodb_reduce) with a stub state, for the Go and the C
// todos reducers: what each guest language adds to the host's own work.
// clear is one todo/clear-completed over 10k todos, half of them done (5k
// deletes). cpu-ns/op is the process's CPU time per event, garbage
// collection included, which another busy process on the machine disturbs
// less than ns/op.
func BenchmarkGuest(b *testing.B) {
	ctx := context.Background()
	rt, err := plugins.NewRuntime(ctx, plugins.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close(ctx)
	goB, err := buildGoTodos()
	if err != nil {
		b.Fatal(err)
	}
	cB, err := os.ReadFile(cWasm)
	if err != nil {
		b.Fatal(err)
	}
	const nTodos = 10_000
	todos := stubTodos(nTodos)
	text := `,"text":"buy item number 42 and some more words"`
	events := []struct{ name, typ, payload string }{
		{"add", "todo/add", `{"id":"abcd1234"` + text + `}`},
		{"toggle", "todo/toggle", `{"id":"abcd1234"}`},
		{"rename", "todo/rename", `{"id":"abcd1234"` + text + `}`},
		{"delete", "todo/delete", `{"id":"abcd1234"}`},
		{"clear", "todo/clear-completed", `{}`},
	}
	for _, lang := range []struct {
		name string
		wasm []byte
	}{{"go", goB}, {"c", cB}} {
		mod, err := rt.Compile(ctx, lang.wasm)
		if err != nil {
			b.Fatal(err)
		}
		inst, err := mod.NewInstance(ctx, plugins.InstanceConfig{View: "todos"})
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range events {
			b.Run(lang.name+"/"+e.name, func(b *testing.B) {
				st := &stubState{todos: todos}
				ev := plugins.Event{Producer: "p", Type: e.typ, Payload: []byte(e.payload)}
				var r0, r1 syscall.Rusage
				syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
				for k := 0; b.Loop(); k++ {
					ev.Seq = uint64(k%4000 + 1) // one epoch
					ev.PSeq = ev.Seq
					if err := inst.Reduce(ctx, &ev, st); err != nil {
						b.Fatal(err)
					}
				}
				syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
				cpu := r1.Utime.Nano() + r1.Stime.Nano() - r0.Utime.Nano() - r0.Stime.Nano()
				b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
				switch {
				case e.name == "clear" && st.deletes != b.N*nTodos/2:
					b.Fatalf("%d deletes in %d clears", st.deletes, b.N)
				case st.sets == 0 && e.name != "delete" && e.name != "clear":
					b.Fatal("the reducer wrote nothing")
				}
			})
		}
		inst.Close(ctx)
	}
}
