// Package store is nodb's plugin store: WebAssembly plugin versions kept on
// disk by content (the SHA-256 of their bytes) with a manifest each, and the
// version active in each view, recorded durably.
//
// Layout under the store's directory (DATA/plugins):
//
//	<sha256>.wasm   the module, as uploaded
//	<sha256>.json   its Manifest
//	active.json     the active version of each view and the versions before it
//
// Every file is written to a temp file (.tmp-<digits>), synced, renamed into
// place and the directory synced, so a crash leaves either the old or the new
// file, and perhaps the temp file; a version's module is written before its
// manifest and deleted after it, so a crash may leave a module without its
// manifest. Open removes both kinds of leftovers. An
// upload is validated before anything is written (Put); a rejection changes
// nothing and says what was wrong.
package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/nodb-dev/nodb/abi"
	"github.com/nodb-dev/nodb/plugins"
)

// Swap policies: what activating a version does once its shadow replay has
// caught up with the live view.
const (
	PolicyAlways      = "always"       // swap whatever the comparison says
	PolicyIfIdentical = "if-identical" // swap only if the states are equal
	PolicyManual      = "manual"       // wait for a confirm call
)

// MaxEventTimeout is the largest per-event time limit a manifest may ask for.
const MaxEventTimeout = time.Minute

// Limits are a plugin's resource limits. Zero means the host's default.
type Limits struct {
	// MemoryPages caps guest memory in 64 KiB pages.
	MemoryPages uint32 `json:"memory_pages,omitempty"`
	// EventTimeoutMS bounds one event, in milliseconds.
	EventTimeoutMS int64 `json:"event_timeout_ms,omitempty"`
}

// Manifest describes one plugin version.
type Manifest struct {
	// Name is the plugin's name (usually the view it builds).
	Name string `json:"name"`
	// Version is the author's version label; free text.
	Version string `json:"version,omitempty"`
	// Kind is the plugin kind: "reducer" (its inputs are events) or
	// "cascade" (its inputs are views). It is what the module declares; a
	// manifest that says otherwise is refused.
	Kind string `json:"kind"`
	// Inputs lists the upstream views a cascade reads (from its
	// _initialize), in delivery order.
	Inputs []string `json:"inputs,omitempty"`
	// Upstreams maps some of a cascade's inputs to views on other nodb
	// hosts (ws://HOST:PORT[?view=NAME&access_token=T]); the others are
	// views of the host the cascade runs on.
	Upstreams map[string]string `json:"upstreams,omitempty"`
	// ABIVersion is the guest ABI version the module speaks.
	ABIVersion int `json:"abi_version"`
	// SHA256 is the hex SHA-256 of the module. An upload that declares it
	// must match the bytes.
	SHA256 string `json:"sha256"`
	// Size is the module's size in bytes.
	Size int `json:"size"`
	// Consumes lists the event types the module consumes (from its
	// _initialize); empty means every type.
	Consumes []string `json:"consumes"`
	// Limits are the module's resource limits.
	Limits Limits `json:"limits"`
	// SwapPolicy is the default policy when the version is activated.
	SwapPolicy string `json:"swap_policy"`
	// UploadedAt is when the version was stored.
	UploadedAt time.Time `json:"uploaded_at"`
}

// Active records a view's active version and the ones active before it.
type Active struct {
	// View is the view's name.
	View string `json:"view"`
	// SHA256 is the active version.
	SHA256 string `json:"sha256"`
	// History holds the previously active versions, oldest first.
	History []string `json:"history,omitempty"`
	// Boot is the version last given on the command line (nodb serve
	// --plugin): a restart with the same file keeps a deployed version.
	Boot string `json:"boot,omitempty"`
	// Since is when the version became active.
	Since time.Time `json:"since"`
}

// RejectError is an upload or request the store refused; Reason says why.
type RejectError struct{ Reason string }

// Error returns the reason prefixed with "plugin rejected: ".
func (e *RejectError) Error() string { return "plugin rejected: " + e.Reason }

func reject(format string, args ...any) error { return &RejectError{fmt.Sprintf(format, args...)} }

// ErrNotFound is returned for an unknown version.
var ErrNotFound = errors.New("store: no such plugin version")

// Store is a plugin store. It is safe for concurrent use.
type Store struct {
	dir string
	rt  *plugins.Runtime
	// maxPages is the host's memory cap, in pages.
	maxPages uint32

	mu     sync.Mutex
	active map[string]*Active
}

