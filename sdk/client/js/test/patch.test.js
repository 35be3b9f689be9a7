import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyPatch, parsePointer, getPointer, PatchError } from '../patch.js';

const deepFreeze = (v) => {
  if (v && typeof v === 'object') {
    Object.freeze(v);
    for (const k of Object.keys(v)) deepFreeze(v[k]);
  }
  return v;
};

test('pointer parsing (RFC 6901)', () => {
  assert.deepEqual(parsePointer(''), []);
  assert.deepEqual(parsePointer('/'), ['']);
  assert.deepEqual(parsePointer('/a~1b/m~0n/~01'), ['a/b', 'm~n', '~1']);
  assert.deepEqual(parsePointer('/ /0'), [' ', '0']);
  assert.throws(() => parsePointer('a'), PatchError);
  assert.throws(() => parsePointer('/a~2'), /~/);
  assert.throws(() => parsePointer('/a~'), /~/);
  // RFC 6901 section 5 examples
  const doc = { foo: ['bar', 'baz'], '': 0, 'a/b': 1, 'c%d': 2, 'e^f': 3, 'g|h': 4, 'i\\j': 5, 'k"l': 6, ' ': 7, 'm~n': 8 };
  assert.equal(getPointer(doc, ''), doc);
  assert.equal(getPointer(doc, '/foo/0'), 'bar');
  assert.equal(getPointer(doc, '/'), 0);
  assert.equal(getPointer(doc, '/a~1b'), 1);
  assert.equal(getPointer(doc, '/i\\j'), 5);
  assert.equal(getPointer(doc, '/ '), 7);
  assert.equal(getPointer(doc, '/m~0n'), 8);
});

// [doc, patch, expected] or [doc, patch, Error-regexp]
const cases = [
  ['add to object', { a: 1 }, [{ op: 'add', path: '/b', value: 2 }], { a: 1, b: 2 }],
  ['add replaces existing key', { a: 1 }, [{ op: 'add', path: '/a', value: [1] }], { a: [1] }],
  ['add empty key', {}, [{ op: 'add', path: '/', value: 1 }], { '': 1 }],
  ['add escaped keys', {}, [{ op: 'add', path: '/a~1b', value: 1 }, { op: 'add', path: '/c~0d', value: 2 }], { 'a/b': 1, 'c~d': 2 }],
  ['add ~01 is "~1"', {}, [{ op: 'add', path: '/~01', value: 1 }], { '~1': 1 }],
  ['add array insert', { a: [1, 3] }, [{ op: 'add', path: '/a/1', value: 2 }], { a: [1, 2, 3] }],
  ['add array at length', { a: [1] }, [{ op: 'add', path: '/a/1', value: 2 }], { a: [1, 2] }],
  ['add array "-" appends', { a: [1] }, [{ op: 'add', path: '/a/-', value: 2 }], { a: [1, 2] }],
  ['add array past end', { a: [1] }, [{ op: 'add', path: '/a/2', value: 2 }], /out of bounds/],
  ['add array leading zero', { a: [1, 2] }, [{ op: 'add', path: '/a/01', value: 2 }], /not an array index/],
  ['add array negative', { a: [1, 2] }, [{ op: 'add', path: '/a/-1', value: 2 }], /not an array index/],
  ['add missing parent', {}, [{ op: 'add', path: '/a/b', value: 1 }], /does not exist/],
  ['add under a scalar', { a: 1 }, [{ op: 'add', path: '/a/b', value: 1 }], /not an object or array/],
  ['add null value', {}, [{ op: 'add', path: '/a', value: null }], { a: null }],
  ['add without value', {}, [{ op: 'add', path: '/a' }], /missing "value"/],
  ['add whole document', { a: 1 }, [{ op: 'add', path: '', value: [1] }], [1]],
  ['replace whole document', { a: 1 }, [{ op: 'replace', path: '', value: 'x' }], 'x'],
  ['replace', { a: { b: 1 } }, [{ op: 'replace', path: '/a/b', value: 2 }], { a: { b: 2 } }],
  ['replace missing key', { a: 1 }, [{ op: 'replace', path: '/b', value: 2 }], /no such key/],
  ['replace array element', [1, 2], [{ op: 'replace', path: '/1', value: 3 }], [1, 3]],
  ['replace "-"', [1, 2], [{ op: 'replace', path: '/-', value: 3 }], /only valid for add/],
  ['replace out of bounds', [1, 2], [{ op: 'replace', path: '/2', value: 3 }], /out of bounds/],
  ['remove key', { a: 1, b: 2 }, [{ op: 'remove', path: '/a' }], { b: 2 }],
  ['remove array element', { a: [1, 2, 3] }, [{ op: 'remove', path: '/a/1' }], { a: [1, 3] }],
  ['remove missing key', { a: 1 }, [{ op: 'remove', path: '/b' }], /no such key/],
  ['remove whole document', { a: 1 }, [{ op: 'remove', path: '' }], /whole document/],
  ['ops apply in order', { a: [] }, [
    { op: 'add', path: '/a/-', value: { x: 1 } },
    { op: 'add', path: '/a/0/y', value: 2 },
    { op: 'replace', path: '/a/0/x', value: 3 },
    { op: 'remove', path: '/a/0/y' },
  ], { a: [{ x: 3 }] }],
  ['move', { a: { b: 1 }, c: {} }, [{ op: 'move', from: '/a/b', path: '/c/d' }], { a: {}, c: { d: 1 } }],
  ['move into own child', { a: { b: 1 } }, [{ op: 'move', from: '/a', path: '/a/b/c' }], /own child/],
  ['copy', { a: [1] }, [{ op: 'copy', from: '/a', path: '/b' }], { a: [1], b: [1] }],
  ['test ok', { a: [1, { b: 2 }] }, [{ op: 'test', path: '/a', value: [1, { b: 2 }] }], { a: [1, { b: 2 }] }],
  ['test fails', { a: 1 }, [{ op: 'test', path: '/a', value: 2 }], /differs/],
  ['unknown op', {}, [{ op: 'frobnicate', path: '/a' }], /unknown op/],
  ['op not an object', {}, [null], /must be an object/],
  ['patch not an array', {}, { op: 'add' }, /array of ops/],
  ['pollution: __proto__ key', {}, [{ op: 'add', path: '/__proto__', value: { polluted: true } }], /prototype pollution/],
  ['pollution: nested constructor', { a: {} }, [{ op: 'add', path: '/a/constructor', value: {} }], /prototype pollution/],
  ['pollution: prototype in path', {}, [{ op: 'add', path: '/constructor/prototype/x', value: 1 }], /prototype pollution/],
  ['pollution: escaped in path', {}, [{ op: 'add', path: '/__proto__', value: 1 }], /prototype pollution/],
  ['pollution: inside value', {}, [{ op: 'add', path: '/a', value: JSON.parse('{"b":{"__proto__":{"x":1}}}') }], /prototype pollution/],
  ['pollution: replace', { a: 1 }, [{ op: 'replace', path: '/a', value: JSON.parse('[{"constructor":1}]') }], /prototype pollution/],
];

