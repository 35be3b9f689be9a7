package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	client "github.com/nodb-dev/nodb/sdk/client/go"
)

// statsWasm builds the todo-stats cascade of the example once.
func statsWasm(t *testing.T) string { return buildGuest(t, "todo-stats", "./examples/todos/stats") }

// publishTodos publishes n random todo events as producer from pseq and
// waits for every ack.
func publishTodos(t *testing.T, addr, producer string, pseq uint64, n int, r *rand.Rand) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, "ws://"+addr+"/v1/ws", client.WithProducer(producer), client.WithStartPSeq(pseq))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tags := []string{"#work", "#home", "#errand", ""}
	var last *client.Future
	for range n {
		id := fmt.Sprintf("t%d", r.IntN(60))
		switch k := r.IntN(10); {
		case k < 5:
			last = c.PublishAsync(ctx, "todo/add", map[string]any{"id": id, "text": "do " + id + " " + tags[r.IntN(len(tags))]})
		case k < 8:
			last = c.PublishAsync(ctx, "todo/toggle", map[string]any{"id": id})
		case k < 9:
			last = c.PublishAsync(ctx, "todo/delete", map[string]any{"id": id})
		default:
			last = c.PublishAsync(ctx, "todo/rename", map[string]any{"id": id, "text": "renamed " + tags[r.IntN(len(tags))]})
		}
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	ack, err := last.Result()
	if err != nil {
		t.Fatal(err)
	}
	return ack.Seq
}

