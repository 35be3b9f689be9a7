package plugins

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Interrupting a guest. wazero can stop a running guest only when the module
// was compiled with WithCloseOnContextDone, and then every loop iteration
// leaves machine code to check the module's state in Go. Go guests are loops
// all the way down (every Go function body is a loop over resume points), so
// that costs several microseconds per event. Instead, Compile rewrites the
// module: it adds two mutable i32 globals, a stop flag exported as
// stopExport and the event's remaining *fuel* exported as fuelExport, and
// inserts
//
//	if stop { unreachable };  fuel = fuel - 1;  if fuel == 0 { unreachable }
//
// before every branch back to a loop (a br, br_if or br_table that can
// target one). The host refills the fuel (Fuel) before every event; the
// watchdog sets the stop flag when an event runs over its time limit. The
// guest traps at its next loop iteration either way (a run without back
// branches is bounded by its code size; unbounded recursion overflows the
// stack). The check used to sit at the head of every loop; but every Go
// function body is a loop over its resume points, so that made every call
// pay it, ~7% of a todos event. At the back branches, entering a loop is
// free and every further iteration still pays. The flag is separate from the fuel because the guest writes
// the fuel: a compiler may keep it in a register, and a host write to it
// could be lost; the guest only ever reads the flag.
//
// Why fuel and not only a flag the watchdog sets: compiled guest code cannot
// be preempted by Go's scheduler, so a guest spinning in a loop holds off
// every stop-the-world pause of the garbage collector, and the watchdog
// goroutine itself stops at such a pause. With a flag alone, a hostile loop
// that coincides with a GC freezes the whole host. Fuel runs out by itself,
// with no goroutine involved, so every event ends within a bounded number
// of loop iterations on any host (and, being counted, at the same point on
// every host).

// stopExport and fuelExport name the globals the host adds to every module.
const (
	stopExport = "__nodb_stop"
	fuelExport = "__nodb_fuel"
)

// Fuel is the number of loop iterations one event (or one _initialize) may
// run: about a second or two of guest work on this class of machine, far
// above any reasonable reducer and well inside the default time limit's
// order of magnitude.
const Fuel = 1 << 30

// eventFuel is the fuel given before each event: Fuel, lowered by tests
// (export_test.go) so that running out does not take a second.
var eventFuel uint64 = Fuel

var errMalformed = errors.New("malformed module")

type reader struct {
	b   []byte
	pos int
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: offset %d: %s", errMalformed, r.pos, fmt.Sprintf(format, args...))
	}
}

func (r *reader) byte() byte {
	if r.pos >= len(r.b) {
		r.fail("unexpected end")
		return 0
	}
	c := r.b[r.pos]
	r.pos++
	return c
}

func (r *reader) u32() uint32 {
	var v uint32
	for shift := 0; shift < 35; shift += 7 {
		c := r.byte()
		v |= uint32(c&0x7f) << shift
		if c&0x80 == 0 {
			return v
		}
	}
	r.fail("LEB128 too long")
	return 0
}

// skipLEB skips a (signed or unsigned) LEB128 of at most max bytes.
func (r *reader) skipLEB(max int) {
	for i := 0; i < max; i++ {
		if r.byte()&0x80 == 0 {
			return
		}
	}
	r.fail("LEB128 too long")
}

func (r *reader) skip(n int) {
	if n < 0 || n > len(r.b)-r.pos {
		r.fail("unexpected end")
		r.pos = len(r.b)
		return
	}
	r.pos += n
}

func (r *reader) name() string {
	n := int(r.u32())
	start := r.pos
	r.skip(n)
	if r.err != nil {
		return ""
	}
	return string(r.b[start:r.pos])
}

func (r *reader) limits() {
	flags := r.byte()
	r.u32()
	if flags&1 != 0 {
		r.u32()
	}
}

// appendS32 appends v as a signed LEB128.
func appendS32(dst []byte, v int32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(dst, c)
		}
		dst = append(dst, c|0x80)
	}
}

func appendU32(dst []byte, v uint32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			dst = append(dst, c|0x80)
			continue
		}
		return append(dst, c)
	}
}

