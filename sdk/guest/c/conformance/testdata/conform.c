/*
 * conform.c - a test reducer that runs the C SDK against the ABI
 * conformance vectors (abi/testdata/vectors.json), driven by
 * sdk/guest/c/conformance/conform_test.go through the real host. Each event
 * type exercises one part of the SDK and writes what it found to the state:
 *
 *   c/frame   {"hex": FRAME}  decode an event frame: /seq /time /pseq (decimal
 *                             strings), /producer, /type, /payload (raw item)
 *   c/value   {"hex": CBOR}   validate; if valid, copy the value item by item
 *                             through the reader into the writer: /v. Invalid
 *                             values are rejected with "invalid: STATUS".
 *   c/payload any JSON        copy the event's payload the same way: /v
 *   c/path    {"keys": [..]}  build a path from keys: /p (a string)
 *   c/big     {"n": N}        set /big to N bytes of text, read it back
 *                             (larger than the free arena: the retry-on-grow
 *                             path), check it: /ok
 *   c/missing {}              get, has and delete of a missing path: /ok
 *   c/status  {"st": N, "op": OP}  reject with nodb_reject_status(OP, "/a/b", N)
 *   c/return  {"st": N}       return N from the handler without a message
 *   anything else             the "*" handler: /any = the type
 */
#include "nodb.h"

/* hex decodes the text of v as hex into the arena. */
static bool unhex(nodb_value v, nodb_value *out) {
	nodb_str s;
	if (!nodb_value_str_ok(v, &s) || s.n % 2) return false;
	uint8_t *b = nodb_alloc(s.n / 2 + 1);
	for (uint32_t i = 0; i < s.n; i += 2) {
		uint8_t x = 0;
		for (int k = 0; k < 2; k++) {
			char c = s.p[i + k];
			x <<= 4;
			if (c >= '0' && c <= '9') x |= (uint8_t)(c - '0');
			else if (c >= 'a' && c <= 'f') x |= (uint8_t)(c - 'a' + 10);
			else return false;
		}
		b[i / 2] = x;
	}
	*out = nodb_value_of(b, s.n / 2);
	return true;
}

/* copy re-encodes v through the typed accessors: integers as integers,
 * floats as floats, keys in the order read. */
static bool copy(nodb_buf *w, nodb_value v) {
	nodb_iter it;
	switch (nodb_value_kind(v)) {
	case NODB_NULL:
		nodb_cbor_null(w);
		return true;
	case NODB_BOOL:
		nodb_cbor_bool(w, nodb_value_bool(v));
		return true;
	case NODB_INT: {
		int64_t i;
		if (!nodb_value_int_ok(v, &i)) return false;
		nodb_cbor_int(w, i);
		return true;
	}
	case NODB_FLOAT: {
		double f;
		if (!nodb_value_float_ok(v, &f)) return false;
		nodb_cbor_float(w, f);
		return true;
	}
	case NODB_STRING:
		nodb_cbor_str(w, nodb_value_str(v));
		return true;
	case NODB_ARRAY: {
		nodb_value item;
		uint32_t n = nodb_value_len(v), seen = 0;
		nodb_cbor_array(w, n);
		nodb_array_begin(v, &it);
		while (nodb_array_next(&it, &item)) {
			if (!copy(w, item)) return false;
			seen++;
		}
		return seen == n;
	}
	case NODB_MAP: {
		nodb_str k;
		nodb_value val;
		uint32_t n = nodb_value_len(v), seen = 0;
		nodb_cbor_map(w, n);
		nodb_map_begin(v, &it);
		while (nodb_map_next(&it, &k, &val)) {
			nodb_cbor_str(w, k);
			if (!copy(w, val)) return false;
			seen++;
		}
		return seen == n;
	}
	default:
		return false;
	}
}

static int32_t check(int32_t st) { return st == NODB_OK ? NODB_OK : nodb_reject_status("set", NODB_STR("?"), st); }

static int32_t set_dec(const char *path, uint64_t v, bool neg) {
	nodb_buf b = {0};
	if (neg) nodb_buf_append_int(&b, (int64_t)v);
	else nodb_buf_append_uint(&b, v);
	return check(nodb_set_str(nodb_strz(path), nodb_buf_str(&b)));
}

static int32_t on_frame(const nodb_event *e) {
	nodb_value f;
	nodb_event fe;
	if (!unhex(nodb_value_key(e->payload, "hex"), &f)) return nodb_rejectz("bad hex");
	if (nodb_decode_frame(f.p, f.n, &fe) != 0) return nodb_rejectz("bad frame");
	int32_t st = set_dec("/seq", fe.seq, false);
	if (!st) st = set_dec("/time", (uint64_t)fe.time, true);
	if (!st) st = set_dec("/pseq", fe.pseq, false);
	if (!st) st = check(nodb_set_str(NODB_STR("/producer"), fe.producer));
	if (!st) st = check(nodb_set_str(NODB_STR("/type"), fe.type));
	if (!st) st = check(nodb_set_value(NODB_STR("/payload"), fe.payload));
	return st;
}