// waitEqualState waits until view name on both hosts is at seq at least and
// their states are equal.
func waitEqualState(t *testing.T, a, b *proc, name string, seq uint64) []byte {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var sa, sb []byte
	var qa, qb uint64
	for time.Now().Before(deadline) {
		sa, qa = viewStateJSON(t, a.addr, name)
		sb, qb = viewStateJSON(t, b.addr, name)
		if qa >= seq && qb >= seq && qa == qb && bytes.Equal(sa, sb) {
			return sa
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("view %s differs between the hosts after 60 s (want seq %d):\n%s seq %d: %s\n%s seq %d: %s", name, seq, a.addr, qa, sa, b.addr, qb, sb)
	return nil
}

// TestRemoteCascade runs two hosts: upstream A serves todos and a local
// todo-stats cascade; downstream B runs todo-stats over A's todos view
// through --upstream. B follows A through SIGKILLs and restarts of either
// side and ends equal to A's local cascade fed the same history.
func TestRemoteCascade(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	todos, stats := todosWasm(t), statsWasm(t)
	dirA, dirB := t.TempDir(), t.TempDir()
	addrA, addrB := freeAddr(t), freeAddr(t)
	argsA := []string{"--plugin", "todos=" + todos, "--plugin", "todo-stats=" + stats}
	argsB := []string{"--upstream", "todos=ws://" + addrA, "--plugin", "todo-stats=" + stats}
	a := startServe(t, dirA, addrA, argsA...)
	b := startServe(t, dirB, addrB, argsB...)
	r := rand.New(rand.NewPCG(7, 8))

	pseq := uint64(1)
	head := publishTodos(t, addrA, "remote-test", pseq, 400, r)
	pseq += 400
	waitEqualState(t, a, b, "todo-stats", head)

	// Downstream killed while the upstream moves on.
	b.kill()
	head = publishTodos(t, addrA, "remote-test", pseq, 300, r)
	pseq += 300
	b = startServe(t, dirB, addrB, argsB...)
	waitEqualState(t, a, b, "todo-stats", head)

	// Upstream killed and restarted: the downstream reconnects and resumes.
	a.kill()
	// The downstream's status says why its cascade is not moving.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if n := getViews(t, addrB)["todo-stats"].Note; strings.Contains(n, "input todos:") {
			t.Logf("downstream note while the upstream is down: %s", n)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no note on the downstream's cascade while its upstream is down: %+v", getViews(t, addrB))
		}
	}
	a = startServe(t, dirA, addrA, argsA...)
	head = publishTodos(t, addrA, "remote-test", pseq, 300, r)
	pseq += 300
	final := waitEqualState(t, a, b, "todo-stats", head)
	if n := getViews(t, addrB)["todo-stats"].Note; n != "" {
		t.Fatalf("the note stays after the upstream came back: %q", n)
	}

	// A cascade deployed over the API whose manifest names the upstream.
	man := filepath.Join(t.TempDir(), "manifest.json")
	os.WriteFile(man, []byte(`{"name":"todo-stats-2","upstreams":{"todos":"ws://`+addrA+`"}}`), 0o644)
	if out, errOut, code := run(t, "deploy", "--addr", "http://"+addrB, "--name", "todo-stats-2", "--manifest", man, "--quiet", stats); code != 0 {
		t.Fatalf("deploy with manifest upstreams: %d %s %s", code, out, errOut)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		sa, qa := viewStateJSON(t, addrA, "todo-stats")
		sb, qb := viewStateJSON(t, addrB, "todo-stats-2")
		if qa == qb && bytes.Equal(sa, sb) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("todo-stats-2 (manifest upstream) differs: %d %s vs %d %s", qa, sa, qb, sb)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// And the downstream's view is really the statistics of the todos.
	if !bytes.Contains(final, []byte(`"total":`)) || !bytes.Contains(final, []byte(`"tags":`)) {
		t.Fatalf("todo-stats looks wrong: %s", final)
	}
	// Time travel on the downstream asks the upstream for the past.
	past := head - 250
	respA, err := testHTTP.Get(fmt.Sprintf("http://%s/v1/views/todo-stats/state?at=%d", addrA, past))
	if err != nil {
		t.Fatal(err)
	}
	respB, err := testHTTP.Get(fmt.Sprintf("http://%s/v1/views/todo-stats/state?at=%d", addrB, past))
	if err != nil {
		t.Fatal(err)
	}
	var ba, bb bytes.Buffer
	ba.ReadFrom(respA.Body)
	bb.ReadFrom(respB.Body)
	respA.Body.Close()
	respB.Body.Close()
	if respA.StatusCode != 200 || respB.StatusCode != 200 || !bytes.Equal(ba.Bytes(), bb.Bytes()) {
		t.Fatalf("state at %d: upstream %d %s, downstream %d %s", past, respA.StatusCode, ba.Bytes(), respB.StatusCode, bb.Bytes())
	}
}

// TestCascadeTwoInputsRestart: a cascade over two views (join: todos by
// owner) has the same state before a SIGKILL, after the restart, and as a
// second copy of it deployed from scratch.
func TestCascadeTwoInputsRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	args := []string{"--plugin", "todos=" + todosWasm(t),
		"--plugin", "owners=" + buildGuest(t, "owners", "./host/cascade/testdata/owners"),
		"--plugin", "join=" + buildGuest(t, "join", "./host/cascade/testdata/join")}
	dir, addr := t.TempDir(), freeAddr(t)
	p := startServe(t, dir, addr, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, "ws://"+addr+"/v1/ws", client.WithProducer("joiner"))
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(9, 10))
	var last *client.Future
	for range 1500 {
		id := fmt.Sprintf("t%d", r.IntN(50))
		switch k := r.IntN(10); {
		case k < 4:
			last = c.PublishAsync(ctx, "todo/add", map[string]any{"id": id, "text": "x"})
		case k < 6:
			last = c.PublishAsync(ctx, "todo/toggle", map[string]any{"id": id})
		case k < 7:
			last = c.PublishAsync(ctx, "todo/delete", map[string]any{"id": id})
		default:
			last = c.PublishAsync(ctx, "owner/assign", map[string]any{"id": id, "owner": []string{"ann", "bob", "cyd"}[r.IntN(3)]})
		}
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	ack, err := last.Result()
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	head := ack.Seq
	waitState := func(p *proc, name string) []byte {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			st, seq := viewStateJSON(t, p.addr, name)
			if seq >= head {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("view %s at seq %d after 60 s, want %d", name, seq, head)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	before := waitState(p, "join")
	if !bytes.Contains(before, []byte(`"by_owner"`)) || !bytes.Contains(before, []byte(`"ann"`)) {
		t.Fatalf("join state looks wrong: %s", before)
	}
	p.kill()
	p = startServe(t, dir, addr, args...)
	if after := waitState(p, "join"); !bytes.Equal(after, before) {
		t.Fatalf("join after a SIGKILL and restart:\n got %s\nwant %s", after, before)
	}
	if out, errOut, code := run(t, "deploy", "--addr", "http://"+addr, "--name", "join-copy", "--quiet", buildGuest(t, "join", "./host/cascade/testdata/join")); code != 0 {
		t.Fatalf("deploying a second join: %d %s %s", code, out, errOut)
	}
	if fresh := waitState(p, "join-copy"); !bytes.Equal(fresh, before) {
		t.Fatalf("a join built from scratch:\n got %s\nwant %s", fresh, before)
	}
}

// TestThirdPartyCascadeBudget: a third party's cascades run within its
// token's limits. One that spins past its time limit is halted and
// reported; the reducer it reads and the third party's other cascade go on.
func TestThirdPartyCascadeBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.json")
	admin := newToken(t, tokens, "ops", "admin")
	out, errOut, code := run(t, "token", "create", "--tokens", tokens, "--name", "stats-bot", "--scope", "read:todos", "--scope", "read:todo-stats",
		"--scope", "read:spin", "--scope", "deploy:cascade", "--event-timeout", "300")
	if code != 0 {
		t.Fatalf("token create: %d %s", code, errOut)
	}
	bot := strings.TrimSpace(out)
	addr := freeAddr(t)
	p := startServe(t, filepath.Join(dir, "data"), addr, "--tokens", tokens, "--plugin", "todos="+todosWasm(t))
	base := "http://" + addr
	for _, c := range []struct{ name, file string }{{"todo-stats", statsWasm(t)}, {"spin", buildGuest(t, "spin", "./host/cascade/testdata/spin")}} {
		if out, errOut, code := run(t, "deploy", "--addr", base, "--token", bot, "--name", c.name, "--quiet", c.file); code != 0 {
			t.Fatalf("the third party deploys %s: %d %s %s", c.name, code, out, errOut)
		}
	}
	for i := 1; i <= 20; i++ {
		if out, errOut, code := run(t, "publish", "--addr", base, "--token", admin, "--producer", "budget", "--pseq", fmt.Sprint(i),
			"--type", "todo/add", "--data", fmt.Sprintf(`{"id":"t%d","text":"x #tag"}`, i)); code != 0 {
			t.Fatalf("publish: %d %s %s", code, out, errOut)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, _, _ := run(t, "state", "--addr", base, "--token", bot, "todo-stats")
		views := authViews(t, base, admin)
		if strings.Contains(out, `"total":20`) && views["spin"].Status == "halted" && views["todos"].Seq == 20 {
			if !strings.Contains(views["spin"].Error, "time") {
				t.Fatalf("the halted cascade's error does not say it ran out of time: %q", views["spin"].Error)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s: todo-stats %s; views %+v\n%s", out, views, p.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// authViews lists the views with a token.
func authViews(t *testing.T, base, token string) map[string]apiView {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/v1/views", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := testHTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Views []apiView `json:"views"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	m := map[string]apiView{}
	for _, v := range out.Views {
		m[v.Name] = v
	}
	return m
}
