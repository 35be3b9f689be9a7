// Immutable RFC 6902 (JSON Patch) application with structural sharing.
//
// applyPatch(doc, ops) returns a new document and never mutates `doc` or the
// op values: only the objects and arrays on the path of a change are copied,
// every untouched subtree keeps its identity (so `prev.a === next.a` tells a
// UI that nothing under `a` changed). Within one call, containers already
// copied are reused, so a patch of many ops under one parent copies it once.
//
// Paths are RFC 6901 JSON Pointers ("" is the whole document, "~1" is "/",
// "~0" is "~", array indices are decimal without leading zeros, "-" appends).
// Keys that could pollute a JavaScript prototype ("__proto__", "constructor",
// "prototype") are refused, in paths and inside values.

export class PatchError extends Error {
  constructor(message, op, index) {
    super(message);
    this.name = 'PatchError';
    this.op = op;
    this.index = index;
  }
}

const FORBIDDEN = new Set(['__proto__', 'constructor', 'prototype']);
const INDEX = /^(0|[1-9][0-9]*)$/;

/** Parses an RFC 6901 JSON Pointer into its unescaped reference tokens. */
export function parsePointer(path) {
  if (typeof path !== 'string') throw new PatchError(`path must be a string, got ${typeof path}`);
  if (path === '') return [];
  if (path[0] !== '/') throw new PatchError(`path ${JSON.stringify(path)} must be empty or start with "/"`);
  const tokens = path.slice(1).split('/');
  for (let i = 0; i < tokens.length; i++) {
    let t = tokens[i];
    if (t.includes('~')) {
      if (/~[^01]|~$/.test(t)) throw new PatchError(`path ${JSON.stringify(path)}: "~" must be followed by 0 or 1`);
      t = t.replace(/~1/g, '/').replace(/~0/g, '~');
    }
    if (FORBIDDEN.has(t)) throw new PatchError(`path ${JSON.stringify(path)}: key ${JSON.stringify(t)} is refused (prototype pollution)`);
    tokens[i] = t;
  }
  return tokens;
}

/** Escapes one key for use in a JSON Pointer. */
export function escapePointerToken(key) {
  return String(key).replace(/~/g, '~0').replace(/\//g, '~1');
}

/** Throws if a JSON value holds a key that could pollute a prototype. */
function checkScalar(v, where) {
  if (typeof v === 'number' && !Number.isFinite(v)) throw new PatchError(`${where}: non-finite number`);
  if (v === undefined || typeof v === 'function' || typeof v === 'symbol' || typeof v === 'bigint')
    throw new PatchError(`${where}: not a JSON value (${typeof v})`);
}

export function checkValue(v, where = 'value') {
  if (v === null || typeof v !== 'object') return checkScalar(v, where);
  // Iterative walk: deep values must not blow the stack.
  const stack = [v];
  while (stack.length) {
    const x = stack.pop();
    if (Array.isArray(x)) {
      for (const e of x) {
        if (e !== null && typeof e === 'object') stack.push(e);
        else if (typeof e !== 'string' && typeof e !== 'boolean' && e !== null) checkScalar(e, where);
      }
      continue;
    }
    for (const k of Object.keys(x)) {
      if (FORBIDDEN.has(k)) throw new PatchError(`${where}: key ${JSON.stringify(k)} is refused (prototype pollution)`);
      const e = x[k];
      if (e !== null && typeof e === 'object') stack.push(e);
      else if (typeof e !== 'string' && typeof e !== 'boolean' && e !== null) checkScalar(e, where);
    }
    // A JSON.parse'd "__proto__" key is an own property; Object.keys sees it.
    if (Object.getPrototypeOf(x) !== Object.prototype && Object.getPrototypeOf(x) !== null)
      throw new PatchError(`${where}: not a plain JSON object`);
  }
}

function isContainer(v) {
  return v !== null && typeof v === 'object';
}

function arrayIndex(arr, token, path, forAdd) {
  if (token === '-') {
    if (forAdd) return arr.length;
    throw new PatchError(`path ${JSON.stringify(path)}: "-" is only valid for add`);
  }
  if (!INDEX.test(token)) throw new PatchError(`path ${JSON.stringify(path)}: ${JSON.stringify(token)} is not an array index`);
  const i = Number(token);
  if (forAdd ? i > arr.length : i >= arr.length)
    throw new PatchError(`path ${JSON.stringify(path)}: index ${i} is out of bounds (length ${arr.length})`);
  return i;
}

function has(obj, key) {
  return Object.prototype.hasOwnProperty.call(obj, key);
}

/** Reads the value at a pointer; throws if it does not exist. */
export function getPointer(doc, path) {
  const tokens = parsePointer(path);
  let cur = doc;
  for (const t of tokens) {
    if (Array.isArray(cur)) cur = cur[arrayIndex(cur, t, path, false)];
    else if (isContainer(cur) && has(cur, t)) cur = cur[t];
    else throw new PatchError(`path ${JSON.stringify(path)} does not exist`);
  }
  return cur;
}

function deepEqual(a, b) {
  if (a === b) return true;
  if (!isContainer(a) || !isContainer(b)) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    if (a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!deepEqual(a[i], b[i])) return false;
    return true;
  }
  const ka = Object.keys(a), kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  for (const k of ka) if (!has(b, k) || !deepEqual(a[k], b[k])) return false;
  return true;
}

