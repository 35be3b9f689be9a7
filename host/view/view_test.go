package view

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodb-dev/nodb/abi"
	"github.com/nodb-dev/nodb/host/eventlog"
	"github.com/nodb-dev/nodb/host/eventlog/memlog"
	"github.com/nodb-dev/nodb/host/statetree"
)

// todoReducer is a native reducer over the state tree (the todos example's
// logic), with an optional failure at one seq.
type todoReducer struct {
	failAt   uint64
	rejectAt uint64
}

func (r *todoReducer) Consumes(t string) bool { return len(t) > 5 && t[:5] == "todo/" }
func (r *todoReducer) Hash() string           { return "native-todos-v1" }
func (r *todoReducer) Close() error           { return nil }
func (r *todoReducer) Reduce(ctx context.Context, rec *eventlog.Record, tx *statetree.Tx) error {
	if rec.Seq == r.failAt {
		return errors.New("boom")
	}
	if rec.Seq == r.rejectAt {
		tx.Set(statetree.MustPath("/rejected"), statetree.Bool(true)) // must be discarded
		return fmt.Errorf("%w: no such thing", ErrRejected)
	}
	var p struct {
		ID   string `json:"id"`
		Text string `json:"text"`
	}
	json.Unmarshal(rec.Payload, &p)
	path := statetree.MustPath("/todos").Child(p.ID)
	switch rec.Type {
	case "todo/add":
		item, _ := statetree.Map(map[string]statetree.Value{"text": statetree.String(p.Text), "done": statetree.Bool(false)})
		return tx.Set(path, item)
	case "todo/toggle":
		cur, ok := tx.Get(path.Child("done"))
		if !ok {
			return nil
		}
		return tx.Set(path.Child("done"), statetree.Bool(!cur.Bool()))
	case "todo/delete":
		return tx.Delete(path)
	}
	return nil
}