// sectionRank orders known sections as the binary format requires.
var sectionRank = map[byte]int{1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 13: 6, 6: 7, 7: 8, 8: 9, 9: 10, 12: 11, 10: 12, 11: 13}

// instrument returns the module with the stop global and loop checks added,
// and the minimum of its memory in pages (0 if it defines none).
func instrument(wasm []byte) (out []byte, minPages uint32, err error) {
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" || string(wasm[4:8]) != "\x01\x00\x00\x00" {
		return nil, 0, fmt.Errorf("%w: not a WebAssembly 1.0 binary", errMalformed)
	}
	type section struct {
		id   byte
		body []byte
	}
	var secs []section
	r := &reader{b: wasm, pos: 8}
	importedGlobals, definedGlobals := uint32(0), uint32(0)
	for r.pos < len(wasm) && r.err == nil {
		id := r.byte()
		size := int(r.u32())
		start := r.pos
		r.skip(size)
		if r.err != nil {
			break
		}
		body := wasm[start:r.pos]
		switch id {
		case 2:
			n, err := countImportedGlobals(body)
			if err != nil {
				return nil, 0, err
			}
			importedGlobals = n
		case 5:
			sr := &reader{b: body}
			if sr.u32() > 0 {
				sr.byte()
				minPages = sr.u32()
			}
			if sr.err != nil {
				return nil, 0, sr.err
			}
		case 4:
			limited, err := limitTables(body)
			if err != nil {
				return nil, 0, err
			}
			body = limited
		case 6:
			sr := &reader{b: body}
			definedGlobals = sr.u32()
			if sr.err != nil {
				return nil, 0, sr.err
			}
		case 0:
			sr := &reader{b: body}
			name := sr.name()
			if strings.HasPrefix(name, ".debug_") {
				continue // code offsets change; drop DWARF
			}
			if name == "name" {
				if err := checkNameCounts(body[sr.pos:]); err != nil {
					return nil, 0, err
				}
			}
		}
		if err := checkCount(id, body); err != nil {
			return nil, 0, err
		}
		secs = append(secs, section{id, body})
	}
	if r.err != nil {
		return nil, 0, r.err
	}
	stop := importedGlobals + definedGlobals
	out = append([]byte(nil), wasm[:8]...)
	emit := func(id byte, body []byte) {
		out = append(out, id)
		out = appendU32(out, uint32(len(body)))
		out = append(out, body...)
	}
	// (global $stop (mut i32) (i32.const 0)) (global $fuel (mut i32) (i32.const Fuel))
	globalEntries := []byte{0x7f, 0x01, 0x41, 0x00, 0x0b}
	globalEntries = append(appendS32(append(globalEntries, 0x7f, 0x01, 0x41), Fuel), 0x0b)
	exportEntry := func(name string, idx uint32) []byte {
		e := appendU32(nil, uint32(len(name)))
		e = append(e, name...)
		e = append(e, 0x03)
		return appendU32(e, idx)
	}
	exportEntries := append(exportEntry(stopExport, stop), exportEntry(fuelExport, stop+1)...)
	newVec := func(items []byte) []byte { return append(appendU32(nil, 2), items...) }
	addItems := func(body, items []byte) []byte {
		r := &reader{b: body}
		n := r.u32()
		out := appendU32(nil, n+2)
		out = append(out, body[r.pos:]...)
		return append(out, items...)
	}
	hasDataCount := false
	for _, s := range secs {
		hasDataCount = hasDataCount || s.id == 12
	}
	doneGlobal, doneExport := false, false
	for _, s := range secs {
		rank := sectionRank[s.id]
		if s.id != 0 && !doneGlobal && rank > sectionRank[6] {
			emit(6, newVec(globalEntries))
			doneGlobal = true
		}
		if s.id != 0 && !doneExport && rank > sectionRank[7] {
			emit(7, newVec(exportEntries))
			doneExport = true
		}
		switch s.id {
		case 6:
			emit(6, addItems(s.body, globalEntries))
			doneGlobal = true
		case 7:
			emit(7, addItems(s.body, exportEntries))
			doneExport = true
		case 10:
			body, err := instrumentCode(s.body, stop)
			if err != nil {
				return nil, 0, err
			}
			emit(10, body)
		case 11:
			if hasDataCount {
				emit(11, s.body)
			} else {
				emit(11, mergeData(s.body))
			}
		default:
			emit(s.id, s.body)
		}
	}
	if !doneGlobal {
		emit(6, newVec(globalEntries))
	}
	if !doneExport {
		emit(7, newVec(exportEntries))
	}
	return out, minPages, nil
}

