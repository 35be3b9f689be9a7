// Interop: every patch the real host sends is applied both by our client
// and by fast-json-patch (a library we did not write); after thousands of
// random todo events both documents equal a fresh snapshot from the host,
// and our client kept untouched todos identical (structural sharing).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fjp from 'fast-json-patch';
import { startNodb, client, fetchSnapshot } from './lib.js';
import { closeClients } from './lib.js';

const N = Number(process.env.NODB_E2E_EVENTS || 3000);

// Deterministic PRNG so a failure can be replayed (seed printed on failure).
function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

let node;
after(async () => {
  closeClients();
  await node?.cleanup();
});

test(`interop with fast-json-patch over ${N} random todo events`, async () => {
  node = await startNodb({ web: false });
  const seed = Number(process.env.NODB_E2E_SEED || Date.now() % 1e9);
  const rand = rng(seed);
  const pick = (a) => a[Math.floor(rand() * a.length)];
  const sub = client(node);
  const pub = client(node);

  let fjpDoc = null;
  let ours = null;
  let patches = 0;
  let sharingChecked = 0;
  let failure = null;
  sub.subscribe('todos', (state, change) => {
    try {
      if (change.type === 'snapshot') {
        fjpDoc = structuredClone(state);
      } else {
        patches++;
        // fast-json-patch mutates and inserts values by reference: give it its own copy.
        fjpDoc = fjp.applyPatch(fjpDoc, structuredClone(change.ops), true, true).newDocument;
        // Structural sharing: todos the patch does not touch keep their identity.
        const touched = new Set(change.ops.map((o) => o.path.split('/')[2]));
        const before = ours?.todos ?? {};
        for (const id of Object.keys(before)) {
          const key = id.replace(/~/g, '~0').replace(/\//g, '~1');
          if (!touched.has(key) && id in state.todos) {
            assert.equal(state.todos[id], before[id], `todo ${id} copied although the patch did not touch it`);
            sharingChecked++;
          }
        }
      }
      ours = state;
    } catch (e) {
      failure ??= e;
    }
  });

  // Ids include the characters JSON Pointer must escape, and non-ASCII.
  const ids = [];
  let next = 0;
  const newId = () => `${pick(['t', 'a/b', 'x~y', '~1', 'ü', 'space '])}-${next++}`;
  const texts = ['milk', 'eggs', 'bread', 'ö "quoted"', '', 'a\\b', '🍞'];
  let last;
  for (let i = 0; i < N; i++) {
    const r = rand();
    let p;
    if (r < 0.35 || ids.length === 0) {
      const id = newId();
      ids.push(id);
      p = pub.publish('todo/add', { id, text: pick(texts) });
    } else if (r < 0.6) {
      p = pub.publish('todo/toggle', { id: pick(ids) });
    } else if (r < 0.75) {
      p = pub.publish('todo/rename', { id: pick(ids), text: pick(texts) + i });
    } else if (r < 0.9) {
      const j = Math.floor(rand() * ids.length);
      p = pub.publish('todo/delete', { id: ids[j] });
      ids.splice(j, 1);
    } else if (r < 0.93) {
      p = pub.publish('todo/clear-completed', {});
    } else {
      p = pub.publish('todo/toggle', { id: `missing-${i}` }); // changes nothing: progress only
    }
    last = p;
    if (i % 500 === 499) await p; // bound the pipeline a little
  }
  const ack = await last.applied('todos');
  assert.ok(ack.seq >= N, `last seq ${ack.seq}`);
  if (failure) throw failure;

  const snap = await fetchSnapshot(node, 'todos');
  assert.ok(snap.seq >= ack.seq, `snapshot seq ${snap.seq} < last ack ${ack.seq}`);
  assert.deepEqual(ours, snap.state, `our document differs from the host's snapshot (seed ${seed})`);
  assert.deepEqual(fjpDoc, snap.state, `fast-json-patch's document differs from the host's snapshot (seed ${seed})`);
  assert.ok(patches > N / 2, `only ${patches} patches`);
  assert.ok(sharingChecked > 0);
  // Clean shutdown of the clients.
  sub.close();
  pub.close();
});