// Open opens (creating) the store in dir. rt validates uploads; maxPages
// is the host's memory cap (0: plugins.DefaultMaxMemoryPages). It removes
// what interrupted writes left (temp files, a module without its manifest)
// and logs each file removed to logger (nil: no logging).
func Open(dir string, rt *plugins.Runtime, maxPages uint32, logger hclog.Logger) (*Store, error) {
	if maxPages == 0 {
		maxPages = plugins.DefaultMaxMemoryPages
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if err := removeLeftovers(dir, logger); err != nil {
		return nil, err
	}
	s := &Store{dir: dir, rt: rt, maxPages: maxPages, active: map[string]*Active{}}
	data, err := os.ReadFile(filepath.Join(dir, "active.json"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("store: %w", err)
	}
	if err == nil {
		var recs []*Active
		if err := json.Unmarshal(data, &recs); err != nil {
			return nil, fmt.Errorf("store: %s: %w", filepath.Join(dir, "active.json"), err)
		}
		for _, a := range recs {
			s.active[a.View] = a
		}
	}
	return s, nil
}

// removeLeftovers removes, from the store's directory, the files that only
// an interrupted write leaves: temp files (named as writeFile names them)
// and modules whose manifest is missing (PutValidated writes the module
// first, Delete removes it last). Nothing else is touched.
func removeLeftovers(dir string, logger hclog.Logger) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	removed := false
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		name, why := e.Name(), ""
		if isTempName(name) {
			why = "a temp file of a write that did not finish"
		} else if sha, ok := strings.CutSuffix(name, ".wasm"); ok && ValidSHA(sha) {
			if _, err := os.Lstat(filepath.Join(dir, sha+".json")); errors.Is(err, os.ErrNotExist) {
				why = "a module without its manifest (an upload or delete that did not finish)"
			}
		}
		if why == "" {
			continue
		}
		p := filepath.Join(dir, name)
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("store: removing %s, %s: %w", p, why, err)
		}
		logger.Warn("removed a leftover from the plugin store", "file", p, "what", why)
		removed = true
	}
	if removed {
		return syncDir(dir)
	}
	return nil
}

// tempPrefix begins the names of writeFile's temp files; os.CreateTemp
// puts decimal digits after it.
const tempPrefix = ".tmp-"

