/*
 * nodb.h - the C SDK for nodb reducers (guest ABI v1, abi/ABI.md).
 *
 * A reducer is a WebAssembly module that turns events into state changes.
 * With this SDK it is a C file that defines nodb_init() and registers one
 * handler per event type:
 *
 *     #include "nodb.h"
 *
 *     static int on_add(const nodb_event *e) {
 *         nodb_str id = nodb_value_str(nodb_value_key(e->payload, "id"));
 *         nodb_buf path = nodb_path_new();
 *         nodb_path_push(&path, NODB_STR("todos"));
 *         nodb_path_push(&path, id);
 *         return nodb_set_bool(nodb_buf_str(&path), true);
 *     }
 *
 *     void nodb_init(void) { nodb_on("todo/add", on_add); }
 *
 * and is built with sdk/guest/c/build.sh (clang --target=wasm32-wasi, no
 * libc needed). See sdk/guest/c/README.md. nodb.c defines the module's
 * exports (ABI.md section 3): `_initialize` (which calls nodb_init),
 * `nodb_buffer` and `nodb_reduce` (which calls nodb_reduce_frame).
 *
 * Memory. The SDK needs no malloc. Everything it hands out during an event
 * (values read with nodb_get, buffers, paths, nodb_alloc) lives in a per-event
 * arena that is reset when the next event starts: pointers into it are valid
 * until the handler returns, and not after. Keep nothing between events in
 * your own memory that changes results: the host re-creates the instance at
 * every epoch (ABI.md section 8). Out of memory traps (the view halts), as
 * ABI.md section 7 wants for bugs.
 *
 * Values. Payloads and state values are CBOR within the JSON data model
 * (ABI.md 5.1, 5.2). nodb_value is a view of one encoded item; the
 * nodb_value_* functions read it without copying. The nodb_cbor_* functions
 * append CBOR to a nodb_buf for nodb_set.
 *
 * Strings are (pointer, length) pairs (nodb_str), not NUL-terminated; the
 * functions that take a `const char *` without a length take a C string.
 */
#ifndef NODB_H
#define NODB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Status codes (ABI.md section 7) ---------------------------------- */

/** Status codes of host functions and of nodb_reduce. */
enum nodb_status {
	NODB_OK = 0,              /**< success */
	NODB_ERROR = 1,           /**< returned by a handler: the event is rejected */
	NODB_NOT_FOUND = -1,      /**< no value at the path */
	NODB_INVALID_PATH = -2,   /**< malformed or forbidden path, bad array index */
	NODB_INVALID_VALUE = -3,  /**< value outside ABI.md 5.2; bad consume type */
	NODB_TYPE_MISMATCH = -4,  /**< path goes through a scalar; root set to a non-map */
	NODB_TOO_LARGE = -5,      /**< a limit of ABI.md section 10 exceeded */
	NODB_BAD_STATE = -6,      /**< call not allowed now */
	NODB_HOST = -7            /**< the host failed; the event fails anyway */
};

/** Log levels for nodb_log (ABI.md 6.4). */
enum nodb_level {
	NODB_LOG_TRACE = 0,
	NODB_LOG_DEBUG = 1,
	NODB_LOG_INFO = 2,
	NODB_LOG_WARN = 3,
	NODB_LOG_ERROR = 4
};

/** The largest value, and the deepest nesting, the host accepts. */
#define NODB_MAX_VALUE_SIZE (16u << 20)
#define NODB_MAX_DEPTH 256

/* ---- Strings and buffers ------------------------------------------------ */

/** A byte string: p[0..n). Not NUL-terminated. */
typedef struct nodb_str {
	const char *p;
	uint32_t n;
} nodb_str;

/** NODB_STR("literal") is the nodb_str of a string literal. */
#define NODB_STR(lit) ((nodb_str){(lit), (uint32_t)(sizeof(lit) - 1)})

/** nodb_strz returns the nodb_str of a NUL-terminated C string. */
static inline nodb_str nodb_strz(const char *s) {
	return (nodb_str){s, (uint32_t)__builtin_strlen(s)};
}

