// Package auth is nodb's authentication and authorisation: bearer tokens
// kept (as SHA-256 hashes only) in a token file, the scopes they grant, and
// the decisions every HTTP and WebSocket endpoint asks for.
//
// A token grants scopes:
//
//	admin            any operation
//	publish          append events of any type
//	publish:PREFIX   append events whose type starts with PREFIX (publish:todo/)
//	read:VIEW        read and subscribe to one view; read:* to every view
//	deploy:cascade   upload and activate plugins of kind "cascade" whose
//	                 inputs are all views the token may read
//
// The decisions are pure functions of a Principal and the request's facts
// (Principal.CheckPublish, CheckRead, AuthorizeUpload, AuthorizeActivate, …)
// so they are unit-tested apart from the HTTP plumbing. Denials are *Error
// values that map to HTTP 401 (no or bad token) and 403 (a valid token
// without the scope) and say which scope would have allowed the operation.
package auth

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/nodb-dev/nodb/abi/wire"
)

// Scopes a token can hold. Scopes with a parameter are written
// ScopePublish+":"+PREFIX and ScopeRead+":"+VIEW.
const (
	// ScopeAdmin allows any operation.
	ScopeAdmin = "admin"
	// ScopePublish allows appending events of any type; "publish:PREFIX"
	// only types starting with PREFIX.
	ScopePublish = "publish"
	// ScopeRead with a view name ("read:todos") allows reading and
	// subscribing to that view; "read:*" to every view.
	ScopeRead = "read"
	// ScopeDeployCascade allows uploading and activating cascades over
	// views the token may read.
	ScopeDeployCascade = "deploy:cascade"
)

// Plugin kinds the authorisation decisions distinguish.
const (
	// KindReducer is a reducer plugin: it builds a view from raw events.
	// A manifest without a kind is a reducer.
	KindReducer = "reducer"
	// KindCascade is a cascade plugin: it builds a view from other views.
	KindCascade = "cascade"
)

// Limits bound the resources of the plugins a token may deploy. Zero means
// no limit beyond the host's own maxima. The JSON shape is the plugin
// manifest's "limits".
type Limits struct {
	// MemoryPages caps guest memory, in 64 KiB pages.
	MemoryPages uint32 `json:"memory_pages,omitempty"`
	// EventTimeoutMS bounds the handling of one event, in milliseconds.
	EventTimeoutMS int64 `json:"event_timeout_ms,omitempty"`
}

// Principal is who a request acts for: a token's id, name, scopes and
// limits, with the scopes parsed for fast decisions. Create one with
// NewPrincipal (or OpenPrincipal); it is immutable and safe to share.
type Principal struct {
	// ID is the token's id ("" for the open-mode principal).
	ID string
	// Name is the token's human name, used in every error message.
	Name string
	// Scopes are the scopes as written in the token file.
	Scopes []string
	// Limits bound the plugins the token may deploy (not enforced for
	// admin tokens).
	Limits Limits

	admin, publishAll, readAll, deployCascade bool
	publishPrefixes                           []string
	read                                      map[string]bool
}

// NewPrincipal parses scopes and returns the principal of a token. An
// unknown or malformed scope is an error naming it.
func NewPrincipal(id, name string, scopes []string, limits Limits) (*Principal, error) {
	p := &Principal{ID: id, Name: name, Scopes: append([]string(nil), scopes...), Limits: limits, read: map[string]bool{}}
	for _, s := range scopes {
		if err := ValidateScope(s); err != nil {
			return nil, err
		}
		switch {
		case s == ScopeAdmin:
			p.admin = true
		case s == ScopePublish:
			p.publishAll = true
		case strings.HasPrefix(s, ScopePublish+":"):
			p.publishPrefixes = append(p.publishPrefixes, s[len(ScopePublish)+1:])
		case s == ScopeRead+":*":
			p.readAll = true
		case strings.HasPrefix(s, ScopeRead+":"):
			p.read[s[len(ScopeRead)+1:]] = true
		case s == ScopeDeployCascade:
			p.deployCascade = true
		}
	}
	return p, nil
}