static int32_t set_copy(nodb_value v) {
	nodb_buf w = {0};
	if (!copy(&w, v)) return nodb_rejectz("copy failed");
	return check(nodb_set_buf(NODB_STR("/v"), &w));
}

static int32_t on_value(const nodb_event *e) {
	nodb_value v;
	if (!unhex(nodb_value_key(e->payload, "hex"), &v)) return nodb_rejectz("bad hex");
	int32_t st = nodb_cbor_validate(v.p, v.n);
	if (st != NODB_OK) {
		nodb_buf m = {0};
		nodb_buf_append_z(&m, "invalid: ");
		nodb_buf_append_z(&m, nodb_status_text(st));
		return nodb_reject(nodb_buf_str(&m));
	}
	/* nodb_cbor_item_len agrees on the item's extent */
	if (nodb_cbor_item_len(v.p, v.n) != v.n) return nodb_rejectz("item_len disagrees");
	return set_copy(v);
}

static int32_t on_payload(const nodb_event *e) { return set_copy(e->payload); }

static int32_t on_path(const nodb_event *e) {
	nodb_value keys = nodb_value_key(e->payload, "keys"), k;
	nodb_iter it;
	nodb_buf p = nodb_path_new();
	if (!nodb_array_begin(keys, &it)) return nodb_rejectz("no keys");
	while (nodb_array_next(&it, &k)) nodb_path_push(&p, nodb_value_str(k));
	return check(nodb_set_str(NODB_STR("/p"), nodb_buf_str(&p)));
}

static int32_t on_big(const nodb_event *e) {
	uint32_t n = (uint32_t)nodb_value_int(nodb_value_key(e->payload, "n"));
	nodb_buf w = {0}, txt = {0};
	uint8_t *d = nodb_buf_reserve(&txt, n);
	for (uint32_t i = 0; i < n; i++) d[i] = (uint8_t)('a' + i % 26);
	txt.len = n;
	nodb_cbor_str(&w, nodb_buf_str(&txt));
	int32_t st = check(nodb_set_buf(NODB_STR("/big"), &w));
	if (st) return st;
	nodb_value got;
	if ((st = nodb_get(NODB_STR("/big"), &got)) != NODB_OK) return nodb_reject_status("get", NODB_STR("/big"), st);
	nodb_str s;
	if (!nodb_value_str_ok(got, &s) || s.n != n) return nodb_rejectz("big: wrong length");
	for (uint32_t i = 0; i < n; i++)
		if (s.p[i] != 'a' + i % 26) return nodb_rejectz("big: wrong bytes");
	/* the earlier arena allocations are intact */
	for (uint32_t i = 0; i < n; i++)
		if (d[i] != 'a' + i % 26) return nodb_rejectz("big: arena overwritten");
	return check(nodb_set_bool(NODB_STR("/ok"), true));
}

static int32_t on_missing(const nodb_event *e) {
	(void)e;
	nodb_value v = {(const uint8_t *)"x", 1};
	if (nodb_get(NODB_STR("/nope/deeper"), &v) != NODB_NOT_FOUND || nodb_value_exists(v))
		return nodb_rejectz("get of a missing path");
	if (nodb_has(NODB_STR("/nope"))) return nodb_rejectz("has of a missing path");
	if (nodb_delete(NODB_STR("/nope")) != NODB_NOT_FOUND) return nodb_rejectz("delete of a missing path");
	if (nodb_get(NODB_STR("bad"), &v) != NODB_INVALID_PATH) return nodb_rejectz("get of an invalid path");
	return check(nodb_set_bool(NODB_STR("/ok"), true));
}

static int32_t on_status(const nodb_event *e) {
	nodb_str op = nodb_value_str(nodb_value_key(e->payload, "op"));
	char opz[16] = {0};
	for (uint32_t i = 0; i < op.n && i < 15; i++) opz[i] = op.p[i];
	return nodb_reject_status(opz, NODB_STR("/a/b"), (int32_t)nodb_value_int(nodb_value_key(e->payload, "st")));
}

static int32_t on_return(const nodb_event *e) { return (int32_t)nodb_value_int(nodb_value_key(e->payload, "st")); }

static int32_t on_any(const nodb_event *e) { return check(nodb_set_str(NODB_STR("/any"), e->type)); }

void nodb_init(void) {
	nodb_on("c/frame", on_frame);
	nodb_on("c/value", on_value);
	nodb_on("c/payload", on_payload);
	nodb_on("c/path", on_path);
	nodb_on("c/big", on_big);
	nodb_on("c/missing", on_missing);
	nodb_on("c/status", on_status);
	nodb_on("c/return", on_return);
	nodb_on("*", on_any);
}
