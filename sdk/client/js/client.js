// The nodb client: one WebSocket (subprotocol nodb.v1.json, abi/PROTOCOL.md)
// carrying exactly-once publishes and view subscriptions, reconnecting with
// backoff and jitter, re-sending unacked events and resuming subscriptions.

import { applyPatch, checkValue } from './patch.js';
import { memoryStorage, defaultStorage } from './storage.js';

export const SUBPROTOCOL = 'nodb.v1.json';
const MAX_SAFE = Number.MAX_SAFE_INTEGER; // 2^53-1: ids, pseqs and seqs stay below
const DEFAULT_MAX_FRAME = 1 << 20;
const utf8 = new TextEncoder();
const utf8dec = new TextDecoder();

/** An error reported by the host (code from abi/PROTOCOL.md) or by the client. */
export class NodbError extends Error {
  constructor(code, message, extra) {
    super(message);
    this.name = 'NodbError';
    this.code = code;
    if (extra) Object.assign(this, extra);
  }
}

function randomId() {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === 'function') return c.randomUUID().replace(/-/g, '').slice(0, 16);
  if (c && typeof c.getRandomValues === 'function') {
    const b = c.getRandomValues(new Uint8Array(8));
    return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  }
  return Math.random().toString(16).slice(2, 10) + Math.random().toString(16).slice(2, 10);
}

function checkName(what, s) {
  if (typeof s !== 'string' || s.length === 0) throw new NodbError('bad_request', `${what} must be a non-empty string`);
  if (utf8.encode(s).length > 256) throw new NodbError('bad_request', `${what} is over 256 bytes`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(s)) throw new NodbError('bad_request', `${what} contains a control character`);
}

function defaultURL() {
  const loc = globalThis.location;
  if (loc && loc.host) return `${loc.protocol === 'https:' ? 'wss' : 'ws'}://${loc.host}/v1/ws`;
  return undefined;
}

// absoluteURL resolves a relative url ("/v1/ws", "v1/ws", "//host/v1/ws")
// against the page's location, as a link on the page would be, with http
// turned into ws and https into wss; an absolute url (one with a scheme) is
// returned as it is. A url that cannot be used is an error here, not at
// every dial: new URL(url) (which adds the token) and the WebSocket
// constructor would throw on each one, and the client would retry for ever.
// That includes a relative url with no page to resolve it against (Node).
function absoluteURL(url) {
  if (/^[a-z][a-z0-9+.-]*:/i.test(url)) {
    try {
      new URL(url);
    } catch {
      throw new NodbError('bad_request', `url "${url}" is not a valid URL: pass an absolute ws:// or wss:// URL`);
    }
    return url;
  }
  const base = globalThis.location?.href;
  let u = null;
  try {
    if (base) u = new URL(url, base);
  } catch {
    /* reported below */
  }
  if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:'))
    throw new NodbError(
      'bad_request',
      `url "${url}" is relative and there is no ${base ? `http(s) page location to resolve it against (the page is ${base})` : 'page location to resolve it against'}: pass an absolute ws:// or wss:// URL`,
    );
  return `${u.protocol === 'https:' ? 'wss' : 'ws'}:${u.href.slice(u.protocol.length)}`;
}

/** Creates a client and starts connecting (see NodbClient). */
export function createClient(options) {
  return new NodbClient(options);
}

