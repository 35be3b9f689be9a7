// Package statetree is nodb's state atom: the host-owned, persistent tree of
// JSON-compatible values that a view's reducer builds from events.
//
// # Values
//
// A Value is null, bool, int (int64), float (finite float64), string (valid
// UTF-8), array or map (string keys). Values are immutable: every change
// returns a new root that shares all untouched nodes with the old one, so a
// snapshot is just a kept root, and any number of goroutines may read any
// root while a new one is being built.
//
// Int and float are distinct kinds. JSON numbers without a fraction or
// exponent that fit an int64 decode as ints, all others as floats. So that
// JSON → Value → JSON → Value is stable, a float is written in its shortest
// round-trip form with ".0" appended when that form would read as an int
// (Float(1) is written 1.0), and CBOR keeps the major types apart. Int(1) and
// Float(1) are therefore different values with different hashes. Negative
// zero is stored as zero.
//
// # Persistence and canonical order
//
// A map is a path-compressed radix trie over the key bytes (see trie.go).
// The trie's shape depends only on the set of keys, never on the order of
// the changes that produced it, it iterates in bytewise key order (the
// canonical order of Range, JSON and hashing), and a get, set or delete
// touches one node per branching point on the key's path: O(key length),
// independent of the map's size and immune to crafted insertion orders. An
// update copies only those nodes (path copying). Keys such as "todo-123" in a
// 100k-entry map are 4–6 nodes deep.
//
// Within one Tx, edits are transient (as Clojure's transients and Immer's
// drafts): the nodes a Tx creates belong to it until it commits, and later
// changes in the same Tx edit them in place rather than copying them again,
// so n changes to nearby paths cost little more than one. Nothing that
// existed before the Tx, and nothing a Value handed out by the Tx (Root,
// Get, Commit, the ops) can reach, is ever changed.
//
// Arrays are immutable slices copied on every change (O(n)); they suit the
// small ordered lists state holds. Large keyed collections belong in maps.
//
// Nesting is limited to MaxDepth containers by every constructor, decoder
// and change, so any tree can be serialised and decoded again.
//
// # Paths and ops
//
// Paths are RFC 6901 JSON Pointers, parsed once into a Path. Changes go
// through a Tx (or the one-shot Value.Set and Value.Delete), which records
// each change as one RFC 6902 op, using only add, remove and replace so that
// fast-json-patch and Immer both apply them:
//
//   - Set on an existing location records replace; on a missing map key, add;
//     on index len or "-" of an array, add at the concrete index (an append).
//     Setting a value equal to the current one records nothing.
//   - Set creates missing intermediate maps (and replaces a null
//     intermediate with a map); the single op is recorded at the highest
//     created level with the whole new subtree as its value, so the patch
//     applies to the old document with plain RFC 6902 tools.
//   - Insert inserts into an array, shifting later elements (add).
//   - Delete records remove; deleting a missing path records nothing.
//
// The keys "__proto__", "constructor" and "prototype" are rejected anywhere:
// in paths, and in maps at any depth of any value (they cannot be
// constructed), because a JavaScript client applying a patch with them could
// have its prototypes polluted.
//
// # Merkle hashes
//
// Value.Hash is SHA-256 over a canonical encoding, computed lazily and cached
// in the immutable container nodes, so after a change only the changed path
// is hashed again, and two trees compare in O(1) by hash. Diff and DiffPaths
// walk only subtrees whose hashes differ. The encoding, with all integers
// big-endian and the tags fixed forever:
//
//	enc(null)      = 00
//	enc(false)     = 01
//	enc(true)      = 02
//	enc(int i)     = 03 | i as int64 (8 bytes, two's complement)
//	enc(float f)   = 04 | IEEE 754 binary64 bits of f (8 bytes)
//	enc(string s)  = 05 | len(s) u64 | s (UTF-8 bytes)
//	enc(array a)   = 06 | len(a) u64 | ref(a[0]) | … | ref(a[n-1])
//	enc(map m)     = 07 | len(m) u64 | H(trie root)        (root omitted if empty)
//	trie node t    = 08 | len(pfx) u64 | pfx | 00              (no entry here)
//	                                         | 01 | ref(value) (entry pfx=value)
//	                 | number of children u16 | H(child 0) | … (in edge order)
//	ref(v)         = enc(v)          if v is a scalar and len(enc(v)) ≤ 64
//	               = FF | H(v)       otherwise (containers, long strings)
//	H(v)           = SHA-256(enc(v));  H(trie node t) = SHA-256(t)
//
// pfx is the node's full key prefix (the entry's key when the node holds
// one). Since the trie is canonical, equal maps have equal hashes, and the
// hash of a tree is the same on every host and architecture.
//
// # Serialisation
//
// MarshalJSON writes canonical JSON (sorted keys, minimal escaping).
// FromJSON parses strictly: duplicate keys, invalid UTF-8, lone surrogates,
// forbidden keys and nesting deeper than MaxDepth are errors. EncodeCBOR
// writes RFC 8949 Core Deterministic CBOR for snapshots; DecodeCBOR is
// hardened against hostile input.
package statetree