/** nodb_str_eq reports whether a and b hold the same bytes. */
bool nodb_str_eq(nodb_str a, nodb_str b);

/**
 * A growable byte buffer in the event arena: used for paths (nodb_path_*),
 * CBOR values (nodb_cbor_*) and messages (nodb_buf_append*). A zero
 * nodb_buf is an empty buffer; it allocates when first written to. Valid
 * until the current event ends. Truncate it by assigning len.
 */
typedef struct nodb_buf {
	uint8_t *p;
	uint32_t len, cap;
} nodb_buf;

/** nodb_buf_str returns the contents of b as a string (no copy). */
static inline nodb_str nodb_buf_str(const nodb_buf *b) {
	return (nodb_str){(const char *)b->p, b->len};
}

/** nodb_buf_reserve makes room for n more bytes in b and returns where they go. */
uint8_t *nodb_buf_reserve(nodb_buf *b, uint32_t n);

/** nodb_buf_append appends n bytes at p to b. */
void nodb_buf_append(nodb_buf *b, const void *p, uint32_t n);

/** nodb_buf_append_str appends s to b. */
void nodb_buf_append_str(nodb_buf *b, nodb_str s);

/** nodb_buf_append_z appends the C string s to b. */
void nodb_buf_append_z(nodb_buf *b, const char *s);

/** nodb_buf_append_int appends v in decimal to b. */
void nodb_buf_append_int(nodb_buf *b, int64_t v);

/** nodb_buf_append_uint appends v in decimal to b. */
void nodb_buf_append_uint(nodb_buf *b, uint64_t v);

/**
 * nodb_alloc returns n bytes (8-byte aligned, not zeroed) from the event
 * arena, valid until the current event ends. Allocations made during
 * nodb_init are valid during nodb_init only. Traps when memory runs out.
 */
void *nodb_alloc(uint32_t n);

/* ---- Reading CBOR values ------------------------------------------------ */

/**
 * One encoded CBOR data item: p[0..n). n == 0 means "missing" (a key that
 * is not there, an index past the end, a state path with no value).
 */
typedef struct nodb_value {
	const uint8_t *p;
	uint32_t n;
} nodb_value;

/** The kinds of values of the JSON data model. */
typedef enum nodb_kind {
	NODB_MISSING = 0,
	NODB_NULL,
	NODB_BOOL,
	NODB_INT,     /**< CBOR major type 0 or 1 */
	NODB_FLOAT,   /**< float16, float32 or float64 */
	NODB_STRING,  /**< text string */
	NODB_ARRAY,
	NODB_MAP,
	NODB_INVALID  /**< anything outside the JSON data model */
} nodb_kind;

/** nodb_value_of wraps n bytes of CBOR (one item) as a value. */
static inline nodb_value nodb_value_of(const void *p, uint32_t n) {
	return (nodb_value){(const uint8_t *)p, n};
}

/** nodb_value_exists reports whether v is not missing. */
static inline bool nodb_value_exists(nodb_value v) { return v.n > 0; }

/** nodb_value_kind returns the kind of v from its first byte. */
nodb_kind nodb_value_kind(nodb_value v);

/**
 * nodb_value_keyn returns the value of the first entry of map v whose key is
 * key[0..n) (CBOR maps from JSON keep duplicate keys in source order: the
 * first one wins, as in the Go SDK), or a missing value if v is not a map or
 * has no such key.
 */
nodb_value nodb_value_keyn(nodb_value v, const char *key, uint32_t n);

/** nodb_value_key is nodb_value_keyn with a C string key. */
static inline nodb_value nodb_value_key(nodb_value v, const char *key) {
	return nodb_value_keyn(v, key, (uint32_t)__builtin_strlen(key));
}

/** nodb_value_index returns item i of array v, or a missing value. */
nodb_value nodb_value_index(nodb_value v, uint32_t i);

