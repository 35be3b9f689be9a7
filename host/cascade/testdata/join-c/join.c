/*
 * join.c - the join test cascade (../join, in Go) written with the C SDK:
 * over two inputs, todos and owners, the number of open and done todos of
 * each owner (or "nobody"), at /by_owner/OWNER = {"open": N, "done": N}.
 * The cascade tests run both and expect the same states. Built by build.sh
 * into join-c.wasm, which is checked in.
 */
#include "nodb.h"

typedef struct {
	nodb_str name;
	int64_t open, done;
} count;

/* recompute derives /by_owner from the inputs' states, whichever input
 * changed: the state is a function of the inputs (ABI.md 13.4). */
static int32_t recompute(void) {
	nodb_value todos;
	if (nodb_input_get(NODB_STR("todos"), NODB_STR("/todos"), &todos) != NODB_OK) todos = (nodb_value){0, 0};
	uint32_t cap = nodb_value_len(todos) + 1, n = 0;
	count *by = nodb_alloc(cap * sizeof(count));
	nodb_iter it;
	nodb_str id;
	nodb_value t;
	nodb_map_begin(todos, &it);
	while (nodb_map_next(&it, &id, &t)) {
		nodb_buf path = nodb_path_new();
		nodb_path_push(&path, NODB_STR("owners"));
		nodb_path_push(&path, id);
		nodb_value o;
		nodb_str owner = NODB_STR("nobody");
		if (nodb_input_get(NODB_STR("owners"), nodb_buf_str(&path), &o) == NODB_OK) {
			nodb_str s = nodb_value_str(o);
			if (s.n > 0) owner = s;
		}
		uint32_t i = 0;
		while (i < n && !nodb_str_eq(by[i].name, owner)) i++;
		if (i == n) by[n++] = (count){owner, 0, 0};
		if (nodb_value_bool(nodb_value_key(t, "done")))
			by[i].done++;
		else
			by[i].open++;
	}
	nodb_buf v = {0};
	nodb_cbor_map(&v, n);
	for (uint32_t i = 0; i < n; i++) {
		nodb_cbor_str(&v, by[i].name);
		nodb_cbor_map(&v, 2);
		nodb_cbor_strz(&v, "open");
		nodb_cbor_int(&v, by[i].open);
		nodb_cbor_strz(&v, "done");
		nodb_cbor_int(&v, by[i].done);
	}
	int32_t st = nodb_set_buf(NODB_STR("/by_owner"), &v);
	return st == NODB_OK ? NODB_OK : nodb_reject_status("set", NODB_STR("/by_owner"), st);
}

/* The patch handlers skip changes that cannot move the counts: only
 * /todos of todos and /owners of owners are read. */
static int32_t on_todos(const nodb_patch *p) {
	return nodb_patch_touches(p, NODB_STR("/todos")) ? recompute() : NODB_OK;
}

static int32_t on_owners(const nodb_patch *p) {
	return nodb_patch_touches(p, NODB_STR("/owners")) ? recompute() : NODB_OK;
}

void nodb_init(void) {
	nodb_on_patch("todos", on_todos);
	nodb_on_patch("owners", on_owners);
}
