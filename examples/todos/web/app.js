// The nodb todos example: TodoMVC on a server-side view.
//
// Every user action publishes an event (todo/add, todo/toggle, todo/rename,
// todo/delete, todo/clear-completed); the page never changes the list itself.
// The host's "todos" view comes back as a snapshot then RFC 6902 patches,
// which the Redux binding applies to the store (structural sharing: a todo
// object that did not change keeps its identity, so rendering skips it).
//
// The client re-sends unacked events after a reconnect with the same
// producer and pseq (the host deduplicates them), and todo ids are made here,
// so a retried add can never create a second todo.
import { createStore, combineReducers } from './vendor/redux.browser.mjs';
import { createClient } from './nodb-client/index.js';
import { viewReducer, connectionReducer, syncView, syncConnection } from './nodb-client/redux.js';

const VIEW = 'todos';
const STATS_VIEW = 'todo-stats';

// ---------------------------------------------------------------- store

const filterFromHash = () => (location.hash.replace(/^#\/?/, '') || 'all');

function ui(state = { filter: filterFromHash(), editing: null, unsaved: 0 }, action) {
  switch (action.type) {
    case 'ui/filter': return { ...state, filter: action.filter };
    case 'ui/edit': return { ...state, editing: action.id };
    case 'ui/unsaved': return { ...state, unsaved: action.n };
    default: return state;
  }
}

// A host run with --tokens wants a token: open the page as /#token=nodb_…
// (a fragment never leaves the browser); this tab keeps it for reloads. Read
// before the store, which takes its filter from the fragment too.
function pageToken() {
  try {
    const t = new URLSearchParams(location.hash.slice(1)).get('token');
    if (t) {
      sessionStorage.setItem('nodb-token', t);
      history.replaceState(null, '', location.pathname + location.search);
    }
    return sessionStorage.getItem('nodb-token') ?? undefined;
  } catch {
    return undefined; // storage disabled: no token
  }
}

const token = pageToken();

const store = createStore(combineReducers({
  todos: viewReducer(VIEW), // null until the snapshot arrives, then {todos: {...}}
  stats: viewReducer(STATS_VIEW),
  connection: connectionReducer(),
  ui,
}));

const client = createClient({ token }); // same host as the page: ws(s)://HOST/v1/ws
syncConnection(store, client);
syncView(store, client, VIEW);
client.on('outbox', (n) => store.dispatch({ type: 'ui/unsaved', n }));
client.on('error', (e) => {
  if (e.code === 'not_found' && e.view === STATS_VIEW) return; // optional view
  console.warn('nodb:', e.message);
});
// The todo-stats panel: shown only if the host has that view.
client.subscribe(STATS_VIEW, (state) => store.dispatch({ type: 'nodb/SET_STATE', view: STATS_VIEW, state }), {
  onError: () => { /* no such view on this host: keep the panel hidden */ },
});
window.__nodb = { client, store }; // for the end-to-end tests and the curious

// Ids sort by creation time (the view's map has no order of its own) and are
// unique without coordination.
const newId = () => `t${Date.now().toString(36)}-${crypto.randomUUID().slice(0, 8)}`;

const publish = (type, payload) => client.publish(type, payload).catch((e) => console.error(`nodb: ${type} failed:`, e));

// ---------------------------------------------------------------- rendering

const $ = (id) => document.getElementById(id);
const list = $('list');
const rows = new Map(); // id -> {li, todo}

function todosOf(state) {
  return state.todos?.todos ?? {};
}

function visible(todo, filter) {
  return filter === 'all' || (filter === 'active' ? !todo.done : todo.done);
}

function makeRow(id) {
  const li = document.createElement('li');
  li.dataset.id = id;
  li.innerHTML = '<input class="toggle" type="checkbox"><label></label><button class="destroy" title="delete">×</button>';
  li.querySelector('.toggle').addEventListener('change', () => publish('todo/toggle', { id }));
  li.querySelector('.destroy').addEventListener('click', () => publish('todo/delete', { id }));
  li.querySelector('label').addEventListener('dblclick', () => store.dispatch({ type: 'ui/edit', id }));
  return li;
}

function startEdit(li, id, todo) {
  const input = document.createElement('input');
  input.className = 'edit';
  input.value = todo.text;
  let done = false;
  const finish = (save) => {
    if (done) return;
    done = true;
    const text = input.value.trim();
    if (save) {
      if (!text) publish('todo/delete', { id });
      else if (text !== rows.get(id)?.todo.text) publish('todo/rename', { id, text });
    }
    store.dispatch({ type: 'ui/edit', id: null });
  };
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') finish(true);
    if (e.key === 'Escape') finish(false);
  });
  input.addEventListener('blur', () => finish(true));
  li.querySelector('label').replaceWith(input);
  input.focus();
  input.setSelectionRange(input.value.length, input.value.length);
}

