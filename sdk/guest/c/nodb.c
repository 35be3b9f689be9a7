/*
 * nodb.c - the C SDK for nodb reducers: host imports, the nodb_buffer and
 * nodb_reduce exports, the event arena, CBOR and paths. See nodb.h and
 * abi/ABI.md. Freestanding: it needs no libc (build with -nostdlib), and
 * imports nothing but nodb_v1 functions. It does not work with wasi-libc:
 * malloc would grow the same heap as the arena, and libc's stdio imports
 * fd_seek, which is not in the host's WASI subset (ABI.md 9.2).
 *
 * Memory layout, from __heap_base up:
 *
 *   [ frame buffer | event arena -> ...          | end of memory ]
 *
 * The frame buffer is the one thing that outlives an event (the host writes
 * each frame into the buffer nodb_buffer returned last). The arena starts
 * after it and is reset at the start of every event; it grows the memory
 * as needed. nodb_get reads straight into the arena's free space, so a value
 * is copied once (by the host) and stays valid until the event ends.
 */
#include "nodb.h"

/* ---- Host imports (ABI.md section 6) ------------------------------------ */

#define NODB_IMPORT(name) __attribute__((import_module("nodb_v1"), import_name(name)))

NODB_IMPORT("abi_version_1") void nodb_host_abi_version_1(void);
NODB_IMPORT("consume") int32_t nodb_host_consume(const char *type, uint32_t type_len);
NODB_IMPORT("state_get")
int32_t nodb_host_state_get(const char *path, uint32_t path_len, uint8_t *buf, uint32_t buf_cap);
NODB_IMPORT("state_has") int32_t nodb_host_state_has(const char *path, uint32_t path_len);
NODB_IMPORT("state_set")
int32_t nodb_host_state_set(const char *path, uint32_t path_len, const uint8_t *val, uint32_t val_len);
NODB_IMPORT("state_delete") int32_t nodb_host_state_delete(const char *path, uint32_t path_len);
NODB_IMPORT("log") void nodb_host_log(int32_t level, const char *msg, uint32_t msg_len);
NODB_IMPORT("set_error") void nodb_host_set_error(const char *msg, uint32_t msg_len);
/* Cascades only: a module imports these when it uses nodb_on_patch or
 * nodb_input_get (the linker drops unused imports). */
NODB_IMPORT("input") int32_t nodb_host_input(const char *name, uint32_t name_len);
NODB_IMPORT("input_get")
int32_t nodb_host_input_get(const char *name, uint32_t name_len, const char *path, uint32_t path_len, uint8_t *buf,
                            uint32_t buf_cap);

/* ---- The few libc functions the compiler may call ------------------------ */

/* With -mbulk-memory, clang turns these builtins into memory.copy and
 * memory.fill instructions, so they do not call themselves. */
void *memcpy(void *restrict d, const void *restrict s, size_t n) {
	__builtin_memcpy(d, s, n);
	return d;
}
void *memmove(void *d, const void *s, size_t n) {
	__builtin_memmove(d, s, n);
	return d;
}
void *memset(void *d, int c, size_t n) {
	__builtin_memset(d, c, n);
	return d;
}
int memcmp(const void *a, const void *b, size_t n) {
	const uint8_t *x = a, *y = b;
	for (size_t i = 0; i < n; i++)
		if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
	return 0;
}
size_t strlen(const char *s) {
	const char *p = s;
	while (*p) p++;
	return (size_t)(p - s);
}

/* Unaligned loads and stores are fine in Wasm: 8 bytes at a time keeps the
 * loops short (every loop iteration also pays the host's fuel check). */
static inline uint64_t load64(const void *p) {
	uint64_t v;
	__builtin_memcpy(&v, p, 8);
	return v;
}

static inline void store64(void *p, uint64_t v) { __builtin_memcpy(p, &v, 8); }

static inline bool bytes_eq(const void *a, const void *b, uint32_t n) {
	const uint8_t *x = a, *y = b;
	for (; n >= 8; n -= 8, x += 8, y += 8)
		if (load64(x) != load64(y)) return false;
	for (; n > 0; n--)
		if (*x++ != *y++) return false;
	return true;
}

bool nodb_str_eq(nodb_str a, nodb_str b) { return a.n == b.n && bytes_eq(a.p, b.p, a.n); }

/* ---- Memory: the frame buffer and the event arena ------------------------ */

extern unsigned char __heap_base;

#define PAGE 65536u

static uint8_t *frame_buf; /* the buffer nodb_buffer returned last */
static uint32_t frame_cap;
static uintptr_t arena_base; /* where the arena starts (after frame_buf) */
static uintptr_t arena_top;  /* its first free byte */

