package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// SecretPrefix starts every token secret: nodb_<id>_<43 characters of
// base64url randomness>. The id lets the host find the entry without
// scanning; the rest is 32 random bytes.
const SecretPrefix = "nodb_"

// Token is one entry of a token file. The secret itself is never stored:
// SHA256 is the hex SHA-256 of the whole secret string.
type Token struct {
	// ID identifies the token; it is part of the secret and not secret itself.
	ID string `json:"id"`
	// Name is a human name, unique in the file, used in logs and errors.
	Name string `json:"name"`
	// SHA256 is the hex SHA-256 of the secret.
	SHA256 string `json:"sha256"`
	// Scopes are the token's grants (see the package documentation).
	Scopes []string `json:"scopes"`
	// Limits bound the plugins the token may deploy.
	Limits Limits `json:"limits"`
	// Created is when the token was created.
	Created time.Time `json:"created"`
}

// File is the content of a token file (nodb serve --tokens FILE).
type File struct {
	// Tokens are the valid tokens; revoking a token removes it.
	Tokens []Token `json:"tokens"`
}

// NewToken makes a token with a fresh id and secret. The secret is returned
// once and never stored; the Token holds only its hash.
func NewToken(name string, scopes []string, limits Limits) (Token, string, error) {
	if err := checkTokenName(name); err != nil {
		return Token{}, "", err
	}
	if len(scopes) == 0 {
		return Token{}, "", errors.New("a token needs at least one scope, e.g. --scope read:todos; valid scopes: admin, publish, publish:PREFIX, read:VIEW, read:*, deploy:cascade")
	}
	for _, s := range scopes {
		if err := ValidateScope(s); err != nil {
			return Token{}, "", err
		}
	}
	if limits.EventTimeoutMS < 0 {
		return Token{}, "", fmt.Errorf("event timeout %d ms is negative; give a positive limit or 0 for none", limits.EventTimeoutMS)
	}
	var idb [8]byte
	var sec [32]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return Token{}, "", err
	}
	if _, err := rand.Read(sec[:]); err != nil {
		return Token{}, "", err
	}
	id := hex.EncodeToString(idb[:])
	secret := SecretPrefix + id + "_" + base64.RawURLEncoding.EncodeToString(sec[:])
	sum := sha256.Sum256([]byte(secret))
	t := Token{ID: id, Name: name, SHA256: hex.EncodeToString(sum[:]), Scopes: append([]string(nil), scopes...),
		Limits: limits, Created: time.Now().UTC().Truncate(time.Second)}
	return t, secret, nil
}

func checkTokenName(name string) error {
	if name == "" {
		return errors.New("a token needs a name (--name), e.g. the client or person it is for")
	}
	if len(name) > 128 {
		return fmt.Errorf("token name is %d bytes long; use at most 128", len(name))
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("token name %q contains a control character", name)
		}
	}
	return nil
}

// SecretID returns the token id inside a secret of the form
// nodb_<id>_<random>, and false when secret does not have that form.
func SecretID(secret string) (string, bool) {
	rest, ok := strings.CutPrefix(secret, SecretPrefix)
	if !ok {
		return "", false
	}
	id, random, ok := strings.Cut(rest, "_")
	if !ok || id == "" || random == "" {
		return "", false
	}
	return id, true
}

// Validate checks every entry: ids and names unique and non-empty, hashes
// well-formed, scopes known. Errors name the entry.
func (f *File) Validate() error {
	ids, names := map[string]bool{}, map[string]bool{}
	for i, t := range f.Tokens {
		where := fmt.Sprintf("token %d (%q)", i+1, t.Name)
		if t.ID == "" || strings.ContainsAny(t.ID, "_ ") {
			return fmt.Errorf("%s: id %q is empty or contains '_' or a space", where, t.ID)
		}
		if err := checkTokenName(t.Name); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		if ids[t.ID] {
			return fmt.Errorf("%s: id %s appears twice", where, t.ID)
		}
		if names[t.Name] {
			return fmt.Errorf("%s: name %q appears twice; names must be unique", where, t.Name)
		}
		ids[t.ID], names[t.Name] = true, true
		if b, err := hex.DecodeString(t.SHA256); err != nil || len(b) != sha256.Size {
			return fmt.Errorf("%s: sha256 %q is not 64 hex digits", where, t.SHA256)
		}
		if len(t.Scopes) == 0 {
			return fmt.Errorf("%s: no scopes", where)
		}
		for _, s := range t.Scopes {
			if err := ValidateScope(s); err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
		}
		if t.Limits.EventTimeoutMS < 0 {
			return fmt.Errorf("%s: limits.event_timeout_ms %d is negative", where, t.Limits.EventTimeoutMS)
		}
	}
	return nil
}

