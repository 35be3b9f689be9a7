package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/nodb-dev/nodb/abi/wire"
	"github.com/nodb-dev/nodb/host/statetree"
)

// reducerWasm builds testdata/reducers/NAME once.
func reducerWasm(t *testing.T, name string) string {
	return buildGuest(t, name, "./host/cmd/nodb/testdata/reducers/"+name)
}

type swapReport struct {
	Outcome string `json:"outcome"`
	Error   string `json:"error"`
	Swap    struct {
		Seq       uint64 `json:"seq"`
		Identical bool   `json:"identical"`
		Ops       int    `json:"ops"`
		Changes   []struct {
			Path string `json:"path"`
		} `json:"changes"`
	} `json:"swap"`
	Compare struct {
		FirstDiff     uint64 `json:"first_diff"`
		FirstDiffType string `json:"first_diff_type"`
		Changes       []struct {
			Path string          `json:"path"`
			Old  json.RawMessage `json:"old"`
			New  json.RawMessage `json:"new"`
		} `json:"changes"`
	} `json:"compare"`
	ReplayMS int64 `json:"replay_ms"`
	TotalMS  int64 `json:"total_ms"`
}

func deployCLI(t *testing.T, addr, wasm, policy string) (swapReport, int) {
	t.Helper()
	out, errOut, code := run(t, "deploy", "--addr", addr, "--name", "todos", "--policy", policy, "--quiet", wasm)
	var r swapReport
	if out != "" {
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("deploy output: %v\n%s\n%s", err, out, errOut)
		}
	}
	t.Logf("deploy %s (%s): exit %d %s", filepath.Base(wasm), policy, code, strings.TrimSpace(errOut))
	return r, code
}

func stateAt(t *testing.T, addr string, at int64) ([]byte, uint64) {
	t.Helper()
	u := "http://" + addr + "/v1/views/todos/state"
	if at >= 0 {
		u += fmt.Sprintf("?at=%d", at)
	}
	resp, err := testHTTP.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s %s", u, resp.Status, body)
	}
	var seq uint64
	fmt.Sscan(resp.Header.Get("X-Nodb-Seq"), &seq)
	return body, seq
}

// subscriber follows the todos view over WebSocket, applying patches.
type subscriber struct {
	mu      sync.Mutex
	state   statetree.Value
	seq     uint64
	patches []patchRec
	err     error
}

type patchRec struct {
	seq uint64
	ops int
}

func (s *subscriber) run(t *testing.T, ctx context.Context, addr string) {
	ws, _, err := websocket.DefaultDialer.DialContext(ctx, "ws://"+addr+"/v1/ws", http.Header{"Sec-WebSocket-Protocol": {wire.SubprotocolJSON}})
	if err != nil {
		s.err = err
		return
	}
	go func() { <-ctx.Done(); ws.Close() }()
	msg, _ := wire.EncodeRequest(wire.JSON, &wire.Request{Type: wire.TypeSubscribe, ID: 1, View: "todos"})
	ws.WriteMessage(websocket.TextMessage, msg)
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			if ctx.Err() == nil {
				s.mu.Lock()
				s.err = fmt.Errorf("subscription dropped: %w", err)
				s.mu.Unlock()
			}
			return
		}
		var m struct {
			Type  string            `json:"type"`
			Seq   uint64            `json:"seq"`
			State json.RawMessage   `json:"state"`
			Ops   []json.RawMessage `json:"ops"`
			Reset bool              `json:"reset"`
		}
		json.Unmarshal(data, &m)
		s.mu.Lock()
		switch m.Type {
		case "snapshot":
			if s.seq != 0 {
				s.err = fmt.Errorf("unexpected snapshot (reset %v) at seq %d", m.Reset, m.Seq)
			}
			s.state, err = statetree.FromJSON(m.State)
			s.seq = m.Seq
		case "patch":
			if m.Seq > s.seq {
				ops := make([]statetree.Op, len(m.Ops))
				for i, o := range m.Ops {
					if err := json.Unmarshal(o, &ops[i]); err != nil {
						s.err = err
					}
				}
				if s.state, err = statetree.Apply(s.state, ops); err != nil {
					s.err = fmt.Errorf("patch %d: %w", m.Seq, err)
				}
				s.seq = m.Seq
				s.patches = append(s.patches, patchRec{m.Seq, len(ops)})
			}
		case "progress":
			if m.Seq > s.seq {
				s.seq = m.Seq
			}
		}
		s.mu.Unlock()
	}
}