static uint64_t mem_end(void) { return (uint64_t)__builtin_wasm_memory_size(0) * PAGE; }

/* ensure grows the memory so that [0, end) is in it, or traps. */
static void ensure(uint64_t end) {
	uint64_t have = mem_end();
	if (end <= have) return;
	if (end > 0xffffffffull) __builtin_trap();
	uint64_t pages = (end - have + PAGE - 1) / PAGE;
	if (pages < 16) pages = 16; /* grow 1 MiB at a time at least */
	if (__builtin_wasm_memory_grow(0, pages) == (size_t)-1) {
		pages = (end - have + PAGE - 1) / PAGE;
		if (__builtin_wasm_memory_grow(0, pages) == (size_t)-1) __builtin_trap(); /* out of memory */
	}
}

static inline uintptr_t align8(uintptr_t p) { return (p + 7) & ~(uintptr_t)7; }

static void arena_init(void) {
	if (arena_base == 0) arena_base = arena_top = align8((uintptr_t)&__heap_base);
}

void *nodb_alloc(uint32_t n) {
	arena_init();
	uintptr_t p = align8(arena_top);
	ensure((uint64_t)p + n);
	arena_top = p + n;
	return (void *)p;
}

__attribute__((export_name("nodb_buffer"))) uint8_t *nodb_buffer(uint32_t size) {
	arena_init();
	if (size == 0) size = 1;
	if (size > frame_cap) {
		/* The frame buffer sits at the bottom of the heap and the arena is
		 * empty between events: move the arena up and reuse the space. */
		uint64_t cap = (uint64_t)size + size / 4 + 256;
		uintptr_t start = align8((uintptr_t)&__heap_base);
		ensure(start + cap);
		frame_buf = (uint8_t *)start;
		frame_cap = (uint32_t)cap;
		arena_base = arena_top = align8(start + (uintptr_t)cap);
	}
	return frame_buf;
}

/* ---- Buffers ------------------------------------------------------------ */

uint8_t *nodb_buf_reserve(nodb_buf *b, uint32_t n) {
	uint64_t need = (uint64_t)b->len + n;
	if (need > b->cap) {
		if (need > 0xffffffffull) __builtin_trap();
		arena_init();
		if (b->p && (uintptr_t)b->p + b->cap == arena_top) {
			/* the last allocation: grow in place */
			ensure((uintptr_t)b->p + need);
			arena_top = (uintptr_t)b->p + (uintptr_t)need;
			b->cap = (uint32_t)need;
		} else {
			uint64_t cap = need * 2 < 64 ? 64 : need * 2;
			if (cap > 0xffffffffull) cap = need;
			uint8_t *p = nodb_alloc((uint32_t)cap);
			if (b->len) __builtin_memcpy(p, b->p, b->len);
			b->p = p;
			b->cap = (uint32_t)cap;
		}
	}
	return b->p + b->len;
}

void nodb_buf_append(nodb_buf *b, const void *p, uint32_t n) {
	if (n == 0) return;
	__builtin_memcpy(nodb_buf_reserve(b, n), p, n);
	b->len += n;
}

void nodb_buf_append_str(nodb_buf *b, nodb_str s) { nodb_buf_append(b, s.p, s.n); }

void nodb_buf_append_z(nodb_buf *b, const char *s) { nodb_buf_append(b, s, (uint32_t)__builtin_strlen(s)); }

void nodb_buf_append_uint(nodb_buf *b, uint64_t v) {
	char tmp[20];
	int i = 20;
	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	nodb_buf_append(b, tmp + i, (uint32_t)(20 - i));
}

void nodb_buf_append_int(nodb_buf *b, int64_t v) {
	if (v < 0) {
		nodb_buf_append(b, "-", 1);
		nodb_buf_append_uint(b, (uint64_t)0 - (uint64_t)v);
		return;
	}
	nodb_buf_append_uint(b, (uint64_t)v);
}

/* ---- CBOR heads --------------------------------------------------------- */

/* head decodes the head of the item at p[0..n): major type, additional
 * information, argument, and the head's length (0 if truncated or info 28-31). */
static inline uint32_t head(const uint8_t *p, uint32_t n, uint8_t *major, uint8_t *info, uint64_t *arg) {
	if (n == 0) return 0;
	uint8_t h = p[0];
	*major = h >> 5;
	*info = h & 31;
	switch (*info) {
	case 24:
		if (n < 2) return 0;
		*arg = p[1];
		return 2;
	case 25:
		if (n < 3) return 0;
		*arg = (uint64_t)p[1] << 8 | p[2];
		return 3;
	case 26:
		if (n < 5) return 0;
		*arg = (uint64_t)p[1] << 24 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 8 | p[4];
		return 5;
	case 27: {
		if (n < 9) return 0;
		uint64_t a = 0;
		for (int i = 1; i <= 8; i++) a = a << 8 | p[i];
		*arg = a;
		return 9;
	}
	default:
		if (*info < 24) {
			*arg = *info;
			return 1;
		}
		return 0;
	}
}

