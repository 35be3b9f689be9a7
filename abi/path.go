package abi

import (
	"strings"
	"unicode/utf8"
)

// Paths are JSON Pointers (RFC 6901): "" is the root, "/todos/a~1b" is key
// "a/b" of the map at key "todos". See ABI.md, "Paths".

// IsForbiddenKey reports whether key may not appear in a path because it would
// pollute a JavaScript client's objects.
func IsForbiddenKey(key string) bool {
	return key == "__proto__" || key == "constructor" || key == "prototype"
}

// ValidatePath checks a path: empty, or valid UTF-8 of '/'-separated tokens
// where '~' is only followed by '0' or '1', no token (unescaped) is a
// forbidden key, at most MaxPathSize bytes and MaxDepth tokens. It returns
// StatusOK, StatusInvalidPath or StatusTooLarge.
func ValidatePath(p string) Status {
	if len(p) > MaxPathSize {
		return StatusTooLarge
	}
	if p == "" {
		return StatusOK
	}
	if p[0] != '/' || !utf8.ValidString(p) {
		return StatusInvalidPath
	}
	depth := 0
	for rest := p; rest != ""; {
		tok, next, ok := NextToken(rest)
		if !ok {
			return StatusInvalidPath
		}
		depth++
		if depth > MaxDepth {
			return StatusInvalidPath
		}
		if len(tok) >= 9 && len(tok) <= 11 && IsForbiddenKey(Unescape(tok)) {
			return StatusInvalidPath
		}
		rest = next
	}
	return StatusOK
}

// NextToken splits the first token off a non-empty path: p must start with
// '/'. tok is still escaped (use Unescape); rest is the remaining path ("" at
// the end). ok is false if p does not start with '/' or tok has a bad escape.
func NextToken(p string) (tok, rest string, ok bool) {
	if p == "" || p[0] != '/' {
		return "", "", false
	}
	p = p[1:]
	i := strings.IndexByte(p, '/')
	if i < 0 {
		tok, rest = p, ""
	} else {
		tok, rest = p[:i], p[i:]
	}
	for j := 0; j < len(tok); j++ {
		if tok[j] == '~' && (j+1 >= len(tok) || (tok[j+1] != '0' && tok[j+1] != '1')) {
			return "", "", false
		}
	}
	return tok, rest, true
}

// Unescape turns an escaped token into a key: "~1" becomes "/", "~0" becomes
// "~". It allocates only when the token contains '~'.
func Unescape(tok string) string {
	if strings.IndexByte(tok, '~') < 0 {
		return tok
	}
	return strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
}

// Escape turns a key into a path token: "~" becomes "~0", "/" becomes "~1".
// It allocates only when the key contains '~' or '/'.
func Escape(key string) string {
	if strings.IndexByte(key, '~') < 0 && strings.IndexByte(key, '/') < 0 {
		return key
	}
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(key)
}

// SplitPath returns the unescaped keys of a valid path (nil for the root).
func SplitPath(p string) ([]string, Status) {
	if st := ValidatePath(p); st != StatusOK {
		return nil, st
	}
	var keys []string
	for rest := p; rest != ""; {
		tok, next, _ := NextToken(rest)
		keys = append(keys, Unescape(tok))
		rest = next
	}
	return keys, StatusOK
}

// ArrayIndex parses an array index token: a decimal number without leading
// zeros, or "-" meaning one past the end (returned as -1). ok is false for
// anything else.
func ArrayIndex(tok string) (i int, ok bool) {
	if tok == "-" {
		return -1, true
	}
	if tok == "" || len(tok) > 9 || (len(tok) > 1 && tok[0] == '0') {
		return 0, false
	}
	for j := 0; j < len(tok); j++ {
		c := tok[j]
		if c < '0' || c > '9' {
			return 0, false
		}
		i = i*10 + int(c-'0')
	}
	return i, true
}
