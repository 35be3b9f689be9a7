import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { createStore, combineReducers } from 'redux';
import { createClient, memoryStorage, NodbError } from '../index.js';
import { nodbReducer, viewReducer, syncView, syncConnection, connectionReducer } from '../redux.js';
import { startFakeServer } from './fake-server.js';

const fast = { backoff: { min: 5, max: 50 } };

function until(cond, ms = 5000, what = 'condition') {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const tick = () => {
      let v;
      try {
        v = cond();
      } catch (e) {
        return reject(e);
      }
      if (v) return resolve(v);
      if (Date.now() - t0 > ms) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 5);
    };
    tick();
  });
}

async function withServer(fn) {
  const srv = await startFakeServer();
  const clients = [];
  const mk = (o = {}) => {
    const c = createClient({ url: srv.url, WebSocket, ...fast, ...o });
    clients.push(c);
    return c;
  };
  try {
    await fn(srv, mk);
  } finally {
    for (const c of clients) c.close();
    await srv.stop();
  }
}

test('Node without a WebSocket implementation gets a clear error', () => {
  assert.throws(() => createClient({ url: 'ws://127.0.0.1:1/v1/ws' }), /WebSocket implementation/);
});

// withLocation runs fn with globalThis.location set to href, as in a page.
async function withLocation(href, fn) {
  const had = Object.getOwnPropertyDescriptor(globalThis, 'location');
  const u = new URL(href);
  globalThis.location = { href: u.href, protocol: u.protocol, host: u.host, origin: u.origin, pathname: u.pathname };
  try {
    await fn();
  } finally {
    if (had) Object.defineProperty(globalThis, 'location', had);
    else delete globalThis.location;
  }
}

test('a relative url (with a token) resolves against the page location: http becomes ws, https wss', async () => {
  await withServer(async (srv) => {
    await withLocation(`http://127.0.0.1:${srv.port}/app/index.html`, async () => {
      const c = createClient({ url: '/v1/ws', token: 'nodb_tok', WebSocket, storage: memoryStorage(), ...fast });
      try {
        await until(() => c.state === 'open', 3000, 'a connection');
        assert.equal(c.url, srv.url);
        const ack = await c.publish('set', { key: 'a', value: 1 });
        assert.equal(ack.seq, 1);
        assert.equal(srv.requests.at(-1), '/v1/ws?access_token=nodb_tok');
        assert.equal(c.stats.connects, 1);
      } finally {
        c.close();
      }
      const dirRelative = createClient({ url: 'v1/ws', WebSocket, autoConnect: false, storage: memoryStorage() });
      assert.equal(dirRelative.url, `ws://127.0.0.1:${srv.port}/app/v1/ws`, 'resolved like a link on the page');
    });
    await withLocation('https://app.example.test/todos/', async () => {
      const c = createClient({ url: '/v1/ws', token: () => 'nodb_tok', WebSocket, autoConnect: false, storage: memoryStorage() });
      assert.equal(c.url, 'wss://app.example.test/v1/ws');
      assert.equal(c._dialURL(), 'wss://app.example.test/v1/ws?access_token=nodb_tok');
      assert.equal(createClient({ url: '//other.example.test:8443/v1/ws', WebSocket, autoConnect: false }).url, 'wss://other.example.test:8443/v1/ws');
    });
  });
});

test('a relative url with no page location to resolve it against (Node) is a clear error, not a retry loop', () => {
  assert.equal(globalThis.location, undefined);
  const made = [];
  const mk = (o) => made.push(createClient({ WebSocket, storage: memoryStorage(), ...fast, ...o }));
  try {
    for (const token of [undefined, 'nodb_tok']) {
      assert.throws(
        () => mk({ url: '/v1/ws', token }),
        (e) => e instanceof NodbError && e.code === 'bad_request' && /"\/v1\/ws" is relative/.test(e.message) && /absolute ws:\/\/ or wss:\/\/ URL/.test(e.message),
      );
    }
    // an absolute url that does not parse would fail every dial the same way
    assert.throws(() => mk({ url: 'ws://[::1/v1/ws', token: 'nodb_tok' }), /is not a valid URL/);
  } finally {
    for (const c of made) c.close();
  }
});