uint32_t nodb_cbor_item_len(const uint8_t *p, uint32_t n) {
	uint32_t pos = 0;
	for (uint64_t pending = 1; pending > 0; pending--) {
		uint8_t major, info;
		uint64_t arg;
		uint32_t h = head(p + pos, n - pos, &major, &info, &arg);
		if (h == 0) return 0;
		pos += h;
		uint64_t rest = n - pos;
		switch (major) {
		case 0:
		case 1:
		case 7:
			break;
		case 3:
			if (arg > rest) return 0;
			pos += (uint32_t)arg;
			break;
		case 4:
			if (arg > rest) return 0; /* every item takes a byte at least */
			pending += arg;
			break;
		case 5:
			if (arg > rest / 2) return 0;
			pending += 2 * arg;
			break;
		default: /* byte strings, tags */
			return 0;
		}
	}
	return pos;
}

/* ---- Reading values ----------------------------------------------------- */

nodb_kind nodb_value_kind(nodb_value v) {
	if (v.n == 0) return NODB_MISSING;
	uint8_t h = v.p[0];
	switch (h >> 5) {
	case 0:
	case 1:
		return NODB_INT;
	case 3:
		return NODB_STRING;
	case 4:
		return NODB_ARRAY;
	case 5:
		return NODB_MAP;
	case 7:
		switch (h & 31) {
		case 20:
		case 21:
			return NODB_BOOL;
		case 22:
			return NODB_NULL;
		case 25:
		case 26:
		case 27:
			return NODB_FLOAT;
		}
	}
	return NODB_INVALID;
}

/* container returns the count of a map (major 5) or array (major 4) and
 * the position of its first entry, or 0 for something else. */
static inline uint32_t container(nodb_value v, uint8_t want, uint64_t *count) {
	uint8_t major, info;
	uint32_t h = head(v.p, v.n, &major, &info, count);
	if (h == 0 || major != want) return 0;
	return h;
}

/* text_at decodes the text string at v.p[pos]; returns the position after
 * it, or 0 if the item there is not a (complete) text string. */
static inline uint32_t text_at(nodb_value v, uint32_t pos, nodb_str *out) {
	if (pos >= v.n) return 0;
	uint8_t h = v.p[pos];
	if (h >> 5 != 3) return 0;
	uint64_t len = h & 31;
	uint32_t start = pos + 1;
	if (len >= 24) {
		uint8_t major, info;
		uint32_t hn = head(v.p + pos, v.n - pos, &major, &info, &len);
		if (hn == 0) return 0;
		start = pos + hn;
	}
	if (len > v.n - start) return 0;
	out->p = (const char *)v.p + start;
	out->n = (uint32_t)len;
	return start + (uint32_t)len;
}

/* item_end returns the position after the item at v.p[pos], or 0. The
 * usual one-byte items and short strings are stepped over inline. */
static inline uint32_t item_end(nodb_value v, uint32_t pos) {
	if (pos >= v.n) return 0;
	uint8_t h = v.p[pos];
	uint8_t major = h >> 5, info = h & 31;
	if (info < 24) {
		if (major == 0 || major == 1 || major == 7) return pos + 1;
		if (major == 3) {
			uint32_t end = pos + 1 + info;
			return end <= v.n ? end : 0;
		}
	}
	uint32_t m = nodb_cbor_item_len(v.p + pos, v.n - pos);
	return m ? pos + m : 0;
}

bool nodb_map_begin(nodb_value m, nodb_iter *it) {
	uint64_t count;
	uint32_t pos = container(m, 5, &count);
	if (pos == 0 || count > m.n) {
		it->p = it->end = 0;
		it->left = 0;
		return false;
	}
	it->p = m.p + pos;
	it->end = m.p + m.n;
	it->left = (uint32_t)count;
	return true;
}

bool nodb_map_next(nodb_iter *it, nodb_str *key, nodb_value *val) {
	if (it->left == 0) return false;
	nodb_value rest = {it->p, (uint32_t)(it->end - it->p)};
	uint32_t after = text_at(rest, 0, key);
	uint32_t end = after ? item_end(rest, after) : 0;
	if (end == 0) {
		it->left = 0;
		return false;
	}
	val->p = rest.p + after;
	val->n = end - after;
	it->p += end;
	it->left--;
	return true;
}

