package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/nodb-dev/nodb/abi/wire"
)

// crashProducer publishes pseq 1, 2, 3, … with up to window events in flight,
// remembering every ack. After a crash it resends everything unacked.
type crashProducer struct {
	name   string
	mu     sync.Mutex
	acked  map[uint64]uint64 // pseq -> seq
	next   uint64            // next pseq never sent
	lowest uint64            // lowest unacked pseq
}

// session runs one connection until it breaks; it sends from p.lowest.
func (p *crashProducer) session(t *testing.T, addr string, window int, stop <-chan struct{}) {
	d := websocket.Dialer{Subprotocols: []string{wire.SubprotocolJSON}}
	ws, _, err := d.Dial("ws://"+addr+"/v1/ws", nil)
	if err != nil {
		return
	}
	defer ws.Close()
	if _, _, err := ws.ReadMessage(); err != nil { // hello
		return
	}
	p.mu.Lock()
	send := p.lowest // resend all unacked, in order
	p.mu.Unlock()
	inflight := 0
	errc := make(chan error, 1)
	acks := make(chan wire.Reply, window)
	go func() {
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				errc <- err
				close(acks)
				return
			}
			var r wire.Reply
			if err := wire.DecodeReply(wire.JSON, data, &r); err != nil {
				t.Errorf("bad reply %s: %v", data, err)
			}
			acks <- r
		}
	}()
	for {
		for inflight < window {
			select {
			case <-stop:
				return
			default:
			}
			msg, _ := wire.EncodeRequest(wire.JSON, &wire.Request{Type: wire.TypePublish, ID: send, Event: wire.Event{
				Producer: p.name, PSeq: send, Type: "crash/test", Payload: []byte(fmt.Sprintf(`{"p":%q,"n":%d,"pad":"%s"}`, p.name, send, strings.Repeat("x", 120)))}})
			if err := ws.WriteMessage(websocket.TextMessage, msg); err != nil {
				return
			}
			send++
			inflight++
		}
		r, ok := <-acks
		if !ok {
			return
		}
		inflight--
		if r.Type != wire.TypeAck {
			if r.Code == wire.CodeUnavailable {
				return
			}
			t.Errorf("producer %s: unexpected reply %+v", p.name, r)
			return
		}
		p.mu.Lock()
		if old, seen := p.acked[r.ID]; seen && old != r.Seq {
			t.Errorf("producer %s pseq %d acked with seq %d, earlier with seq %d", p.name, r.ID, r.Seq, old)
		}
		p.acked[r.ID] = r.Seq
		for p.acked[p.lowest] != 0 {
			p.lowest++
		}
		p.mu.Unlock()
	}
}

type catRecord struct {
	Seq      uint64          `json:"seq"`
	Producer string          `json:"producer"`
	PSeq     uint64          `json:"pseq"`
	Type     string          `json:"type"`
	Payload  json.RawMessage `json:"payload"`
}

// logCat reads the data directory with `nodb log cat`.
func logCat(t *testing.T, dir string) []catRecord {
	t.Helper()
	out, errOut, code := run(t, "log", "cat", "--data", dir)
	if code != 0 {
		t.Fatalf("nodb log cat: exit %d: %s", code, errOut)
	}
	var recs []catRecord
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		var r catRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("log cat line %q: %v", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	return recs
}

// checkHistory asserts that every acked event is in the log exactly once,
// with the seq it was acked with, and that each producer's events are
// contiguous from pseq 1 in seq order.
func checkHistory(t *testing.T, recs []catRecord, producers []*crashProducer) {
	t.Helper()
	last := map[string]uint64{}
	stored := map[string]map[uint64]uint64{}
	for i, r := range recs {
		if r.Seq != uint64(i+1) {
			t.Fatalf("record %d has seq %d: sequence not contiguous", i, r.Seq)
		}
		if r.PSeq != last[r.Producer]+1 {
			t.Fatalf("seq %d: producer %s pseq %d follows pseq %d", r.Seq, r.Producer, r.PSeq, last[r.Producer])
		}
		last[r.Producer] = r.PSeq
		if stored[r.Producer] == nil {
			stored[r.Producer] = map[uint64]uint64{}
		}
		stored[r.Producer][r.PSeq] = r.Seq
	}
	for _, p := range producers {
		p.mu.Lock()
		for pseq, seq := range p.acked {
			if got := stored[p.name][pseq]; got != seq {
				p.mu.Unlock()
				t.Fatalf("acked event %s/%d (seq %d) is missing or moved: log has seq %d", p.name, pseq, seq, got)
			}
		}
		p.mu.Unlock()
	}
}

// TestCrashRecovery kills a loaded `nodb serve` with SIGKILL at random
// moments; after every restart each acked event is present exactly once, in
// per-producer order, and resent unacked events are deduplicated.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test runs real processes")
	}
	dir := t.TempDir()
	addr := freeAddr(t)
	const nProducers, kills = 24, 22
	producers := make([]*crashProducer, nProducers)
	for i := range producers {
		producers[i] = &crashProducer{name: fmt.Sprintf("crash-%02d", i), acked: map[uint64]uint64{}, lowest: 1}
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	for round := 0; round <= kills; round++ {
		if round > 0 {
			// What survived the crash holds every acked event.
			checkHistory(t, logCat(t, dir), producers)
		}
		srv := startServe(t, dir, addr)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for _, p := range producers {
			wg.Add(1)
			window := 1 + rng.IntN(16) // drawn here: rng is not safe for the goroutines
			go func() {
				defer wg.Done()
				p.session(t, addr, window, stop)
			}()
		}
		if round == kills {
			time.Sleep(300 * time.Millisecond)
			close(stop)
			wg.Wait()
			// The last round stops cleanly: SIGTERM acks everything in flight.
			if err := srv.term(); err != nil {
				t.Fatalf("graceful stop: %v\n%s", err, srv.stderr)
			}
			break
		}
		time.Sleep(time.Duration(20+rng.IntN(300)) * time.Millisecond)
		srv.kill()
		close(stop)
		wg.Wait()
	}
	recs := logCat(t, dir)
	checkHistory(t, recs, producers)
	total := 0
	for _, p := range producers {
		total += len(p.acked)
	}
	if total < 1000 {
		t.Fatalf("only %d events acked over %d crashes; the test did not load the server", total, kills)
	}
	t.Logf("%d crashes, %d events in the log, %d acked to producers", kills, len(recs), total)
}
