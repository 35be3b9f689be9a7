// Resume: a subscriber loses its connection, another client publishes, the
// subscriber reconnects with `since` and receives every missed patch exactly
// once, in order, without a new snapshot. Also: publishes survive a server
// restart (SIGTERM, start again on the same data directory) exactly once.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startNodb, client, fetchSnapshot, freePort, until } from './lib.js';
import { closeClients, track } from './lib.js';
import { createClient } from '../sdk/client/js/index.js';

const nodes = [];
after(async () => {
  closeClients();
  for (const n of nodes) await n.cleanup();
});

// A WebSocket implementation we can cut: while `gate.blocked`, connections
// go to a closed port and fail; `gate.cut()` ends the current one. Outgoing
// messages are recorded.
function gated(deadPort) {
  const gate = { blocked: false, sent: [], current: null };
  function GatedWebSocket(url, protocols) {
    const ws = new WebSocket(gate.blocked ? `ws://127.0.0.1:${deadPort}/v1/ws` : url, protocols);
    const send = ws.send.bind(ws);
    ws.send = (data) => {
      gate.sent.push(JSON.parse(data));
      send(data);
    };
    gate.current = ws;
    return ws;
  }
  gate.WebSocket = GatedWebSocket;
  gate.cut = () => gate.current?.terminate();
  return gate;
}

test('resume after a disconnect: missed patches exactly once, in order', { timeout: 60000 }, async () => {
  const node = await startNodb({ web: false });
  nodes.push(node);
  const gate = gated(await freePort());
  const sub = track(createClient({ url: node.wsURL, WebSocket: gate.WebSocket, backoff: { min: 20, max: 100 } }));
  const watcher = client(node); // sees every change, as a reference
  const pub = client(node);

  const changes = [];
  const states = [];
  sub.on('state', (s) => states.push(s));
  sub.subscribe('todos', (state, ch) => changes.push(ch));
  const ref = [];
  let watching = false;
  watcher.subscribe('todos', (state, ch) => (ch.type === 'patch' ? ref.push(ch.seq) : (watching = true)));
  await until(() => watching && changes.length > 0, 10000, 'both snapshots'); // before anything is published

  for (let i = 0; i < 20; i++) pub.publish('todo/add', { id: `a${i}`, text: `first ${i}` });
  await pub.flush();
  await pub.publish('todo/toggle', { id: 'a0' }).applied('todos');
  await until(() => sub.getSeq('todos') >= pub.stats.acked, 10000, 'sub to catch up');
  const since = sub.getSeq('todos');

  gate.blocked = true;
  gate.cut();
  await until(() => sub.state !== 'open', 5000, 'sub to notice the cut');
  const missed = [];
  for (let i = 0; i < 200; i++) {
    const r = i % 4;
    if (r === 0) missed.push(pub.publish('todo/add', { id: `b${i}`, text: `while away ${i}` }));
    else if (r === 1) missed.push(pub.publish('todo/toggle', { id: `a${i % 20}` }));
    else if (r === 2) missed.push(pub.publish('todo/rename', { id: `a${i % 20}`, text: `renamed ${i}` }));
    else missed.push(pub.publish('todo/toggle', { id: 'nobody' })); // no patch, progress only
  }
  const lastAck = await missed.at(-1).applied('todos');
  await until(() => watcher.getSeq('todos') >= lastAck.seq, 10000, 'watcher');
  assert.equal(sub.getSeq('todos'), since, 'nothing reached the cut subscriber');

  const subscribesBefore = gate.sent.filter((m) => m.type === 'subscribe').length;
  gate.blocked = false;
  await until(() => sub.getSeq('todos') >= lastAck.seq, 15000, 'resumed subscriber to catch up');

  const resub = gate.sent.filter((m) => m.type === 'subscribe').slice(subscribesBefore);
  assert.equal(resub[0].since, since, 'resubscribed with since = last applied seq');
  const snapshots = changes.filter((c) => c.type === 'snapshot');
  assert.equal(snapshots.length, 1, 'no second snapshot: the host still held the changes');
  const got = changes.filter((c) => c.type === 'patch').map((c) => c.seq);
  assert.deepEqual(got, ref, 'every patch exactly once, in order');
  assert.equal(new Set(got).size, got.length);
  const missedSeqs = ref.filter((s) => s > since);
  assert.ok(missedSeqs.length >= 150, `${missedSeqs.length} patches were missed and resent`);
  assert.ok(states.includes('closed') && states.at(-1) === 'open');

  const snap = await fetchSnapshot(node, 'todos');
  assert.deepEqual(sub.getState('todos'), snap.state);
  for (const c of [sub, watcher, pub]) c.close();
});

test('server restart: resubscribe, unacked publishes re-sent, nothing lost or doubled', { timeout: 90000 }, async () => {
  const node = await startNodb({ web: false });
  nodes.push(node);
  const pub = client(node);
  const sub = client(node);
  const resets = [];
  sub.subscribe('todos', (state, ch) => ch.type === 'snapshot' && resets.push(ch));
  await pub.publish('todo/add', { id: 'before', text: 'x' }).applied('todos');

  // Publish a stream of adds while the server is stopped and started again.
  const acks = [];
  let i = 0;
  let stop = false;
  const stream = (async () => {
    while (!stop) {
      acks.push(pub.publish('todo/add', { id: `r${i}`, text: `${i}` }));
      i++;
      await new Promise((r) => setTimeout(r, 2));
    }
  })();
  await until(() => i > 100);
  await node.stop(); // SIGTERM: in-flight acks are sent, then 1001
  await until(() => pub.state !== 'open' && sub.state !== 'open', 5000, 'clients to notice');
  await new Promise((r) => setTimeout(r, 300));
  await node.start();
  await until(() => i > 400, 20000, 'more publishes after the restart');
  stop = true;
  await stream;
  const results = await Promise.all(acks);
  const last = results.reduce((m, a) => Math.max(m, a.seq), 0);
  await until(() => sub.getSeq('todos') >= last, 20000, 'subscriber after restart');

  const snap = await fetchSnapshot(node, 'todos');
  const ids = Object.keys(snap.state.todos).filter((k) => k.startsWith('r'));
  assert.equal(ids.length, i, 'every add stored once');
  assert.deepEqual(sub.getState('todos'), snap.state);
  const seqs = results.map((a) => a.seq);
  assert.equal(new Set(seqs).size, seqs.length, 'distinct seqs: no event stored twice');
  assert.ok(pub.stats.connects >= 2 && sub.stats.connects >= 2);
  pub.close();
  sub.close();
});