bool nodb_array_begin(nodb_value a, nodb_iter *it) {
	uint64_t count;
	uint32_t pos = container(a, 4, &count);
	if (pos == 0 || count > a.n) {
		it->p = it->end = 0;
		it->left = 0;
		return false;
	}
	it->p = a.p + pos;
	it->end = a.p + a.n;
	it->left = (uint32_t)count;
	return true;
}

bool nodb_array_next(nodb_iter *it, nodb_value *item) {
	if (it->left == 0) return false;
	nodb_value rest = {it->p, (uint32_t)(it->end - it->p)};
	uint32_t end = item_end(rest, 0);
	if (end == 0) {
		it->left = 0;
		return false;
	}
	item->p = rest.p;
	item->n = end;
	it->p += end;
	it->left--;
	return true;
}

nodb_value nodb_value_keyn(nodb_value v, const char *key, uint32_t n) {
	nodb_iter it;
	nodb_str k;
	nodb_value val;
	if (!nodb_map_begin(v, &it)) return (nodb_value){0, 0};
	while (nodb_map_next(&it, &k, &val))
		if (k.n == n && bytes_eq(k.p, key, n)) return val;
	return (nodb_value){0, 0};
}

nodb_value nodb_value_index(nodb_value v, uint32_t i) {
	nodb_iter it;
	nodb_value item;
	if (!nodb_array_begin(v, &it)) return (nodb_value){0, 0};
	while (nodb_array_next(&it, &item))
		if (i-- == 0) return item;
	return (nodb_value){0, 0};
}

uint32_t nodb_value_len(nodb_value v) {
	uint64_t count;
	if (v.n == 0) return 0;
	uint8_t major = v.p[0] >> 5;
	if ((major != 4 && major != 5) || container(v, major, &count) == 0 || count > v.n) return 0;
	return (uint32_t)count;
}

bool nodb_value_str_ok(nodb_value v, nodb_str *out) {
	if (text_at(v, 0, out)) return true;
	out->p = "";
	out->n = 0;
	return false;
}

nodb_str nodb_value_str(nodb_value v) {
	nodb_str s;
	nodb_value_str_ok(v, &s);
	return s;
}

/* float_of converts the argument of a float head (info 25, 26, 27) to a double. */
static double float_of(uint8_t info, uint64_t bits) {
	union {
		uint64_t u;
		double d;
	} d64;
	union {
		uint32_t u;
		float f;
	} f32;
	switch (info) {
	case 25: {
		uint32_t h = (uint32_t)bits;
		uint64_t sign = (uint64_t)(h >> 15) << 63;
		uint32_t exp = (h >> 10) & 31, mant = h & 0x3ff;
		if (exp == 0) { /* zero or subnormal: mant * 2^-24, exact */
			double x = (double)mant * 5.9604644775390625e-08;
			return sign ? -x : x;
		}
		if (exp == 31) d64.u = sign | 0x7ff0000000000000ull | ((uint64_t)mant << 42);
		else d64.u = sign | ((uint64_t)(exp - 15 + 1023) << 52) | ((uint64_t)mant << 42);
		return d64.d;
	}
	case 26:
		f32.u = (uint32_t)bits;
		return (double)f32.f;
	default:
		d64.u = bits;
		return d64.d;
	}
}

bool nodb_value_float_ok(nodb_value v, double *out) {
	uint8_t major, info;
	uint64_t arg;
	if (head(v.p, v.n, &major, &info, &arg) == 0) return false;
	switch (major) {
	case 0:
		*out = (double)arg;
		return true;
	case 1:
		*out = -1.0 - (double)arg;
		return true;
	case 7:
		if (info >= 25 && info <= 27) {
			*out = float_of(info, arg);
			return true;
		}
	}
	return false;
}

double nodb_value_float(nodb_value v) {
	double d = 0;
	return nodb_value_float_ok(v, &d) ? d : 0;
}

bool nodb_value_int_ok(nodb_value v, int64_t *out) {
	uint8_t major, info;
	uint64_t arg;
	if (head(v.p, v.n, &major, &info, &arg) == 0) return false;
	switch (major) {
	case 0:
		if (arg > (uint64_t)INT64_MAX) return false;
		*out = (int64_t)arg;
		return true;
	case 1:
		if (arg > (uint64_t)INT64_MAX) return false;
		*out = -1 - (int64_t)arg;
		return true;
	case 7:
		if (info >= 25 && info <= 27) {
			double f = float_of(info, arg);
			/* integral and within [-2^63, 2^63) */
			if (f >= -9223372036854775808.0 && f < 9223372036854775808.0 && (double)(int64_t)f == f) {
				*out = (int64_t)f;
				return true;
			}
		}
	}
	return false;
}

