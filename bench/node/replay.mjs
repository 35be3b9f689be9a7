// Replay baseline for nodb's `replay` benchmark: the todos reducer written the
// way a Redux + Immutable.js app writes it, fed the same events nodb replays.
//
//   node bench/node/replay.mjs EVENTS.jsonl [STATE_OUT.json]
//
// EVENTS.jsonl has one event a line, {"type":"todo/add","payload":{...}}, as
// written by bench/cmd/nodbbench (replay.go). The lines are parsed into Redux
// actions first (timed separately as parse_ms), then every action is
// dispatched to a Redux store whose state is an Immutable Map, and that loop
// is what events_per_s measures. The final state, converted with toJS(), is
// written to STATE_OUT.json so the Go side can check it equals nodb's state.
// One JSON object with the numbers goes to stdout.
import { readFileSync, writeFileSync } from "node:fs";
import { Map as IMap } from "immutable";
import { legacy_createStore as createStore } from "redux";

const [, , eventsPath, stateOut] = process.argv;
if (!eventsPath) {
  console.error("usage: node replay.mjs EVENTS.jsonl [STATE_OUT.json]");
  process.exit(2);
}

// The reducer: the same semantics as examples/todos/reducer/todos.
const initial = IMap({ todos: IMap() });

function todos(state = initial, action) {
  const p = action.payload;
  switch (action.type) {
    case "todo/add": {
      if (!p.id) throw new Error("todos: missing id");
      if (state.hasIn(["todos", p.id])) throw new Error("todos: duplicate id " + p.id);
      return state.setIn(["todos", p.id], IMap({ text: p.text ?? "", done: false }));
    }
    case "todo/toggle": {
      if (!p.id) throw new Error("todos: missing id");
      if (!state.hasIn(["todos", p.id])) return state; // toggling a deleted todo is a no-op
      return state.updateIn(["todos", p.id, "done"], (d) => !d);
    }
    case "todo/rename": {
      if (!p.id) throw new Error("todos: missing id");
      if (!state.hasIn(["todos", p.id])) return state;
      return state.setIn(["todos", p.id, "text"], p.text ?? "");
    }
    case "todo/delete": {
      if (!p.id) throw new Error("todos: missing id");
      return state.deleteIn(["todos", p.id]);
    }
    case "todo/clear-completed":
      return state.update("todos", (t) => t.filter((todo) => !todo.get("done")));
    default:
      return state;
  }
}

const t0 = performance.now();
const text = readFileSync(eventsPath, "utf8");
const actions = [];
let start = 0;
while (start < text.length) {
  let end = text.indexOf("\n", start);
  if (end < 0) end = text.length;
  if (end > start) actions.push(JSON.parse(text.slice(start, end)));
  start = end + 1;
}
const t1 = performance.now();

const store = createStore(todos);
const cpu0 = process.cpuUsage();
const t2 = performance.now();
for (let i = 0; i < actions.length; i++) store.dispatch(actions[i]);
const t3 = performance.now();
const cpu = process.cpuUsage(cpu0);

const state = store.getState();
if (stateOut) writeFileSync(stateOut, JSON.stringify(state.toJS()));

const reduceMs = t3 - t2;
console.log(
  JSON.stringify({
    events: actions.length,
    live_todos: state.get("todos").size,
    parse_ms: t1 - t0,
    reduce_ms: reduceMs,
    reduce_cpu_ms: (cpu.user + cpu.system) / 1000,
    events_per_s: actions.length / (reduceMs / 1000),
    events_per_s_with_parse: actions.length / ((reduceMs + (t1 - t0)) / 1000),
    node: process.version,
  }),
);
