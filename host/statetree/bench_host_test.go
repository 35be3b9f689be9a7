package statetree

import (
	"math/rand/v2"
	"strconv"
	"testing"
)

// hostEvent is one replay event as a reducer's host calls see it: the
// pointers it reads and writes (in guest memory: each call copies its
// pointer to a fresh string unless it is the previous call's, as the host
// functions do; see hostState.str) and the CBOR it sends.
type hostEvent struct {
	kind  byte // 't'oggle, 'r'ename, 'a'dd, 'd'elete
	read  []byte
	write []byte
	value []byte
}

// hostEvents returns a start root of 10k todos and n events of about the
// replay's mix (35% toggle, 20% rename, and as many adds of random ids as
// deletes, which the replay makes partly by clear-completed) that apply to
// it in order.
func hostEvents(n int) (Value, []hostEvent) {
	root, ids := randomTodos(10_000)
	rng := rand.New(rand.NewPCG(3, 4))
	fresh := func(parts ...string) []byte {
		b := []byte{}
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	todo := func(i int) []byte {
		t, _ := Map(map[string]Value{"text": String("todo text number " + strconv.Itoa(i)), "done": Bool(false)})
		return EncodeCBOR(t)
	}
	evs := make([]hostEvent, n)
	for i := range evs {
		id := ids[rng.IntN(len(ids))]
		switch r := rng.IntN(100); {
		case r < 35:
			p := fresh("/todos/", id, "/done")
			evs[i] = hostEvent{'t', p, p, nil}
		case r < 55:
			p := fresh("/todos/", id, "/text")
			evs[i] = hostEvent{'r', p, p, EncodeCBOR(String("renamed " + strconv.Itoa(i)))}
		case r < 78:
			nid := randomID(rng)
			ids = append(ids, nid)
			p := fresh("/todos/", nid)
			evs[i] = hostEvent{'a', p, p, todo(i)}
		default:
			k := rng.IntN(len(ids))
			id = ids[k]
			ids[k] = ids[len(ids)-1]
			ids = ids[:len(ids)-1]
			evs[i] = hostEvent{'d', nil, fresh("/todos/", id), nil}
		}
	}
	return root, evs
}

// hostState does what host/view's TxState does: parse into a reused Path,
// then Peek, Set or Remove; or, with pointer, parse into a Pointer and
// SetPointer or RemovePointer.
type hostState struct {
	tx      *Tx
	pointer bool
	path    Path
	q       Pointer
	buf     []byte
	last    string
}

// str returns b as a string: the previous call's if it has the same bytes,
// else a fresh copy, as plugins' Instance.path does for guest paths.
func (s *hostState) str(b []byte) string {
	if string(b) != s.last {
		s.last = string(b)
	}
	return s.last
}

func (s *hostState) parse(ptr string) Path {
	if s.pointer {
		if err := s.q.Parse(ptr); err != nil {
			panic(err)
		}
		return s.q.Path()
	}
	p, err := AppendPath(s.path[:0], ptr)
	if err != nil {
		panic(err)
	}
	s.path = p
	return p
}

func (s *hostState) get(ptr string) ([]byte, bool) {
	v, ok := s.tx.Peek(s.parse(ptr))
	if !ok {
		return nil, false
	}
	s.buf = AppendCBOR(s.buf[:0], v)
	return s.buf, true
}

func (s *hostState) has(ptr string) bool {
	_, ok := s.tx.Peek(s.parse(ptr))
	return ok
}

func (s *hostState) set(ptr string, cbor []byte) error {
	p := s.parse(ptr)
	v, err := DecodeCBOR(cbor)
	if err != nil {
		return err
	}
	if s.pointer {
		return s.tx.SetPointer(&s.q, v)
	}
	return s.tx.Set(p, v)
}

func (s *hostState) remove(ptr string) (bool, error) {
	p := s.parse(ptr)
	if s.pointer {
		return s.tx.RemovePointer(&s.q)
	}
	return s.tx.Remove(p)
}

var cborBools = map[bool][]byte{false: EncodeCBOR(Bool(false)), true: EncodeCBOR(Bool(true))}

// benchHost replays the events through s, 256 to a Tx, starting over from
// the start root when they run out.
func benchHost(b *testing.B, s *hostState) {
	start, evs := hostEvents(100_000)
	root := start
	tx := root.Begin()
	s.tx = tx
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if i%len(evs) == 0 {
			tx = start.Begin()
			s.tx = tx
		}
		ev := &evs[i%len(evs)]
		var err error
		switch ev.kind {
		case 't':
			data, ok := s.get(s.str(ev.read))
			if !ok {
				b.Fatalf("no todo at %s", ev.read)
			}
			v, _ := DecodeCBOR(data)
			err = s.set(s.str(ev.write), cborBools[!v.Bool()])
		case 'r':
			if !s.has(s.str(ev.read)) {
				b.Fatalf("no todo at %s", ev.read)
			}
			err = s.set(s.str(ev.write), ev.value)
		case 'a':
			if s.has(s.str(ev.read)) {
				b.Fatalf("a todo at %s", ev.read)
			}
			err = s.set(s.str(ev.write), ev.value)
		case 'd':
			var ok bool
			if ok, err = s.remove(s.str(ev.write)); !ok && err == nil {
				b.Fatalf("no todo at %s", ev.write)
			}
		}
		if err != nil {
			b.Fatal(err)
		}
		if i%256 == 255 {
			root, _ = tx.Commit()
		}
	}
	_ = root
}