test('publish is acked, pipelined, in pseq order; state events', async () => {
  await withServer(async (srv, mk) => {
    const c = mk({ autoConnect: false });
    const states = [];
    c.on('state', (s) => states.push(s));
    c.connect();
    const acks = await Promise.all(Array.from({ length: 200 }, (_, i) => c.publish('set', { key: `k${i}`, value: i })));
    assert.deepEqual(acks.map((a) => a.seq), Array.from({ length: 200 }, (_, i) => i + 1));
    assert.ok(acks.every((a) => a.duplicate === false));
    assert.deepEqual(srv.log.map((e) => e.pseq), Array.from({ length: 200 }, (_, i) => i + 1));
    assert.match(c.producer, /^js-[0-9a-f]{16}$/);
    assert.deepEqual(states.slice(0, 2), ['connecting', 'open']);
    c.close();
    assert.equal(states.at(-1), 'closed');
  });
});

test('pseq and the event are persisted before the event is sent', async () => {
  await withServer(async (srv, mk) => {
    const storage = memoryStorage();
    const c = mk({ storage });
    await until(() => c.state === 'open');
    const seen = [];
    srv.onMessage = (conn, m) => {
      if (m.type !== 'publish') return;
      const ns = `nodb:${srv.url}:p:${m.event.producer}`;
      seen.push({ next: Number(storage.getItem(`${ns}:next`)), ev: JSON.parse(storage.getItem(`${ns}:e:${m.event.pseq}`) ?? 'null'), pseq: m.event.pseq });
    };
    await Promise.all([c.publish('set', { key: 'a', value: 1 }), c.publish('set', { key: 'b', value: 2 })]);
    assert.deepEqual(seen.map((x) => [x.pseq, x.ev]), [
      [1, { type: 'set', payload: { key: 'a', value: 1 } }],
      [2, { type: 'set', payload: { key: 'b', value: 2 } }],
    ]);
    assert.ok(seen.every((x) => x.next > x.pseq), 'next pseq persisted past the one being sent');
    // acked events are removed from storage; the counter stays
    assert.equal(storage.getItem(`nodb:${srv.url}:p:${c.producer}:e:1`), null);
    assert.equal(storage.getItem(`nodb:${srv.url}:p:${c.producer}:next`), '3');
  });
});

test('a new client on the same storage continues the producer and re-sends unacked events', async () => {
  await withServer(async (srv, mk) => {
    const storage = memoryStorage();
    const a = mk({ storage });
    await a.publish('set', { key: 'x', value: 1 });
    const producer = a.producer;
    // The host never answers the next publish, and the page goes away.
    srv.onMessage = (conn, m) => (m.type === 'publish' ? false : undefined);
    const p = a.publish('set', { key: 'y', value: 2 });
    await until(() => srv.received.filter((m) => m.type === 'publish').length === 2);
    a.close();
    await assert.rejects(p, (e) => e.code === 'closed');
    srv.onMessage = null;
    const b = mk({ storage });
    const ack = await b.publish('set', { key: 'z', value: 3 });
    assert.equal(b.producer, producer, 'same producer id');
    assert.deepEqual(srv.log.map((e) => [e.pseq, e.payload.key]), [[1, 'x'], [2, 'y'], [3, 'z']]);
    assert.equal(ack.seq, 3);
  });
});

// fakeLocks is a Web Locks stand-in: a lock is granted when free (the
// callback gets it, and it is held until the callback's promise settles)
// and refused (null) while held. held has the names of the locks held.
function fakeLocks() {
  const held = new Set();
  return {
    held,
    request(name, opts, cb) {
      if (held.has(name)) return Promise.resolve(cb(null));
      held.add(name);
      return Promise.resolve(cb({ name })).finally(() => held.delete(name));
    },
  };
}