int64_t nodb_value_int(nodb_value v) {
	int64_t i = 0;
	return nodb_value_int_ok(v, &i) ? i : 0;
}

/* ---- Validation (ABI.md 5.2) -------------------------------------------- */

/* utf8_valid is Go's utf8.Valid: no overlong forms, no surrogates, nothing
 * above U+10FFFF. */
static bool utf8_valid(const uint8_t *s, uint32_t n) {
	uint32_t i = 0;
	while (i < n) {
		uint8_t c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		uint32_t len;
		uint8_t lo = 0x80, hi = 0xbf;
		if (c >= 0xc2 && c <= 0xdf) len = 2;
		else if (c >= 0xe0 && c <= 0xef) {
			len = 3;
			if (c == 0xe0) lo = 0xa0;
			if (c == 0xed) hi = 0x9f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			len = 4;
			if (c == 0xf0) lo = 0x90;
			if (c == 0xf4) hi = 0x8f;
		} else return false;
		if (n - i < len) return false;
		if (s[i + 1] < lo || s[i + 1] > hi) return false;
		for (uint32_t k = 2; k < len; k++)
			if (s[i + k] < 0x80 || s[i + k] > 0xbf) return false;
		i += len;
	}
	return true;
}

/* validate returns the length of the valid item at p[0..n), or 0. */
static uint32_t validate(const uint8_t *p, uint32_t n, int depth) {
	uint8_t major, info;
	uint64_t arg;
	if (depth > NODB_MAX_DEPTH) return 0;
	uint32_t pos = head(p, n, &major, &info, &arg);
	if (pos == 0) return 0;
	switch (major) {
	case 0:
	case 1:
		return arg > (uint64_t)INT64_MAX ? 0 : pos;
	case 3:
		if (arg > n - pos || !utf8_valid(p + pos, (uint32_t)arg)) return 0;
		return pos + (uint32_t)arg;
	case 4:
		if (arg > n - pos) return 0;
		for (uint64_t i = 0; i < arg; i++) {
			uint32_t m = validate(p + pos, n - pos, depth + 1);
			if (m == 0) return 0;
			pos += m;
		}
		return pos;
	case 5:
		if (arg > (n - pos) / 2) return 0;
		for (uint64_t i = 0; i < arg; i++) {
			if (pos >= n || p[pos] >> 5 != 3) return 0;
			for (int kv = 0; kv < 2; kv++) {
				uint32_t m = validate(p + pos, n - pos, depth + 1);
				if (m == 0) return 0;
				pos += m;
			}
		}
		return pos;
	case 7:
		switch (info) {
		case 20:
		case 21:
		case 22:
			return pos;
		case 25:
		case 26:
		case 27: {
			double f = float_of(info, arg);
			if (f != f || f - f != 0) return 0; /* NaN, or infinite */
			return pos;
		}
		}
	}
	return 0;
}

int32_t nodb_cbor_validate(const uint8_t *p, uint32_t n) {
	if (n > NODB_MAX_VALUE_SIZE) return NODB_TOO_LARGE;
	uint32_t m = validate(p, n, 0);
	return m != 0 && m == n ? NODB_OK : NODB_INVALID_VALUE;
}

/* ---- Writing values ----------------------------------------------------- */

static void put_head(nodb_buf *b, uint8_t major, uint64_t arg) {
	uint8_t *d = nodb_buf_reserve(b, 9);
	uint8_t m = (uint8_t)(major << 5);
	uint32_t n;
	if (arg < 24) {
		d[0] = m | (uint8_t)arg;
		n = 1;
	} else if (arg <= 0xff) {
		d[0] = m | 24;
		d[1] = (uint8_t)arg;
		n = 2;
	} else if (arg <= 0xffff) {
		d[0] = m | 25;
		d[1] = (uint8_t)(arg >> 8);
		d[2] = (uint8_t)arg;
		n = 3;
	} else if (arg <= 0xffffffffull) {
		d[0] = m | 26;
		for (int i = 0; i < 4; i++) d[1 + i] = (uint8_t)(arg >> (24 - 8 * i));
		n = 5;
	} else {
		d[0] = m | 27;
		for (int i = 0; i < 8; i++) d[1 + i] = (uint8_t)(arg >> (56 - 8 * i));
		n = 9;
	}
	b->len += n;
}

void nodb_cbor_null(nodb_buf *b) { nodb_buf_append(b, "\xf6", 1); }

void nodb_cbor_bool(nodb_buf *b, bool v) { nodb_buf_append(b, v ? "\xf5" : "\xf4", 1); }

void nodb_cbor_int(nodb_buf *b, int64_t v) {
	if (v >= 0) put_head(b, 0, (uint64_t)v);
	else put_head(b, 1, (uint64_t)(-1 - v));
}

