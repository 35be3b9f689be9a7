// Storage for the producer id, its next pseq and its unacked events. Any
// object with synchronous getItem/setItem/removeItem (the Web Storage API)
// will do: localStorage in browsers, memoryStorage() or your own elsewhere.

/** A Web Storage-like object kept in memory (lost when the process ends). */
export function memoryStorage() {
  const m = new Map();
  return {
    getItem: (k) => (m.has(k) ? m.get(k) : null),
    setItem: (k, v) => void m.set(k, String(v)),
    removeItem: (k) => void m.delete(k),
    get length() { return m.size; },
    key: (i) => [...m.keys()][i] ?? null,
    clear: () => m.clear(),
  };
}

/** The browser's localStorage when it is usable, otherwise null. */
export function defaultStorage() {
  try {
    const s = globalThis.localStorage;
    if (!s) return null;
    const k = '__nodb_probe__';
    s.setItem(k, '1');
    s.removeItem(k);
    return s;
  } catch {
    return null; // disabled, private mode with zero quota, sandboxed iframe...
  }
}