test('clients sharing a storage never share a producer (Web Locks); a released one is reused', async () => {
  await withServer(async (srv, mk) => {
    // Web Locks: a second client sharing the storage must not take a producer in use.
    const locks = fakeLocks();
    const storage = memoryStorage();
    const a = mk({ storage, locks });
    const b = mk({ storage, locks });
    await Promise.all([a.publish('set', { key: 'a', value: 1 }), b.publish('set', { key: 'b', value: 1 })]);
    assert.notEqual(a.producer, b.producer);
    a.close();
    await new Promise((r) => setTimeout(r, 10)); // locks are released asynchronously
    const c = mk({ storage, locks });
    await c.publish('set', { key: 'c', value: 1 });
    assert.equal(c.producer, a.producer, 'a released producer is reused');
    assert.deepEqual(srv.log.filter((e) => e.producer === a.producer).map((e) => e.pseq), [1, 2]);
  });
});

test('lost acks are retried with the same pseq and deduplicated (exactly once)', async () => {
  await withServer(async (srv, mk) => {
    const c = mk();
    await until(() => c.state === 'open');
    srv.loseAcks = 3; // three times: stored, then the connection is cut
    const acks = await Promise.all(Array.from({ length: 50 }, (_, i) => c.publish('set', { key: `k${i}`, value: i })));
    assert.equal(srv.log.length, 50, 'each event stored once');
    assert.deepEqual(srv.log.map((e) => e.payload.key), Array.from({ length: 50 }, (_, i) => `k${i}`));
    assert.deepEqual(acks.map((a) => a.seq), Array.from({ length: 50 }, (_, i) => i + 1), 'duplicate acks carry the original seq');
    assert.ok(acks.some((a) => a.duplicate), 'some acks were duplicates');
    assert.ok(c.stats.connects >= 2);
    assert.ok(c.stats.resent > 0);
  });
});

test('unavailable is retried later with the same pseq', async () => {
  await withServer(async (srv, mk) => {
    const c = mk();
    srv.refuse = 2;
    const acks = await Promise.all([c.publish('set', { key: 'a', value: 1 }), c.publish('set', { key: 'b', value: 2 }), c.publish('set', { key: 'c', value: 3 })]);
    assert.deepEqual(acks.map((a) => a.seq), [1, 2, 3]);
    assert.deepEqual(srv.log.map((e) => e.pseq), [1, 2, 3]);
  });
});

test('a refused event fails alone; later events are renumbered so nothing is lost', async () => {
  await withServer(async (srv, mk) => {
    const c = mk();
    await until(() => c.state === 'open');
    const p1 = c.publish('set', { key: 'a', value: 1 });
    const bad = c.publish('bad', {});
    const p3 = c.publish('set', { key: 'c', value: 3 });
    const p4 = c.publish('set', { key: 'd', value: 4 });
    await assert.rejects(bad, (e) => e instanceof NodbError && e.code === 'bad_request');
    const acks = await Promise.all([p1, p3, p4]);
    assert.deepEqual(acks.map((a) => a.seq), [1, 2, 3]);
    assert.deepEqual(srv.log.map((e) => [e.pseq, e.payload.key]), [[1, 'a'], [2, 'c'], [3, 'd']]);
  });
});

test('producer storage lost: the host expects an older pseq; events are renumbered', async () => {
  await withServer(async (srv, mk) => {
    const storage = memoryStorage();
    const a = mk({ storage, producer: 'fixed-1' });
    await a.publish('set', { key: 'a', value: 1 });
    a.close();
    // Storage says next=5 (say, two events persisted then wiped).
    storage.setItem(`nodb:${srv.url}:p:fixed-1:next`, '5');
    storage.setItem(`nodb:${srv.url}:p:fixed-1:low`, '5');
    const b = mk({ storage, producer: 'fixed-1' });
    const ack = await b.publish('set', { key: 'b', value: 2 });
    assert.equal(ack.seq, 2);
    assert.deepEqual(srv.log.map((e) => e.pseq), [1, 2]);
  });
});

