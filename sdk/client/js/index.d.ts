// Type definitions for @nodb/client.

/** A JSON value as nodb stores it. */
export type JSONValue = null | boolean | number | string | JSONValue[] | { [key: string]: JSONValue };

/** One RFC 6902 operation (nodb hosts send only add, remove and replace). */
export type Operation =
  | { op: 'add'; path: string; value: JSONValue }
  | { op: 'replace'; path: string; value: JSONValue }
  | { op: 'remove'; path: string }
  | { op: 'move'; from: string; path: string }
  | { op: 'copy'; from: string; path: string }
  | { op: 'test'; path: string; value: JSONValue };

/** Synchronous key-value storage (the Web Storage API subset the client uses). */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/** The Web Locks API subset the client uses (navigator.locks). */
export interface LockManagerLike {
  request(name: string, options: { ifAvailable: true }, callback: (lock: unknown | null) => unknown): Promise<unknown>;
}

export type ConnectionState = 'connecting' | 'open' | 'closed';

export interface ClientOptions {
  /**
   * ws://, wss://, http:// or https:// URL of the host's /v1/ws; default: the page's own host. A relative
   * URL ("/v1/ws") is resolved against the page's location (http becomes ws, https wss); without a page
   * location (Node) it throws a NodbError "bad_request": pass an absolute ws:// or wss:// URL there.
   */
  url?: string;
  /** WebSocket constructor; default globalThis.WebSocket. In Node 20 pass the `ws` package's default export. */
  WebSocket?: unknown;
  /** Where the producer id, next pseq and unacked events live; default localStorage, else in memory. */
  storage?: StorageLike;
  /** Keeps two tabs from using one producer; default navigator.locks. Pass null to disable. */
  locks?: LockManagerLike | null;
  /** A fixed producer id; you guarantee that nobody else uses it at the same time. */
  producer?: string;
  /** Storage key prefix; default "nodb:" + url, the url as given (a relative one is not resolved). */
  namespace?: string;
  /** Reconnect delay bounds in ms (default 100 and 5000); doubles per failed attempt, with jitter. */
  backoff?: { min?: number; max?: number };
  /** Milliseconds between application-level pings (default 10000; 0 disables). */
  pingInterval?: number;
  /** Milliseconds without any message after which the connection is dropped and redialed (default 25000). */
  deadPeerTimeout?: number;
  /** Connect at once (default true). */
  autoConnect?: boolean;
  /**
   * Bearer token for a host started with `nodb serve --tokens` (see `nodb token create`). It is sent as
   * the `access_token` query parameter of the WebSocket URL, since browsers cannot set headers on a
   * WebSocket; use wss:// so it is encrypted. A function is called before every (re)connect.
   */
  token?: string | (() => string);
}

export interface Ack {
  /** The event's global sequence number. */
  seq: number;
  /** True when the host already had the event (a re-send); seq is the original one. */
  duplicate: boolean;
}

/** The result of publish(): a Promise of the ack, plus read-your-writes. */
export interface PublishResult extends Promise<Ack> {
  /** Resolves (to the ack) once `view` has applied the event (its seq ≥ the ack's seq). Subscribes for the while if needed. */
  applied(view: string): Promise<Ack>;
}

export type Change =
  | { type: 'snapshot'; view: string; seq: number; reset: boolean }
  | { type: 'patch'; view: string; seq: number; ops: Operation[] };

export interface SubscribeOptions {
  /** Called when the host refuses the subscription (e.g. code "not_found"). */
  onError?: (err: NodbError) => void;
}

export interface Hello {
  type: 'hello';
  protocol: number;
  server: string;
  version: string;
  max_frame: number;
  head: number;
}

export interface ClientStats {
  connects: number;
  published: number;
  acked: number;
  resent: number;
  patches: number;
  snapshots: number;
}

export class NodbClient {
  constructor(options?: ClientOptions);
  /** The URL dialed, without the token: the url option made absolute (see ClientOptions.url). */
  readonly url: string;
  /** The connection state: "connecting", "open" or "closed" (offline, retrying, or closed for good). */
  readonly state: ConnectionState;
  /** The last hello received from the host. */
  readonly hello: Hello | null;
  /** The producer id (null until claimed, shortly after construction). */
  readonly producer: string | null;
  readonly stats: ClientStats;
  /** Number of published events not acked yet. */
  readonly unacked: number;

  on(event: 'state', fn: (state: ConnectionState) => void): () => void;
  on(event: 'error', fn: (err: Error) => void): () => void;
  on(event: 'hello', fn: (hello: Hello) => void): () => void;
  on(event: 'outbox', fn: (unacked: number) => void): () => void;

  /** Publishes an event with the next pseq (persisted before it is sent), retried across reconnects until acked. */
  publish(type: string, payload?: JSONValue): PublishResult;
  /** Resolves when every event published so far is acked (or failed). */
  flush(): Promise<void>;

  /** Subscribes to a view; returns a function that unsubscribes. */
  subscribe<S = JSONValue>(view: string, onState: ((state: S, change: Change) => void) | null, options?: SubscribeOptions): () => void;
  /** The current state of a subscribed view (undefined before its snapshot). */
  getState<S = JSONValue>(view: string): S | undefined;
  /** The seq a subscribed view's state is at (0 before its snapshot). */
  getSeq(view: string): number;

  /** Starts connecting (after close(), or with autoConnect: false). */
  connect(): void;
  /** Closes for good; pending publishes reject with code "closed" (they stay persisted and are re-sent by the next client on the same storage). */
  close(): void;
}

export function createClient(options?: ClientOptions): NodbClient;

export const SUBPROTOCOL: 'nodb.v1.json';

/** An error from the host (code as in abi/PROTOCOL.md: bad_request, pseq_gap, not_found, forbidden, ...) or the client (closed, too_large, storage, timeout). */
export class NodbError extends Error {
  constructor(code: string, message: string, extra?: Record<string, unknown>);
  code: string;
  expected_pseq?: number;
  view?: string;
  closeCode?: number;
}

export class PatchError extends Error {
  op?: Operation;
  index?: number;
}

/** Applies RFC 6902 ops immutably with structural sharing; throws PatchError (and leaves doc untouched) on a bad op. */
export function applyPatch<T = JSONValue>(doc: T, ops: Operation[]): T;
/** Splits an RFC 6901 JSON Pointer into unescaped tokens; refuses __proto__, constructor and prototype. */
export function parsePointer(path: string): string[];
export function escapePointerToken(key: string): string;
export function getPointer(doc: JSONValue, path: string): JSONValue;
/** Throws PatchError if v is not plain JSON or holds a prototype-polluting key. */
export function checkValue(v: unknown, where?: string): void;

export function memoryStorage(): StorageLike & { readonly length: number; key(i: number): string | null; clear(): void };
export function defaultStorage(): StorageLike | null;
