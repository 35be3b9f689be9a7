package plugins_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/nodb-dev/nodb/abi"
	"github.com/nodb-dev/nodb/plugins"
	nodb "github.com/nodb-dev/nodb/sdk/guest/go"
)

// TestRefusedAtLoad: modules that break the ABI never reduce an event.
func TestRefusedAtLoad(t *testing.T) {
	r := newRuntime(t, plugins.Config{MaxMemoryPages: 4096})
	for _, c := range []struct {
		fixture, want string
		abiVersion    bool
	}{
		{"pathopen", "forbidden WASI import wasi_snapshot_preview1.path_open (plugins have no file system)", false},
		{"sockaccept", "forbidden WASI import wasi_snapshot_preview1.sock_accept (plugins have no network)", false},
		{"unknownhost", "unknown host function nodb_v1.launch_missiles", false},
		{"noexports", `missing export "nodb_reduce"`, false},
		{"abiv2", "built for another ABI version", true},
		{"noversion", "does not import nodb_v1.abi_version_1", true},
		{"bigmem", "memory minimum of 5000 pages is over the cap of 4096 pages", false},
		{"initpanic", "initialization failed", false},
		{"bigtable", "its tables declare 100000000 elements at least, over the 1048576 a plugin may have", false},
		{"manytables", "its tables declare 1600000 elements at least", false},
		{"reserved", `duplicates name "__nodb_fuel"`, false},
		{"importglobal", "imports global env.g", false},
		{"importtable", "imports table nodb_v1.tbl", false},
		{"badsig", "host function nodb_v1.consume imported with type (i32)->(i32), want (i32,i32)->(i32)", false},
	} {
		t.Run(c.fixture, func(t *testing.T) {
			m, err := r.Compile(context.Background(), fixture(t, c.fixture))
			if err == nil {
				_ = m.Close(context.Background())
				t.Fatal("accepted")
			}
			if !errors.Is(err, plugins.ErrInvalidModule) {
				t.Errorf("not ErrInvalidModule: %v", err)
			}
			if errors.Is(err, plugins.ErrABIVersion) != c.abiVersion {
				t.Errorf("ErrABIVersion = %v: %v", !c.abiVersion, err)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "plugins: ") {
				t.Errorf("error %q does not contain %q", err, c.want)
			}
		})
	}
	if _, err := r.Compile(context.Background(), []byte("not wasm")); !errors.Is(err, plugins.ErrInvalidModule) {
		t.Errorf("garbage: %v", err)
	}
}

// TestMemoryCapPerInstance: a module whose minimum fits the runtime cap but
// not an instance's lower cap is refused at NewInstance.
func TestMemoryCapPerInstance(t *testing.T) {
	r := newRuntime(t, plugins.Config{})
	m := compile(t, r, "huge") // 300 pages
	_, err := m.NewInstance(context.Background(), plugins.InstanceConfig{MemoryLimitPages: 100})
	if !errors.Is(err, plugins.ErrInvalidModule) {
		t.Fatalf("got %v", err)
	}
}

// trapAt reduces one event and expects a TrapError.
func trapAt(t *testing.T, i *plugins.Instance, e *plugins.Event) *plugins.TrapError {
	t.Helper()
	err := i.Reduce(context.Background(), e, nodb.NewMemStore())
	var te *plugins.TrapError
	if !errors.As(err, &te) {
		t.Fatalf("want TrapError, got %v", err)
	}
	if te.Seq != e.Seq {
		t.Errorf("TrapError.Seq = %d, want %d", te.Seq, e.Seq)
	}
	// The instance is unusable afterwards.
	if err := i.Reduce(context.Background(), ev(e.Seq+1, e.Type, "{}"), nodb.NewMemStore()); !errors.Is(err, plugins.ErrUnusable) {
		t.Errorf("after trap: %v", err)
	}
	return te
}