func isTempName(name string) bool {
	digits, ok := strings.CutPrefix(name, tempPrefix)
	if !ok || digits == "" {
		return false
	}
	for _, r := range digits {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

// ValidSHA reports whether h looks like a hex SHA-256.
func ValidSHA(h string) bool {
	if len(h) != 64 {
		return false
	}
	_, err := hex.DecodeString(h)
	return err == nil && strings.ToLower(h) == h
}

// Validate checks wasm and m without storing anything and returns the
// completed manifest. Checks: the declared hash matches, kind, ABI version
// and policy are known, the limits are within the host's maxima, and the
// module compiles and passes the ABI checks (exports, imports, ABI version,
// a clean _initialize).
func (s *Store) Validate(ctx context.Context, wasm []byte, m Manifest) (Manifest, error) {
	sum := sha256.Sum256(wasm)
	sha := hex.EncodeToString(sum[:])
	if m.SHA256 != "" && !strings.EqualFold(m.SHA256, sha) {
		return m, reject("declared sha256 %s does not match the module's bytes (sha256 %s): the upload is corrupt or the manifest is for another build", m.SHA256, sha)
	}
	m.SHA256 = sha
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" {
		return m, reject("not a WebAssembly module (it does not start with the \\0asm magic); upload the .wasm file built with GOOS=wasip1 GOARCH=wasm -buildmode=c-shared")
	}
	if m.Kind != "" && m.Kind != "reducer" && m.Kind != "cascade" {
		return m, reject("kind %q is not supported; use \"reducer\" or \"cascade\"", m.Kind)
	}
	if m.ABIVersion != 0 && m.ABIVersion != abi.Version {
		return m, reject("manifest declares ABI version %d; this host speaks ABI version %d", m.ABIVersion, abi.Version)
	}
	switch m.SwapPolicy {
	case "":
		m.SwapPolicy = PolicyIfIdentical
	case PolicyAlways, PolicyIfIdentical, PolicyManual:
	default:
		return m, reject("swap_policy %q is unknown; use always, if-identical or manual", m.SwapPolicy)
	}
	if m.Limits.MemoryPages > s.maxPages {
		return m, reject("limits.memory_pages %d is over the host's maximum of %d pages (%d MiB)", m.Limits.MemoryPages, s.maxPages, s.maxPages/16)
	}
	if m.Limits.EventTimeoutMS < 0 || m.Limits.EventTimeoutMS > MaxEventTimeout.Milliseconds() {
		return m, reject("limits.event_timeout_ms %d is outside 0..%d", m.Limits.EventTimeoutMS, MaxEventTimeout.Milliseconds())
	}
	mod, err := s.rt.Compile(ctx, wasm)
	if err != nil {
		if errors.Is(err, plugins.ErrInvalidModule) {
			return m, reject("%v", strings.TrimPrefix(err.Error(), "plugins: "))
		}
		var te *plugins.TrapError
		if errors.As(err, &te) {
			return m, reject("the module traps while initialising: %v", err)
		}
		return m, reject("%v", err)
	}
	info := mod.Info()
	mod.Close(ctx)
	if m.Limits.MemoryPages != 0 && m.Limits.MemoryPages < info.MinMemoryPages {
		return m, reject("limits.memory_pages %d is below the module's own memory minimum of %d pages", m.Limits.MemoryPages, info.MinMemoryPages)
	}
	if m.Consumes != nil && !slices.Equal(m.Consumes, info.Consumes) {
		return m, reject("manifest declares consumes %q but the module consumes %q", m.Consumes, info.Consumes)
	}
	if m.Kind != "" && m.Kind != info.Kind {
		if info.Kind == "cascade" {
			return m, reject("manifest says kind %q but the module declares inputs %q, which makes it a cascade", m.Kind, info.Inputs)
		}
		return m, reject("manifest says kind %q but the module declares no inputs (nodb.OnPatch / nodb_v1.input), which makes it a reducer", m.Kind)
	}
	if m.Inputs != nil && !slices.Equal(m.Inputs, info.Inputs) {
		return m, reject("manifest declares inputs %q but the module reads %q", m.Inputs, info.Inputs)
	}
	m.Kind, m.Inputs = info.Kind, info.Inputs
	for name := range m.Upstreams {
		if !slices.Contains(m.Inputs, name) {
			return m, reject("upstreams names %q, which is not one of the module's inputs %q", name, m.Inputs)
		}
	}
	m.ABIVersion = info.ABIVersion
	m.Consumes = info.Consumes
	m.Size = len(wasm)
	if m.Version == "" {
		m.Version = sha[:12]
	}
	return m, nil
}

// Put validates and stores a version. Storing the same bytes again keeps
// the first manifest and returns it with stored == false.
func (s *Store) Put(ctx context.Context, wasm []byte, m Manifest) (out Manifest, stored bool, err error) {
	m, err = s.Validate(ctx, wasm, m)
	if err != nil {
		return m, false, err
	}
	return s.PutValidated(wasm, m)
}

// PutValidated stores a version whose manifest m is what Validate returned
// for wasm (a caller that needed the completed manifest before deciding to
// store it, to authorise the kind and inputs, say), without validating it
// again. Like Put, storing the same bytes again keeps the first manifest.
func (s *Store) PutValidated(wasm []byte, m Manifest) (out Manifest, stored bool, err error) {
	if sum := sha256.Sum256(wasm); m.SHA256 != hex.EncodeToString(sum[:]) {
		return m, false, errors.New("store: PutValidated with a manifest of other bytes")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, err := s.manifest(m.SHA256); err == nil {
		return old, false, nil
	}
	if m.Name == "" {
		return m, false, reject("the manifest needs a name")
	}
	m.UploadedAt = time.Now().UTC()
	mj, _ := json.MarshalIndent(m, "", "  ")
	if err := writeFile(s.dir, m.SHA256+".wasm", wasm); err != nil {
		return m, false, err
	}
	if err := writeFile(s.dir, m.SHA256+".json", append(mj, '\n')); err != nil {
		os.Remove(filepath.Join(s.dir, m.SHA256+".wasm"))
		return m, false, err
	}
	return m, true, nil
}

func (s *Store) manifest(sha string) (Manifest, error) {
	var m Manifest
	if !ValidSHA(sha) {
		return m, ErrNotFound
	}
	data, err := os.ReadFile(filepath.Join(s.dir, sha+".json"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return m, ErrNotFound
		}
		return m, err
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("store: manifest %s: %w", sha, err)
	}
	return m, nil
}

// Get returns a version's manifest and module.
func (s *Store) Get(sha string) (Manifest, []byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.manifest(sha)
	if err != nil {
		return m, nil, err
	}
	wasm, err := os.ReadFile(filepath.Join(s.dir, sha+".wasm"))
	if err != nil {
		return m, nil, fmt.Errorf("store: %w", err)
	}
	if sum := sha256.Sum256(wasm); hex.EncodeToString(sum[:]) != sha {
		return m, nil, fmt.Errorf("store: %s.wasm does not match its hash (disk corruption?)", sha)
	}
	return m, wasm, nil
}

// Resolve finds a version by sha256 (or a unique prefix of at least 8 hex
// digits) or, with name, by its version label.
func (s *Store) Resolve(name, ref string) (Manifest, error) {
	all, err := s.List()
	if err != nil {
		return Manifest{}, err
	}
	var hits []Manifest
	for _, m := range all {
		if m.SHA256 == ref || (len(ref) >= 8 && strings.HasPrefix(m.SHA256, ref)) || (name != "" && m.Name == name && m.Version == ref) {
			hits = append(hits, m)
		}
	}
	switch len(hits) {
	case 0:
		return Manifest{}, fmt.Errorf("%w: %q", ErrNotFound, ref)
	case 1:
		return hits[0], nil
	}
	return Manifest{}, fmt.Errorf("store: %q matches %d versions; give the sha256", ref, len(hits))
}

// List returns every stored version, oldest upload first.
func (s *Store) List() ([]Manifest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var out []Manifest
	for _, e := range ents {
		sha, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !ValidSHA(sha) {
			continue
		}
		m, err := s.manifest(sha)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].UploadedAt.Before(out[j].UploadedAt) })
	return out, nil
}