// TestHotSwapUnderLoad swaps the todos view to a version that changes
// results while a publisher writes, readers poll the state and a subscriber
// streams: no read fails, the subscription is not dropped, the swap reaches
// the subscriber as one patch and its final state equals the host's. Then
// if-identical refuses a changing version (saying where) and accepts an
// equivalent one, bad uploads are refused, rollback works and time travel
// answers.
func TestHotSwapUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real processes")
	}
	v1 := todosWasm(t)
	changed := reducerWasm(t, "v2changed")
	same := reducerWasm(t, "v2same")
	dir := t.TempDir()
	addr := freeAddr(t)
	p := startServe(t, dir, addr, "--plugin", "todos="+v1)
	_ = p

	var pseq atomic.Uint64
	publish := func(n int) {
		for range n {
			i := pseq.Add(1)
			typ, payload := "todo/add", fmt.Sprintf(`{"id":"t%d","text":"item %d"}`, i%300, i)
			if i%4 == 1 {
				typ, payload = "todo/toggle", fmt.Sprintf(`{"id":"t%d"}`, (i*7)%300)
			}
			postEvent(t, addr, "load", i, typ, payload)
		}
	}
	publish(400)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sub := &subscriber{}
	go sub.run(t, ctx, addr)

	var wg sync.WaitGroup
	var reads, failed atomic.Int64
	stop := make(chan struct{})
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := testHTTP.Get("http://" + addr + "/v1/views/todos/state")
				reads.Add(1)
				if err != nil || resp.StatusCode != 200 {
					failed.Add(1)
				}
				if resp != nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			publish(1)
		}
	}()

	rep, code := deployCLI(t, addr, changed, "always")
	if code != 0 || rep.Outcome != "swapped" || rep.Swap.Identical {
		t.Fatalf("deploy v2changed: exit %d %+v", code, rep)
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	publish(1)
	head := pseq.Load()
	body, seq := stateAt(t, addr, -1)
	for seq < head {
		time.Sleep(10 * time.Millisecond)
		body, seq = stateAt(t, addr, -1)
	}
	want, _ := statetree.FromJSON(body)
	deadline := time.Now().Add(10 * time.Second)
	for {
		sub.mu.Lock()
		s, err := sub.seq, sub.err
		sub.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		if s >= seq {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("subscriber at seq %d, host at %d", s, seq)
		}
		time.Sleep(10 * time.Millisecond)
	}
	sub.mu.Lock()
	if sub.state.Hash() != want.Hash() {
		t.Fatalf("subscriber's final state differs from the host's")
	}
	// The swap arrives as one patch: the first patch after the swap's seq
	// marks every todo with "v" at once.
	var swapPatch patchRec
	for _, pr := range sub.patches {
		if pr.seq > rep.Swap.Seq {
			swapPatch = pr
			break
		}
	}
	sub.mu.Unlock()
	if swapPatch.ops < 100 {
		t.Fatalf("the swap patch has %d ops; want one per todo (>100)", swapPatch.ops)
	}
	if failed.Load() != 0 || reads.Load() == 0 {
		t.Fatalf("%d of %d reads failed during the swap", failed.Load(), reads.Load())
	}
	t.Logf("swap: %d events replayed in %d ms, activate to swapped %d ms; %d reads, 0 failed; swap patch %d ops at seq %d",
		rep.Swap.Seq, rep.ReplayMS, rep.TotalMS, reads.Load(), swapPatch.ops, swapPatch.seq)

	// if-identical refuses a changing version (back to v1 differs from v2changed) and says where.
	rep, code = deployCLI(t, addr, v1, "if-identical")
	if code != 3 || rep.Outcome != "refused" || rep.Compare.FirstDiff == 0 || len(rep.Compare.Changes) == 0 {
		t.Fatalf("if-identical with a changing version: exit %d %+v", code, rep)
	}
	t.Logf("refused: first difference after seq %d (%s): %s %s -> %s", rep.Compare.FirstDiff, rep.Compare.FirstDiffType,
		rep.Compare.Changes[0].Path, rep.Compare.Changes[0].Old, rep.Compare.Changes[0].New)
	// Dry run says the same without swapping.
	out, _, code := run(t, "replay", "--addr", addr, "--view", "todos", "--dry-run", "--quiet", v1)
	if code != 3 || !strings.Contains(out, `"first_diff"`) {
		t.Fatalf("dry run: exit %d\n%s", code, out)
	}
	// Roll back to v1 (always), then an equivalent refactor is accepted by if-identical.
	out, errOut, code := run(t, "rollback", "--addr", addr, "--view", "todos", "--quiet")
	if code != 0 || !strings.Contains(out, `"swapped"`) {
		t.Fatalf("rollback: exit %d\n%s%s", code, out, errOut)
	}
	// No publisher runs now, yet the rollback reaches the subscriber: the
	// host records each swap as a "nodb/swap" event, which carries the patch.
	body, seq = stateAt(t, addr, -1)
	want, _ = statetree.FromJSON(body)
	for deadline := time.Now().Add(10 * time.Second); ; {
		sub.mu.Lock()
		same := sub.state.Hash() == want.Hash()
		s := sub.seq
		sub.mu.Unlock()
		if same {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the rollback the subscriber (seq %d) never received the swap's patch (host at seq %d)", s, seq)
		}
		time.Sleep(10 * time.Millisecond)
	}
	rep, code = deployCLI(t, addr, same, "if-identical")
	if code != 0 || rep.Outcome != "swapped" || !rep.Swap.Identical {
		t.Fatalf("if-identical with an equivalent version: exit %d %+v", code, rep)
	}

	// Bad uploads are refused with a reason; the store does not change.
	list0, _, _ := run(t, "plugins", "--addr", addr, "--json")
	for _, c := range []struct{ file, want string }{
		{"../../../plugins/testdata/noexports.wasm", "missing export"},
		{"../../../plugins/testdata/abiv2.wasm", "ABI version"},
		{"../../../plugins/testdata/initpanic.wasm", "_initialize"},
		{"../../../README.md", "not a WebAssembly module"},
	} {
		_, errOut, code := run(t, "deploy", "--addr", addr, "--name", "todos", "--quiet", c.file)
		if code == 0 || !strings.Contains(errOut, c.want) {
			t.Fatalf("deploy %s: exit %d, %q does not say %q", c.file, code, errOut, c.want)
		}
	}
	if list1, _, _ := run(t, "plugins", "--addr", addr, "--json"); list1 != list0 {
		t.Fatalf("bad uploads changed the store:\n%s\n%s", list0, list1)
	}

	// Time travel: the state at the head is the state; an early seq has fewer todos.
	now, seqNow := stateAt(t, addr, -1)
	at, _ := stateAt(t, addr, int64(seqNow))
	if !bytes.Equal(now, at) {
		t.Fatal("state?at=head differs from the state")
	}
	out, _, code = run(t, "state", "todos", "--addr", addr, "--at", "10")
	if code != 0 || strings.Count(out, `"text"`) > 10 {
		t.Fatalf("state --at 10: exit %d %s", code, out)
	}
}