// disown removes v and the containers under it from owned. Only owned
// containers can hold owned ones, so the walk stops at the first that is not.
function disown(v, owned) {
  const stack = [v];
  while (stack.length) {
    const x = stack.pop();
    if (!isContainer(x) || !owned.has(x)) continue;
    owned.delete(x);
    for (const k of Object.keys(x)) stack.push(x[k]);
  }
}

// Applies one op to root, copying containers on the path unless they are in
// `owned` (created during this applyPatch call). Returns the new root.
function applyOp(root, op, owned) {
  if (!isContainer(op) || typeof op.op !== 'string') throw new PatchError('an op must be an object with a string "op"');
  const path = op.path;
  const tokens = parsePointer(path);
  let value;
  switch (op.op) {
    case 'add':
    case 'replace':
    case 'test':
      if (!has(op, 'value')) throw new PatchError(`${op.op} ${JSON.stringify(path)}: missing "value"`);
      value = op.value;
      checkValue(value, `${op.op} ${JSON.stringify(path)}`);
      break;
    case 'remove':
      break;
    case 'copy':
    case 'move': {
      const from = op.from;
      const fromTokens = parsePointer(from);
      if (op.op === 'move' && fromTokens.length < tokens.length && fromTokens.every((t, i) => t === tokens[i]))
        throw new PatchError(`move: ${JSON.stringify(from)} cannot move into its own child ${JSON.stringify(path)}`);
      value = getPointer(root, from);
      // After a copy the value sits at two paths: containers this call
      // created (and so would change in place) must be copied again on
      // the next write under either path.
      if (op.op === 'copy') disown(value, owned);
      if (op.op === 'move') {
        if (from === path) return root;
        root = applyOp(root, { op: 'remove', path: from }, owned);
      }
      return applyOp(root, { op: 'add', path, value }, owned);
    }
    default:
      throw new PatchError(`unknown op ${JSON.stringify(op.op)}; expected add, remove, replace (or move, copy, test)`);
  }
  if (op.op === 'test') {
    if (!deepEqual(getPointer(root, path), value)) throw new PatchError(`test ${JSON.stringify(path)}: value differs`);
    return root;
  }
  if (tokens.length === 0) {
    if (op.op === 'remove') throw new PatchError('remove "": the whole document cannot be removed');
    return value;
  }
  // Walk down, copying each container on the path (copy-on-write).
  const copy = (c) => {
    if (owned.has(c)) return c;
    const n = Array.isArray(c) ? c.slice() : { ...c };
    owned.add(n);
    return n;
  };
  if (!isContainer(root)) throw new PatchError(`path ${JSON.stringify(path)} does not exist (the document is not a container)`);
  const newRoot = copy(root);
  let parent = newRoot;
  for (let i = 0; i < tokens.length - 1; i++) {
    const t = tokens[i];
    let key;
    if (Array.isArray(parent)) key = arrayIndex(parent, t, path, false);
    else if (has(parent, t)) key = t;
    else throw new PatchError(`${op.op} ${JSON.stringify(path)}: parent ${JSON.stringify('/' + tokens.slice(0, i + 1).map(escapePointerToken).join('/'))} does not exist`);
    const child = parent[key];
    if (!isContainer(child)) throw new PatchError(`${op.op} ${JSON.stringify(path)}: ${JSON.stringify(tokens[i])} is not an object or array`);
    const c = copy(child);
    parent[key] = c;
    parent = c;
  }
  const last = tokens[tokens.length - 1];
  if (Array.isArray(parent)) {
    const idx = arrayIndex(parent, last, path, op.op === 'add');
    if (op.op === 'add') parent.splice(idx, 0, value);
    else if (op.op === 'replace') parent[idx] = value;
    else parent.splice(idx, 1);
  } else {
    if (op.op !== 'add' && !has(parent, last)) throw new PatchError(`${op.op} ${JSON.stringify(path)}: no such key`);
    if (op.op === 'remove') delete parent[last];
    else parent[last] = value;
  }
  return newRoot;
}

/**
 * Applies RFC 6902 ops to doc and returns the new document; doc is not
 * changed. Throws PatchError (with .index of the failing op) on a bad op; the
 * document is then left as it was (nothing is half-applied).
 */
export function applyPatch(doc, ops) {
  if (!Array.isArray(ops)) throw new PatchError('a patch must be an array of ops');
  const owned = new WeakSet();
  let root = doc;
  for (let i = 0; i < ops.length; i++) {
    try {
      root = applyOp(root, ops[i], owned);
    } catch (e) {
      if (e instanceof PatchError) {
        e.op = ops[i];
        e.index = i;
        e.message = `op ${i}: ${e.message}`;
      }
      throw e;
    }
  }
  return root;
}