test('client-side validation: bad type, too large, non-JSON payload', async () => {
  await withServer(async (srv, mk) => {
    const c = mk();
    await until(() => c.state === 'open');
    await assert.rejects(c.publish('', {}), /event type/);
    await assert.rejects(c.publish('a\nb', {}), /control character/);
    await assert.rejects(c.publish('t', { big: 'x'.repeat(2 << 20) }), (e) => e.code === 'too_large');
    await assert.rejects(c.publish('t', { n: NaN }), /non-finite/);
    await assert.rejects(c.publish('t', JSON.parse('{"__proto__":{"x":1}}')), /prototype pollution/);
    const ok = await c.publish('set', { key: 'a', value: 1 });
    assert.equal(ok.seq, 1, 'failed publishes consumed no pseq');
  });
});

test('subscribe: snapshot, patches, progress, read-your-writes, immutability', async () => {
  await withServer(async (srv, mk) => {
    const c = mk();
    await c.publish('set', { key: 'pre', value: { deep: 1 } });
    const seen = [];
    const off = c.subscribe('kv', (state, change) => seen.push({ state, change }));
    await until(() => seen.length === 1);
    assert.deepEqual(seen[0].state, { pre: { deep: 1 } });
    assert.equal(seen[0].change.type, 'snapshot');
    assert.equal(seen[0].change.seq, 1);
    const ack = await c.publish('set', { key: 'a', value: 1 }).applied('kv');
    assert.equal(ack.seq, 2);
    assert.equal(c.getSeq('kv'), 2);
    assert.deepEqual(c.getState('kv'), { pre: { deep: 1 }, a: 1 });
    assert.equal(seen[1].state.pre, seen[0].state.pre, 'untouched subtree keeps identity');
    assert.deepEqual(seen[0].state, { pre: { deep: 1 } }, 'old state not mutated');
    // an event that does not change the view: progress resolves applied()
    const noop = await c.publish('other', {}).applied('kv');
    assert.equal(c.getSeq('kv'), noop.seq);
    assert.equal(seen.length, 2, 'progress does not call onState');
    off();
    await until(() => srv.received.some((m) => m.type === 'unsubscribe'));
  });
});

test('applied() on a view not subscribed subscribes for the while', async () => {
  await withServer(async (srv, mk) => {
    const c = mk();
    const ack = await c.publish('set', { key: 'a', value: 1 }).applied('kv');
    assert.equal(ack.seq, 1);
    await until(() => srv.received.some((m) => m.type === 'unsubscribe'));
  });
});

test('missing view: clear error to the subscriber and to applied()', async () => {
  await withServer(async (srv, mk) => {
    const c = mk();
    const errs = [];
    c.on('error', (e) => errs.push(e));
    let subErr;
    c.subscribe('nope', () => {}, { onError: (e) => (subErr = e) });
    await until(() => subErr);
    assert.equal(subErr.code, 'not_found');
    assert.match(subErr.message, /no view named "nope"/);
    await assert.rejects(c.publish('set', { key: 'a', value: 1 }).applied('nope2'), (e) => e.code === 'not_found');
  });
});

test('resume: after a reconnect, missed patches arrive exactly once, in order', async () => {
  await withServer(async (srv, mk) => {
    const c = mk();
    const other = mk();
    const changes = [];
    c.subscribe('kv', (state, ch) => changes.push(ch));
    await c.publish('set', { key: 'a', value: 0 }).applied('kv');
    srv.kill(); // both clients drop; c reconnects with since
    for (let i = 1; i <= 20; i++) other.publish('set', { key: 'a', value: i });
    await other.flush();
    await until(() => c.getSeq('kv') === 21);
    const sub = srv.received.filter((m) => m.type === 'subscribe');
    assert.equal(sub.at(-1).since, 1, 'resubscribed with since = last applied seq');
    const patches = changes.filter((ch) => ch.type === 'patch').map((ch) => ch.seq);
    assert.deepEqual(patches, Array.from({ length: 21 }, (_, i) => i + 1));
    assert.equal(changes.filter((ch) => ch.type === 'snapshot').length, 1, 'no second snapshot');
    assert.equal(c.getState('kv').a, 20);
  });
});

