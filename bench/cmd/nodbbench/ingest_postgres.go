package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5"
)

// PostgreSQL under ingest: a cluster of our own in a temp dir, run as the
// postgres OS user when we are root, reached over a unix socket; fsync and
// synchronous_commit on; each producer one connection doing single-row
// INSERTs (a bigserial seq, and a unique (producer, pseq) index for the
// same exactly-once dedupe nodb does).

type pgIngest struct {
	env     *Env
	dir     string
	data    string
	port    int
	pgctl   string
	cred    *syscall.Credential
	postPid int
	connStr string
	stopped bool
	prodTag string
}

// findPostgres returns the bin directory of the newest installed PostgreSQL.
func findPostgres() (string, bool) {
	m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(m) == 0 {
		return "", false
	}
	sort.Slice(m, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(m[i]))))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(m[j]))))
		return vi < vj
	})
	return filepath.Dir(m[len(m)-1]), true
}

func startPostgresIngest(ctx context.Context, env *Env) (ingestTarget, error) {
	bin, ok := findPostgres()
	if !ok {
		return nil, fmt.Errorf("%w: PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb; apt-get install postgresql)", errSkip)
	}
	t := &pgIngest{env: env, pgctl: filepath.Join(bin, "pg_ctl")}
	var uid, gid int = -1, -1
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("%w: running as root and there is no postgres OS user to run the server as", errSkip)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		t.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	dir, err := os.MkdirTemp("", "nodbbench-pg-")
	if err != nil {
		return nil, err
	}
	t.dir = dir
	t.data = filepath.Join(dir, "data")
	if uid >= 0 {
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	t.port, _ = strconv.Atoi(addr[strings.LastIndexByte(addr, ':')+1:])
	if out, err := t.run(ctx, filepath.Join(bin, "initdb"), "-D", t.data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8", "--no-locale"); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	serverOpts := strings.Join([]string{
		"-c listen_addresses=''",
		"-c unix_socket_directories=" + dir,
		"-c port=" + strconv.Itoa(t.port),
		"-c max_connections=400",
		"-c fsync=on",
		"-c synchronous_commit=on",
		"-c full_page_writes=on",
		"-c shared_buffers=256MB",
		"-c max_wal_size=4GB",
	}, " ")
	if out, err := t.run(ctx, t.pgctl, "-D", t.data, "-l", filepath.Join(dir, "server.log"), "-w", "-t", "60", "-o", serverOpts, "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pg_ctl start: %v\n%s\n%s", err, out, log)
	}
	atCleanup(t.close)
	if b, err := os.ReadFile(filepath.Join(t.data, "postmaster.pid")); err == nil {
		t.postPid, _ = strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	}
	t.connStr = fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres sslmode=disable", dir, t.port)
	conn, err := pgx.Connect(ctx, t.connStr)
	if err != nil {
		t.close()
		return nil, err
	}
	defer conn.Close(ctx)
	var ver string
	conn.QueryRow(ctx, "SHOW server_version").Scan(&ver)
	var sc, fs string
	conn.QueryRow(ctx, "SHOW synchronous_commit").Scan(&sc)
	conn.QueryRow(ctx, "SHOW fsync").Scan(&fs)
	env.Logf("ingest: PostgreSQL %s (synchronous_commit=%s, fsync=%s) in %s", ver, sc, fs, dir)
	if _, err := conn.Exec(ctx, `CREATE TABLE events (
		seq      bigserial PRIMARY KEY,
		producer text   NOT NULL,
		pseq     bigint NOT NULL,
		type     text   NOT NULL,
		payload  json,
		UNIQUE (producer, pseq))`); err != nil {
		t.close()
		return nil, err
	}
	return t, nil
}

// run runs a PostgreSQL program as the postgres user.
func (t *pgIngest) run(ctx context.Context, prog string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Dir = t.dir
	if t.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: t.cred}
		cmd.Env = append(os.Environ(), "HOME="+t.dir, "USER=postgres", "LOGNAME=postgres")
	}
	return cmd.CombinedOutput()
}

func (t *pgIngest) serverPid() int { return t.postPid }

func (t *pgIngest) close() {
	if t.stopped {
		return
	}
	t.stopped = true
	if out, err := t.run(context.Background(), t.pgctl, "-D", t.data, "-m", "fast", "-w", "stop"); err != nil {
		t.env.Logf("ingest: pg_ctl stop: %v %s", err, out)
	}
	os.RemoveAll(t.dir)
}

func (t *pgIngest) newProducer(ctx context.Context, i int) (ingestProducer, error) {
	conn, err := pgx.Connect(ctx, t.connStr)
	if err != nil {
		return nil, err
	}
	return &pgProducer{conn: conn, producer: producerName(i), payload: ingestPayload(i)}, nil
}

type pgProducer struct {
	conn     *pgx.Conn
	producer string
	payload  []byte
	pseq     int64
}

const pgInsert = `INSERT INTO events (producer, pseq, type, payload) VALUES ($1, $2, $3, $4) RETURNING seq`

func (p *pgProducer) publish(ctx context.Context) error {
	p.pseq++
	var seq int64
	return p.conn.QueryRow(ctx, pgInsert, p.producer, p.pseq, "bench/ingest", p.payload).Scan(&seq)
}

func (p *pgProducer) publishAsync(ctx context.Context) func() error { return nil }

func (p *pgProducer) close() { p.conn.Close(context.Background()) }