/** nodb_value_len returns the number of entries of a map or items of an array, else 0. */
uint32_t nodb_value_len(nodb_value v);

/** nodb_value_str_ok stores the text of string v in *out and returns true, or returns false. */
bool nodb_value_str_ok(nodb_value v, nodb_str *out);

/** nodb_value_str returns the text of string v, or "" (n == 0) if v is not a string. */
nodb_str nodb_value_str(nodb_value v);

/**
 * nodb_value_int_ok stores integer v in *out and returns true; a float with
 * an integral value within int64 counts too (as in the Go SDK). Otherwise
 * it returns false.
 */
bool nodb_value_int_ok(nodb_value v, int64_t *out);

/** nodb_value_int returns v as an integer (see nodb_value_int_ok), or 0. */
int64_t nodb_value_int(nodb_value v);

/** nodb_value_float_ok stores number v (integer or float) in *out and returns true, or returns false. */
bool nodb_value_float_ok(nodb_value v, double *out);

/** nodb_value_float returns number v as a double, or 0. */
double nodb_value_float(nodb_value v);

/** nodb_value_bool returns true if v is `true`, else false. */
static inline bool nodb_value_bool(nodb_value v) { return v.n > 0 && v.p[0] == 0xf5; }

/** nodb_value_is_null reports whether v is `null`. */
static inline bool nodb_value_is_null(nodb_value v) { return v.n > 0 && v.p[0] == 0xf6; }

/** An iterator over the entries of a map or the items of an array. */
typedef struct nodb_iter {
	const uint8_t *p, *end;
	uint32_t left;
} nodb_iter;

/** nodb_map_begin starts iterating map m; false (and an empty iterator) if m is not a map. */
bool nodb_map_begin(nodb_value m, nodb_iter *it);

/**
 * nodb_map_next stores the next entry's key and value and returns true, or
 * returns false at the end (or at a malformed or non-text key). Values from
 * the host come with keys sorted shorter first, then bytewise (ABI.md 5.2).
 */
bool nodb_map_next(nodb_iter *it, nodb_str *key, nodb_value *val);

/** nodb_array_begin starts iterating array a; false (and an empty iterator) if a is not an array. */
bool nodb_array_begin(nodb_value a, nodb_iter *it);

/** nodb_array_next stores the next item and returns true, or returns false at the end. */
bool nodb_array_next(nodb_iter *it, nodb_value *item);

/**
 * nodb_cbor_item_len returns the length of the data item at the start of
 * p[0..n), or 0 if it is truncated or uses a major type outside the JSON
 * data model (byte strings, tags, indefinite lengths). It checks structure
 * only; nodb_cbor_validate checks everything.
 */
uint32_t nodb_cbor_item_len(const uint8_t *p, uint32_t n);

/**
 * nodb_cbor_validate checks that p[0..n) is exactly one CBOR data item
 * within the JSON data model (ABI.md 5.2): NODB_OK, NODB_INVALID_VALUE
 * (malformed, byte string, tag, undefined or other simple value, indefinite
 * length, integer outside int64, NaN or infinity, invalid UTF-8, non-text
 * map key, nesting deeper than 256, trailing bytes) or NODB_TOO_LARGE (over
 * 16 MiB). The host makes the same checks on state_set, so a reducer needs
 * this only for bytes that did not come from the host.
 */
int32_t nodb_cbor_validate(const uint8_t *p, uint32_t n);

/* ---- Writing CBOR values ------------------------------------------------ */

/* Each appends one item (or, for arrays and maps, the head that the next
 * count items, or 2*count keys and values, follow) to b, in the preferred
 * (shortest) encoding ABI.md 5.2 asks writers to use. */