// MaxTableElements bounds the elements of a module's tables together, at
// their declared minimum and at their most after table.grow. wazero keeps
// a table as a slice of 8-byte references allocated at its minimum in
// every instance, up to 2^27 elements (1 GiB) per table, and a module may
// define many tables: a 100-byte upload could make each instance allocate
// gigabytes. 2^20 elements (8 MiB) is hundreds of times what compilers
// emit: the Go todos reducer's one table holds about 1300 functions.
const MaxTableElements = 1 << 20

// limitTables checks a table section and returns it with every table given
// a maximum, so that the module's tables together can never hold more than
// MaxTableElements: tables whose minimums add up to more are refused; the
// room above the minimums is shared out equally as each table's growth
// limit (a table's own smaller maximum stays). A table type this reader
// does not know is left for wazero to judge.
func limitTables(body []byte) ([]byte, error) {
	type table struct {
		ref      byte
		min, max uint32
		hasMax   bool
	}
	r := &reader{b: body}
	n := r.u32()
	tables := make([]table, 0, min(n, 64))
	total := uint64(0)
	for i := uint32(0); i < n && r.err == nil; i++ {
		t := table{ref: r.byte()}
		flags := r.byte()
		if flags > 1 {
			return body, nil
		}
		t.min = r.u32()
		if flags == 1 {
			t.max, t.hasMax = r.u32(), true
		}
		total += uint64(t.min)
		tables = append(tables, t)
	}
	if r.err != nil {
		return nil, r.err
	}
	if total > MaxTableElements {
		return nil, fmt.Errorf("%w: its tables declare %d elements at least, over the %d a plugin may have (8 bytes each in every instance); declare smaller tables", errMalformed, total, MaxTableElements)
	}
	if n == 0 {
		return body, nil
	}
	share := (MaxTableElements - uint32(total)) / n
	out := appendU32(make([]byte, 0, len(body)+5*len(tables)), n)
	for _, t := range tables {
		limit := t.min + share
		if t.hasMax && t.max < limit {
			limit = t.max
		}
		out = append(out, t.ref, 1)
		out = appendU32(appendU32(out, t.min), limit)
	}
	return append(out, body[r.pos:]...), nil
}

// checkCount refuses a vector section that declares more items than it
// has bytes. wazero's decoder allocates every vector at its declared length
// before reading an item, so a few bytes claiming 2^32-1 items would make it
// ask for tens of GiB (a fatal out-of-memory, which no recover catches).
// Every item of these sections takes at least one byte.
//
// It also refuses more items than sectionLimits allows: wazero keeps a
// structure per item, tens of bytes each, at compile time and (for
// globals) in every instance, so a 5 MB upload of a million globals held
// 142 MB after Compile and 63 MB more per instance, and a 4 MB upload of a
// million empty functions 253 MB, while an upload may be 64 MiB.
func checkCount(id byte, body []byte) error {
	switch id {
	case 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 13:
	default:
		return nil
	}
	r := &reader{b: body}
	n := r.u32()
	if r.err == nil && uint64(n) > uint64(len(body)-r.pos) {
		return fmt.Errorf("%w: section %d declares %d items in %d bytes", errMalformed, id, n, len(body)-r.pos)
	}
	if l, ok := sectionLimits[id]; ok && r.err == nil && n > l.max {
		return fmt.Errorf("%w: %d %s, over the limit of %d", errMalformed, n, l.what, l.max)
	}
	return r.err
}

// sectionLimits bounds the items of a module's sections, far above what
// compilers emit: a 6 MB Go module has 17 types, 28 imports, 4,216
// functions, 8 globals, 1 table and 72,570 data segments (merged into far
// fewer at load; see mergeData).
var sectionLimits = map[byte]struct {
	max  uint32
	what string
}{
	1:  {100_000, "types"},
	2:  {10_000, "imports"},
	3:  {250_000, "functions"},
	4:  {1_000, "tables"},
	6:  {100_000, "globals"},
	7:  {100_000, "exports"},
	9:  {100_000, "element segments"},
	10: {250_000, "function bodies"},
	11: {1_000_000, "data segments"},
}