void nodb_cbor_float(nodb_buf *b, double v) {
	union {
		double d;
		uint64_t u;
	} x = {v};
	uint8_t *d = nodb_buf_reserve(b, 9);
	d[0] = 0xfb;
	for (int i = 0; i < 8; i++) d[1 + i] = (uint8_t)(x.u >> (56 - 8 * i));
	b->len += 9;
}

void nodb_cbor_strn(nodb_buf *b, const char *s, uint32_t n) {
	put_head(b, 3, n);
	nodb_buf_append(b, s, n);
}

void nodb_cbor_array(nodb_buf *b, uint32_t count) { put_head(b, 4, count); }

void nodb_cbor_map(nodb_buf *b, uint32_t count) { put_head(b, 5, count); }

void nodb_cbor_value(nodb_buf *b, nodb_value v) { nodb_buf_append(b, v.p, v.n); }

/* ---- Paths ---------------------------------------------------------------- */

#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

/* has_escape reports whether one of the 8 bytes in w is '~' or '/'. */
static inline bool has_escape(uint64_t w) {
	uint64_t a = w ^ (ONES * '~'), b = w ^ (ONES * '/');
	return (((a - ONES) & ~a) | ((b - ONES) & ~b)) & HIGHS;
}

void nodb_path_push(nodb_buf *path, nodb_str key) {
	/* worst case every byte doubles */
	uint8_t *d = nodb_buf_reserve(path, 1 + 2 * key.n);
	uint8_t *start = d;
	const uint8_t *k = (const uint8_t *)key.p;
	uint32_t i = 0;
	*d++ = '/';
	for (; i + 8 <= key.n; i += 8, d += 8) { /* the usual key needs no escapes */
		uint64_t w = load64(k + i);
		if (has_escape(w)) break;
		store64(d, w);
	}
	for (; i < key.n; i++) {
		uint8_t c = k[i];
		if (c == '~') {
			*d++ = '~';
			*d++ = '0';
		} else if (c == '/') {
			*d++ = '~';
			*d++ = '1';
		} else *d++ = c;
	}
	path->len += (uint32_t)(d - start);
}

void nodb_path_push_index(nodb_buf *path, uint32_t i) {
	nodb_buf_append(path, "/", 1);
	nodb_buf_append_uint(path, i);
}

/* ---- State -------------------------------------------------------------- */

/* A getter reads the value at path into buf[0..cap) (state_get or
 * input_get): its length, or a negative status. */
typedef int32_t (*getter)(nodb_str path, uint8_t *buf, uint32_t cap);

static int32_t get_state(nodb_str path, uint8_t *buf, uint32_t cap) {
	return nodb_host_state_get(path.p, path.n, buf, cap);
}

static nodb_str input_name; /* the input of the nodb_input_get in progress */

static int32_t get_input(nodb_str path, uint8_t *buf, uint32_t cap) {
	return nodb_host_input_get(input_name.p, input_name.n, path.p, path.n, buf, cap);
}

/* read_value reads the value at path with get into the arena's free space,
 * growing the memory and asking again when it did not fit (the host keeps
 * the value for that retry, ABI.md 6.3). */
static int32_t read_value(getter get, nodb_str path, nodb_value *out) {
	arena_init();
	out->p = 0;
	out->n = 0;
	for (;;) {
		uintptr_t buf = arena_top;
		uint64_t end = mem_end(), free = buf < end ? end - buf : 0;
		uint32_t cap = free > 0xffffffffull ? 0xffffffffu : (uint32_t)free;
		int32_t n = get(path, (uint8_t *)buf, cap);
		if (n < 0) return n;
		if ((uint32_t)n <= cap) {
			out->p = (const uint8_t *)buf;
			out->n = (uint32_t)n;
			arena_top = buf + (uint32_t)n;
			return NODB_OK;
		}
		ensure((uint64_t)buf + (uint32_t)n); /* then retry: the host kept the value */
	}
}

int32_t nodb_get(nodb_str path, nodb_value *out) { return read_value(get_state, path, out); }

int32_t nodb_input_get(nodb_str input, nodb_str path, nodb_value *out) {
	input_name = input;
	return read_value(get_input, path, out);
}

bool nodb_has(nodb_str path) {
	/* state_has: nothing is encoded, whatever the size of the value */
	return nodb_host_state_has(path.p, path.n) == 0;
}

int32_t nodb_set(nodb_str path, const void *val, uint32_t n) {
	return nodb_host_state_set(path.p, path.n, val, n);
}

int32_t nodb_set_bool(nodb_str path, bool v) {
	uint8_t b = v ? 0xf5 : 0xf4;
	return nodb_host_state_set(path.p, path.n, &b, 1);
}