test('resume too old: reset snapshot replaces the state', async () => {
  await withServer(async (srv, mk) => {
    const c = mk();
    const changes = [];
    c.subscribe('kv', (state, ch) => changes.push(ch));
    await c.publish('set', { key: 'a', value: 1 }).applied('kv');
    srv.historyFrom = 1000; // the host no longer holds the changes after since
    srv.kill();
    await until(() => changes.some((ch) => ch.reset));
    assert.deepEqual(c.getState('kv'), { a: 1 });
  });
});

test('app-level ping detects a dead peer and reconnects', async () => {
  await withServer(async (srv, mk) => {
    const c = mk({ pingInterval: 20, deadPeerTimeout: 100 });
    await until(() => c.state === 'open');
    await until(() => srv.received.some((m) => m.type === 'ping'));
    srv.onMessage = () => false; // the host stops answering
    await until(() => c.stats.connects >= 2, 3000, 'reconnect');
  });
});

test('redux: syncView keeps a slice in sync through SET_STATE and APPLY_PATCH', async () => {
  await withServer(async (srv, mk) => {
    const c = mk();
    const actions = [];
    const logger = () => (next) => (action) => (actions.push(action.type), next(action));
    const { applyMiddleware } = await import('redux');
    const store = createStore(
      combineReducers({ nodb: nodbReducer, kv: viewReducer('kv'), conn: connectionReducer() }),
      applyMiddleware(logger),
    );
    syncConnection(store, c);
    const stop = syncView(store, c, 'kv');
    await c.publish('set', { key: 'a', value: { n: 1 } }).applied('kv');
    await c.publish('set', { key: 'b', value: 2 }).applied('kv');
    await until(() => store.getState().kv?.b === 2);
    const s = store.getState();
    assert.deepEqual(s.kv, { a: { n: 1 }, b: 2 });
    assert.deepEqual(s.nodb.kv, { a: { n: 1 }, b: 2 });
    assert.equal(s.conn, 'open');
    assert.ok(actions.includes('nodb/SET_STATE'));
    assert.equal(actions.filter((t) => t === 'nodb/APPLY_PATCH').length, 2);
    const before = store.getState().kv;
    await c.publish('set', { key: 'b', value: 3 }).applied('kv');
    await until(() => store.getState().kv.b === 3);
    assert.equal(store.getState().kv.a, before.a, 'structural sharing in the store');
    stop();
  });
});

test('a reset snapshot without an id (slow-consumer resync) replaces the state', async () => {
  await withServer(async (srv, mk) => {
    const c = mk();
    const changes = [];
    c.subscribe('kv', (state, ch) => changes.push([state, ch]));
    await c.publish('set', { key: 'a', value: 1 }).applied('kv');
    srv.state = { replaced: true }; // pretend the client missed changes
    srv.resync();
    await until(() => changes.some(([, ch]) => ch.reset));
    assert.deepEqual(c.getState('kv'), { replaced: true });
    assert.equal(changes.at(-1)[1].type, 'snapshot');
  });
});

test('several listeners share one subscription; the last one to leave unsubscribes; resubscribe works', async () => {
  await withServer(async (srv, mk) => {
    const c = mk();
    const a = [];
    const b = [];
    const offA = c.subscribe('kv', (s) => a.push(s));
    await c.publish('set', { key: 'x', value: 1 }).applied('kv');
    const offB = c.subscribe('kv', (s) => b.push(s));
    await until(() => b.length === 1);
    assert.equal(b[0], a.at(-1), 'the second listener gets the current state at once');
    assert.equal(srv.received.filter((m) => m.type === 'subscribe').length, 1);
    offA();
    await c.publish('set', { key: 'y', value: 2 }).applied('kv');
    assert.equal(srv.received.filter((m) => m.type === 'unsubscribe').length, 0);
    offB();
    await until(() => srv.received.some((m) => m.type === 'unsubscribe'));
    assert.equal(c.getState('kv'), undefined);
    const again = [];
    c.subscribe('kv', (s) => again.push(s));
    await until(() => again.length === 1);
    assert.deepEqual(again[0], { x: 1, y: 2 });
  });
});