export class NodbClient {
  /**
   * @param {object} [o]
   * @param {string} [o.url] ws:// or wss:// URL of /v1/ws (http(s):// works too; a relative URL is resolved
   *   against the page's location); default: the page's host
   * @param {Function} [o.WebSocket] a WebSocket implementation (e.g. the `ws` package in Node); default globalThis.WebSocket
   * @param {object} [o.storage] Web Storage-like object for the producer state; default localStorage, else memory
   * @param {object} [o.locks] a Web Locks LockManager used so that two tabs never share a producer; default navigator.locks
   * @param {string} [o.producer] a fixed producer id (you guarantee no one else uses it concurrently)
   * @param {string} [o.namespace] storage key prefix; default "nodb:" + url
   * @param {{min?:number,max?:number}} [o.backoff] reconnect delay bounds in ms (default 100..5000), doubling, with jitter
   * @param {number} [o.pingInterval] ms between app-level pings (default 10000; 0 disables)
   * @param {number} [o.deadPeerTimeout] ms without any message after which the connection is dropped (default 25000)
   * @param {boolean} [o.autoConnect] connect at once (default true)
   * @param {string|(() => string)} [o.token] bearer token for a host started with --tokens, sent as the
   *   access_token query parameter of the WebSocket URL (browsers cannot set headers on a WebSocket);
   *   a function is called before every (re)connect, so a rotated token is picked up
   */
  constructor(o = {}) {
    let url = o.url ?? defaultURL();
    if (!url) throw new NodbError('bad_request', 'no url given and no page location to derive one from');
    if (typeof url !== 'string') throw new NodbError('bad_request', 'url must be a string');
    url = url.replace(/^http(s?):\/\//, 'ws$1://');
    this.url = absoluteURL(url);
    this._WS = o.WebSocket ?? globalThis.WebSocket;
    if (typeof this._WS !== 'function')
      throw new NodbError('bad_request', 'no WebSocket implementation: pass { WebSocket } (e.g. from the "ws" package in Node 20)');
    this._storage = o.storage ?? defaultStorage() ?? memoryStorage();
    this._locks = o.locks !== undefined ? o.locks : globalThis.navigator?.locks ?? null;
    // The url as given, not as resolved: the storage keys of a client made
    // with a relative url stay what they were before relative urls were
    // resolved here, so the events it left unacked are still found.
    this._ns = o.namespace ?? `nodb:${url}`;
    this._backoffMin = Math.max(1, o.backoff?.min ?? 100);
    this._backoffMax = Math.max(this._backoffMin, o.backoff?.max ?? 5000);
    if (o.token !== undefined && o.token !== null && typeof o.token !== 'string' && typeof o.token !== 'function')
      throw new NodbError('bad_request', 'token must be a string or a function returning one');
    this._token = o.token ?? null;
    this._pingInterval = o.pingInterval ?? 10000;
    this._deadPeer = o.deadPeerTimeout ?? 25000;

    this.state = 'closed'; // connecting | open | closed
    this.hello = null;
    this.producer = null;
    this._listeners = new Map(); // event -> Set<fn>
    this._conn = null;
    this._attempt = 0;
    this._retryTimer = null;
    this._pingTimer = null;
    this._closed = false;
    this._nextId = 1;

    // Publishing. _outbox holds every event with a pseq and no ack, in pseq order.
    this._next = 1;
    this._outbox = [];
    this._pending = []; // published before the producer was claimed
    this._release = null; // releases the Web Lock
    this._gen = 0; // bumped by close(): a claim still running then gives up
    if (o.producer !== undefined) checkName('producer', o.producer);
    this._fixed = o.producer;
    this._ready = this._claim();

    // Subscriptions, one per view.
    this._views = new Map(); // view -> {listeners:Set, state, seq, has, subId, waiters:[]}

    this.stats = { connects: 0, published: 0, acked: 0, resent: 0, patches: 0, snapshots: 0 };
    if (o.autoConnect !== false) this.connect();
  }

  // ---------------------------------------------------------------- events

  /**
   * Registers a listener. Events: "state" (connecting|open|closed), "error"
   * (Error), "hello" (the host's hello), "outbox" (number of events not yet
   * acked). Returns an off function.
   */
  on(event, fn) {
    let s = this._listeners.get(event);
    if (!s) this._listeners.set(event, (s = new Set()));
    s.add(fn);
    return () => s.delete(fn);
  }

  _emit(event, arg) {
    const s = this._listeners.get(event);
    if (!s) return;
    for (const fn of [...s]) {
      try {
        fn(arg);
      } catch (e) {
        if (event !== 'error') this._emit('error', e);
        else setTimeout(() => { throw e; });
      }
    }
  }

  _setState(st) {
    if (this.state === st) return;
    this.state = st;
    this._emit('state', st);
  }

  // ---------------------------------------------------------------- producer

  _key(...parts) {
    return `${this._ns}:${parts.join(':')}`;
  }

  _claim() {
    const gen = this._gen;
    return this._claimProducer(this._fixed).catch((err) => {
      // The claim may have failed after it locked a producer (a throwing
      // getItem or setItem, a bad id in the list): let the lock go, or that
      // producer stays locked for every other tab until this page unloads.
      this._unlock();
      if (this._gen !== gen) return; // closed meanwhile: connect() claims again
      // Storage unusable: fall back to a fresh in-memory producer, and drop
      // whatever was loaded from the storage that failed (those events stay
      // there, for the next client that can read them).
      this._emit('error', new NodbError('storage', `producer storage failed, using a fresh producer: ${err?.message ?? err}`, { cause: err }));
      this._storage = memoryStorage();
      this._ns = 'nodb';
      this.producer = null;
      this._outbox = [];
      this._next = 1;
      if (this._pending) return this._claimProducer(undefined);
    });
  }

  async _claimProducer(fixed) {
    const gen = this._gen;
    let id = fixed;
    if (id === undefined) {
      const listKey = this._key('producers');
      const readList = () => {
        try {
          const l = JSON.parse(this._storage.getItem(listKey) || '[]');
          return Array.isArray(l) ? l.filter((x) => typeof x === 'string') : [];
        } catch {
          return [];
        }
      };
      const list = readList();
      if (this._locks) {
        for (const cand of list) {
          const got = await this._tryLock(cand, gen);
          if (this._gen !== gen) return;
          if (got) {
            id = cand;
            break;
          }
        }
      } else if (list.length) {
        id = list[0];
      }
      if (id === undefined) {
        id = `js-${randomId()}`;
        if (this._locks) await this._tryLock(id, gen);
        if (this._gen !== gen) return;
        const now = readList(); // re-read: another client may have added one meanwhile
        now.push(id);
        this._storage.setItem(listKey, JSON.stringify(now));
      }
    }
    checkName('producer', id);
    this.producer = id;
    // Load next pseq and the unacked events left by an earlier page/process.
    const next = Number(this._storage.getItem(this._key('p', id, 'next')) || '1');
    const low = Number(this._storage.getItem(this._key('p', id, 'low')) || String(next));
    this._next = next >= 1 ? next : 1;
    for (let p = Math.max(1, low); p < this._next; p++) {
      const raw = this._storage.getItem(this._key('p', id, 'e', p));
      if (raw == null) continue;
      try {
        const { type, payload } = JSON.parse(raw);
        this._outbox.push(this._newEntry(type, payload, p));
      } catch {
        /* unreadable entry: skip; a gap is repaired by renumbering */
      }
    }
    for (const e of this._outbox) e.promise.catch(() => {});
    // Send the loaded events first: _assign sends each new one at once.
    if (this._conn?.open) for (const e of this._outbox) if (!e.sentOn) this._send(this._conn, e);
    const pending = this._pending;
    this._pending = null;
    for (const e of pending) this._assign(e);
  }

  // _unlock releases the producer's Web Lock, if one is held.
  _unlock() {
    const release = this._release;
    this._release = null;
    if (release) release();
  }

  _tryLock(id, gen) {
    return new Promise((resolve) => {
      this._locks
        .request(`nodb-producer:${this._ns}:${id}`, { ifAvailable: true }, (lock) => {
          if (!lock || this._gen !== gen) return resolve(false);
          resolve(true);
          return new Promise((release) => (this._release = release));
        })
        .catch(() => resolve(false));
    });
  }

  _newEntry(type, payload, pseq = 0) {
    const e = { type, payload, pseq, sentOn: null, id: 0, ack: null };
    e.promise = new Promise((res, rej) => {
      e.resolve = res;
      e.reject = rej;
    });
    return e;
  }

  // Persist before the event can be sent: first the event, then the counter,
  // so a crash in between loses only an event that never left this process.
  _assign(e) {
    const p = this._next;
    try {
      this._storage.setItem(this._key('p', this.producer, 'e', p), JSON.stringify({ type: e.type, payload: e.payload }));
      this._storage.setItem(this._key('p', this.producer, 'next'), String(p + 1));
      if (this._outbox.length === 0) this._storage.setItem(this._key('p', this.producer, 'low'), String(p));
    } catch (err) {
      e.reject(new NodbError('storage', `cannot persist the event before sending it: ${err?.message ?? err}`));
      return;
    }
    this._next = p + 1;
    e.pseq = p;
    this._outbox.push(e);
    this._emit('outbox', this._outbox.length);
    if (this._conn?.open) this._send(this._conn, e);
  }

  _forget(e) {
    const i = this._outbox.indexOf(e);
    if (i >= 0) this._outbox.splice(i, 1);
    this._emit('outbox', this._outbox.length);
    try {
      this._storage.removeItem(this._key('p', this.producer, 'e', e.pseq));
      this._storage.setItem(this._key('p', this.producer, 'low'), String(this._outbox.length ? this._outbox[0].pseq : this._next));
    } catch {
      /* a stale entry is harmless: it is re-sent and acked as a duplicate */
    }
  }

  /**
   * Publishes an event. Returns a Promise of the ack {seq, duplicate} with an
   * extra method applied(view): a Promise that resolves (to the ack) once the
   * view has applied the event (read-your-writes).
   */
  publish(type, payload = null) {
    let e;
    try {
      if (this._closed) throw new NodbError('closed', 'client is closed');
      checkName('event type', type);
      if (payload === undefined) payload = null;
      checkValue(payload, 'payload');
      const size = utf8.encode(
        JSON.stringify({ type: 'publish', id: MAX_SAFE, event: { producer: this.producer ?? 'x'.repeat(64), pseq: MAX_SAFE, type, payload } }),
      ).length;
      const limit = this.hello?.max_frame ?? DEFAULT_MAX_FRAME;
      if (size > limit) throw new NodbError('too_large', `event is ${size} bytes on the wire, over the host's ${limit}-byte frame limit`);
      e = this._newEntry(type, payload);
    } catch (err) {
      const p = Promise.reject(err instanceof NodbError ? err : new NodbError('bad_request', err.message));
      p.catch(() => {});
      p.applied = () => p;
      return p;
    }
    this.stats.published++;
    if (this._pending) this._pending.push(e);
    else this._assign(e);
    const p = e.promise;
    p.catch(() => {}); // failures also reach whoever awaits p or p.applied()
    p.applied = (view) => p.then((ack) => this._waitApplied(view, ack.seq).then(() => ack));
    return p;
  }

  /** Number of published events not acked yet. */
  get unacked() {
    return this._outbox.length + (this._pending?.length ?? 0);
  }

  /** Resolves when every event published so far is acked. */
  async flush() {
    await this._ready;
    await Promise.allSettled([...(this._pending ?? []), ...this._outbox].map((e) => e.promise));
  }

  _send(conn, e) {
    if (e.sentOn === conn) return;
    if (e.sentOn) this.stats.resent++;
    e.sentOn = conn;
    e.id = this._nextId++;
    conn.byId.set(e.id, { kind: 'publish', e });
    this._write(conn, { type: 'publish', id: e.id, event: { producer: this.producer, pseq: e.pseq, type: e.type, payload: e.payload } });
  }

  _onAck(e, m) {
    if (!this._outbox.includes(e)) return;
    this.stats.acked++;
    this._forget(e);
    e.ack = { seq: m.seq, duplicate: !!m.duplicate };
    e.resolve(e.ack);
  }

  _onPublishError(conn, e, m) {
    const err = new NodbError(m.code, m.error, m.expected_pseq !== undefined ? { expected_pseq: m.expected_pseq } : undefined);
    if (m.code === 'unavailable') {
      // Not written: drop the connection; the redial re-sends in pseq order.
      this._drop(conn, err);
      return;
    }
    if (m.code === 'pseq_gap' && typeof m.expected_pseq === 'number' && m.expected_pseq < e.pseq) {
      if (this._outbox.some((x) => x.pseq === m.expected_pseq)) {
        this._drop(conn, err); // an earlier event of ours is being retried
        return;
      }
      // The host wants a pseq we no longer hold (an event that failed for
      // good, or producer storage that was lost): nothing at or after the
      // expected pseq is stored, so renumber the unacked events from there.
      this._renumber(m.expected_pseq);
      this._drop(conn, err);
      return;
    }
    this._forget(e);
    e.reject(err);
    this._emit('error', err);
  }

  _renumber(from) {
    const old = this._outbox.map((e) => e.pseq);
    let p = from;
    try {
      for (const q of old) this._storage.removeItem(this._key('p', this.producer, 'e', q));
      for (const e of this._outbox) {
        e.pseq = p++;
        this._storage.setItem(this._key('p', this.producer, 'e', e.pseq), JSON.stringify({ type: e.type, payload: e.payload }));
      }
      this._next = p;
      this._storage.setItem(this._key('p', this.producer, 'next'), String(p));
      this._storage.setItem(this._key('p', this.producer, 'low'), String(from));
    } catch (err) {
      this._emit('error', err);
    }
  }

  // ---------------------------------------------------------------- connection

  /** Starts connecting (only needed with autoConnect: false, or after close()). */
  connect() {
    if (this._conn || this._retryTimer) return;
    if (this._closed) {
      // close() released the producer's lock and let go of its unacked
      // events: claim a producer again, as a new client on this storage
      // would, so that no other tab takes it meanwhile and the events
      // persisted but never acked are sent again.
      this._closed = false;
      this._outbox = [];
      this._pending = [];
      this.producer = null;
      const gen = this._gen;
      this._ready = this._ready.catch(() => {}).then(() => (this._gen === gen ? this._claim() : undefined));
    }
    this._closed = false;
    this._dial();
  }

  _dial() {
    this._retryTimer = null;
    if (this._closed) return;
    this._setState('connecting');
    let ws;
    try {
      ws = new this._WS(this._dialURL(), [SUBPROTOCOL]);
    } catch (err) {
      this._emit('error', err);
      this._scheduleRetry();
      return;
    }
    const conn = { ws, open: false, dead: false, byId: new Map(), lastSeen: Date.now() };
    this._conn = conn;
    ws.onmessage = (ev) => this._onFrame(conn, ev.data);
    ws.onclose = (ev) => this._onClose(conn, ev);
    ws.onerror = () => {}; // a close event follows
    // The ping timer that catches dead peers starts only with hello: until
    // then, a handshake or hello that never comes would leave the client
    // "connecting" for good.
    if (this._deadPeer)
      conn.helloTimer = setTimeout(() => {
        if (!conn.open) this._drop(conn, new NodbError('timeout', `no hello from the host within ${this._deadPeer} ms`));
      }, this._deadPeer);
  }

  // _dialURL is this.url with the token, if any, as ?access_token=. The
  // token is never part of this.url, so it stays out of storage keys.
  _dialURL() {
    const tok = typeof this._token === 'function' ? this._token() : this._token;
    if (!tok) return this.url;
    const u = new URL(this.url);
    u.searchParams.set('access_token', String(tok));
    return u.toString();
  }

  _scheduleRetry() {
    if (this._closed || this._retryTimer) return;
    const exp = Math.min(this._backoffMax, this._backoffMin * 2 ** Math.min(this._attempt, 20));
    const delay = exp / 2 + Math.random() * (exp / 2); // "equal jitter"
    this._attempt++;
    this._retryTimer = setTimeout(() => this._dial(), delay);
  }

  _write(conn, msg) {
    if (conn.dead) return;
    try {
      conn.ws.send(JSON.stringify(msg));
    } catch (err) {
      this._drop(conn, err);
    }
  }

  // _drop abandons a connection at once (without waiting for its close event).
  _drop(conn, err) {
    if (conn.dead) return;
    conn.dead = true;
    clearTimeout(conn.helloTimer);
    try {
      conn.ws.close(1000);
    } catch {
      /* already closing */
    }
    if (this._conn !== conn) return;
    this._conn = null;
    this._stopPing();
    if (err && !this._closed) this._emit('error', err);
    this._setState('closed');
    this._scheduleRetry();
  }

  _onClose(conn, ev) {
    if (conn.dead) return;
    const code = ev?.code;
    this._drop(conn, code === 1009 || code === 1002 || code === 1008 || code === 1011
      ? new NodbError('closed', `connection closed by the host with code ${code}${ev.reason ? `: ${ev.reason}` : ''}`, { closeCode: code })
      : null);
  }

  _startPing(conn) {
    this._stopPing();
    if (!this._pingInterval) return;
    this._pingTimer = setInterval(() => {
      if (conn.dead) return;
      if (this._deadPeer && Date.now() - conn.lastSeen > this._deadPeer) {
        this._drop(conn, new NodbError('timeout', `no message from the host for ${this._deadPeer} ms`));
        return;
      }
      const id = this._nextId++;
      conn.byId.set(id, { kind: 'ping' });
      this._write(conn, { type: 'ping', id });
    }, this._pingInterval);
  }

  _stopPing() {
    if (this._pingTimer) clearInterval(this._pingTimer);
    this._pingTimer = null;
  }

  _onFrame(conn, data) {
    if (conn.dead) return;
    conn.lastSeen = Date.now();
    let m;
    try {
      m = JSON.parse(typeof data === 'string' ? data : utf8dec.decode(data));
    } catch (err) {
      this._drop(conn, new NodbError('bad_message', `host sent a frame that is not JSON: ${err.message}`));
      return;
    }
    if (m === null || typeof m !== 'object') return;
    if (m.type === 'hello') return this._onHello(conn, m);
    const req = m.id !== undefined ? conn.byId.get(m.id) : undefined;
    switch (m.type) {
      case 'ack':
        if (req?.kind === 'publish') {
          conn.byId.delete(m.id);
          this._onAck(req.e, m);
        }
        return;
      case 'error':
        if (req?.kind === 'publish') {
          conn.byId.delete(m.id);
          return this._onPublishError(conn, req.e, m);
        }
        if (req?.kind === 'sub') return this._onSubError(req.view, m);
        this._emit('error', new NodbError(m.code ?? 'error', m.error ?? 'error from the host'));
        return;
      case 'pong':
        conn.byId.delete(m.id);
        return;
      case 'snapshot':
      case 'subscribed':
      case 'patch':
      case 'progress':
        // Patches and progress carry no id (the host encodes them once for
        // every subscriber): they are routed by view.
        if (typeof m.view === 'string') this._onSubMessage(conn, m.view, m);
        return;
      case 'unsubscribed':
        conn.byId.delete(m.id);
        return;
      default:
        return; // newer servers may send more; ignore
    }
  }

  _onHello(conn, m) {
    this.hello = m;
    clearTimeout(conn.helloTimer);
    conn.open = true;
    this._attempt = 0;
    this.stats.connects++;
    this._startPing(conn);
    this._setState('open');
    this._emit('hello', m);
    for (const [view, v] of this._views) this._sendSubscribe(conn, view, v);
    if (!this._pending) for (const e of this._outbox) this._send(conn, e);
  }

  /** Closes the connection for good; publishes not yet acked are rejected (they stay persisted and are re-sent by the next client with the same storage). */
  close() {
    if (this._closed) return;
    this._closed = true;
    this._gen++;
    if (this._retryTimer) clearTimeout(this._retryTimer);
    this._retryTimer = null;
    if (this._conn) this._drop(this._conn, null);
    this._setState('closed');
    const err = new NodbError('closed', 'client closed before the event was acked');
    for (const e of [...(this._pending ?? []), ...this._outbox]) e.reject(err);
    if (this._pending) this._pending = [];
    this._outbox = [];
    for (const v of this._views.values()) {
      clearTimeout(v.retryTimer);
      for (const w of v.waiters) w.reject(new NodbError('closed', 'client closed'));
    }
    this._views.clear();
    this._unlock();
  }

  // ---------------------------------------------------------------- subscriptions

  /**
   * Subscribes to a view. onState(state, change) is called with the new
   * state after the snapshot and after every patch; change is
   * {type:"snapshot", view, seq, reset} or {type:"patch", view, seq, ops}.
   * Returns a function that unsubscribes.
   */
  subscribe(view, onState, { onError } = {}) {
    checkName('view name', view);
    if (this._closed) throw new NodbError('closed', 'client is closed');
    const v = this._views.get(view) ?? this._openView(view);
    const l = { onState, onError };
    v.listeners.add(l);
    if (v.has) {
      queueMicrotask(() => {
        if (v.listeners.has(l) && v.has) l.onState?.(v.state, { type: 'snapshot', view, seq: v.seq, reset: false });
      });
    }
    let done = false;
    return () => {
      if (done) return;
      done = true;
      v.listeners.delete(l);
      if (v.listeners.size === 0 && v.waiters.length === 0) this._endView(view, v);
    };
  }

  _openView(view) {
    const v = { listeners: new Set(), state: undefined, seq: 0, has: false, subId: 0, conn: null, waiters: [], error: null, retry: 0, retryTimer: null };
    this._views.set(view, v);
    if (this._conn?.open) this._sendSubscribe(this._conn, view, v);
    return v;
  }

  _endView(view, v) {
    if (this._views.get(view) !== v) return;
    clearTimeout(v.retryTimer);
    this._views.delete(view);
    const conn = this._conn;
    if (conn?.open) {
      conn.byId.delete(v.subId);
      const id = this._nextId++;
      conn.byId.set(id, { kind: 'unsub' });
      this._write(conn, { type: 'unsubscribe', id, view });
    }
  }

  /** The last state received for a subscribed view (undefined before its snapshot). */
  getState(view) {
    return this._views.get(view)?.state;
  }

  /** The seq up to which a subscribed view's state is known (0 before its snapshot). */
  getSeq(view) {
    return this._views.get(view)?.seq ?? 0;
  }

  _sendSubscribe(conn, view, v, fresh = false) {
    clearTimeout(v.retryTimer);
    v.retryTimer = null;
    if (v.subId) conn.byId.delete(v.subId);
    const id = this._nextId++;
    v.subId = id;
    v.conn = conn;
    conn.byId.set(id, { kind: 'sub', view });
    const msg = { type: 'subscribe', id, view };
    if (v.has && !fresh) msg.since = v.seq;
    this._write(conn, msg);
  }

  _onSubError(view, m) {
    const v = this._views.get(view);
    const err = new NodbError(m.code ?? 'error', m.error ?? 'subscription failed', { view });
    if (!v) return this._emit('error', err);
    const first = !v.error;
    v.error = err;
    for (const w of v.waiters.splice(0)) w.reject(err);
    if (first) {
      for (const l of v.listeners) l.onError?.(err);
      this._emit('error', err);
    }
    // A view may appear later (a host still recovering answers not_found
    // until its views are loaded; a plugin may be deployed): keep trying,
    // with backoff, while someone listens. Errors are reported once.
    if ((err.code === 'not_found' || err.code === 'unavailable') && v.listeners.size > 0) {
      const conn = this._conn;
      v.retry = Math.min(this._backoffMax, Math.max(this._backoffMin, (v.retry || this._backoffMin / 2) * 2));
      clearTimeout(v.retryTimer);
      v.retryTimer = setTimeout(() => {
        v.retryTimer = null;
        if (this._views.get(view) === v && this._conn === conn && conn?.open && !conn.dead) this._sendSubscribe(conn, view, v);
      }, v.retry / 2 + (Math.random() * v.retry) / 2);
    } else if (v.listeners.size === 0) {
      this._endView(view, v);
    }
  }

  _onSubMessage(conn, view, m) {
    const v = this._views.get(view);
    if (!v || v.conn !== conn) return;
    switch (m.type) {
      case 'snapshot': {
        try {
          checkValue(m.state, `snapshot of ${view}`);
        } catch (err) {
          this._emit('error', err);
          return;
        }
        v.state = m.state;
        v.seq = m.seq;
        v.has = true;
        v.error = null;
        v.retry = 0;
        this.stats.snapshots++;
        this._notify(v, { type: 'snapshot', view, seq: m.seq, reset: !!m.reset });
        break;
      }
      case 'subscribed':
        v.error = null;
        v.retry = 0;
        return; // resumed: missed patches follow
      case 'patch': {
        if (!v.has || m.seq <= v.seq) return; // already applied
        let next;
        try {
          next = applyPatch(v.state, m.ops);
        } catch (err) {
          // Cannot happen with a correct host; recover with a fresh snapshot
          // (patches are ignored until it arrives).
          this._emit('error', err);
          v.has = false;
          this._sendSubscribe(conn, view, v, true);
          return;
        }
        v.state = next;
        v.seq = m.seq;
        this.stats.patches++;
        this._notify(v, { type: 'patch', view, seq: m.seq, ops: m.ops });
        break;
      }
      case 'progress':
        if (!v.has || m.seq <= v.seq) return;
        v.seq = m.seq;
        break;
    }
    if (v.waiters.length) {
      const still = [];
      for (const w of v.waiters) {
        if (w.seq <= v.seq) w.resolve();
        else still.push(w);
      }
      v.waiters = still;
      if (still.length === 0 && v.listeners.size === 0) this._endView(view, v);
    }
  }

  _notify(v, change) {
    for (const l of [...v.listeners]) {
      try {
        l.onState?.(v.state, change);
      } catch (err) {
        this._emit('error', err);
      }
    }
  }

  // Resolves once view has reached seq; subscribes for the while if needed.
  _waitApplied(view, seq) {
    if (this._closed) return Promise.reject(new NodbError('closed', 'client closed'));
    let v = this._views.get(view);
    if (v?.has && v.seq >= seq) return Promise.resolve();
    if (!v) v = this._openView(view); // kept only while a waiter is pending
    if (v.error) return Promise.reject(v.error);
    return new Promise((resolve, reject) => v.waiters.push({ seq, resolve, reject }));
  }
}
