package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodb-dev/nodb/abi"
)

// completeSnapshot reports whether a snapshot file is whole: the magic and
// the body length of its header match the file (host/view/snapshot.go). It is
// a cheap check of what the host will accept, used to predict which snapshot
// a restart loads.
func completeSnapshot(path string) bool {
	b, err := os.ReadFile(path)
	if err != nil || len(b) < 96 || string(b[:8]) != "NODBSNAP" {
		return false
	}
	return binary.BigEndian.Uint64(b[84:]) == uint64(len(b)-96)
}

// newestCompleteSnapshot returns the seq of the newest complete snapshot of
// view in dataDir, or 0.
func newestCompleteSnapshot(t testing.TB, dataDir, view string) uint64 {
	t.Helper()
	snaps, _ := snapshotFiles(t, dataDir, view)
	for i := len(snaps) - 1; i >= 0; i-- {
		if completeSnapshot(filepath.Join(dataDir, "snapshots", view, fmt.Sprintf("%020d.snap", snaps[i]))) {
			return snaps[i]
		}
	}
	return 0
}

// producerNext returns the pseq after the last one the host stored for
// producer.
func producerNext(t testing.TB, addr, producer string) uint64 {
	t.Helper()
	resp, err := detHTTP.Get("http://" + addr + "/v1/producers/" + producer)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var info struct {
		LastPSeq uint64 `json:"last_pseq"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		t.Fatal(err)
	}
	return info.LastPSeq + 1
}

// TestSnapshotCrashReplay: a restart from a snapshot plus the tail gives the
// same root hash as a full replay of the same log, including after SIGKILLs
// that land while a snapshot is being written; leftover temp files and a
// truncated snapshot are ignored; and the live root hash before a graceful
// stop is the root hash after the restart.
func TestSnapshotCrashReplay(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test runs real processes")
	}
	start := time.Now()
	const view = "todos"
	args := []string{"--plugin", "todos=" + replayPlugin(t, "todos"), "--snapshot-every", strconv.Itoa(abi.EpochSize)}
	dir, addr := t.TempDir(), freeAddr(t)
	snapDir := filepath.Join(dir, "snapshots", view)
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 11))
	t.Logf("seed %d", seed)

	// How each crash is timed. "temp-file" kills as soon as a snapshot temp
	// file appears (a write in progress); "epoch-cross" kills 0-3 ms after
	// the view passes a multiple of abi.EpochSize, when the snapshot of that
	// boundary is being encoded or written; "live-snapshot" kills at a random
	// time after a snapshot was written while the view followed live
	// publishing (its batches then end anywhere, not on epoch boundaries as
	// in a catch-up, so the restart loads a snapshot cut from mid-batch);
	// "random" kills at a random time.
	strategies := []string{"temp-file", "epoch-cross", "live-snapshot", "temp-file", "random", "live-snapshot", "temp-file"}
	const plantRound = 3  // before this restart, plant a garbage temp file and a truncated snapshot
	const perRound = 3000 // events per producer and round: enough to pass two epoch boundaries
	// The producers stay below what the view applies, so it keeps up.
	producers := []*publisher{{producer: "snap-a", gen: todoEvent, rate: 4000}, {producer: "snap-b", gen: todoEvent, rate: 4000}, {producer: "snap-c", gen: todoEvent, rate: 4000}}

	var (
		replay      *proc  // full replay of a copy of the log taken after the last crash
		expectFrom  uint64 // the snapshot the next restart must load
		plantedSeq  uint64
		killsInTemp int // crashes that left a temp file behind
		restarts    []string
		knownTmps   = map[string]bool{}
	)
	startReplay := func() *proc {
		rdir := t.TempDir()
		copyLogDir(t, dir, rdir)
		return startServe(t, rdir, freeAddr(t), args...)
	}
	// checkRestart compares the restarted host with the full replay.
	checkRestart := func(srv *proc, round int) apiView {
		t.Helper()
		t0 := time.Now()
		from := startedFrom(t, srv, view)[view]
		got := waitViewsAtHead(t, srv, 0, view)[view]
		took := time.Since(t0)
		want := waitViewsAtHead(t, replay, got.Head, view)[view]
		checkNoRejections(t, fmt.Sprintf("round %d restart", round), map[string]apiView{view: got})
		checkNoRejections(t, fmt.Sprintf("round %d full replay", round), map[string]apiView{view: want})
		if from != expectFrom {
			t.Errorf("round %d: the view started from seq %d; the newest complete snapshot is at seq %d\n%s", round, from, expectFrom, srv.stderr)
		}
		if got.RootHash != want.RootHash {
			t.Errorf("round %d: BUG: snapshot %d + tail replay to seq %d gives root %s; a full replay of the same log gives %s",
				round, from, got.Head, got.RootHash, want.RootHash)
			a, _ := viewStateJSON(t, srv.addr, view)
			b, _ := viewStateJSON(t, replay.addr, view)
			t.Errorf("round %d: states: %s", round, firstDiff(b, a))
		}
		if err := replay.term(); err != nil {
			t.Errorf("stopping the replay host: %v", err)
		}
		restarts = append(restarts, fmt.Sprintf("%d:snap%d+%d", got.Head, from, got.Head-from))
		verdict := "matches the full replay"
		if got.RootHash != want.RootHash {
			verdict = "DIFFERS from the full replay " + want.RootHash[:16]
		}
		t.Logf("round %d: restarted from snapshot %d, replayed %d events to head %d (epoch %d) in %v; root %s %s",
			round, from, got.Head-from, got.Head, abi.Epoch(got.Head), took.Round(time.Millisecond), got.RootHash[:16], verdict)
		return got
	}

	for round := 0; ; round++ {
		if round == plantRound {
			// A garbage temp file and a truncated copy of the newest snapshot
			// under a newer seq: the restart must skip both.
			if err := os.MkdirAll(snapDir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(snapDir, ".tmp-planted"), []byte("NODBSNAP garbage"), 0o644); err != nil {
				t.Fatal(err)
			}
			knownTmps[".tmp-planted"] = true
			if expectFrom > 0 {
				b, err := os.ReadFile(filepath.Join(snapDir, fmt.Sprintf("%020d.snap", expectFrom)))
				if err != nil {
					t.Fatal(err)
				}
				plantedSeq = expectFrom + abi.EpochSize
				planted := filepath.Join(snapDir, fmt.Sprintf("%020d.snap", plantedSeq))
				if _, err := os.Stat(planted); err == nil {
					plantedSeq += abi.EpochSize // that one exists (the newest is torn); plant beyond it
					planted = filepath.Join(snapDir, fmt.Sprintf("%020d.snap", plantedSeq))
				}
				if err := os.WriteFile(planted, b[:len(b)/2], 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		srv := startServe(t, dir, addr, args...)
		if round > 0 {
			checkRestart(srv, round)
			if round == plantRound && plantedSeq > 0 && !strings.Contains(srv.stderr.String(), fmt.Sprintf("%020d.snap", plantedSeq)) {
				t.Errorf("the truncated snapshot %d was not reported as skipped\n%s", plantedSeq, srv.stderr)
			}
		}
		if round == len(strategies) {
			// The last round stops gracefully and checks the live hash.
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			for _, p := range producers {
				from := producerNext(t, addr, p.producer)
				wg.Add(1)
				go func() { defer wg.Done(); p.run(ctx, addr, from, 0, true) }()
			}
			time.Sleep(300 * time.Millisecond)
			cancel()
			wg.Wait()
			for _, p := range producers {
				if p.err != nil {
					t.Fatal(p.err)
				}
			}
			live := waitViewsAtHead(t, srv, 0, view)[view]
			checkNoRejections(t, "live host", map[string]apiView{view: live})
			liveState, _ := viewStateJSON(t, addr, view)
			if err := srv.term(); err != nil {
				t.Fatalf("graceful stop: %v\n%s", err, srv.stderr)
			}
			replay = startReplay()
			expectFrom = newestCompleteSnapshot(t, dir, view)
			srv = startServe(t, dir, addr, args...)
			after := checkRestart(srv, round+1)
			if after.Head != live.Head || after.RootHash != live.RootHash {
				t.Errorf("BUG: live root %s at seq %d before a graceful stop; after the restart root %s at seq %d",
					live.RootHash, live.Head, after.RootHash, after.Head)
			}
			if st, _ := viewStateJSON(t, addr, view); string(st) != string(liveState) {
				t.Errorf("state after the graceful restart differs from the live state: %s", firstDiff(liveState, st))
			}
			if after.SnapshotSeq == 0 {
				t.Errorf("the final restart reports snapshot_seq 0: no snapshot was used")
			}
			if err := srv.term(); err != nil {
				t.Fatalf("graceful stop: %v\n%s", err, srv.stderr)
			}
			break
		}

		// Publish until the crash.
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for _, p := range producers {
			from := producerNext(t, addr, p.producer)
			wg.Add(1)
			// At most perRound events each, so a slow (loaded) machine does
			// not let the log, and the replays, grow without bound.
			go func() { defer wg.Done(); p.run(ctx, addr, from, perRound, false) }()
		}
		strategy := strategies[round]
		before := getViews(t, addr)[view]
		var how string
		switch strategy {
		case "temp-file":
			deadline := time.Now().Add(5 * time.Second)
			how = "no temp file seen within 5s"
		poll:
			for time.Now().Before(deadline) {
				_, tmps := snapshotFiles(t, dir, view)
				for _, n := range tmps {
					if !knownTmps[n] {
						srv.kill()
						how = "with " + n + " present"
						break poll
					}
				}
				time.Sleep(200 * time.Microsecond)
			}
		case "epoch-cross":
			target := (before.Seq/abi.EpochSize + 1) * abi.EpochSize
			deadline := time.Now().Add(5 * time.Second)
			how = fmt.Sprintf("seq did not reach %d within 5s", target)
			for time.Now().Before(deadline) {
				if v := getViews(t, addr)[view]; v.Seq >= target {
					d := time.Duration(rng.IntN(3000)) * time.Microsecond
					time.Sleep(d)
					srv.kill()
					how = fmt.Sprintf("%v after the view reached seq %d ≥ %d", d, v.Seq, target)
					break
				}
				time.Sleep(500 * time.Microsecond)
			}
		case "live-snapshot":
			target := (before.Head/abi.EpochSize + 1) * abi.EpochSize
			deadline := time.Now().Add(10 * time.Second)
			how = fmt.Sprintf("no snapshot at seq ≥ %d within 10s", target)
			for time.Now().Before(deadline) {
				if v := getViews(t, addr)[view]; v.SnapshotSeq >= target {
					d := time.Duration(rng.IntN(300)) * time.Millisecond
					time.Sleep(d)
					how = fmt.Sprintf("%v after the live snapshot %d was written", d, v.SnapshotSeq)
					break
				}
				time.Sleep(2 * time.Millisecond)
			}
		case "random":
			d := time.Duration(50+rng.IntN(600)) * time.Millisecond
			time.Sleep(d)
			how = fmt.Sprintf("after %v", d)
		}
		srv.kill()
		cancel()
		wg.Wait()
		for _, p := range producers {
			if p.err != nil {
				t.Fatal(p.err)
			}
		}
		snaps, tmps := snapshotFiles(t, dir, view)
		var newTmps []string
		for _, n := range tmps {
			if !knownTmps[n] {
				newTmps = append(newTmps, n)
				knownTmps[n] = true
			}
		}
		if len(newTmps) > 0 {
			killsInTemp++
		}
		t.Logf("round %d: SIGKILL (%s) %s; the view was at seq %d with snapshot %d when publishing resumed; snapshots now %v, new temp files %v",
			round, strategy, how, before.Seq, before.SnapshotSeq, snaps, newTmps)
		replay = startReplay()
		expectFrom = newestCompleteSnapshot(t, dir, view)
	}

	// The temp files of interrupted writes stay on disk (nothing removes them),
	// and were ignored by every restart.
	_, tmps := snapshotFiles(t, dir, view)
	t.Logf("%d crashes, %d of them during a snapshot write (temp file left behind); %d temp files on disk at the end", len(strategies), killsInTemp, len(tmps))
	t.Logf("restarts (head:snapshot+tail): %s", strings.Join(restarts, " "))
	var queued uint64
	for _, p := range producers {
		queued += p.queued
	}
	snaps, _ := snapshotFiles(t, dir, view)
	t.Logf("%d events queued by producers over the run, final snapshots %v; total %v", queued, snaps, time.Since(start).Round(time.Millisecond))
	if killsInTemp == 0 {
		t.Errorf("no crash landed while a snapshot temp file existed: the test did not exercise a SIGKILL during a snapshot write")
	}
	if !slices.ContainsFunc(restarts, func(s string) bool { return !strings.Contains(s, ":snap0+") }) {
		t.Errorf("no restart loaded a snapshot: the test did not exercise snapshot + tail")
	}
}