test('redux reducers without a client', () => {
  const r = viewReducer('todos');
  let s = r(undefined, { type: '@@INIT' });
  assert.equal(s, null);
  s = r(s, { type: 'nodb/SET_STATE', view: 'todos', state: { todos: { a: { done: false } }, other: {} } });
  const s2 = r(s, { type: 'nodb/APPLY_PATCH', view: 'todos', ops: [{ op: 'replace', path: '/todos/a/done', value: true }] });
  assert.equal(s2.todos.a.done, true);
  assert.equal(s.todos.a.done, false);
  assert.equal(s2.other, s.other);
  assert.equal(r(s2, { type: 'nodb/APPLY_PATCH', view: 'else', ops: [] }), s2, 'other views ignored');
  const custom = viewReducer('todos', { prefix: 'app' });
  assert.equal(custom(s, { type: 'nodb/SET_STATE', view: 'todos', state: 1 }), s, 'other prefix ignored');
  assert.equal(custom(s, { type: 'app/SET_STATE', view: 'todos', state: 1 }), 1);
  let m = nodbReducer(undefined, { type: '@@INIT' });
  m = nodbReducer(m, { type: 'nodb/SET_STATE', view: 'v', state: { a: [] } });
  m = nodbReducer(m, { type: 'nodb/APPLY_PATCH', view: 'v', ops: [{ op: 'add', path: '/a/-', value: 1 }] });
  assert.deepEqual(m, { v: { a: [1] } });
  assert.throws(() => nodbReducer(m, { type: 'nodb/APPLY_PATCH', view: 'v', ops: [{ op: 'add', path: '/__proto__/x', value: 1 }] }), /pollution/);
});

test('a view that is missing at first (host still recovering) is retried until it appears', async () => {
  await withServer(async (srv, mk) => {
    srv.views.delete('kv');
    const c = mk({ backoff: { min: 10, max: 40 } });
    const errs = [];
    c.on('error', (e) => errs.push(e));
    const got = [];
    let subErrs = 0;
    c.subscribe('kv', (s) => got.push(s), { onError: () => subErrs++ });
    await until(() => srv.received.filter((m) => m.type === 'subscribe').length >= 3, 3000, 'retries');
    srv.views.add('kv');
    await until(() => got.length === 1, 3000, 'snapshot once the view exists');
    assert.equal(subErrs, 1, 'the error is reported once');
    assert.equal(errs.filter((e) => e.code === 'not_found').length, 1);
  });
});

test('token: sent as access_token on every (re)connect, never stored', async () => {
  await withServer(async (srv, mk) => {
    const storage = memoryStorage();
    let n = 0;
    const c = mk({ storage, token: () => `nodb_abc_secret${++n}` });
    await c.publish('set', { key: 'a', value: 1 });
    assert.equal(srv.requests.at(-1), '/v1/ws?access_token=nodb_abc_secret1');
    assert.equal(c.url, srv.url, 'the token is not part of the client url');
    for (const c2 of srv.conns) c2.ws.terminate();
    await until(() => srv.requests.length === 2 && c.state === 'open', 5000, 'reconnect');
    assert.equal(srv.requests.at(-1), '/v1/ws?access_token=nodb_abc_secret2');
    for (let i = 0; i < storage.length; i++) {
      const k = storage.key(i);
      assert.ok(!k.includes('secret') && !String(storage.getItem(k)).includes('secret'), `token in storage: ${k}`);
    }
    const plain = mk({ storage: memoryStorage() });
    await plain.publish('set', { key: 'b', value: 2 });
    assert.equal(srv.requests.at(-1), '/v1/ws');
    assert.throws(() => createClient({ url: srv.url, WebSocket, token: 42 }), /token must be a string/);
  });
});