// checkNameCounts does checkCount's check for the counts inside a "name"
// custom section (function names, and local names per function), which
// wazero decodes (and allocates for) the same way.
func checkNameCounts(b []byte) error {
	r := &reader{b: b}
	fail := func(what string, n uint32, room int) error {
		return fmt.Errorf("%w: name section: %s declares %d items in %d bytes", errMalformed, what, n, room)
	}
	for r.pos < len(b) && r.err == nil {
		id := r.byte()
		size := int(r.u32())
		start := r.pos
		r.skip(size)
		if r.err != nil || (id != 1 && id != 2) {
			continue
		}
		sr := &reader{b: b[start:r.pos]}
		n := sr.u32()
		if uint64(n) > uint64(size) {
			return fail("a subsection", n, size)
		}
		for k := uint32(0); id == 2 && k < n && sr.err == nil; k++ {
			sr.u32() // function index
			locals := sr.u32()
			if uint64(locals) > uint64(size) {
				return fail("a function's local names", locals, size)
			}
			for j := uint32(0); j < locals && sr.err == nil; j++ {
				sr.u32()
				sr.name()
			}
		}
	}
	return nil // anything else malformed is for wazero to judge, as before
}

// appendVecItem returns a vector section body with one more item.
func appendVecItem(body, item []byte) []byte {
	r := &reader{b: body}
	n := r.u32()
	out := appendU32(nil, n+1)
	out = append(out, body[r.pos:]...)
	return append(out, item...)
}

func countImportedGlobals(body []byte) (uint32, error) {
	r := &reader{b: body}
	n := r.u32()
	globals := uint32(0)
	for i := uint32(0); i < n && r.err == nil; i++ {
		mod, name := r.name(), r.name()
		switch kind := r.byte(); kind {
		case 0x00:
			r.u32()
		case 0x01:
			// The host provides none: refused here, naming the import,
			// rather than failing to instantiate (ABI.md 3).
			return 0, fmt.Errorf("the module imports table %s.%s; a plugin imports functions only", mod, name)
		case 0x02:
			r.limits()
		case 0x03:
			return 0, fmt.Errorf("the module imports global %s.%s; a plugin imports functions only", mod, name)
		default:
			r.fail("import kind %#x", kind)
		}
	}
	return globals, r.err
}

// instrumentCode rewrites the code section.
func instrumentCode(body []byte, stop uint32) ([]byte, error) {
	// global.get $stop; if (empty) unreachable end;
	// global.get $fuel; i32.const 1; i32.sub; global.set $fuel;
	// global.get $fuel; i32.eqz; if (empty) unreachable end
	st, f := appendU32(nil, stop), appendU32(nil, stop+1)
	check := append([]byte{0x23}, st...)
	check = append(check, 0x04, 0x40, 0x00, 0x0b, 0x23)
	check = append(check, f...)
	check = append(check, 0x41, 0x01, 0x6b, 0x24)
	check = append(check, f...)
	check = append(check, 0x23)
	check = append(check, f...)
	check = append(check, 0x45, 0x04, 0x40, 0x00, 0x0b)
	r := &reader{b: body}
	n := r.u32()
	out := appendU32(make([]byte, 0, len(body)+len(body)/8), n)
	var fn []byte
	for i := uint32(0); i < n && r.err == nil; i++ {
		size := int(r.u32())
		start := r.pos
		r.skip(size)
		if r.err != nil {
			break
		}
		var err error
		fn, err = instrumentFunc(fn[:0], body[start:r.pos], check)
		if err != nil {
			return nil, fmt.Errorf("function %d: %w", i, err)
		}
		out = appendU32(out, uint32(len(fn)))
		out = append(out, fn...)
	}
	if r.err == nil && r.pos != len(body) {
		r.fail("trailing bytes in code section")
	}
	return out, r.err
}

