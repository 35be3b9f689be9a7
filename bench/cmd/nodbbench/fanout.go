package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	client "github.com/nodb-dev/nodb/sdk/client/go"
)

// fanout: N subscribers follow one view over loopback while one producer
// publishes at a fixed rate; the latency from publish to patch received is
// measured over every (subscriber, event) pair. The baseline, run in the
// same process, is bench/cmd/broadcastfloor: a bare gorilla server relaying
// the same-size messages to the same number of connections (the cost floor).

func init() {
	register("fanout", "publish-to-patch latency at 100, 1000, 5000 subscribers vs a bare gorilla broadcast", runFanout)
}

type fanoutTarget struct {
	name      string
	subURL    string
	subscribe bool // send a subscribe message (nodb) or just listen (floor)
	publish   func(ctx context.Context, i int) error
	seqOf     func(i int) (uint64, bool) // event i -> seq its patch carries
	close     func()
}

type recv struct {
	seq uint64
	at  time.Time
}

func runFanout(ctx context.Context, env *Env) (Results, error) {
	levels := []int{100, 1000, 5000}
	dur, rate := 5*time.Second, 100
	if env.Quick {
		levels, dur = []int{100, 1000}, 2*time.Second
	}
	res := Results{}
	if _, err := todosWasm(ctx, env); err != nil {
		return nil, err
	}
	wasm := filepath.Join(env.Root, "examples", "todos", "todos.wasm")
	type row struct {
		n                     int
		p50, p99, bp50, bp99  float64
		delivered, bdelivered float64
	}
	var rows []row
	for _, n := range levels {
		nt, err := startNodbFanout(ctx, env, wasm)
		if err != nil {
			return nil, err
		}
		p50, p99, del, err := fanoutRun(ctx, env, nt, n, dur, rate)
		nt.close()
		if err != nil {
			return nil, err
		}
		ft, err := startFloorFanout(ctx, env)
		if err != nil {
			return nil, err
		}
		bp50, bp99, bdel, err := fanoutRun(ctx, env, ft, n, dur, rate)
		ft.close()
		if err != nil {
			return nil, err
		}
		pre := fmt.Sprintf("fanout.n%d.", n)
		res[pre+"p50_ms"], res[pre+"p99_ms"] = p50, p99
		res[pre+"baseline_p50_ms"], res[pre+"baseline_p99_ms"] = bp50, bp99
		res[pre+"delivered_fraction"] = del
		if bp99 > 0 {
			res[pre+"p99_over_baseline"] = p99 / bp99
		}
		rows = append(rows, row{n, p50, p99, bp50, bp99, del, bdel})
		env.Logf("fanout n=%d: nodb p50 %.2f ms p99 %.2f ms (delivered %.4f); floor p50 %.2f ms p99 %.2f ms", n, p50, p99, del, bp50, bp99)
	}
	fmt.Printf("fanout: one view, %d events/s for %v, latency publish -> patch received over every (subscriber, event)\n\n", rate, dur)
	fmt.Printf("%8s %10s %10s %12s %12s %10s %10s\n", "subs", "p50 ms", "p99 ms", "floor p50", "floor p99", "p99/floor", "delivered")
	for _, r := range rows {
		ratio := 0.0
		if r.bp99 > 0 {
			ratio = r.p99 / r.bp99
		}
		fmt.Printf("%8d %10.2f %10.2f %12.2f %12.2f %9.2fx %10.4f\n", r.n, r.p50, r.p99, r.bp50, r.bp99, ratio, r.delivered)
	}
	if r, ok := res["fanout.n1000.p99_ms"]; ok {
		verdict := "MET"
		if r > 50 || res["fanout.n1000.p99_over_baseline"] > 1.5 {
			verdict = "NOT MET"
		}
		fmt.Printf("\ntarget p99 <= 50 ms at 1000 subscribers and within 1.5x of the floor: %s\n", verdict)
	}
	return res, nil
}

func startNodbFanout(ctx context.Context, env *Env, wasm string) (*fanoutTarget, error) {
	srv, err := env.startNodb(ctx, "--plugin", "todos="+wasm)
	if err != nil {
		return nil, err
	}
	c, err := client.Dial(ctx, srv.URL(), client.WithProducer(producerName(0)))
	if err != nil {
		srv.Stop()
		return nil, err
	}
	// A few todos to toggle.
	for i := 0; i < 16; i++ {
		if _, err := c.Publish(ctx, "todo/add", map[string]any{"id": fmt.Sprintf("t%02d", i), "text": "fan-out benchmark item"}); err != nil {
			return nil, err
		}
	}
	var mu sync.Mutex
	seqs := map[int]uint64{}
	t := &fanoutTarget{name: "nodb", subURL: srv.URL(), subscribe: true}
	t.publish = func(ctx context.Context, i int) error {
		f := c.PublishAsync(ctx, "todo/toggle", map[string]any{"id": fmt.Sprintf("t%02d", i%16)})
		go func() {
			if a, err := f.Wait(ctx); err == nil {
				mu.Lock()
				seqs[i] = a.Seq
				mu.Unlock()
			}
		}()
		return nil
	}
	t.seqOf = func(i int) (uint64, bool) { mu.Lock(); defer mu.Unlock(); s, ok := seqs[i]; return s, ok }
	t.close = func() { c.Close(); srv.Stop() }
	return t, nil
}