test('a host that accepts the WebSocket but never sends hello is dropped after deadPeerTimeout and redialed', async () => {
  const http = await import('node:http');
  const { WebSocketServer } = await import('ws');
  const server = http.createServer();
  const wss = new WebSocketServer({ server, handleProtocols: () => 'nodb.v1.json' });
  let conns = 0;
  wss.on('connection', () => conns++); // upgraded, then silent: no hello
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const c = createClient({ url: `ws://127.0.0.1:${server.address().port}/v1/ws`, WebSocket, ...fast, pingInterval: 20, deadPeerTimeout: 100 });
  const errs = [];
  c.on('error', (e) => errs.push(e));
  try {
    await until(() => conns >= 2, 3000, 'a redial after the silent connection');
    assert.ok(errs.some((e) => e.code === 'timeout'), 'the timeout is reported');
  } finally {
    c.close();
    for (const ws of wss.clients) ws.terminate();
    await new Promise((r) => wss.close(r));
    await new Promise((r) => server.close(r));
  }
});

test('applied() after close() rejects instead of hanging', async () => {
  await withServer(async (srv, mk) => {
    const c = mk();
    const p = c.publish('set', { key: 'a', value: 1 });
    await p;
    c.close();
    const r = await Promise.race([
      p.applied('kv').then(() => 'resolved', (e) => e.code),
      new Promise((res) => setTimeout(() => res('hung'), 500)),
    ]);
    assert.equal(r, 'closed');
  });
});

test('connect() after close() claims the producer again: its lock is held and the unacked events are re-sent', async () => {
  await withServer(async (srv, mk) => {
    const locks = fakeLocks();
    const storage = memoryStorage();
    const a = mk({ storage, locks });
    await a.publish('set', { key: 'x', value: 1 });
    srv.onMessage = (conn, m) => (m.type === 'publish' ? false : undefined); // no ack for 'y'
    const y = a.publish('set', { key: 'y', value: 2 });
    await until(() => srv.received.filter((m) => m.type === 'publish').length === 2);
    a.close();
    await assert.rejects(y, (e) => e.code === 'closed');
    srv.onMessage = null;
    await new Promise((r) => setTimeout(r, 10)); // locks are released asynchronously
    a.connect();
    const z = await a.publish('set', { key: 'z', value: 3 });
    // 'y' was never stored by the host; it stayed in storage and is sent again, before 'z'
    assert.deepEqual(srv.log.map((e) => [e.pseq, e.payload.key]), [[1, 'x'], [2, 'y'], [3, 'z']]);
    assert.equal(z.seq, 3);
    // a second client on the same storage must not take the producer 'a' uses again
    const b = mk({ storage, locks });
    await b.publish('set', { key: 'b', value: 1 });
    assert.notEqual(b.producer, a.producer);
  });
});

test('events left by an earlier page are sent before new ones when the host answers before the producer is claimed', async () => {
  await withServer(async (srv, mk) => {
    const storage = memoryStorage();
    const ns = `nodb:${srv.url}`;
    storage.setItem(`${ns}:producers`, JSON.stringify(['js-earlier']));
    storage.setItem(`${ns}:p:js-earlier:next`, '2');
    storage.setItem(`${ns}:p:js-earlier:low`, '1');
    storage.setItem(`${ns}:p:js-earlier:e:1`, JSON.stringify({ type: 'set', payload: { key: 'y', value: 1 } }));
    // a slow lock manager: the hello arrives before the producer is claimed
    const locks = { request: (name, opts, cb) => new Promise((r) => setTimeout(r, 100)).then(() => cb({ name })) };
    const c = mk({ storage, locks });
    const errs = [];
    c.on('error', (e) => errs.push(e));
    await until(() => c.state === 'open');
    assert.equal(c.producer, null, 'not claimed yet');
    const ack = await c.publish('set', { key: 'z', value: 2 });
    assert.equal(ack.seq, 2);
    assert.deepEqual(srv.log.map((e) => [e.pseq, e.payload.key]), [[1, 'y'], [2, 'z']]);
    assert.deepEqual(errs.map((e) => e.code), [], 'no pseq_gap, no reconnect');
    assert.equal(c.stats.connects, 1);
  });
});

// failingStorage wraps a storage; fails(op, key) says which getItem ("get")
// and setItem ("set") calls throw, as a full or broken localStorage does.
function failingStorage(inner, fails) {
  return {
    getItem(k) {
      if (fails('get', k)) throw new Error(`storage refused to read ${k}`);
      return inner.getItem(k);
    },
    setItem(k, v) {
      if (fails('set', k)) throw Object.assign(new Error('the quota has been exceeded'), { name: 'QuotaExceededError' });
      inner.setItem(k, v);
    },
    removeItem: (k) => inner.removeItem(k),
  };
}