// maxControl bounds the control instructions of one function: block,
// loop and if, br and br_if, and each target of a br_table. wazero's
// compiler takes time superlinear in them when they follow one another or
// nest (its dominator and loop analyses walk the dominator tree from every
// block): 8,000 nested blocks (24 KB of code) took 0.76 s to compile here,
// 2,000 loops in a row (4,000 control instructions) 1.6 s and 5,000 loops
// 9 to 20 s (with the machine's load), and 300,000 nested blocks (900 KB) did not finish in five minutes,
// while an upload may be 64 MiB. Compilers stay far below: the largest
// function of the Go todos reducer has 1,157, of a 6 MB Go module using
// encoding/json, text/template, regexp and math/big 2,783 (Go nests a
// block per call site). What a module's functions cost together is bounded
// by Config.CompileTimeout.
const maxControl = 10_000

// maxLocals bounds the locals of one function: what Web engines accept.
// wazero's decoder builds a slice with one entry per local, so a function
// body of a few bytes could otherwise declare 2^32-1 of them and make it
// fill gigabytes.
const maxLocals = 50000

// instrumentFunc copies one function body, inserting check before every
// branch back to a loop (br, br_if or br_table with a loop among its
// targets). Every iteration of a loop after the first passes one, so a run
// that does not end takes infinitely many; entering a loop costs nothing.
// That matters for Go guests, whose every function body is a loop over its
// resume points: a check at each loop head was paid on every call.
func instrumentFunc(dst, body, check []byte) ([]byte, error) {
	r := &reader{b: body}
	groups := r.u32()
	locals := uint64(0)
	for g := uint32(0); g < groups && r.err == nil; g++ {
		locals += uint64(r.u32())
		r.byte()
	}
	if locals > maxLocals {
		return nil, fmt.Errorf("%w: %d locals in one function, over the limit of %d", errMalformed, locals, maxLocals)
	}
	dst = append(dst, body[:r.pos]...)
	control := 0
	loops := []bool{false} // the open blocks, innermost last: is it a loop; the function's own block first
	toLoop := func(depth uint32) bool {
		return int(depth) < len(loops) && loops[len(loops)-1-int(depth)]
	}
	for r.pos < len(body) && r.err == nil {
		start := r.pos
		op := r.byte()
		switch {
		case op == 0x02 || op == 0x03 || op == 0x04: // block, loop, if
			blockType(r)
			loops = append(loops, op == 0x03)
			control++
		case op == 0x0b: // end
			if len(loops) > 0 {
				loops = loops[:len(loops)-1]
			}
		case op == 0x0c, op == 0x0d: // br, br_if
			control++
			if toLoop(r.u32()) {
				dst = append(dst, check...)
			}
		case op == 0x0e: // br_table
			k := r.u32()
			control += int(k) + 1
			back := false
			for j := uint32(0); j <= k && r.err == nil; j++ {
				back = toLoop(r.u32()) || back
			}
			if back {
				dst = append(dst, check...)
			}
		case op <= 0x01, op == 0x05, op == 0x0f, op == 0x1a, op == 0x1b, op == 0xd1,
			op >= 0x45 && op <= 0xc4:
			// no immediates
		case op == 0x10, op >= 0x20 && op <= 0x26, op == 0xd2:
			r.u32()
		case op == 0x11: // call_indirect
			r.u32()
			r.u32()
		case op == 0x1c: // select t*
			k := r.u32()
			r.skip(int(k))
		case op >= 0x28 && op <= 0x3e: // memarg
			r.u32()
			r.u32()
		case op == 0x3f || op == 0x40:
			r.u32()
		case op == 0x41:
			r.skipLEB(5)
		case op == 0x42:
			r.skipLEB(10)
		case op == 0x43:
			r.skip(4)
		case op == 0x44:
			r.skip(8)
		case op == 0xd0:
			r.byte()
		case op == 0xfc:
			prefixFC(r)
		case op == 0xfd:
			prefixFD(r)
		default:
			return nil, fmt.Errorf("%w: unsupported instruction %#x at offset %d", errMalformed, op, start)
		}
		if control > maxControl {
			return nil, fmt.Errorf("%w: over %d blocks and branches in one function, which would take minutes to compile; split the function", errMalformed, maxControl)
		}
		dst = append(dst, body[start:r.pos]...)
	}
	return dst, r.err
}