func startFloorFanout(ctx context.Context, env *Env) (*fanoutTarget, error) {
	bin := filepath.Join(env.TmpDir, "broadcastfloor")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "./bench/cmd/broadcastfloor").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building broadcastfloor: %v\n%s", err, out)
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-addr", addr)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop := func() { cmd.Process.Kill(); cmd.Wait() }
	for deadline := time.Now().Add(20 * time.Second); ; {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			stop()
			return nil, errors.New("broadcastfloor did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	pub, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/publish", nil)
	if err != nil {
		stop()
		return nil, err
	}
	var wmu sync.Mutex
	t := &fanoutTarget{name: "floor", subURL: "ws://" + addr + "/v1/ws"}
	t.publish = func(ctx context.Context, i int) error {
		// The same shape and size as nodb's patch for a toggle.
		msg := fmt.Sprintf(`{"type":"patch","view":"todos","seq":%d,"ops":[{"op":"replace","path":"/todos/t%02d/done","value":true}]}`, i+1, i%16)
		wmu.Lock()
		defer wmu.Unlock()
		return pub.WriteMessage(websocket.TextMessage, []byte(msg))
	}
	t.seqOf = func(i int) (uint64, bool) { return uint64(i + 1), true }
	t.close = func() { pub.Close(); stop() }
	return t, nil
}

var (
	patchType = []byte(`"type":"patch"`)
	seqKey    = []byte(`"seq":`)
)

func parseSeq(data []byte) (uint64, bool) {
	if !bytes.Contains(data[:min(len(data), 32)], patchType) {
		return 0, false
	}
	i := bytes.Index(data, seqKey)
	if i < 0 {
		return 0, false
	}
	var s uint64
	for j := i + len(seqKey); j < len(data) && data[j] >= '0' && data[j] <= '9'; j++ {
		s = s*10 + uint64(data[j]-'0')
	}
	return s, true
}

// fanoutRun connects n subscribers, publishes rate events/s for dur and
// returns the p50 and p99 latency in ms and the fraction of patches received.
func fanoutRun(ctx context.Context, env *Env, t *fanoutTarget, n int, dur time.Duration, rate int) (p50, p99, delivered float64, err error) {
	conns := make([]*websocket.Conn, n)
	recvs := make([][]recv, n)
	ready := make(chan error, n)
	sem := make(chan struct{}, 64)
	d := websocket.Dialer{Subprotocols: []string{"nodb.v1.json"}, HandshakeTimeout: 30 * time.Second}
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		sem <- struct{}{}
		ws, _, err := d.DialContext(ctx, t.subURL, nil)
		<-sem
		if err != nil {
			for _, c := range conns[:i] {
				c.Close()
			}
			return 0, 0, 0, fmt.Errorf("%s: subscriber %d: %w", t.name, i, err)
		}
		conns[i] = ws
		if t.subscribe {
			ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","id":1,"view":"todos"}`))
		}
		recvs[i] = make([]recv, 0, int(dur.Seconds())*rate+64)
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			gotSnap := !t.subscribe
			if gotSnap {
				ready <- nil
			}
			for {
				_, data, err := conns[i].ReadMessage()
				if err != nil {
					if !gotSnap {
						ready <- err
					}
					return
				}
				if !gotSnap && bytes.Contains(data[:min(len(data), 40)], []byte(`"type":"snapshot"`)) {
					gotSnap = true
					ready <- nil
					continue
				}
				if s, ok := parseSeq(data); ok {
					recvs[i] = append(recvs[i], recv{s, time.Now()})
				}
			}
		}(i)
	}
	for i := 0; i < n; i++ {
		if err := <-ready; err != nil {
			return 0, 0, 0, fmt.Errorf("%s: subscriber never got its snapshot: %w", t.name, err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	events := int(dur.Seconds() * float64(rate))
	sent := make([]time.Time, events)
	tick := time.NewTicker(time.Second / time.Duration(rate))
	for i := 0; i < events; i++ {
		<-tick.C
		sent[i] = time.Now()
		if err := t.publish(ctx, i); err != nil {
			tick.Stop()
			return 0, 0, 0, err
		}
	}
	tick.Stop()
	time.Sleep(time.Second)
	for _, c := range conns {
		c.Close()
	}
	wg.Wait()
	bySeq := map[uint64]int{}
	for i := 0; i < events; i++ {
		if s, ok := t.seqOf(i); ok {
			bySeq[s] = i
		}
	}
	var lat []float64
	for _, rs := range recvs {
		for _, r := range rs {
			if i, ok := bySeq[r.seq]; ok {
				lat = append(lat, float64(r.at.Sub(sent[i]))/1e6)
			}
		}
	}
	if len(lat) == 0 {
		return 0, 0, 0, fmt.Errorf("%s: no patch received", t.name)
	}
	sort.Float64s(lat)
	return lat[len(lat)/2], lat[len(lat)*99/100], float64(len(lat)) / float64(events*n), nil
}