// Delete removes a version that no view has active.
func (s *Store) Delete(sha string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.manifest(sha); err != nil {
		return err
	}
	for _, a := range s.active {
		if a.SHA256 == sha {
			return reject("version %s is active in view %q; activate another version first", sha[:12], a.View)
		}
	}
	if err := os.Remove(filepath.Join(s.dir, sha+".json")); err != nil {
		return err
	}
	os.Remove(filepath.Join(s.dir, sha+".wasm"))
	return syncDir(s.dir)
}

// Active returns the active record of view (false if it has none).
func (s *Store) Active(view string) (Active, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.active[view]
	if !ok {
		return Active{}, false
	}
	c := *a
	c.History = slices.Clone(a.History)
	return c, true
}

// Actives returns every view's active record, by view name.
func (s *Store) Actives() []Active {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Active, 0, len(s.active))
	for _, a := range s.active {
		c := *a
		c.History = slices.Clone(a.History)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].View < out[j].View })
	return out
}

// SetActive records sha as view's active version, durably. The version
// active before goes to the history; with rollback, the newest history
// entry is removed instead (the view goes back to it). boot, if not empty,
// is recorded as the command-line version.
func (s *Store) SetActive(view, sha string, rollback bool, boot string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.manifest(sha); err != nil {
		return err
	}
	old := s.active[view]
	a := &Active{View: view, SHA256: sha, Since: time.Now().UTC()}
	if old != nil {
		a.History, a.Boot = slices.Clone(old.History), old.Boot
		if rollback {
			if n := len(a.History); n > 0 && a.History[n-1] == sha {
				a.History = a.History[:n-1]
			}
		} else if old.SHA256 != sha {
			a.History = append(a.History, old.SHA256)
		}
	}
	if boot != "" {
		a.Boot = boot
	}
	s.active[view] = a
	if err := s.saveActive(); err != nil {
		if old != nil {
			s.active[view] = old
		} else {
			delete(s.active, view)
		}
		return err
	}
	return nil
}

func (s *Store) saveActive() error {
	recs := make([]*Active, 0, len(s.active))
	for _, a := range s.active {
		recs = append(recs, a)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].View < recs[j].View })
	data, _ := json.MarshalIndent(recs, "", "  ")
	return writeFile(s.dir, "active.json", append(data, '\n'))
}

// writeFile writes dir/name atomically and durably.
func writeFile(dir, name string, data []byte) error {
	tmp, err := os.CreateTemp(dir, tempPrefix+"*")
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, name))
	}
	if err != nil {
		return fmt.Errorf("store: writing %s: %w", name, err)
	}
	return syncDir(dir)
}

func syncDir(d string) error {
	f, err := os.Open(d)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("store: sync %s: %w", d, err)
	}
	return nil
}