func blockType(r *reader) {
	if r.pos >= len(r.b) {
		r.fail("unexpected end")
		return
	}
	switch c := r.b[r.pos]; c {
	case 0x40, 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f:
		r.pos++
	default:
		r.skipLEB(5) // type index, s33
	}
}

func prefixFC(r *reader) {
	switch sub := r.u32(); {
	case sub <= 7:
	case sub == 8, sub == 10, sub == 12, sub == 14:
		r.u32()
		r.u32()
	case sub == 9, sub == 11, sub == 13, sub == 15, sub == 16, sub == 17:
		r.u32()
	default:
		r.fail("unsupported instruction 0xfc %d", sub)
	}
}

func prefixFD(r *reader) {
	switch sub := r.u32(); {
	case sub <= 11, sub == 92, sub == 93:
		r.u32()
		r.u32()
	case sub == 12, sub == 13:
		r.skip(16)
	case sub >= 21 && sub <= 34:
		r.byte()
	case sub >= 84 && sub <= 91:
		r.u32()
		r.u32()
		r.byte()
	case sub > 0xff:
		r.fail("unsupported instruction 0xfd %d", sub)
	}
}

// dataGap is the largest run of zeros mergeData fills in to join two data
// segments.
const dataGap = 4096

// mergeData joins a data section's active segments that lie close together
// into fewer, larger ones, filling the gaps with zeros (which is what fresh
// memory holds there anyway). Go writes one segment per run of non-zero
// bytes, tens of thousands of them, and instantiating a module evaluates
// and copies each: merged, a new guest costs a fraction of the time. The
// memory a module starts with is unchanged. Sections it does not understand
// (passive segments, offsets that are not constants, overlapping or
// unordered segments) are returned as they are.
func mergeData(body []byte) []byte {
	type seg struct {
		off  uint32
		data []byte
	}
	r := &reader{b: body}
	n := r.u32()
	// n is the module's claim; each segment takes at least 5 bytes.
	segs := make([]seg, 0, min(int(n), len(body)/5))
	for k := uint32(0); k < n && r.err == nil; k++ {
		if flag := r.u32(); flag != 0 || r.byte() != 0x41 {
			return body // passive, explicit memory index, or not i32.const
		}
		start := r.pos
		r.skipLEB(5)
		if r.err != nil {
			return body
		}
		off := &reader{b: body[start:r.pos]}
		v := int64(0)
		shift := uint(0)
		for {
			b := off.byte()
			v |= int64(b&0x7f) << shift
			shift += 7
			if b&0x80 == 0 {
				if shift < 64 && b&0x40 != 0 {
					v |= -1 << shift
				}
				break
			}
		}
		if r.byte() != 0x0b || v < 0 || off.err != nil {
			return body
		}
		size := int(r.u32())
		p := r.pos
		r.skip(size)
		if r.err != nil {
			return body
		}
		segs = append(segs, seg{uint32(v), body[p:r.pos]})
	}
	if r.err != nil || r.pos != len(body) {
		return body
	}
	// Disjoint segments may be written in any order.
	slices.SortStableFunc(segs, func(a, b seg) int { return cmp.Compare(a.off, b.off) })
	for k := 1; k < len(segs); k++ {
		if uint64(segs[k].off) < uint64(segs[k-1].off)+uint64(len(segs[k-1].data)) {
			return body // overlapping: the order matters, keep it
		}
	}
	var merged []seg
	for _, sg := range segs {
		if k := len(merged) - 1; k >= 0 {
			end := uint64(merged[k].off) + uint64(len(merged[k].data))
			if gap := uint64(sg.off) - end; gap <= dataGap {
				d := merged[k].data
				d = append(d, make([]byte, gap)...)
				merged[k].data = append(d, sg.data...)
				continue
			}
		}
		merged = append(merged, seg{sg.off, append([]byte(nil), sg.data...)})
	}
	out := appendU32(make([]byte, 0, len(body)), uint32(len(merged)))
	for _, sg := range merged {
		out = append(out, 0x00, 0x41)
		out = appendS32(out, int32(sg.off))
		out = append(out, 0x0b)
		out = appendU32(out, uint32(len(sg.data)))
		out = append(out, sg.data...)
	}
	return out
}