// Add appends t; its id and name must be new.
func (f *File) Add(t Token) error {
	for _, o := range f.Tokens {
		if o.Name == t.Name {
			return fmt.Errorf("a token named %q exists already (id %s); pick another name or revoke it first", t.Name, o.ID)
		}
		if o.ID == t.ID {
			return fmt.Errorf("a token with id %s exists already", t.ID)
		}
	}
	f.Tokens = append(f.Tokens, t)
	return nil
}

// Remove deletes the token whose id (or, failing that, name) is ref and
// returns it.
func (f *File) Remove(ref string) (Token, error) {
	idx := -1
	for i, t := range f.Tokens {
		if t.ID == ref {
			idx = i
			break
		}
	}
	if idx < 0 {
		for i, t := range f.Tokens {
			if t.Name == ref {
				idx = i
				break
			}
		}
	}
	if idx < 0 {
		return Token{}, fmt.Errorf("no token with id or name %q; nodb token list shows them", ref)
	}
	t := f.Tokens[idx]
	f.Tokens = append(f.Tokens[:idx], f.Tokens[idx+1:]...)
	return t, nil
}

// ReadFile reads and validates a token file.
func ReadFile(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("token file %s does not exist; create it with nodb token create --tokens %s --name NAME --scope SCOPE", path, path)
		}
		return nil, fmt.Errorf("token file: %w", err)
	}
	var f File
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("token file %s is not valid: %v", path, err)
	}
	end := dec.InputOffset()
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("token file %s is not valid: there is more after its JSON object, from byte %d on (two versions in one file?); keep one object {\"tokens\":[…]}", path, end)
	}
	if err := f.Validate(); err != nil {
		return nil, fmt.Errorf("token file %s: %w", path, err)
	}
	return &f, nil
}

// WriteFile writes f to path durably and atomically, readable by the owner
// only: a temp file in the same directory, fsync, rename over path, fsync
// of the directory. A crash leaves the old file or the new one.
func WriteFile(path string, f *File) error {
	if err := f.Validate(); err != nil {
		return err
	}
	if f.Tokens == nil {
		f.Tokens = []Token{}
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing the token file: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing the token file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("syncing the token file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replacing the token file: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Update runs fn on the token file at path (an empty File if it does not
// exist yet) under an exclusive lock on the file's directory, and writes the
// result back when fn succeeds. Concurrent `nodb token` commands therefore
// never lose each other's changes.
func Update(path string, fn func(*File) error) error {
	lf, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("locking the token file's directory: %w", err)
	}
	defer lf.Close()
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("locking the token file: %w", err)
	}
	defer syscall.Flock(int(lf.Fd()), syscall.LOCK_UN)
	f := &File{}
	if _, err := os.Stat(path); err == nil {
		if f, err = ReadFile(path); err != nil {
			return err
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("token file: %w", err)
	}
	if err := fn(f); err != nil {
		return err
	}
	return WriteFile(path, f)
}

// Set is the tokens of a file indexed for verification. It is immutable.
type Set struct {
	byID map[string]setEntry
}

type setEntry struct {
	hash [sha256.Size]byte
	p    *Principal
}

// NewSet indexes a validated file's tokens.
func NewSet(f *File) (*Set, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	s := &Set{byID: make(map[string]setEntry, len(f.Tokens))}
	for _, t := range f.Tokens {
		p, err := NewPrincipal(t.ID, t.Name, t.Scopes, t.Limits)
		if err != nil {
			return nil, err
		}
		var e setEntry
		hex.Decode(e.hash[:], []byte(t.SHA256))
		e.p = p
		s.byID[t.ID] = e
	}
	return s, nil
}

// Len is the number of tokens.
func (s *Set) Len() int { return len(s.byID) }

// Names returns the tokens' names, sorted.
func (s *Set) Names() []string {
	out := make([]string, 0, len(s.byID))
	for _, e := range s.byID {
		out = append(out, e.p.Name)
	}
	sort.Strings(out)
	return out
}

// noHash is compared against when the id is unknown, so that a lookup
// costs the same hash and comparison either way.
var noHash [sha256.Size]byte

// Verify returns the principal of secret, or a 401 *Error when the secret is
// malformed or not (any longer) in the set. The hash comparison is constant
// time (crypto/subtle).
func (s *Set) Verify(secret string) (*Principal, error) {
	id, ok := SecretID(secret)
	if !ok {
		return nil, unauthorized(true, "the bearer token is not a nodb token (they look like nodb_<id>_<secret>); create one with nodb token create")
	}
	e, known := s.byID[id]
	want := noHash
	if known {
		want = e.hash
	}
	sum := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(sum[:], want[:]) != 1 || !known {
		return nil, unauthorized(true, "token %s… is unknown or revoked; ask the host's operator for a valid token (nodb token list shows the valid ones)", SecretPrefix+id)
	}
	return e.p, nil
}