func fill(t testing.TB, l eventlog.Log, from, n int) {
	t.Helper()
	recs := make([]eventlog.Record, 0, n)
	for i := from; i < from+n; i++ {
		typ, payload := "todo/add", fmt.Sprintf(`{"id":"t%d","text":"item %d"}`, i%500, i)
		switch i % 5 {
		case 1:
			typ, payload = "todo/toggle", fmt.Sprintf(`{"id":"t%d"}`, (i*7)%500)
		case 2:
			typ = "other/thing"
		case 3:
			typ, payload = "todo/delete", fmt.Sprintf(`{"id":"t%d"}`, (i*13)%500)
		}
		recs = append(recs, eventlog.Record{Seq: uint64(i), Producer: "p", PSeq: uint64(i), Time: int64(i), Type: typ, Payload: []byte(payload)})
	}
	if err := l.Append(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
}

func runView(t *testing.T, cfg Config) (*View, context.CancelFunc, chan error) {
	t.Helper()
	v, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- v.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return v, cancel, done
}

func waitSeq(t *testing.T, v *View, seq uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := v.WaitFor(ctx, seq); err != nil {
		t.Fatal(err)
	}
}

func TestSnapshotPlusTailEqualsFullReplay(t *testing.T) {
	l := memlog.New()
	n := 3*abi.EpochSize + 777
	fill(t, l, 1, n)
	dir := t.TempDir()
	v1, cancel, done := runView(t, Config{Name: "todos", Reducer: &todoReducer{}, Log: l, SnapshotDir: dir})
	waitSeq(t, v1, uint64(n))
	seq, err := v1.Snapshot()
	if err != nil || seq != 3*abi.EpochSize {
		t.Fatalf("snapshot at %d: %v; want the last epoch boundary %d", seq, err, 3*abi.EpochSize)
	}
	live, _ := v1.State()
	cancel()
	<-done

	// A restart loads the snapshot and replays the tail.
	v2, _, _ := runView(t, Config{Name: "todos", Reducer: &todoReducer{}, Log: l, SnapshotDir: dir})
	if st := v2.Status(); st.SnapshotSeq != seq {
		t.Fatalf("restart loaded snapshot %d, want %d", st.SnapshotSeq, seq)
	}
	waitSeq(t, v2, uint64(n))
	// A full replay with no snapshot.
	v3, _, _ := runView(t, Config{Name: "todos", Reducer: &todoReducer{}, Log: l})
	waitSeq(t, v3, uint64(n))
	s2, _ := v2.State()
	s3, _ := v3.State()
	if live.Hash() != s2.Hash() || live.Hash() != s3.Hash() {
		t.Fatalf("root hashes differ: live %s, snapshot+tail %s, full replay %s", live.Hash(), s2.Hash(), s3.Hash())
	}
	// A snapshot made by another reducer is not used.
	v4, _, _ := runView(t, Config{Name: "todos", Reducer: &otherHash{todoReducer{}}, Log: l, SnapshotDir: dir})
	if st := v4.Status(); st.SnapshotSeq != 0 {
		t.Fatalf("a different reducer loaded snapshot %d", st.SnapshotSeq)
	}
}

// TestSnapshotFailureIsReported: a snapshot that cannot be written (here
// the snapshot directory is a file; a full disk fails the same way) is
// reported in the view's status and logs, the view goes on applying events,
// and the report clears when a snapshot succeeds.
func TestSnapshotFailureIsReported(t *testing.T) {
	l := memlog.New()
	n := abi.EpochSize + 10
	fill(t, l, 1, n)
	dir := filepath.Join(t.TempDir(), "snapshots")
	v, _, _ := runView(t, Config{Name: "todos", Reducer: &todoReducer{}, Log: l, SnapshotDir: dir})
	waitSeq(t, v, uint64(n))
	// (A view refuses to start on a directory it cannot list; this one
	// goes bad while it runs.)
	if err := os.WriteFile(dir, []byte("in the way"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Snapshot(); err == nil {
		t.Fatal("snapshot into a file's path succeeded")
	}
	st := v.Status()
	want := fmt.Sprintf("snapshot at seq %d: ", abi.EpochSize)
	if !strings.HasPrefix(st.SnapshotError, want) || !strings.Contains(st.SnapshotError, "not a directory") || st.SnapshotSeq != 0 {
		t.Fatalf("status after a failed snapshot: error %q (want %q... not a directory), snapshot seq %d", st.SnapshotError, want, st.SnapshotSeq)
	}
	fill(t, l, n+1, 100)
	waitSeq(t, v, uint64(n+100))
	if st := v.Status(); st.Phase == PhaseHalted || st.Error != "" {
		t.Fatalf("the view stopped after a failed snapshot: %+v", st)
	}
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if seq, err := v.Snapshot(); err != nil || seq != abi.EpochSize {
		t.Fatalf("snapshot once the directory can be made: %d, %v", seq, err)
	}
	if st := v.Status(); st.SnapshotError != "" || st.SnapshotSeq != abi.EpochSize {
		t.Fatalf("status after a good snapshot: error %q, snapshot seq %d", st.SnapshotError, st.SnapshotSeq)
	}
}

type otherHash struct{ todoReducer }

func (otherHash) Hash() string { return "native-todos-v2" }

func TestHaltKeepsLastGoodState(t *testing.T) {
	l := memlog.New()
	fill(t, l, 1, 100)
	v, _, _ := runView(t, Config{Name: "todos", Reducer: &todoReducer{failAt: 51}, Log: l})
	deadline := time.Now().Add(10 * time.Second)
	for v.Status().Phase != PhaseHalted {
		if time.Now().After(deadline) {
			t.Fatalf("view did not halt: %+v", v.Status())
		}
		time.Sleep(time.Millisecond)
	}
	st := v.Status()
	if st.HaltedAt != 51 || st.Seq != 50 || st.Error == "" {
		t.Fatalf("status %+v, want halted at 51 serving seq 50", st)
	}
	// The state is what seq 50 left.
	ref, _, _ := runView(t, Config{Name: "ref", Reducer: &todoReducer{}, Log: memlogPrefix(t, l, 50)})
	waitSeq(t, ref, 50)
	a, _ := v.State()
	b, _ := ref.State()
	if a.Hash() != b.Hash() {
		t.Fatal("halted view does not serve the state of its last good event")
	}
}

func memlogPrefix(t *testing.T, l eventlog.Log, n int) eventlog.Log {
	recs, err := l.Read(context.Background(), 1, n, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := memlog.New()
	for i := range recs {
		recs[i].Hash = eventlog.Hash{}
	}
	if err := m.Append(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSubscriptionSeesEveryEvent(t *testing.T) {
	l := memlog.New()
	v, _, _ := runView(t, Config{Name: "todos", Reducer: &todoReducer{}, Log: l})
	sub := v.Subscribe(10000)
	fill(t, l, 1, 200)
	start, _ := statetree.FromJSON([]byte(`{}`))
	doc := start
	var last uint64
	roots := 0
	for last < 200 {
		u := <-sub.C
		if u.Seq != last+1 {
			t.Fatalf("update seq %d after %d", u.Seq, last)
		}
		last = u.Seq
		var err error
		if doc, err = statetree.Apply(doc, u.Ops); err != nil {
			t.Fatal(err)
		}
		if u.HasRoot {
			roots++
			if doc.Hash() != u.Root.Hash() {
				t.Fatalf("seq %d: applying the ops does not give the view's state", u.Seq)
			}
		}
	}
	if roots == 0 {
		t.Fatal("no update carried the view's state")
	}
	if root, _ := v.State(); root.Hash() != doc.Hash() {
		t.Fatal("applying every update's ops does not give the view's final state")
	}
}

func BenchmarkReplayNative(b *testing.B) {
	l := memlog.New()
	fill(b, l, 1, b.N)
	v, err := New(Config{Name: "todos", Reducer: &todoReducer{}, Log: l})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.ResetTimer()
	go v.Run(ctx)
	v.WaitFor(ctx, uint64(b.N))
}

func TestRejectedEventHasNoEffectAndViewGoesOn(t *testing.T) {
	l := memlog.New()
	fill(t, l, 1, 100)
	v, _, _ := runView(t, Config{Name: "todos", Reducer: &todoReducer{rejectAt: 50}, Log: l})
	waitSeq(t, v, 100)
	st := v.Status()
	if st.Phase == PhaseHalted || st.Rejected != 1 || !strings.Contains(st.LastRejection, "seq 50") {
		t.Fatalf("status %+v", st)
	}
	root, _ := v.State()
	if _, ok := root.Get(statetree.MustPath("/rejected")); ok {
		t.Fatal("a rejected event's changes were kept")
	}
}

// TestSnapshotAheadOfTheLogIsSetAside: a snapshot past the log's head (its
// last records were cut, as a damaged last batch is) is moved aside at
// start, and the view loads the newest snapshot within the log instead of
// none. It used to be only ignored: once new events took its seqs, a later
// restart loaded it, and the view's state was not the log's.
func TestSnapshotAheadOfTheLogIsSetAside(t *testing.T) {
	const e = abi.EpochSize
	dir := t.TempDir()
	l1 := memlog.New()
	fill(t, l1, 1, e+50)
	v1, cancel, done := runView(t, Config{Name: "todos", Reducer: &todoReducer{}, Log: l1, SnapshotDir: dir})
	waitSeq(t, v1, e+50)
	if seq, err := v1.Snapshot(); err != nil || seq != e {
		t.Fatalf("first snapshot at %d: %v", seq, err)
	}
	fill(t, l1, e+51, e+100)
	waitSeq(t, v1, 2*e+100)
	if seq, err := v1.Snapshot(); err != nil || seq != 2*e {
		t.Fatalf("second snapshot at %d: %v", seq, err)
	}
	cancel()
	<-done

	// The log loses its records from 2e-9 on; then other events take
	// those seqs.
	l2 := memlog.New()
	recs, err := l1.Read(context.Background(), 1, 2*e-10, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := l2.Append(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	v2, cancel, done := runView(t, Config{Name: "todos", Reducer: &todoReducer{}, Log: l2, SnapshotDir: dir})
	if st := v2.Status(); st.SnapshotSeq != e {
		t.Fatalf("restart over the shorter log loaded snapshot %d, want %d (the newest within the log)", st.SnapshotSeq, e)
	}
	cancel()
	<-done
	if seqs, _ := listSnapshots(snapDir(dir, "todos")); slices.Contains(seqs, 2*e) {
		t.Fatalf("the snapshot ahead of the log is still in place: %v", seqs)
	}
	var other []eventlog.Record
	for s := 2*e - 9; s <= 2*e+50; s++ {
		other = append(other, eventlog.Record{Seq: uint64(s), Producer: "q", PSeq: uint64(s), Type: "todo/add", Payload: fmt.Appendf(nil, `{"id":"z%d","text":"other"}`, s)})
	}
	if err := l2.Append(context.Background(), other); err != nil {
		t.Fatal(err)
	}
	v3, _, _ := runView(t, Config{Name: "todos", Reducer: &todoReducer{}, Log: l2, SnapshotDir: dir})
	waitSeq(t, v3, 2*e+50)
	got, _ := v3.State()
	if want := replayAll(t, l2, &todoReducer{}, 2*e+50); got.Hash() != want.Hash() {
		t.Fatalf("after new events took the cut seqs the view's state is not the log's (snapshot %d loaded)", v3.Status().SnapshotSeq)
	}
}