for (const [name, doc, patch, want] of cases) {
  test(`RFC 6902: ${name}`, () => {
    const before = JSON.stringify(doc);
    deepFreeze(doc); // mutation would throw in strict mode
    if (want instanceof RegExp) {
      assert.throws(() => applyPatch(doc, patch), (e) => e instanceof PatchError && want.test(e.message));
    } else {
      assert.deepEqual(applyPatch(doc, patch), want);
    }
    assert.equal(JSON.stringify(doc), before, 'input document unchanged');
  });
}

test('no prototype is polluted', () => {
  for (const path of ['/__proto__/polluted', '/constructor/prototype/polluted']) {
    try {
      applyPatch({}, [{ op: 'add', path, value: 1 }]);
    } catch { /* expected */ }
  }
  assert.equal({}.polluted, undefined);
  assert.equal(Object.prototype.polluted, undefined);
});

test('structural sharing: only the changed path is copied', () => {
  const doc = deepFreeze({
    todos: { a: { text: 'milk', done: false }, b: { text: 'eggs', done: false } },
    meta: { owner: { name: 'x' } },
    list: [{ k: 1 }, { k: 2 }, { k: 3 }],
  });
  const next = applyPatch(doc, [{ op: 'replace', path: '/todos/a/done', value: true }]);
  assert.notEqual(next, doc);
  assert.notEqual(next.todos, doc.todos);
  assert.notEqual(next.todos.a, doc.todos.a);
  assert.equal(next.todos.b, doc.todos.b, 'sibling keeps identity');
  assert.equal(next.meta, doc.meta, 'untouched subtree keeps identity');
  assert.equal(next.list, doc.list);
  assert.equal(doc.todos.a.done, false);
  assert.equal(next.todos.a.done, true);

  const n2 = applyPatch(doc, [{ op: 'add', path: '/list/1', value: { k: 9 } }]);
  assert.notEqual(n2.list, doc.list);
  assert.equal(n2.list[0], doc.list[0]);
  assert.equal(n2.list[2], doc.list[1]);
  assert.equal(n2.todos, doc.todos);

  const n3 = applyPatch(doc, [{ op: 'remove', path: '/todos/b' }]);
  assert.equal(n3.todos.a, doc.todos.a);
  assert.deepEqual(Object.keys(n3.todos), ['a']);
});

test('several ops under one parent copy it once and keep earlier results', () => {
  const doc = deepFreeze({ t: { a: 1, b: 2 }, u: {} });
  const next = applyPatch(doc, [
    { op: 'replace', path: '/t/a', value: 10 },
    { op: 'replace', path: '/t/b', value: 20 },
    { op: 'add', path: '/t/c', value: 30 },
  ]);
  assert.deepEqual(next, { t: { a: 10, b: 20, c: 30 }, u: {} });
  assert.equal(next.u, doc.u);
});

test('op values are not mutated by later ops', () => {
  const v = { x: 1 };
  const doc = applyPatch({}, [{ op: 'add', path: '/a', value: v }]);
  const doc2 = applyPatch(doc, [{ op: 'replace', path: '/a/x', value: 2 }]);
  assert.equal(v.x, 1);
  assert.equal(doc.a.x, 1);
  assert.equal(doc2.a.x, 2);
  // a failing op in the middle leaves the input alone
  assert.throws(() => applyPatch(doc2, [{ op: 'replace', path: '/a/x', value: 3 }, { op: 'remove', path: '/zz' }]), /op 1/);
  assert.equal(doc2.a.x, 2);
});

test('deep documents do not overflow the stack in value checks', () => {
  let v = {};
  for (let i = 0; i < 100000; i++) v = { n: v };
  assert.ok(applyPatch({}, [{ op: 'add', path: '/deep', value: v }]).deep);
});

test('copy makes an independent value: a later op on the copy leaves the source alone', () => {
  const doc = deepFreeze({ a: { x: 1 } });
  const next = applyPatch(doc, [
    { op: 'replace', path: '/a/x', value: 2 }, // /a is now a container created by this call
    { op: 'copy', from: '/a', path: '/b' },
    { op: 'replace', path: '/b/x', value: 3 },
  ]);
  assert.deepEqual(next, { a: { x: 2 }, b: { x: 3 } });
  assert.deepEqual(doc, { a: { x: 1 } });
});
