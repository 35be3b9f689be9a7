// Package js embeds nodb's JavaScript client so that every nodb host serves
// it at /nodb-client/ (browsers import it from there without a build step).
// The client itself is plain ES modules in this directory; see README.md.
package js

import "embed"

// Files holds the client's ES modules.
//
//go:embed *.js
var Files embed.FS