func TestInfiniteLoopTimesOut(t *testing.T) {
	r := newRuntime(t, plugins.Config{EventTimeout: 50 * time.Millisecond})
	i := instance(t, compile(t, r, "loop"), plugins.InstanceConfig{})
	t0 := time.Now()
	te := trapAt(t, i, ev(1, "x", "{}"))
	if !errors.Is(te, plugins.ErrTimeout) {
		t.Fatalf("not a timeout: %v", te)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
}

// TestInfiniteLoopRunsOutOfFuel: with a time limit too long to matter, an
// endless loop still ends, by itself, when its fuel is gone — no goroutine
// (which a stop-the-world pause could hold up) needs to intervene.
func TestInfiniteLoopRunsOutOfFuel(t *testing.T) {
	r := newRuntime(t, plugins.Config{EventTimeout: time.Hour})
	i := instance(t, compile(t, r, "loop"), plugins.InstanceConfig{EventTimeout: time.Hour})
	t0 := time.Now()
	te := trapAt(t, i, ev(1, "x", "{}"))
	if !errors.Is(te, plugins.ErrTimeout) || !strings.Contains(te.Error(), "loop iterations") {
		t.Fatalf("not an out-of-fuel trap: %v", te)
	}
	t.Logf("out of fuel after %v: %v", time.Since(t0), te)
}

// TestEveryLoopShapeRunsOutOfFuel: fuel is spent at every branch back to a
// loop (br_if, br_table, br to an outer loop from nested blocks), so no
// endless loop escapes it. A loop the instrumentation missed could not be
// stopped at all (the stop flag is read by the same check), so that case
// ends the test binary with a panic instead of hanging it.
func TestEveryLoopShapeRunsOutOfFuel(t *testing.T) {
	defer plugins.SetEventFuel(1 << 20)()
	r := newRuntime(t, plugins.Config{EventTimeout: time.Hour})
	m := compile(t, r, "loops")
	for seq := uint64(1); seq <= 4; seq++ {
		i := instance(t, m, plugins.InstanceConfig{EventTimeout: time.Hour})
		done := make(chan error, 1)
		go func() { done <- i.Reduce(context.Background(), ev(seq, "x", "{}"), nodb.NewMemStore()) }()
		select {
		case err := <-done:
			if !errors.Is(err, plugins.ErrTimeout) || !strings.Contains(err.Error(), "loop iterations") {
				t.Errorf("loop shape %d: not an out-of-fuel trap: %v", seq, err)
			}
		case <-time.After(30 * time.Second):
			panic(fmt.Sprintf("loop shape %d of testdata/loops.wat escaped the fuel: the guest cannot be stopped", seq))
		}
	}
}

func TestGoReducerHogTimesOutOrTraps(t *testing.T) {
	r := newRuntime(t, plugins.Config{EventTimeout: 200 * time.Millisecond, MaxMemoryPages: 1024})
	i := instance(t, compile(t, r, "panic"), plugins.InstanceConfig{})
	te := trapAt(t, i, ev(1, "hog", "{}"))
	// Either the memory cap (Go: out of memory, exit 2) or the clock stops it.
	if !errors.Is(te, plugins.ErrTimeout) && !strings.Contains(te.Stderr, "out of memory") {
		t.Fatalf("unexpected: %v", te)
	}
}

func TestDeepRecursionTraps(t *testing.T) {
	r := newRuntime(t, plugins.Config{EventTimeout: 30 * time.Second}) // a stack overflow, not the timeout, must stop it: under -race, reaching wazero's stack limit takes over the default 2 s
	te := trapAt(t, instance(t, compile(t, r, "recurse"), plugins.InstanceConfig{}), ev(1, "x", "{}"))
	if !strings.Contains(te.Error(), "stack overflow") {
		t.Errorf("unexpected: %v", te)
	}
}

func TestGoDeepRecursionTraps(t *testing.T) {
	r := newRuntime(t, plugins.Config{EventTimeout: 10 * time.Second})
	te := trapAt(t, instance(t, compile(t, r, "panic"), plugins.InstanceConfig{}), ev(1, "overflow", "{}"))
	if !strings.Contains(te.Stderr, "fatal error") {
		t.Errorf("stderr does not mention the stack: %v", te)
	}
}

func TestMemoryGrowBomb(t *testing.T) {
	r := newRuntime(t, plugins.Config{MaxMemoryPages: 256})
	te := trapAt(t, instance(t, compile(t, r, "growbomb"), plugins.InstanceConfig{MemoryLimitPages: 64}), ev(1, "x", "{}"))
	if !strings.Contains(te.Error(), "unreachable") {
		t.Errorf("unexpected: %v", te)
	}
}

// appendLEB appends v as an unsigned LEB128.
func appendLEB(b []byte, v int) []byte {
	for ; v >= 0x80; v >>= 7 {
		b = append(b, byte(v)|0x80)
	}
	return append(b, byte(v))
}

// controlModule is a valid module of n functions () -> () with the body
// fn each (its locals declaration included), and nothing else, so that
// without the checks under test it compiles, slowly, and is then refused
// for its missing exports.
func controlModule(n int, fn []byte) []byte {
	code, funcs := appendLEB(nil, n), appendLEB(nil, n)
	for range n {
		code = append(appendLEB(code, len(fn)), fn...)
		funcs = append(funcs, 0) // type 0
	}
	m := []byte("\x00asm\x01\x00\x00\x00")
	m = append(m, 1, 4, 1, 0x60, 0, 0) // type section: () -> ()
	m = append(appendLEB(append(m, 3), len(funcs)), funcs...)
	return append(appendLEB(append(m, 10), len(code)), code...)
}

// nestedBlocks is a function body of depth nested empty blocks.
func nestedBlocks(depth int) []byte {
	fn := []byte{0} // no locals
	for range depth {
		fn = append(fn, 0x02, 0x40)
	}
	for range depth {
		fn = append(fn, 0x0b)
	}
	return append(fn, 0x0b)
}

// loopsInARow is a function body of n loops one after the other, each
// with a br_if back to itself (never taken): the shape that costs wazero's
// compiler most per control instruction.
func loopsInARow(n int) []byte {
	fn := []byte{0}
	for range n {
		fn = append(fn, 0x03, 0x40, 0x41, 0x00, 0x0d, 0x00, 0x0b)
	}
	return append(fn, 0x0b)
}

// TestCostlyControlFlowRefused: a function with more control instructions
// than wazero's compiler handles in reasonable time is refused before it
// sees it, with a reason. Without the check, 300,000 nested blocks did not
// compile in five minutes; these (just over the limit) take seconds.
func TestCostlyControlFlowRefused(t *testing.T) {
	r := newRuntime(t, plugins.Config{})
	brTable := []byte{0, 0x02, 0x40, 0x41, 0x00, 0x0e, 0xa0, 0x9c, 0x01} // br_table of 20,000 targets
	brTable = append(append(brTable, make([]byte, 20_001)...), 0x0b, 0x0b)
	for name, wasm := range map[string][]byte{
		"nested blocks":   controlModule(1, nestedBlocks(10_001)),
		"loops in a row":  controlModule(1, loopsInARow(5001)),
		"a wide br_table": controlModule(1, brTable),
	} {
		t.Run(name, func(t *testing.T) {
			m, err := r.Compile(context.Background(), wasm)
			if err == nil {
				_ = m.Close(context.Background())
				t.Fatal("accepted")
			}
			want := "over 10000 blocks and branches in one function, which would take minutes to compile; split the function"
			if !errors.Is(err, plugins.ErrInvalidModule) || !strings.Contains(err.Error(), want) {
				t.Fatalf("error %q: want ErrInvalidModule containing %q", err, want)
			}
		})
	}
}

// TestCompileTimeout: a module whose functions are each within the limit
// but take long together is refused once compiling it passes
// CompileTimeout, instead of keeping the host's cores busy for as long as
// it takes (here ~1.5 s per function, ~9 s in all on one core).
func TestCompileTimeout(t *testing.T) {
	r := newRuntime(t, plugins.Config{CompileTimeout: 300 * time.Millisecond})
	start := time.Now()
	m, err := r.Compile(context.Background(), controlModule(6, loopsInARow(2000)))
	if err == nil {
		_ = m.Close(context.Background())
		t.Fatal("accepted")
	}
	want := "compiling it took over 300ms, the host's limit; split or simplify its largest functions"
	if !errors.Is(err, plugins.ErrInvalidModule) || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q: want ErrInvalidModule containing %q", err, want)
	}
	t.Logf("refused after %s", time.Since(start).Round(time.Millisecond))
}