/** nodb_cbor_null appends null. */
void nodb_cbor_null(nodb_buf *b);
/** nodb_cbor_bool appends true or false. */
void nodb_cbor_bool(nodb_buf *b, bool v);
/** nodb_cbor_int appends an integer with the shortest head. */
void nodb_cbor_int(nodb_buf *b, int64_t v);
/** nodb_cbor_float appends a float64 (NaN and infinities are not values: the host refuses them). */
void nodb_cbor_float(nodb_buf *b, double v);
/** nodb_cbor_strn appends a text string (n bytes of UTF-8 at s). */
void nodb_cbor_strn(nodb_buf *b, const char *s, uint32_t n);
/** nodb_cbor_str appends a text string. */
static inline void nodb_cbor_str(nodb_buf *b, nodb_str s) { nodb_cbor_strn(b, s.p, s.n); }
/** nodb_cbor_strz appends the C string s as a text string. */
static inline void nodb_cbor_strz(nodb_buf *b, const char *s) {
	nodb_cbor_strn(b, s, (uint32_t)__builtin_strlen(s));
}
/** nodb_cbor_array appends the head of an array of count items; append the items next. */
void nodb_cbor_array(nodb_buf *b, uint32_t count);
/** nodb_cbor_map appends the head of a map of count entries; append key, value, key, value... next. */
void nodb_cbor_map(nodb_buf *b, uint32_t count);
/** nodb_cbor_value appends an encoded item as it is (for example one read from the payload). */
void nodb_cbor_value(nodb_buf *b, nodb_value v);

/* ---- Paths (JSON Pointers, ABI.md 6.2) --------------------------------- */

/** nodb_path_new returns an empty path: the root "". */
static inline nodb_buf nodb_path_new(void) { return (nodb_buf){0, 0, 0}; }

/**
 * nodb_path_push appends one token for map key (or array index text) key:
 * a '/', then key with '~' escaped as "~0" and '/' as "~1". Any key is
 * safe; the host refuses the tokens __proto__, constructor and prototype
 * (NODB_INVALID_PATH) and paths over 4096 bytes (NODB_TOO_LARGE).
 */
void nodb_path_push(nodb_buf *path, nodb_str key);

/** nodb_path_pushz is nodb_path_push with a C string. */
static inline void nodb_path_pushz(nodb_buf *path, const char *key) { nodb_path_push(path, nodb_strz(key)); }

/** nodb_path_push_index appends the token of array index i. */
void nodb_path_push_index(nodb_buf *path, uint32_t i);

/* ---- State (ABI.md 6.3) ------------------------------------------------- */

/**
 * nodb_get reads the value at path into the event arena and stores it in
 * *out: NODB_OK, or a negative status (NODB_NOT_FOUND when there is no
 * value, or the path goes through a scalar) with *out missing. Values larger
 * than the free arena are read again after growing it (ABI.md 6.3). The
 * value is a copy: it stays as read, and valid, until the event ends.
 */
int32_t nodb_get(nodb_str path, nodb_value *out);

/** nodb_has reports whether there is a value at path (state_has: nothing is
 * encoded or copied, whatever the size of the value). */
bool nodb_has(nodb_str path);

/**
 * nodb_set stores the CBOR item val[0..n) at path, creating missing
 * intermediate maps: NODB_OK or a negative status (NODB_TYPE_MISMATCH
 * through a scalar, NODB_INVALID_VALUE for a value outside ABI.md 5.2, ...).
 */
int32_t nodb_set(nodb_str path, const void *val, uint32_t n);

/** nodb_set_buf stores the CBOR item built in b at path (see nodb_set). */
static inline int32_t nodb_set_buf(nodb_str path, const nodb_buf *b) { return nodb_set(path, b->p, b->len); }

/** nodb_set_value stores v at path (see nodb_set). */
static inline int32_t nodb_set_value(nodb_str path, nodb_value v) { return nodb_set(path, v.p, v.n); }

/** nodb_set_bool stores true or false at path (see nodb_set). */
int32_t nodb_set_bool(nodb_str path, bool v);

/** nodb_set_int stores an integer at path (see nodb_set). */
int32_t nodb_set_int(nodb_str path, int64_t v);

/** nodb_set_str stores a text string at path (see nodb_set). */
int32_t nodb_set_str(nodb_str path, nodb_str v);