// OpenPrincipal is the implicit principal of a host without a token file:
// an admin that may do anything.
func OpenPrincipal() *Principal {
	p, _ := NewPrincipal("", "open mode", []string{ScopeAdmin}, Limits{})
	return p
}

// ValidateScope checks that s is one of the scopes of the package
// documentation and says what is wrong otherwise.
func ValidateScope(s string) error {
	const valid = "valid scopes: admin, publish, publish:PREFIX, read:VIEW, read:*, deploy:cascade"
	if !utf8.ValidString(s) {
		return fmt.Errorf("scope %q is not valid UTF-8", s)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == ' ' {
			return fmt.Errorf("scope %q contains a space or control character; %s", s, valid)
		}
	}
	switch {
	case s == ScopeAdmin, s == ScopePublish, s == ScopeDeployCascade:
		return nil
	case strings.HasPrefix(s, ScopePublish+":"):
		if len(s) == len(ScopePublish)+1 {
			return fmt.Errorf("scope %q has an empty prefix; use publish for every type or publish:PREFIX, e.g. publish:todo/", s)
		}
		return nil
	case strings.HasPrefix(s, ScopeRead+":"):
		if len(s) == len(ScopeRead)+1 {
			return fmt.Errorf("scope %q names no view; use read:VIEW, e.g. read:todos, or read:* for every view", s)
		}
		return nil
	case s == ScopeRead:
		return fmt.Errorf("scope %q names no view; use read:VIEW, e.g. read:todos, or read:* for every view", s)
	case strings.HasPrefix(s, "deploy"):
		return fmt.Errorf("scope %q is unknown: only cascades can be deployed with a scope (deploy:cascade); reducers need admin", s)
	}
	return fmt.Errorf("scope %q is unknown; %s", s, valid)
}

// Admin reports whether the principal may do anything.
func (p *Principal) Admin() bool { return p.admin }

// CanPublish reports whether the principal may append events of eventType.
func (p *Principal) CanPublish(eventType string) bool {
	if p.admin || p.publishAll {
		return true
	}
	for _, pre := range p.publishPrefixes {
		if strings.HasPrefix(eventType, pre) {
			return true
		}
	}
	return false
}

// CanRead reports whether the principal may read and subscribe to view.
func (p *Principal) CanRead(view string) bool {
	return p.admin || p.readAll || p.read[view]
}

// CanDeployCascade checks that the principal may deploy a cascade reading
// inputs: admin, or deploy:cascade and read access to every input. A
// non-admin cascade must name its inputs.
func (p *Principal) CanDeployCascade(inputs []string) error {
	if p.admin {
		return nil
	}
	if !p.deployCascade {
		return p.forbidden(ScopeDeployCascade, "deploy cascades")
	}
	if len(inputs) == 0 {
		return &Error{Status: http.StatusForbidden, Code: wire.CodeForbidden, Scope: ScopeAdmin,
			Message: fmt.Sprintf("token %q may not deploy a cascade without inputs: list the views it reads in the manifest's \"inputs\"", p.Name)}
	}
	for _, in := range inputs {
		if !p.CanRead(in) {
			return p.forbidden(ScopeRead+":"+in, fmt.Sprintf("deploy a cascade over view %q", in))
		}
	}
	return nil
}

// CheckAdmin returns nil for an admin and otherwise a 403 saying that what
// (e.g. "read raw events") needs the admin scope.
func (p *Principal) CheckAdmin(what string) error {
	if p.admin {
		return nil
	}
	return p.forbidden(ScopeAdmin, what)
}

// CheckPublish returns nil if the principal may append an event of
// eventType, otherwise a 403 naming the scope that would allow it.
func (p *Principal) CheckPublish(eventType string) error {
	if p.CanPublish(eventType) {
		return nil
	}
	suggest := eventType
	if i := strings.LastIndexByte(eventType, '/'); i > 0 {
		suggest = eventType[:i+1]
	}
	e := p.forbidden(ScopePublish+":"+suggest, fmt.Sprintf("publish events of type %q", eventType))
	e.Message += " (or publish, or another publish:PREFIX the type starts with)"
	return e
}

