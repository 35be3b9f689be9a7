// Helpers for the end-to-end tests: start and stop real `nodb serve`
// processes on free ports with temporary data directories.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { createClient } from '../sdk/client/js/index.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const NODB = process.env.NODB_BIN || path.join(ROOT, 'bin/nodb');
export const TODOS_WASM = path.join(ROOT, 'examples/todos/todos.wasm');
export const STATS_WASM = path.join(ROOT, 'examples/todos/todo-stats.wasm');
export const WEB = path.join(ROOT, 'examples/todos/web');

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// Never leave a nodb behind, even when a test crashes.
const running = new Set();
process.on('exit', () => {
  for (const p of running) if (p.exitCode === null && !p.signalCode) p.kill('SIGKILL');
});

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function until(cond, ms = 10000, what = 'condition') {
  const t0 = Date.now();
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}

/**
 * Starts `nodb serve` with the todos plugin and web app. Returns
 * {port, url, wsURL, dataDir, stop(), restart(), log()}.
 */
export async function startNodb({ port, dataDir, extraArgs = [], web = true } = {}) {
  port ??= await freePort();
  dataDir ??= fs.mkdtempSync(path.join(os.tmpdir(), 'nodb-e2e-'));
  const node = { port, dataDir, url: `http://127.0.0.1:${port}`, wsURL: `ws://127.0.0.1:${port}/v1/ws`, proc: null, output: '' };
  const args = ['serve', '--data', dataDir, '--addr', `127.0.0.1:${port}`, '--plugin', `todos=${TODOS_WASM}`, '--log-level', 'warn', ...extraArgs];
  if (web) args.push('--web', WEB);

  node.start = async () => {
    const proc = spawn(NODB, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    node.proc = proc;
    running.add(proc);
    proc.on('exit', () => running.delete(proc));
    proc.stdout.on('data', (d) => (node.output += d));
    proc.stderr.on('data', (d) => (node.output += d));
    proc.exited = new Promise((r) => proc.on('exit', (code, sig) => r({ code, sig })));
    await until(async () => {
      if (proc.exitCode !== null) throw new Error(`nodb exited early (${proc.exitCode}):\n${node.output}`);
      try {
        const r = await fetch(`${node.url}/readyz`);
        return r.status === 200;
      } catch {
        return false;
      }
    }, 20000, `nodb on port ${port} to be ready`);
  };
  // SIGTERM (graceful: in-flight acks are sent, sockets closed with 1001).
  node.stop = async () => {
    const p = node.proc;
    if (!p || p.exitCode !== null || p.signalCode) return;
    p.kill('SIGTERM');
    const t = setTimeout(() => p.kill('SIGKILL'), 10000);
    const r = await p.exited;
    clearTimeout(t);
    return r;
  };
  node.restart = async () => {
    await node.stop();
    await node.start();
  };
  node.cleanup = async () => {
    await node.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  };
  await node.start();
  return node;
}

const clients = new Set();
/** Registers a client so that closeClients() closes it (open clients keep Node running). */
export function track(c) {
  clients.add(c);
  return c;
}
/** Closes every client made by client() or passed to track(); call it from after(). */
export function closeClients() {
  for (const c of clients) c.close();
  clients.clear();
}

/** A Node client of the JS SDK (ws as the WebSocket implementation). */
export function client(node, opts = {}) {
  return track(createClient({ url: node.wsURL, WebSocket, backoff: { min: 20, max: 500 }, ...opts }));
}

/** A fresh snapshot of a view straight from the host (raw protocol). */
export function fetchSnapshot(node, view) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(node.wsURL, 'nodb.v1.json');
    const t = setTimeout(() => (ws.terminate(), reject(new Error('snapshot timeout'))), 10000);
    ws.on('open', () => ws.send(JSON.stringify({ type: 'subscribe', id: 1, view })));
    ws.on('message', (d) => {
      const m = JSON.parse(d.toString());
      if (m.type === 'snapshot') {
        clearTimeout(t);
        ws.close();
        resolve(m);
      } else if (m.type === 'error') {
        clearTimeout(t);
        ws.close();
        reject(new Error(`${m.code}: ${m.error}`));
      }
    });
    ws.on('error', reject);
  });
}

/** Opens a raw protocol connection; returns {ws, next(pred?), send(obj), close()}. */
export function raw(node, { protocol = 'nodb.v1.json', headers } = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(node.wsURL, protocol, { headers });
    const queue = [];
    const waiters = [];
    let closed = null;
    const deliver = () => {
      for (let i = 0; i < waiters.length; i++) {
        const w = waiters[i];
        const j = queue.findIndex(w.pred);
        if (j >= 0) {
          waiters.splice(i--, 1);
          w.resolve(queue.splice(j, 1)[0]);
        } else if (closed) {
          waiters.splice(i--, 1);
          w.reject(new Error(`connection closed (${closed.code}) while waiting for a message`));
        }
      }
    };
    ws.on('message', (d) => {
      queue.push(JSON.parse(d.toString()));
      deliver();
    });
    ws.on('close', (code, reason) => {
      closed = { code, reason: reason.toString() };
      deliver();
    });
    ws.on('unexpected-response', (req, res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => reject(Object.assign(new Error(`handshake refused: ${res.statusCode}`), { status: res.statusCode, body })));
    });
    ws.on('error', (e) => reject(e));
    const api = {
      ws,
      send: (m) => ws.send(typeof m === 'string' ? m : JSON.stringify(m)),
      next: (pred = () => true, ms = 10000) =>
        new Promise((res, rej) => {
          const t = setTimeout(() => rej(new Error('timed out waiting for a message')), ms);
          waiters.push({ pred, resolve: (v) => (clearTimeout(t), res(v)), reject: (e) => (clearTimeout(t), rej(e)) });
          deliver();
        }),
      closed: () => new Promise((res) => (closed ? res(closed) : ws.on('close', (code, reason) => res({ code, reason: reason.toString() })))),
      close: () => ws.close(),
    };
    ws.on('open', () => resolve(api));
  });
}
