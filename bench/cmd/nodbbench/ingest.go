package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

// The ingest benchmark: producers over loopback publishing ~200-byte JSON
// events and waiting for durable acks, at several concurrency levels, against
// nodb and baselines (NATS JetStream with and without sync-always, and
// PostgreSQL with synchronous commit).

var (
	ingestLevels  = flag.String("ingest.levels", "1,16,256", "ingest: concurrent producers per point")
	ingestSystems = flag.String("ingest.systems", "", "ingest: systems to run (empty: all): "+strings.Join(ingestSystemNames(), ","))
	ingestDur     = flag.Duration("ingest.duration", 5*time.Second, "ingest: measured time per point (-quick: 1s)")
	ingestWarmup  = flag.Duration("ingest.warmup", time.Second, "ingest: warmup per point (-quick: 300ms)")
	ingestWindow  = flag.Int("ingest.window", 16, "ingest: events in flight per producer for the pipelined variants (0: skip them)")
)

func init() {
	register("ingest", "producers publishing ~200-byte JSON events and waiting for durable acks (nodb vs JetStream vs PostgreSQL)", runIngest)
}

// ingestSystem is one system under test.
type ingestSystem struct {
	key   string // results key part, e.g. "jetstream_sync"
	label string
	// pipelined: the system also runs with -ingest.window events in flight
	// per producer, under key+"_w<window>".
	pipelined bool
	note      string
	start     func(ctx context.Context, env *Env) (ingestTarget, error)
}

// errSkip means a system is not available here; the run goes on without it.
var errSkip = errors.New("skipped")

// ingestTarget is a running system.
type ingestTarget interface {
	// newProducer opens producer i: its own connection and producer id.
	newProducer(ctx context.Context, i int) (ingestProducer, error)
	// serverPid is the server's process id for CPU accounting, 0 when the
	// server runs inside this process.
	serverPid() int
	close()
}

// ingestProducer publishes events, one connection each.
type ingestProducer interface {
	// publish sends one event and waits for its durable ack.
	publish(ctx context.Context) error
	// publishAsync sends one event; wait blocks until its ack. Producers
	// that cannot pipeline return nil.
	publishAsync(ctx context.Context) (wait func() error)
	close()
}

var ingestSystemList = []*ingestSystem{
	{key: "floor", label: "floor: bare WebSocket acks", pipelined: true, start: startFloorIngest,
		note: "bench/cmd/ackfloor: gorilla echo of acks, no decoding, storage or fsync (the cost of the round trips alone)"},
	{key: "nodb", label: "nodb", pipelined: true, start: startNodbIngest,
		note: "nodb serve (child process, fdatasync group commit); Go SDK client, one connection + producer id per producer"},
	{key: "jetstream_sync", label: "JetStream sync_always", pipelined: true, start: startJetStreamIngest(true),
		note: "nats-server in-process, file store, sync_interval always; js.Publish with Nats-Msg-Id, one connection per producer"},
	{key: "jetstream_default", label: "JetStream default sync", start: startJetStreamIngest(false),
		note: "as above with the default sync interval (2 min): acks are NOT durable, for reference"},
	{key: "postgres", label: "PostgreSQL sync commit", start: startPostgresIngest,
		note: "own cluster, fsync on, synchronous_commit on; single-row INSERT ... RETURNING seq, unique(producer,pseq), one connection per producer"},
}

var producerCount atomic.Uint64

// producerName returns a producer id never used before in this run, so no
// point re-sends another point's (producer, pseq) and gets deduplicated.
func producerName(i int) string {
	return fmt.Sprintf("bench-%d-%d", i, producerCount.Add(1))
}

func ingestSystemNames() []string {
	var n []string
	for _, s := range ingestSystemList {
		n = append(n, s.key)
	}
	return n
}

// ingestPayload is a ~200-byte JSON event body, pre-encoded per producer.
func ingestPayload(producer int) []byte {
	p := fmt.Sprintf(`{"user":"u-%06d","action":"add_to_cart","item":{"sku":"SKU-%08d","qty":1,"price_cents":1999},"session":"s-%012d","ua":"nodbbench/1","pad":"`, producer, producer*7919, producer*104729)
	for len(p) < 198 {
		p += "x"
	}
	return []byte(p + `"}`)
}

// ingestPoint is the outcome of one concurrency level.
type ingestPoint struct {
	conc      int
	window    int
	ackedPerS float64
	p50, p99  time.Duration
	genCPU    float64 // percent of one core used by this process
	serverCPU float64 // percent of one core used by the server, -1 unknown
	errors    int64
}