// TestTooManyItemsRefused: sections with more items than the host allows
// are refused before wazero builds a structure for each (without the
// limit, a million globals held 142 MB after Compile and 63 MB per
// instance; a million empty functions 253 MB).
func TestTooManyItemsRefused(t *testing.T) {
	r := newRuntime(t, plugins.Config{})
	section := func(id byte, n int, item []byte) []byte {
		body := appendLEB(nil, n)
		for range n {
			body = append(body, item...)
		}
		return append(appendLEB([]byte{id}, len(body)), body...)
	}
	for name, c := range map[string]struct {
		sec  []byte
		want string
	}{
		"globals":   {section(6, 100_001, []byte{0x7f, 0x00, 0x41, 0x00, 0x0b}), "100001 globals, over the limit of 100000"},
		"functions": {section(3, 250_001, []byte{0}), "250001 functions, over the limit of 250000"},
	} {
		t.Run(name, func(t *testing.T) {
			m, err := r.Compile(context.Background(), append([]byte("\x00asm\x01\x00\x00\x00"), c.sec...))
			if err == nil {
				_ = m.Close(context.Background())
				t.Fatal("accepted")
			}
			if !errors.Is(err, plugins.ErrInvalidModule) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q: want ErrInvalidModule containing %q", err, c.want)
			}
		})
	}
}

