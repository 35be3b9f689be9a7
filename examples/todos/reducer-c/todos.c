/*
 * todos.c - the todo-list reducer of the nodb example, in C. It has exactly
 * the semantics of the Go reducer (examples/todos/reducer/todos): it turns
 * todo/... events into the state
 *
 *     {"todos": {ID: {"text": "...", "done": false}}}
 *
 * and rejects the same events with the same messages:
 *
 *     todo/add {id, text}        reject a missing (or empty) id and an id that exists
 *     todo/toggle {id}           no-op for a todo that does not exist
 *     todo/rename {id, text}     no-op for a todo that does not exist
 *     todo/delete {id}           no-op for a todo that does not exist
 *     todo/clear-completed {}    deletes the done todos
 *
 * Every event with an id rejects "todos: missing id" when the id is missing
 * or not a non-empty string. A state call that fails (an id the host refuses
 * in a path, like "__proto__") rejects with the Go SDK's message for it.
 *
 * Build: examples/todos/reducer-c/build.sh (or make examples-c).
 */
#include "nodb.h"

/* todo_path builds "/todos/" + the escaped id of the event into *path, or
 * returns false if the payload has no usable id. */
static bool todo_path(const nodb_event *e, nodb_str *id, nodb_buf *path) {
	*id = nodb_value_str(nodb_value_key(e->payload, "id"));
	if (id->n == 0) return false;
	*path = nodb_path_new();
	nodb_path_push(path, NODB_STR("todos"));
	nodb_path_push(path, *id);
	return true;
}

/* set_or_reject stores v at path, rejecting the event if the host refuses. */
static int32_t set_or_reject(nodb_str path, const nodb_buf *v) {
	int32_t st = nodb_set_buf(path, v);
	return st == NODB_OK ? NODB_OK : nodb_reject_status("set", path, st);
}

static int32_t on_add(const nodb_event *e) {
	nodb_str id;
	nodb_buf path;
	if (!todo_path(e, &id, &path)) return nodb_rejectz("todos: missing id");
	if (nodb_has(nodb_buf_str(&path))) {
		nodb_buf msg = {0};
		nodb_buf_append_z(&msg, "todos: duplicate id ");
		nodb_buf_append_str(&msg, id);
		return nodb_reject(nodb_buf_str(&msg));
	}
	nodb_buf v = {0};
	nodb_cbor_map(&v, 2);
	nodb_cbor_strz(&v, "text");
	nodb_cbor_str(&v, nodb_value_str(nodb_value_key(e->payload, "text")));
	nodb_cbor_strz(&v, "done");
	nodb_cbor_bool(&v, false);
	return set_or_reject(nodb_buf_str(&path), &v);
}

static int32_t on_toggle(const nodb_event *e) {
	nodb_str id;
	nodb_buf path;
	if (!todo_path(e, &id, &path)) return nodb_rejectz("todos: missing id");
	nodb_path_push(&path, NODB_STR("done"));
	nodb_value done;
	if (nodb_get(nodb_buf_str(&path), &done) != NODB_OK) return NODB_OK; /* toggling a deleted todo is a no-op */
	nodb_buf v = {0};
	nodb_cbor_bool(&v, !nodb_value_bool(done));
	return set_or_reject(nodb_buf_str(&path), &v);
}

static int32_t on_rename(const nodb_event *e) {
	nodb_str id;
	nodb_buf path;
	if (!todo_path(e, &id, &path)) return nodb_rejectz("todos: missing id");
	nodb_path_push(&path, NODB_STR("text"));
	if (!nodb_has(nodb_buf_str(&path))) return NODB_OK; /* renaming a deleted todo is a no-op */
	nodb_buf v = {0};
	nodb_cbor_str(&v, nodb_value_str(nodb_value_key(e->payload, "text")));
	return set_or_reject(nodb_buf_str(&path), &v);
}

/* delete_todo removes path; a missing todo is not an error. */
static int32_t delete_todo(nodb_str path) {
	int32_t st = nodb_delete(path);
	return st == NODB_OK || st == NODB_NOT_FOUND ? NODB_OK : nodb_reject_status("delete", path, st);
}

static int32_t on_delete(const nodb_event *e) {
	nodb_str id;
	nodb_buf path;
	if (!todo_path(e, &id, &path)) return nodb_rejectz("todos: missing id");
	return delete_todo(nodb_buf_str(&path));
}

static int32_t on_clear_completed(const nodb_event *e) {
	(void)e;
	nodb_value all;
	if (nodb_get(NODB_STR("/todos"), &all) != NODB_OK) return NODB_OK;
	/* all is our copy of /todos as it was: deleting while iterating is fine */
	nodb_iter it;
	nodb_str id;
	nodb_value todo;
	nodb_buf path = nodb_path_new();
	nodb_path_push(&path, NODB_STR("todos"));
	uint32_t base = path.len;
	nodb_map_begin(all, &it);
	while (nodb_map_next(&it, &id, &todo)) {
		if (!nodb_value_bool(nodb_value_key(todo, "done"))) continue;
		path.len = base;
		nodb_path_push(&path, id);
		int32_t st = delete_todo(nodb_buf_str(&path));
		if (st != NODB_OK) return st;
	}
	return NODB_OK;
}

void nodb_init(void) {
	nodb_on("todo/add", on_add);
	nodb_on("todo/toggle", on_toggle);
	nodb_on("todo/rename", on_rename);
	nodb_on("todo/delete", on_delete);
	nodb_on("todo/clear-completed", on_clear_completed);
}