// BenchmarkHostEventsPath is the replay's mix of events through the host
// calls as host/view's TxState makes them: parsed Paths, Set and Remove.
func BenchmarkHostEventsPath(b *testing.B) { benchHost(b, &hostState{}) }

// BenchmarkHostEventsPointer is BenchmarkHostEventsPath with Pointers,
// SetPointer and RemovePointer.
func BenchmarkHostEventsPointer(b *testing.B) { benchHost(b, &hostState{pointer: true}) }

// scatteredTodos returns the root after 100k host events from
// hostEvents' start, 256 to a Tx: ~10k todos whose nodes are scattered
// over the heap as the replay's are.
func scatteredTodos(b *testing.B) Value {
	start, evs := hostEvents(100_000)
	s := &hostState{tx: start.Begin(), pointer: true}
	for i := range evs {
		ev := &evs[i]
		var err error
		switch ev.kind {
		case 't':
			err = s.set(s.str(ev.write), cborBools[i%2 == 0])
		case 'r', 'a':
			err = s.set(s.str(ev.write), ev.value)
		case 'd':
			_, err = s.remove(s.str(ev.write))
		}
		if err != nil {
			b.Fatal(err)
		}
		if i%256 == 255 {
			s.tx.Commit()
		}
	}
	root, _ := s.tx.Commit()
	return root
}

// BenchmarkHostGetAllTodos encodes the whole todos map into a reused
// buffer, as a clear-completed event's state_get of "/todos" does, after
// 100k events have scattered its nodes over the heap as the replay's do.
func BenchmarkHostGetAllTodos(b *testing.B) {
	s := &hostState{tx: scatteredTodos(b).Begin()}
	b.ReportAllocs()
	var n int
	for b.Loop() {
		data, ok := s.get("/todos")
		if !ok {
			b.Fatal("no todos")
		}
		n = len(data)
	}
	b.SetBytes(int64(n))
}

// BenchmarkHostRangeTodos ranges over the todos map after churn, reading
// each todo's done flag, as the native reducer's clear-completed does.
func BenchmarkHostRangeTodos(b *testing.B) {
	todos, _ := scatteredTodos(b).Get(Path{"todos"})
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		todos.Range(func(_ string, t Value) bool {
			if d, _ := t.Lookup("done"); d.Bool() {
				n++
			}
			return true
		})
		if n == 0 {
			b.Fatal("no todo done")
		}
	}
}