// TestTableGrowthIsBounded: a table declared without a maximum cannot be
// grown past MaxTableElements (wazero would otherwise allow 2^27 elements,
// 1 GiB, per table), while growth within the limit still works. The
// fixture traps if the big grow succeeds or the small one fails.
func TestTableGrowthIsBounded(t *testing.T) {
	r := newRuntime(t, plugins.Config{})
	i := instance(t, compile(t, r, "tablegrow"), plugins.InstanceConfig{})
	st := nodb.NewMemStore()
	for seq := uint64(1); seq <= 3; seq++ {
		if err := i.Reduce(context.Background(), ev(seq, "x", "{}"), st); err != nil {
			t.Fatal(seq, err)
		}
	}
}

func TestTrapOn1000thEvent(t *testing.T) {
	r := newRuntime(t, plugins.Config{})
	i := instance(t, compile(t, r, "trap1000"), plugins.InstanceConfig{})
	st := nodb.NewMemStore()
	for seq := uint64(1); seq < 1000; seq++ {
		if err := i.Reduce(context.Background(), ev(seq, "x", "{}"), st); err != nil {
			t.Fatal(seq, err)
		}
	}
	trapAt(t, i, ev(1000, "x", "{}"))
}

func TestGoPanic(t *testing.T) {
	r := newRuntime(t, plugins.Config{})
	i := instance(t, compile(t, r, "panic"), plugins.InstanceConfig{})
	st := nodb.NewMemStore()
	if err := i.Reduce(context.Background(), ev(1, "ok", "{}"), st); err != nil {
		t.Fatal(err)
	}
	te := trapAt(t, i, ev(2, "boom", "{}"))
	if !strings.Contains(te.Stderr, "panic: assignment to entry in nil map") {
		t.Errorf("unexpected: %v", te)
	}
}

// TestOutOfRangePointers: every host function given a bad pointer or length
// traps cleanly (nodb_v1) or returns EFAULT (WASI); the host never panics.
func TestOutOfRangePointers(t *testing.T) {
	r := newRuntime(t, plugins.Config{})
	m := compile(t, r, "badptr")
	for seq, fn := range map[uint64]string{1: "state_get", 2: "state_get", 3: "state_set", 4: "state_set", 5: "state_delete", 6: "log", 7: "set_error", 8: "consume", 13: "state_has"} {
		te := trapAt(t, instance(t, m, plugins.InstanceConfig{}), ev(seq, "x", "{}"))
		if !strings.Contains(te.Error(), "ABI violation") || !strings.Contains(te.Error(), fn+": out-of-range memory access") {
			t.Errorf("seq %d: %v", seq, te)
		}
	}
	for seq := uint64(9); seq <= 11; seq++ { // WASI: EFAULT, no trap
		if err := instance(t, m, plugins.InstanceConfig{}).Reduce(context.Background(), ev(seq, "x", "{}"), nodb.NewMemStore()); err != nil {
			t.Errorf("seq %d: %v", seq, err)
		}
	}
	err := instance(t, m, plugins.InstanceConfig{}).Reduce(context.Background(), ev(12, "x", "{}"), nodb.NewMemStore())
	var re *plugins.ReducerError
	if !errors.As(err, &re) || re.Status != int32(abi.StatusTooLarge) {
		t.Errorf("long path: %v", err)
	}
	err = instance(t, m, plugins.InstanceConfig{}).Reduce(context.Background(), ev(14, "x", "{}"), nodb.NewMemStore())
	if !errors.As(err, &re) || re.Status != int32(abi.StatusNotFound) {
		t.Errorf("state_has of a missing path: %v", err)
	}
	te := trapAt(t, instance(t, compile(t, r, "badbuf"), plugins.InstanceConfig{}), ev(1, "x", "{}"))
	if !strings.Contains(te.Error(), "out-of-range buffer") {
		t.Errorf("badbuf: %v", te)
	}
}

// TestHostCallsSeeGrownMemory: after memory.grow, host functions accept a
// range up to the new end of memory and fault just past it, event after
// event (host functions check ranges against their own view of the guest's
// memory, which must follow its growth), and across a new guest.
func TestHostCallsSeeGrownMemory(t *testing.T) {
	r := newRuntime(t, plugins.Config{})
	m := compile(t, r, "grow")
	i := instance(t, m, plugins.InstanceConfig{})
	st := nodb.NewMemStore()
	for seq := uint64(1); seq < 40; seq += 2 {
		if err := i.Reduce(context.Background(), ev(seq, "x", "{}"), st); err != nil {
			t.Fatal(seq, err)
		}
	}
	e := abi.EpochSize + 1 // a fresh guest, one page again
	if err := i.Reduce(context.Background(), ev(uint64(e), "x", "{}"), st); err != nil {
		t.Fatal(err)
	}
	te := trapAt(t, i, ev(uint64(e+1), "x", "{}"))
	if !strings.Contains(te.Error(), "state_set: out-of-range memory access") || !strings.Contains(te.Error(), "memory size 196608") {
		t.Errorf("unexpected: %v", te)
	}
}