// CheckRead returns nil if the principal may read view, otherwise a 403
// naming the scope read:VIEW.
func (p *Principal) CheckRead(view string) error {
	if p.CanRead(view) {
		return nil
	}
	return p.forbidden(ScopeRead+":"+view, fmt.Sprintf("read view %q", view))
}

// CheckWebSocket returns nil if a WebSocket is of any use to the principal
// (it may publish something or read some view), otherwise a 403.
func (p *Principal) CheckWebSocket() error {
	if p.admin || p.publishAll || p.readAll || len(p.publishPrefixes) > 0 || len(p.read) > 0 {
		return nil
	}
	return p.forbidden(ScopeRead+":VIEW or publish", "open a WebSocket (it can neither publish nor read any view)")
}

// CheckListPlugins returns nil if the principal may list plugin versions:
// admins see all of them, deploy:cascade tokens the cascades.
func (p *Principal) CheckListPlugins() error {
	if p.admin || p.deployCascade {
		return nil
	}
	return p.forbidden(ScopeDeployCascade, "list plugins")
}

// CheckLimits checks a plugin's limits against the principal's and returns
// them with the principal's limits filled in where the plugin gives none
// (zero). Admins are not limited. A limit over the token's is a 403 naming
// the limit.
func (p *Principal) CheckLimits(l Limits) (Limits, error) {
	if p.admin {
		return l, nil
	}
	if max := p.Limits.MemoryPages; max > 0 {
		if l.MemoryPages == 0 {
			l.MemoryPages = max
		} else if l.MemoryPages > max {
			return l, p.overLimit(fmt.Sprintf("limits.memory_pages %d", l.MemoryPages), fmt.Sprintf("memory_pages %d", max))
		}
	}
	if max := p.Limits.EventTimeoutMS; max > 0 {
		if l.EventTimeoutMS == 0 {
			l.EventTimeoutMS = max
		} else if l.EventTimeoutMS > max {
			return l, p.overLimit(fmt.Sprintf("limits.event_timeout_ms %d", l.EventTimeoutMS), fmt.Sprintf("event_timeout_ms %d", max))
		}
	}
	return l, nil
}

// withinLimits is CheckLimits without filling in: a stored version whose
// limit is zero (the host's maximum) exceeds a token's limit.
func (p *Principal) withinLimits(l Limits) error {
	if p.admin {
		return nil
	}
	if max := p.Limits.MemoryPages; max > 0 && (l.MemoryPages == 0 || l.MemoryPages > max) {
		return p.overLimit(fmt.Sprintf("limits.memory_pages %s", limitText(int64(l.MemoryPages))), fmt.Sprintf("memory_pages %d", max))
	}
	if max := p.Limits.EventTimeoutMS; max > 0 && (l.EventTimeoutMS == 0 || l.EventTimeoutMS > max) {
		return p.overLimit(fmt.Sprintf("limits.event_timeout_ms %s", limitText(l.EventTimeoutMS)), fmt.Sprintf("event_timeout_ms %d", max))
	}
	return nil
}

func limitText(v int64) string {
	if v == 0 {
		return "0 (the host's maximum)"
	}
	return fmt.Sprint(v)
}

func (p *Principal) overLimit(asked, limit string) *Error {
	return &Error{Status: http.StatusForbidden, Code: wire.CodeForbidden,
		Message: fmt.Sprintf("token %q may not deploy a plugin with %s: the token's limit is %s; ask for less in the manifest's limits (or leave it out to get the token's limit)", p.Name, asked, limit)}
}

// AuthorizeUpload decides an upload (POST /v1/plugins) of a manifest with
// kind ("" is a reducer), inputs and limits. Admins may upload anything;
// deploy:cascade tokens only cascades whose inputs they may read, within
// their limits. It returns the limits to store (the token's filled in).
func (p *Principal) AuthorizeUpload(kind string, inputs []string, limits Limits) (Limits, error) {
	if p.admin {
		return limits, nil
	}
	if kind == "" {
		kind = KindReducer
	}
	if kind != KindCascade {
		if !p.deployCascade {
			return limits, p.forbidden(ScopeAdmin, fmt.Sprintf("upload plugins (kind %q)", kind))
		}
		return limits, p.forbidden(ScopeAdmin, fmt.Sprintf("upload a plugin of kind %q (with deploy:cascade it may upload kind \"cascade\" only)", kind))
	}
	if err := p.CanDeployCascade(inputs); err != nil {
		return limits, err
	}
	return p.CheckLimits(limits)
}