int32_t nodb_set_int(nodb_str path, int64_t v) {
	nodb_buf b = {0};
	nodb_cbor_int(&b, v);
	return nodb_set_buf(path, &b);
}

int32_t nodb_set_str(nodb_str path, nodb_str v) {
	nodb_buf b = {0};
	nodb_cbor_str(&b, v);
	return nodb_set_buf(path, &b);
}

int32_t nodb_delete(nodb_str path) { return nodb_host_state_delete(path.p, path.n); }

/* ---- Messages ------------------------------------------------------------- */

static bool error_set; /* set_error was called during the current event */

int32_t nodb_reject(nodb_str msg) {
	nodb_host_set_error(msg.p, msg.n);
	error_set = true;
	return NODB_ERROR;
}

const char *nodb_status_text(int32_t st) {
	switch (st) {
	case NODB_OK:
		return "abi: ok";
	case NODB_ERROR:
		return "abi: reducer error";
	case NODB_NOT_FOUND:
		return "abi: not found";
	case NODB_INVALID_PATH:
		return "abi: invalid path";
	case NODB_INVALID_VALUE:
		return "abi: invalid value";
	case NODB_TYPE_MISMATCH:
		return "abi: type mismatch";
	case NODB_TOO_LARGE:
		return "abi: too large";
	case NODB_BAD_STATE:
		return "abi: call not allowed now";
	case NODB_HOST:
		return "abi: host error";
	}
	return 0;
}

/* append_status appends nodb_status_text(st), or "abi: status N". */
static void append_status(nodb_buf *b, int32_t st) {
	const char *t = nodb_status_text(st);
	if (t) {
		nodb_buf_append_z(b, t);
		return;
	}
	nodb_buf_append_z(b, "abi: status ");
	nodb_buf_append_int(b, st);
}

int32_t nodb_reject_status(const char *op, nodb_str path, int32_t status) {
	nodb_buf m = {0};
	nodb_buf_append_z(&m, "nodb: ");
	nodb_buf_append_z(&m, op);
	nodb_buf_append(&m, " ", 1);
	nodb_buf_append_str(&m, path);
	nodb_buf_append(&m, ": ", 2);
	append_status(&m, status);
	return nodb_reject(nodb_buf_str(&m));
}

void nodb_log(int32_t level, nodb_str msg) { nodb_host_log(level, msg.p, msg.n); }

/* ---- Events and handlers ---------------------------------------------------- */

#define MAX_HANDLERS 1024 /* the host's limit on consume declarations */

typedef struct {
	const char *type;
	uint32_t len;
	nodb_handler h;
} entry;

static entry handlers[MAX_HANDLERS];
static uint32_t n_handlers;
static nodb_handler any_handler; /* registered for "*" */

int32_t nodb_on(const char *type, nodb_handler h) {
	uint32_t len = (uint32_t)__builtin_strlen(type);
	int32_t st = nodb_host_consume(type, len);
	if (st != NODB_OK) return st;
	if (len == 1 && type[0] == '*') {
		any_handler = h;
		return NODB_OK;
	}
	for (uint32_t i = 0; i < n_handlers; i++)
		if (handlers[i].len == len && bytes_eq(handlers[i].type, type, len)) {
			handlers[i].h = h;
			return NODB_OK;
		}
	if (n_handlers == MAX_HANDLERS) return NODB_TOO_LARGE;
	handlers[n_handlers++] = (entry){type, len, h};
	return NODB_OK;
}

/* ---- Cascades ------------------------------------------------------------- */

#define MAX_INPUTS 16 /* the host's limit on input declarations */

typedef struct {
	const char *name;
	uint32_t len;
	nodb_patch_handler h;
} patch_entry;

static patch_entry patch_handlers[MAX_INPUTS];
static uint32_t n_patch_handlers;

int32_t nodb_on_patch(const char *input, nodb_patch_handler h) {
	uint32_t len = (uint32_t)__builtin_strlen(input);
	for (uint32_t i = 0; i < n_patch_handlers; i++)
		if (patch_handlers[i].len == len && bytes_eq(patch_handlers[i].name, input, len)) {
			patch_handlers[i].h = h;
			return NODB_OK;
		}
	int32_t st = nodb_host_input(input, len);
	if (st != NODB_OK) return st;
	if (n_patch_handlers == MAX_INPUTS) return NODB_TOO_LARGE;
	patch_handlers[n_patch_handlers++] = (patch_entry){input, len, h};
	return NODB_OK;
}

bool nodb_patch_begin(const nodb_patch *p, nodb_iter *it) { return nodb_array_begin(p->ops, it); }