let last = {};
function render() {
  const s = store.getState();
  const conn = { open: 'online', connecting: 'connecting', closed: 'offline' }[s.connection] ?? s.connection;
  const badge = $('conn');
  if (badge.textContent !== conn) {
    badge.textContent = conn;
    badge.className = `conn ${conn}`;
  }
  $('unsaved').hidden = s.ui.unsaved === 0;
  $('unsaved').textContent = `${s.ui.unsaved} change${s.ui.unsaved === 1 ? '' : 's'} not yet saved${s.connection === 'open' ? '…' : ' (will be sent when back online)'}`;

  const todos = todosOf(s);
  if (todos !== last.todos || s.ui !== last.ui) {
    const ids = Object.keys(todos).sort();
    // Remove rows of deleted todos.
    for (const [id, row] of rows) {
      if (!(id in todos)) {
        row.li.remove();
        rows.delete(id);
      }
    }
    let prev = null;
    for (const id of ids) {
      const todo = todos[id];
      let row = rows.get(id);
      if (!row) rows.set(id, (row = { li: makeRow(id), todo: null, editing: false }));
      const editing = s.ui.editing === id;
      // Structural sharing: an unchanged todo is the same object as before.
      if (row.todo !== todo || row.editing !== editing) {
        row.li.classList.toggle('done', !!todo.done);
        row.li.querySelector('.toggle').checked = !!todo.done;
        if (editing && !row.editing) startEdit(row.li, id, todo);
        if (!editing && row.editing) {
          const input = row.li.querySelector('.edit');
          if (input) input.replaceWith(Object.assign(document.createElement('label'), {}));
          row.li.querySelector('label').addEventListener('dblclick', () => store.dispatch({ type: 'ui/edit', id }));
        }
        const label = row.li.querySelector('label');
        if (label) label.textContent = todo.text;
        row.todo = todo;
        row.editing = editing;
      }
      row.li.hidden = !visible(todo, s.ui.filter);
      // Keep DOM order = id order, moving only what is out of place.
      const want = prev ? prev.nextSibling : list.firstChild;
      if (want !== row.li) list.insertBefore(row.li, want);
      prev = row.li;
    }
    const left = ids.filter((id) => !todos[id].done).length;
    $('count').textContent = `${left} item${left === 1 ? '' : 's'} left`;
    $('footer').hidden = ids.length === 0;
    $('clear-completed').hidden = left === ids.length;
    $('toggle-all').checked = ids.length > 0 && left === 0;
    for (const a of document.querySelectorAll('.filters a')) a.classList.toggle('selected', a.dataset.filter === s.ui.filter);
  }

  if (s.stats !== last.stats) {
    const panel = $('stats-panel');
    panel.hidden = s.stats == null;
    if (s.stats != null) {
      // todo-stats is a cascade over todos (examples/todos/stats): counts,
      // completion rate and per-#tag counts, computed by the host.
      const st = s.stats;
      const pct = Math.round((st.completion ?? 0) * 100);
      const summary = Object.assign(document.createElement('div'), {
        className: 'stats-summary',
        textContent: `${st.total ?? 0} todos · ${st.done ?? 0} done · ${st.active ?? 0} active · ${pct}% complete`,
      });
      summary.dataset.testid = 'stats-summary';
      const tags = Object.assign(document.createElement('div'), { className: 'stats-tags' });
      for (const [tag, c] of Object.entries(st.tags ?? {}).sort(([a], [b]) => (a < b ? -1 : 1))) {
        const chip = Object.assign(document.createElement('span'), { className: 'tag', textContent: `#${tag} ${c.done}/${c.total}` });
        chip.dataset.testid = 'stats-tag';
        chip.dataset.tag = tag;
        tags.append(chip);
      }
      panel.replaceChildren(summary, tags);
    }
  }
  last = { todos, ui: s.ui, stats: s.stats };
}
store.subscribe(render);
render();

// ---------------------------------------------------------------- actions

$('new-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const input = $('new-todo');
  const text = input.value.trim();
  if (!text) return;
  publish('todo/add', { id: newId(), text });
  input.value = '';
});

$('toggle-all').addEventListener('change', (e) => {
  const want = e.target.checked;
  for (const [id, t] of Object.entries(todosOf(store.getState()))) if (t.done !== want) publish('todo/toggle', { id });
});

$('clear-completed').addEventListener('click', () => publish('todo/clear-completed', {}));

window.addEventListener('hashchange', () => store.dispatch({ type: 'ui/filter', filter: filterFromHash() }));