// Activation describes a request that makes a stored version the active
// plugin of a view: activate, confirm (of a manual swap) or rollback.
type Activation struct {
	// Action names the operation in messages: "activate", "confirm", "roll back".
	Action string
	// View is the view's name.
	View string
	// Kind, Inputs and Limits are those of the version to become active.
	Kind   string
	Inputs []string
	Limits Limits
	// ViewExists says whether the view exists already; ViewKind is the
	// kind of its active version ("" when unknown, which counts as not a
	// cascade).
	ViewExists bool
	ViewKind   string
}

// AuthorizeActivate decides an Activation. Admins may do anything. A
// deploy:cascade token may make a cascade (over views it may read, within
// its limits) active in a view that does not exist yet or is a cascade: a
// third party never replaces a reducer view.
func (p *Principal) AuthorizeActivate(a Activation) error {
	if p.admin {
		return nil
	}
	if a.Action == "" {
		a.Action = "activate"
	}
	if !p.deployCascade {
		return p.forbidden(ScopeAdmin, fmt.Sprintf("%s plugins in view %q", a.Action, a.View))
	}
	kind := a.Kind
	if kind == "" {
		kind = KindReducer
	}
	if kind != KindCascade {
		return p.forbidden(ScopeAdmin, fmt.Sprintf("%s a version of kind %q in view %q (with deploy:cascade it may activate cascades only)", a.Action, kind, a.View))
	}
	if a.ViewExists && a.ViewKind != KindCascade {
		what := "a reducer view"
		if a.ViewKind == "" {
			what = "not a cascade view"
		} else if a.ViewKind != KindReducer {
			what = fmt.Sprintf("a view of kind %q", a.ViewKind)
		}
		return p.forbidden(ScopeAdmin, fmt.Sprintf("%s a cascade in view %q: that view exists and is %s, which only admin tokens may replace", a.Action, a.View, what))
	}
	if err := p.CanDeployCascade(a.Inputs); err != nil {
		return err
	}
	return p.withinLimits(a.Limits)
}

// String describes the principal for logs: name, id and scopes.
func (p *Principal) String() string {
	s := append([]string(nil), p.Scopes...)
	sort.Strings(s)
	return fmt.Sprintf("%s (%s) [%s]", p.Name, p.ID, strings.Join(s, " "))
}

func (p *Principal) forbidden(need, what string) *Error {
	return &Error{Status: http.StatusForbidden, Code: wire.CodeForbidden, Scope: need,
		Message: fmt.Sprintf("token %q may not %s: it needs scope %s", p.Name, what, need)}
}

// Error is a refused request: Status 401 (code "unauthorized": no token, or
// one the host does not know) or 403 (code "forbidden": a valid token
// without the scope). Message says what was wrong and what to do.
type Error struct {
	// Status is the HTTP status, http.StatusUnauthorized or http.StatusForbidden.
	Status int
	// Code is wire.CodeUnauthorized or wire.CodeForbidden.
	Code string
	// Message is the human explanation, sent as the "error" field.
	Message string
	// Scope is, for a 403, the scope that would have allowed the request
	// (empty when it is a limit, not a scope).
	Scope string
	// InvalidToken is set on a 401 for a token that was given but is not
	// valid (RFC 6750 error="invalid_token").
	InvalidToken bool
}

// Error implements error.
func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Wire returns the error as the protocol's error body.
func (e *Error) Wire() *wire.Error { return &wire.Error{Code: e.Code, Message: e.Message} }

func unauthorized(invalid bool, format string, args ...any) *Error {
	return &Error{Status: http.StatusUnauthorized, Code: wire.CodeUnauthorized, InvalidToken: invalid, Message: fmt.Sprintf(format, args...)}
}
