// Hostile and mistaken input against the real host: forged Origin, oversized
// frames, malformed messages, a missing view. Each gets a clear answer.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startNodb, client, raw, until } from './lib.js';
import { closeClients } from './lib.js';

let node;
before(async () => {
  node = await startNodb({ web: true, extraArgs: ['--max-frame', String(64 * 1024)] });
});
after(async () => {
  closeClients();
  await node?.cleanup();
});

test('a forged Origin is refused with 403 and says how to allow it', async () => {
  await assert.rejects(raw(node, { headers: { Origin: 'http://evil.example' } }), (e) => {
    assert.equal(e.status, 403);
    const body = JSON.parse(e.body);
    assert.equal(body.code, 'forbidden');
    assert.match(body.error, /origin "http:\/\/evil\.example" is not allowed/);
    assert.match(body.error, /--allow-origin/);
    return true;
  });
  // same-host origin (the page served by nodb itself) is fine
  const ok = await raw(node, { headers: { Origin: node.url } });
  assert.equal((await ok.next()).type, 'hello');
  ok.close();
});

test('no nodb subprotocol: 400 naming the supported ones', async () => {
  await assert.rejects(raw(node, { protocol: 'chat' }), (e) => e.status === 400 && /nodb\.v1\.json/.test(e.body));
});

test('an oversized frame closes the connection with 1009', async () => {
  const r = await raw(node);
  const hello = await r.next();
  assert.equal(hello.max_frame, 64 * 1024);
  r.send({ type: 'publish', id: 1, event: { producer: 'big', pseq: 1, type: 'x', payload: 'y'.repeat(100 * 1024) } });
  const closed = await r.closed();
  assert.equal(closed.code, 1009);
});

test('the client refuses an event over the host frame limit before sending it', async () => {
  const c = client(node);
  await until(() => c.state === 'open');
  await assert.rejects(c.publish('todo/add', { id: 'big', text: 'y'.repeat(100 * 1024) }), (e) => e.code === 'too_large' && /65536-byte/.test(e.message));
  const ok = await c.publish('todo/add', { id: 'small', text: 'ok' });
  assert.equal(ok.duplicate, false);
  c.close();
});

test('malformed messages get bad_request / unknown_type errors and the connection stays up', async () => {
  const r = await raw(node);
  await r.next((m) => m.type === 'hello');
  r.send('this is not json');
  let m = await r.next((x) => x.type === 'error');
  assert.equal(m.code, 'bad_request');
  assert.ok(m.error.length > 0);

  r.send({ type: 'frobnicate', id: 4 });
  m = await r.next((x) => x.type === 'error');
  assert.equal(m.code, 'unknown_type');
  assert.equal(m.id, 4);
  assert.match(m.error, /frobnicate/);

  r.send({ type: 'publish', id: 5, event: { pseq: 1, type: 'todo/add' } });
  m = await r.next((x) => x.type === 'error');
  assert.equal(m.code, 'bad_request');
  assert.equal(m.id, 5);
  assert.match(m.error, /producer/);

  r.send({ type: 'publish', id: 6, event: { producer: 'gap', pseq: 3, type: 'todo/add', payload: {} } });
  m = await r.next((x) => x.type === 'error');
  assert.equal(m.code, 'pseq_gap');
  assert.equal(m.expected_pseq, 1);

  r.send({ type: 'ping', id: 7 });
  m = await r.next((x) => x.type === 'pong');
  assert.equal(m.id, 7);
  r.close();
});

test('subscribing to a missing view: not_found naming the view, for raw and SDK clients', async () => {
  const r = await raw(node);
  r.send({ type: 'subscribe', id: 9, view: 'todo' });
  const m = await r.next((x) => x.type === 'error');
  assert.equal(m.code, 'not_found');
  assert.equal(m.id, 9);
  assert.match(m.error, /no view named "todo"/);
  r.close();

  const c = client(node);
  let err;
  c.subscribe('nope', () => assert.fail('no state expected'), { onError: (e) => (err = e) });
  await until(() => err, 5000, 'subscription error');
  assert.equal(err.code, 'not_found');
  assert.equal(err.view, 'nope');
  await assert.rejects(c.publish('todo/add', { id: 'q', text: 'q' }).applied('missing-view'), (e) => e.code === 'not_found');
  c.close();
});