type countingLogger struct {
	hclog.Logger
	lines *int
	long  *int
}

func (l countingLogger) Info(msg string, args ...any) {
	*l.lines++
	if len(msg) > *l.long {
		*l.long = len(msg)
	}
}

func (l countingLogger) Named(string) hclog.Logger     { return l }
func (l countingLogger) With(...any) hclog.Logger      { return l }
func (l countingLogger) Warn(msg string, args ...any)  { *l.lines++ }
func (l countingLogger) Debug(msg string, args ...any) {}

func TestHugeOutputs(t *testing.T) {
	var lines, long int
	r := newRuntime(t, plugins.Config{})
	i := instance(t, compile(t, r, "huge"), plugins.InstanceConfig{Logger: countingLogger{Logger: hclog.NewNullLogger(), lines: &lines, long: &long}})
	st := nodb.NewMemStore()
	if err := i.Reduce(context.Background(), ev(1, "x", "{}"), st); err != nil {
		t.Fatal(err)
	}
	if long > abi.MaxLogSize {
		t.Errorf("log line of %d bytes", long)
	}
	err := i.Reduce(context.Background(), ev(2, "x", "{}"), st)
	var re *plugins.ReducerError
	if !errors.As(err, &re) || re.Status != int32(abi.StatusTooLarge) {
		t.Errorf("giant state_set: %v", err)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before := lines
	if err := i.Reduce(context.Background(), ev(3, "x", "{}"), st); err != nil {
		t.Fatal(err)
	}
	if n := lines - before; n > 200 {
		t.Errorf("10 MB of stderr gave %d log lines; want rate limiting", n)
	}
}

// TestHostSurvives: after all of the above in one process, a good module
// still works in the same runtime.
func TestHostSurvives(t *testing.T) {
	r := newRuntime(t, plugins.Config{EventTimeout: 50 * time.Millisecond})
	_ = trapAt(t, instance(t, compile(t, r, "loop"), plugins.InstanceConfig{}), ev(1, "x", "{}"))
	_ = trapAt(t, instance(t, compile(t, r, "panic"), plugins.InstanceConfig{}), ev(1, "boom", "{}"))
	// The good module gets a limit a loaded machine cannot miss: the hostile
	// ones above needed the short one, the runtime is what must survive.
	i := instance(t, compile(t, r, "todos"), plugins.InstanceConfig{EventTimeout: 10 * time.Second})
	st := nodb.NewMemStore()
	if err := i.Reduce(context.Background(), ev(1, "todo/add", `{"id":"a","text":"t"}`), st); err != nil {
		t.Fatal(err)
	}
}

// TestHugeDeclaredCountsRefused: modules that declare absurd counts in a
// few bytes (2^32-1 data segments or functions, function names in the name
// section, locals of one function) are refused as invalid, and the host
// does not size anything by the claim: before, the upload of such a module
// ended the whole process with a fatal out-of-memory (in the host's data
// merging or in wazero's decoder, which allocates every vector at its
// declared length).
func TestHugeDeclaredCountsRefused(t *testing.T) {
	r := newRuntime(t, plugins.Config{})
	huge := []byte{0xff, 0xff, 0xff, 0xff, 0x0f}
	section := func(id byte, body ...byte) []byte {
		return append([]byte{id, byte(len(body))}, body...)
	}
	for name, sec := range map[string][]byte{
		"data segments": section(11, huge...),
		"functions":     section(3, huge...),
		"names":         section(0, append([]byte{4, 'n', 'a', 'm', 'e', 1, 5}, huge...)...),
		"locals":        section(10, append([]byte{1, 8, 1}, append(huge, 0x7f, 0x0b)...)...),
	} {
		t.Run(name, func(t *testing.T) {
			m, err := r.Compile(context.Background(), append([]byte("\x00asm\x01\x00\x00\x00"), sec...))
			if err == nil {
				_ = m.Close(context.Background())
				t.Fatal("accepted")
			}
			if !errors.Is(err, plugins.ErrInvalidModule) {
				t.Fatalf("not ErrInvalidModule: %v", err)
			}
		})
	}
}