func runIngest(ctx context.Context, env *Env) (Results, error) {
	dur, warm := *ingestDur, *ingestWarmup
	if env.Quick {
		dur, warm = time.Second, 300*time.Millisecond
	}
	var levels []int
	for _, s := range strings.Split(*ingestLevels, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-ingest.levels: bad level %q", s)
		}
		levels = append(levels, n)
	}
	want := map[string]bool{}
	for _, s := range strings.Split(*ingestSystems, ",") {
		if s = strings.TrimSpace(s); s != "" {
			want[s] = true
		}
	}
	for k := range want {
		if !strings.Contains(","+strings.Join(ingestSystemNames(), ",")+",", ","+k+",") {
			return nil, fmt.Errorf("-ingest.systems: unknown system %q", k)
		}
	}
	env.Logf("ingest: %s measured per point after %s warmup; levels %v; GOMAXPROCS %d, %d CPUs", dur, warm, levels, runtime.GOMAXPROCS(0), runtime.NumCPU())

	type row struct {
		key, label string
		points     []ingestPoint
	}
	var rows []row
	var notes []string
	res := Results{}
	var errs []error
	for _, sys := range ingestSystemList {
		if len(want) > 0 && !want[sys.key] {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		env.Logf("ingest: starting %s", sys.label)
		target, err := sys.start(ctx, env)
		if errors.Is(err, errSkip) {
			notes = append(notes, fmt.Sprintf("%s: %v", sys.key, err))
			env.Logf("ingest: %s: %v", sys.key, err)
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", sys.key, err))
			continue
		}
		notes = append(notes, sys.key+": "+sys.note)
		windows := []int{1}
		if sys.pipelined && *ingestWindow > 1 {
			windows = append(windows, *ingestWindow)
		}
		for _, w := range windows {
			r := row{key: sys.key, label: sys.label}
			if w > 1 {
				r.key = fmt.Sprintf("%s_w%d", sys.key, w)
				r.label = fmt.Sprintf("%s (window %d)", sys.label, w)
			}
			for _, c := range levels {
				if ctx.Err() != nil {
					break
				}
				p, err := ingestRun(ctx, target, c, w, warm, dur)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s c%d: %w", r.key, c, err))
					break
				}
				env.Logf("ingest: %-28s c%-4d %9.0f acked/s  p50 %7.3f ms  p99 %7.3f ms  gen cpu %3.0f%%  server cpu %s",
					r.label, c, p.ackedPerS, ms(p.p50), ms(p.p99), p.genCPU, cpuText(p.serverCPU))
				r.points = append(r.points, p)
				pre := fmt.Sprintf("ingest.%s.c%d.", r.key, c)
				res[pre+"acked_per_s"] = p.ackedPerS
				res[pre+"p50_ms"] = ms(p.p50)
				res[pre+"p99_ms"] = ms(p.p99)
				res[pre+"gen_cpu_pct"] = p.genCPU
				if p.serverCPU >= 0 {
					res[pre+"server_cpu_pct"] = p.serverCPU
				}
			}
			rows = append(rows, r)
		}
		target.close()
	}

	// Ratios from this run only: numbers from different runs on a shared
	// machine do not compare.
	for _, base := range []string{"floor", "jetstream_sync", "jetstream_default", "postgres"} {
		for _, c := range levels {
			n, ok1 := res[fmt.Sprintf("ingest.nodb.c%d.acked_per_s", c)]
			b, ok2 := res[fmt.Sprintf("ingest.%s.c%d.acked_per_s", base, c)]
			if ok1 && ok2 && b > 0 {
				res[fmt.Sprintf("ingest.ratio.nodb_over_%s.c%d", base, c)] = n / b
			}
		}
	}

	// The table: rows = systems, columns = acked/s and p99 per level.
	fmt.Printf("\ningest: durably acked events/s and p99 ack latency; ~200-byte JSON events over loopback;\n")
	fmt.Printf("each producer has its own connection and producer id and keeps exactly ONE event in flight\n")
	fmt.Printf("(rows marked \"window N\" are pipelined: N events in flight per producer); %s per point after %s warmup\n\n", dur, warm)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	hdr := "system\t"
	for _, c := range levels {
		hdr += fmt.Sprintf("c%d acked/s\tc%d p99 ms\t", c, c)
	}
	hdr += "gen cpu*\tserver cpu*\t"
	fmt.Fprintln(tw, hdr)
	for _, r := range rows {
		line := r.label + "\t"
		for i := range levels {
			if i < len(r.points) {
				line += fmt.Sprintf("%.0f\t%.2f\t", r.points[i].ackedPerS, ms(r.points[i].p99))
			} else {
				line += "-\t-\t"
			}
		}
		if n := len(r.points); n > 0 {
			last := r.points[n-1]
			line += fmt.Sprintf("%.0f%%\t%s\t", last.genCPU, cpuText(last.serverCPU))
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
	fmt.Printf("* CPU at the highest level, %% of one core (the machine has %d): gen = this process (load generator;\n", runtime.NumCPU())
	fmt.Printf("  for JetStream it includes the in-process server), server = the server process tree\n")
	top := levels[len(levels)-1]
	fmt.Println()
	for _, base := range []string{"floor", "jetstream_sync", "jetstream_default", "postgres"} {
		if v, ok := res[fmt.Sprintf("ingest.ratio.nodb_over_%s.c%d", base, top)]; ok {
			fmt.Printf("ratio nodb / %-18s at c%d: %.2fx acked/s\n", base, top, v)
		}
	}
	if v, ok := res["ingest.nodb.c256.acked_per_s"]; ok {
		p99 := res["ingest.nodb.c256.p99_ms"]
		verdict := "MET"
		if v < 100000 || p99 > 10 {
			verdict = "NOT MET"
		}
		fmt.Printf("target nodb >= 100000 acked/s at c256 with p99 <= 10 ms: %s (%.0f acked/s, p99 %.2f ms)\n", verdict, v, p99)
	}
	fmt.Println()
	for _, n := range notes {
		fmt.Println("  " + n)
	}
	return res, errors.Join(errs...)
}

type errBox struct{ err error }

func cpuText(v float64) string {
	if v < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f%%", v)
}

// ingestRun measures one point: conc producers, each with window events in
// flight (1 = strictly one at a time), warm then dur.
func ingestRun(ctx context.Context, target ingestTarget, conc, window int, warm, dur time.Duration) (ingestPoint, error) {
	pt := ingestPoint{conc: conc, window: window, serverCPU: -1}
	prods := make([]ingestProducer, conc)
	defer func() {
		var wg sync.WaitGroup
		for _, p := range prods {
			if p != nil {
				wg.Add(1)
				go func() { defer wg.Done(); p.close() }()
			}
		}
		wg.Wait()
	}()
	// Open connections a few at a time.
	{
		var wg sync.WaitGroup
		var mu sync.Mutex
		var firstErr error
		sem := make(chan struct{}, 16)
		for i := range prods {
			wg.Add(1)
			sem <- struct{}{}
			go func(i int) {
				defer wg.Done()
				defer func() { <-sem }()
				p, err := target.newProducer(ctx, i)
				mu.Lock()
				defer mu.Unlock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				prods[i] = p
			}(i)
		}
		wg.Wait()
		if firstErr != nil {
			return pt, firstErr
		}
	}

	// phase: 0 warmup, 1 measuring, 2 stop.
	var phase atomic.Int32
	hists := make([]*hist, conc)
	counts := make([]int64, conc)
	var errCount atomic.Int64
	var lastErr atomic.Value
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for i, p := range prods {
		h := new(hist)
		hists[i] = h
		wg.Add(1)
		go func(i int, p ingestProducer) {
			defer wg.Done()
			var n int64
			fail := func(err error) bool {
				if runCtx.Err() != nil {
					return true
				}
				errCount.Add(1)
				lastErr.Store(errBox{err})
				return errCount.Load() > 100
			}
			if window <= 1 {
				for phase.Load() < 2 {
					t0 := time.Now()
					if err := p.publish(runCtx); err != nil {
						if fail(err) {
							break
						}
						continue
					}
					if phase.Load() == 1 {
						h.record(time.Since(t0))
						n++
					}
				}
			} else {
				type inflight struct {
					t0   time.Time
					wait func() error
				}
				ring := make([]inflight, window)
				head, size := 0, 0
				for {
					if phase.Load() < 2 && size < window {
						t0 := time.Now()
						wait := p.publishAsync(runCtx)
						ring[(head+size)%window] = inflight{t0, wait}
						size++
						continue
					}
					if size == 0 {
						break
					}
					f := ring[head]
					ring[head] = inflight{}
					head = (head + 1) % window
					size--
					if err := f.wait(); err != nil {
						if fail(err) {
							phase.Store(2)
						}
						continue
					}
					if phase.Load() == 1 {
						h.record(time.Since(f.t0))
						n++
					}
				}
			}
			counts[i] = n
		}(i, p)
	}
	select {
	case <-time.After(warm):
	case <-ctx.Done():
	}
	spid := target.serverPid()
	var sBefore map[int]time.Duration
	if spid > 0 {
		sBefore = procTreeCPU(spid)
	}
	cBefore := cpuSelf()
	start := time.Now()
	phase.Store(1)
	select {
	case <-time.After(dur):
	case <-ctx.Done():
	}
	phase.Store(2)
	elapsed := time.Since(start)
	cAfter := cpuSelf()
	if spid > 0 {
		sAfter := procTreeCPU(spid)
		pt.serverCPU = 100 * float64(cpuDelta(sBefore, sAfter)) / float64(elapsed)
	}
	// Let the producers finish the events in flight, briefly: a slow system
	// with thousands in flight would take long, and they no longer count.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		cancel()
		<-done
	}
	total := new(hist)
	var n int64
	for i := range prods {
		total.merge(hists[i])
		n += counts[i]
	}
	pt.ackedPerS = float64(n) / elapsed.Seconds()
	pt.p50, pt.p99 = total.quantile(0.50), total.quantile(0.99)
	pt.genCPU = 100 * float64(cAfter-cBefore) / float64(elapsed)
	pt.errors = errCount.Load()
	if pt.errors > 0 {
		return pt, fmt.Errorf("%d publishes failed; last: %v", pt.errors, lastErr.Load().(errBox).err)
	}
	if ctx.Err() != nil {
		return pt, ctx.Err()
	}
	return pt, nil
}