/**
 * nodb_delete removes the value at path (an array item: the rest shift
 * down): NODB_OK, NODB_NOT_FOUND if there was none, or another negative
 * status.
 */
int32_t nodb_delete(nodb_str path);

/* ---- Events and handlers ------------------------------------------------ */

/** The event being reduced (ABI.md section 5). Valid during the handler call only. */
typedef struct nodb_event {
	uint64_t seq;      /**< global sequence number, from 1 */
	int64_t time;      /**< acceptance time, Unix nanoseconds */
	uint64_t pseq;     /**< the producer's sequence number */
	nodb_str producer; /**< who published it */
	nodb_str type;     /**< for example "todo/add" */
	nodb_value payload;/**< one CBOR item (null for an empty payload) */
} nodb_event;

/**
 * A handler reduces one event. It returns 0 to commit the changes it made,
 * or non-zero to reject the event (the host discards its changes); use
 * nodb_reject to say why. A handler that returns a non-zero value without a
 * message gets "nodb: handler returned STATUS". To halt the view (a bug, not
 * an invalid intention), trap: __builtin_trap().
 */
typedef int32_t (*nodb_handler)(const nodb_event *e);

/**
 * nodb_init is defined by the reducer: the SDK calls it once per instance,
 * from the module's initialiser (the `_initialize` export). Register the
 * handlers there, and only there: the host accepts declarations during
 * initialisation only (ABI.md 6.1). It must not touch the state.
 */
void nodb_init(void);

/**
 * nodb_on registers h for events of type `type` (a C string that must stay
 * valid: a literal) and declares the type to the host with `consume`. "*"
 * registers a handler for every type that has none of its own (and makes the
 * host deliver every type). A reducer that registers nothing receives every
 * event and ignores it. Registering a type again replaces its handler.
 * Returns the host's status (NODB_OK, NODB_INVALID_VALUE for a type of 0 or
 * over 256 bytes, NODB_TOO_LARGE past 1024 declarations, NODB_BAD_STATE
 * outside nodb_init).
 */
int32_t nodb_on(const char *type, nodb_handler h);

/**
 * nodb_reject sets msg as the reason of the current event's rejection and
 * returns NODB_ERROR, so a handler can `return nodb_reject("...")`. The
 * host keeps up to 4096 bytes.
 */
int32_t nodb_reject(nodb_str msg);

/** nodb_rejectz is nodb_reject with a C string. */
static inline int32_t nodb_rejectz(const char *msg) { return nodb_reject(nodb_strz(msg)); }

/**
 * nodb_reject_status rejects the event because a state call failed, with
 * the message the Go SDK gives the same failure: "nodb: OP PATH: abi: ..."
 * (op is "set" or "delete"). Returns NODB_ERROR.
 */
int32_t nodb_reject_status(const char *op, nodb_str path, int32_t status);

/** nodb_status_text returns the text of a status, as the Go abi package has it ("abi: not found"). */
const char *nodb_status_text(int32_t status);

/** nodb_log writes msg to the plugin's log at a level (rate-limited by the host). */
void nodb_log(int32_t level, nodb_str msg);

/**
 * nodb_decode_frame decodes an event frame (ABI.md section 5) into *e, which
 * then points into frame: 0, or -1 if the frame is malformed (shorter than
 * 40 bytes, lengths that do not add up to n, a format other than CBOR).
 * nodb_reduce does this for every event; it is public for tests and tools.
 */
int32_t nodb_decode_frame(const uint8_t *frame, uint32_t n, nodb_event *e);

/**
 * nodb_reduce_frame resets the event arena, decodes one frame and runs its
 * handler: the status for the host (0 or 1). It is the body of the
 * `nodb_reduce` export, and what a loop over several frames calls per frame.
 */
int32_t nodb_reduce_frame(const uint8_t *frame, uint32_t n);

/* ---- Cascades (ABI.md section 13) ---------------------------------------- */