test('a storage failure while the producer is claimed releases its lock and is reported; the client goes on with a producer in memory', async () => {
  await withServer(async (srv, mk) => {
    const ns = `nodb:${srv.url}`;
    const mine = (locks) => [...locks.held].filter((n) => n.startsWith(`nodb-producer:${ns}:`));

    // A producer in the list is locked, then reading its counter fails.
    const locks = fakeLocks();
    const storage = memoryStorage();
    storage.setItem(`${ns}:producers`, JSON.stringify(['js-earlier']));
    const a = mk({ storage: failingStorage(storage, (op, k) => op === 'get' && k === `${ns}:p:js-earlier:next`), locks });
    const errs = [];
    a.on('error', (e) => errs.push(e));
    const ack = await a.publish('set', { key: 'a', value: 1 });
    assert.equal(ack.seq, 1);
    assert.notEqual(a.producer, 'js-earlier');
    assert.deepEqual(errs.map((e) => e.code), ['storage']);
    assert.match(errs[0].message, /refused to read/);
    await new Promise((r) => setTimeout(r, 10)); // locks are released asynchronously
    assert.deepEqual(mine(locks), [], 'the lock on js-earlier is released');
    assert.match(errs[0].cause.message, /refused to read/);
    const b = mk({ storage, locks }); // another tab, whose storage works
    await b.publish('set', { key: 'b', value: 1 });
    assert.equal(b.producer, 'js-earlier', 'the producer is free for others');

    // A new producer is locked, then adding it to the list fails (quota).
    const locks2 = fakeLocks();
    const c = mk({ storage: failingStorage(memoryStorage(), (op, k) => op === 'set' && k.endsWith(':producers')), locks: locks2 });
    const errs2 = [];
    c.on('error', (e) => errs2.push(e));
    await c.publish('set', { key: 'c', value: 1 });
    assert.deepEqual(errs2.map((e) => e.code), ['storage']);
    assert.match(errs2[0].message, /quota/);
    await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(mine(locks2), [], 'the new producer\'s lock is released');
    assert.equal(locks2.held.size, 1, 'only the lock of the producer in memory is held');
    c.close();
    await new Promise((r) => setTimeout(r, 10));
    assert.equal(locks2.held.size, 0, 'close() releases it');
  });
});

test('a storage failure halfway through loading the unacked events: none of them is sent under the fresh producer', async () => {
  await withServer(async (srv, mk) => {
    const ns = `nodb:${srv.url}`;
    const storage = memoryStorage();
    storage.setItem(`${ns}:producers`, JSON.stringify(['js-earlier']));
    storage.setItem(`${ns}:p:js-earlier:next`, '3');
    storage.setItem(`${ns}:p:js-earlier:low`, '1');
    storage.setItem(`${ns}:p:js-earlier:e:1`, JSON.stringify({ type: 'set', payload: { key: 'y', value: 1 } }));
    storage.setItem(`${ns}:p:js-earlier:e:2`, JSON.stringify({ type: 'set', payload: { key: 'y', value: 2 } }));
    const c = mk({ storage: failingStorage(storage, (op, k) => op === 'get' && k === `${ns}:p:js-earlier:e:2`), locks: fakeLocks() });
    const errs = [];
    c.on('error', (e) => errs.push(e));
    const ack = await c.publish('set', { key: 'z', value: 3 });
    assert.deepEqual(errs.map((e) => e.code), ['storage']);
    assert.deepEqual(ack, { seq: 1, duplicate: false }, 'z is not taken for a duplicate of an event loaded before the failure');
    assert.deepEqual(srv.log.map((e) => [e.producer, e.pseq, e.payload.key]), [[c.producer, 1, 'z']]);
    assert.notEqual(storage.getItem(`${ns}:p:js-earlier:e:1`), null, 'the events stay in storage for a later client');
  });
});