bool nodb_patch_next(nodb_iter *it, nodb_op *op) {
	nodb_value item;
	if (!nodb_array_next(it, &item)) return false;
	if (nodb_value_kind(item) != NODB_MAP) {
		it->left = 0;
		return false;
	}
	op->op = nodb_value_str(nodb_value_key(item, "op"));
	op->path = nodb_value_str(nodb_value_key(item, "path"));
	op->value = nodb_value_key(item, "value");
	return true;
}

/* path_related reports whether a equals b or one is a parent of the other. */
static bool path_related(nodb_str a, nodb_str b) {
	if (a.n > b.n) {
		nodb_str t = a;
		a = b;
		b = t;
	}
	return bytes_eq(a.p, b.p, a.n) && (a.n == b.n || b.p[a.n] == '/');
}

bool nodb_patch_touches(const nodb_patch *p, nodb_str prefix) {
	nodb_iter it;
	nodb_op op;
	nodb_patch_begin(p, &it);
	while (nodb_patch_next(&it, &op))
		if (path_related(op.path, prefix)) return true;
	return false;
}

/* reduce_patch runs the handler of a nodb/patch frame's input (the frame's
 * producer), if there is one. */
static int32_t reduce_patch(const nodb_event *e) {
	for (uint32_t i = 0; i < n_patch_handlers; i++)
		if (patch_handlers[i].len == e->producer.n && bytes_eq(patch_handlers[i].name, e->producer.p, e->producer.n)) {
			nodb_patch p = {e->seq, e->producer, e->payload};
			return patch_handlers[i].h(&p);
		}
	return NODB_OK;
}

static inline uint64_t le64(const uint8_t *p) {
	uint64_t v;
	__builtin_memcpy(&v, p, 8); /* Wasm is little-endian */
	return v;
}

static inline uint32_t le32(const uint8_t *p) {
	uint32_t v;
	__builtin_memcpy(&v, p, 4);
	return v;
}

int32_t nodb_decode_frame(const uint8_t *f, uint32_t n, nodb_event *e) {
	if (n < 40 || le32(f + 36) != 1) return -1;
	uint32_t pl = le32(f + 24), tl = le32(f + 28), yl = le32(f + 32);
	if (40ull + pl + tl + yl != n) return -1;
	e->seq = le64(f);
	e->time = (int64_t)le64(f + 8);
	e->pseq = le64(f + 16);
	e->producer = (nodb_str){(const char *)f + 40, pl};
	e->type = (nodb_str){(const char *)f + 40 + pl, tl};
	e->payload = (nodb_value){f + 40 + pl + tl, yl};
	return 0;
}

static nodb_handler handler_for(nodb_str t) {
	for (uint32_t i = 0; i < n_handlers; i++)
		if (handlers[i].len == t.n && bytes_eq(handlers[i].type, t.p, t.n)) return handlers[i].h;
	return any_handler;
}

int32_t nodb_reduce_frame(const uint8_t *frame, uint32_t n) {
	arena_init();
	arena_top = arena_base;
	error_set = false;
	nodb_event e;
	if (nodb_decode_frame(frame, n, &e) != 0) return nodb_reject(NODB_STR("nodb: malformed event frame"));
	int32_t st;
	if (n_patch_handlers > 0 && e.type.n == 10 && bytes_eq(e.type.p, "nodb/patch", 10)) {
		st = reduce_patch(&e); /* a cascade's input changed */
	} else {
		nodb_handler h = handler_for(e.type);
		if (!h) return NODB_OK;
		st = h(&e);
	}
	if (st == NODB_OK) return NODB_OK;
	if (!error_set) {
		nodb_buf m = {0};
		nodb_buf_append_z(&m, "nodb: handler returned ");
		nodb_buf_append_int(&m, st);
		if (nodb_status_text(st)) {
			nodb_buf_append_z(&m, " (");
			nodb_buf_append_z(&m, nodb_status_text(st));
			nodb_buf_append(&m, ")", 1);
		}
		nodb_reject(nodb_buf_str(&m));
	}
	return NODB_ERROR;
}

__attribute__((export_name("nodb_reduce"))) int32_t nodb_reduce(uint32_t n) {
	if (n > frame_cap) return nodb_reject(NODB_STR("nodb: frame larger than the buffer"));
	return nodb_reduce_frame(frame_buf, n);
}

/* ---- Initialisation ------------------------------------------------------- */

extern void __wasm_call_ctors(void); /* made by wasm-ld: C constructors, C++ static initialisers */

/* The WASI reactor initialiser (ABI.md section 3): the host calls it once
 * per instance, before anything else. */
__attribute__((export_name("_initialize"))) void _initialize(void) {
	__wasm_call_ctors();
	nodb_host_abi_version_1();
	arena_init();
	nodb_init();
}