/*
 * A cascade is a plugin whose inputs are other views instead of events. It
 * registers a patch handler per upstream view with nodb_on_patch (which
 * declares the input to the host), receives each change of those views as a
 * patch tagged with the seq of the event that caused it, reads the inputs'
 * states with nodb_input_get, and writes its own state with nodb_set and
 * friends, as a reducer does:
 *
 *     static int32_t on_todos(const nodb_patch *p) {
 *         if (!nodb_patch_touches(p, NODB_STR("/todos"))) return NODB_OK;
 *         nodb_value todos;
 *         nodb_input_get(NODB_STR("todos"), NODB_STR("/todos"), &todos);
 *         return nodb_set_int(NODB_STR("/count"), nodb_value_len(todos));
 *     }
 *
 *     void nodb_init(void) { nodb_on_patch("todos", on_todos); }
 *
 * Its state MUST be a function of its inputs' states (ABI.md 13.4): the host
 * may deliver one catch-up patch (the difference between two states many
 * events apart) instead of every change, for example after a restart.
 * Patches are there to work incrementally; reading the inputs is always
 * correct.
 */

/** One input's changes at one seq (ABI.md 13.2). Valid during the handler call only. */
typedef struct nodb_patch {
	uint64_t seq;   /**< the seq of the event that caused the change, in the inputs' host */
	nodb_str input; /**< the upstream view that changed */
	nodb_value ops; /**< a CBOR array of RFC 6902 operations; read it with nodb_patch_begin/next */
} nodb_patch;

/** One RFC 6902 operation of a patch. */
typedef struct nodb_op {
	nodb_str op;      /**< "add", "remove" or "replace" */
	nodb_str path;    /**< the JSON Pointer (into the input's state) it changes */
	nodb_value value; /**< the new value; missing for "remove" */
} nodb_op;

/**
 * A patch handler reduces one input's changes at one seq. It returns 0 to
 * commit the changes it made to the cascade's state, or non-zero to reject
 * them (with nodb_reject for the reason): a rejection discards the changes
 * of every input at that seq. Trap to halt the cascade.
 */
typedef int32_t (*nodb_patch_handler)(const nodb_patch *p);

/**
 * nodb_on_patch registers h for the changes of the upstream view `input` (a
 * C string that must stay valid: a literal) and declares the input to the
 * host, which makes the plugin a cascade. Call it from nodb_init only.
 * Patches of one seq come in the order the inputs were first registered.
 * Registering an input again replaces its handler. Returns the host's
 * status (NODB_OK; NODB_INVALID_VALUE for a name that is not a view name;
 * NODB_TOO_LARGE past 16 inputs; NODB_BAD_STATE outside nodb_init).
 */
int32_t nodb_on_patch(const char *input, nodb_patch_handler h);

/** nodb_patch_begin starts iterating the operations of p (false if it has none). */
bool nodb_patch_begin(const nodb_patch *p, nodb_iter *it);

/**
 * nodb_patch_next stores the next operation and returns true, or returns
 * false at the end (or at an item that is not an operation map).
 */
bool nodb_patch_next(nodb_iter *it, nodb_op *op);

/**
 * nodb_patch_touches reports whether an operation of p changed prefix, or
 * something under or above it (a path equal to prefix, starting with
 * prefix + "/", or a parent of prefix), as the Go SDK's Patch.Touches. Use
 * it to skip patches a cascade does not care about.
 */
bool nodb_patch_touches(const nodb_patch *p, nodb_str prefix);

/**
 * nodb_input_get reads the value at path in the state of the upstream view
 * `input`, as of the seq being reduced (ABI.md 13.3), into the event arena,
 * as nodb_get does for the cascade's own state: NODB_OK, or a negative
 * status with *out missing (NODB_NOT_FOUND for no value or an input that
 * was not declared; NODB_BAD_STATE outside a cascade's patch handler).
 */
int32_t nodb_input_get(nodb_str input, nodb_str path, nodb_value *out);

#ifdef __cplusplus
}
#endif

#endif /* NODB_H */
