// Tokens against the real host: `nodb token create`, `nodb serve --tokens`,
// and the JS client's `token` option (sent as ?access_token= on the
// WebSocket URL, as browsers must).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { NODB, STATS_WASM, TODOS_WASM, startNodb, client, raw, until, closeClients } from './lib.js';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const skipBrowser = process.env.NODB_E2E_SKIP_BROWSER === '1';

let node;
let dir;
let app; // publish:todo/ read:todos read:todo-stats
let bot; // a third party: read:todos deploy:cascade
before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nodb-e2e-auth-'));
  const file = path.join(dir, 'tokens.json');
  const create = (...args) => {
    const r = spawnSync(NODB, ['token', 'create', '--tokens', file, ...args], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout.trim();
  };
  app = create('--name', 'todo-app', '--scope', 'publish:todo/', '--scope', 'read:todos', '--scope', 'read:todo-stats');
  bot = create('--name', 'stats-bot', '--scope', 'read:todos', '--scope', 'deploy:cascade', '--memory-pages', '512', '--event-timeout', '1000');
  node = await startNodb({ web: true, extraArgs: ['--tokens', file] });
});
after(async () => {
  closeClients();
  await node?.cleanup();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('without a token the WebSocket handshake is refused with 401', async () => {
  await assert.rejects(raw(node), (e) => {
    assert.equal(e.status, 401);
    assert.equal(JSON.parse(e.body).code, 'unauthorized');
    return true;
  });
});

test('the web app and the JS client files stay open', async () => {
  for (const p of ['/', '/nodb-client/index.js', '/livez']) {
    const r = await fetch(node.url + p);
    assert.equal(r.status, 200, p);
  }
  const r = await fetch(node.url + '/v1/views');
  assert.equal(r.status, 401);
  assert.match(r.headers.get('www-authenticate'), /^Bearer/);
});

test('the token option: publish what the scopes allow, forbidden otherwise, and go on', async () => {
  const c = client(node, { token: app });
  const errors = [];
  const off = c.subscribe('todos', null);
  const ack = await c.publish('todo/add', { id: 'a1', text: 'milk' }).applied('todos');
  assert.equal(ack.duplicate, false);
  assert.deepEqual(c.getState('todos').todos.a1, { text: 'milk', done: false });

  await assert.rejects(c.publish('chat/post', { text: 'hi' }), (e) => {
    assert.equal(e.code, 'forbidden');
    assert.match(e.message, /token "todo-app" may not publish events of type "chat\/post": it needs scope publish:chat\//);
    return true;
  });
  // The refused event used a pseq; the client renumbers and the next one is stored.
  await c.publish('todo/add', { id: 'a2', text: 'eggs' }).applied('todos');
  assert.equal(c.getState('todos').todos.a2.text, 'eggs');

  c.subscribe('payroll', null, { onError: (e) => errors.push(e) });
  await until(() => errors.length === 1, 5000, 'the subscription error');
  assert.equal(errors[0].code, 'forbidden');
  assert.match(errors[0].message, /read:payroll/);
  off();
});

test('a wrong token never opens', async () => {
  const c = client(node, { token: app + 'x' });
  await new Promise((r) => setTimeout(r, 300));
  assert.notEqual(c.state, 'open');
  c.close();
});

test('a third party deploys the todo-stats cascade with its token, and nothing else', async () => {
  const deploy = (file, name) => spawnSync(NODB, ['deploy', '--addr', node.url, '--token', bot, '--name', name, '--quiet', file], { encoding: 'utf8' });
  const denied = deploy(TODOS_WASM, 'todos-copy');
  assert.notEqual(denied.status, 0);
  assert.match(denied.stderr, /stats-bot.*reducer/);
  const r = deploy(STATS_WASM, 'todo-stats');
  assert.equal(r.status, 0, r.stderr);
  // Its limits are the token's.
  const list = await (await fetch(node.url + '/v1/plugins', { headers: { authorization: `Bearer ${bot}` } })).json();
  const m = list.plugins.find((p) => p.name === 'todo-stats');
  assert.equal(m.kind, 'cascade');
  assert.deepEqual(m.inputs, ['todos']);
  assert.deepEqual(m.limits, { memory_pages: 512, event_timeout_ms: 1000 });
  // The app's token reads it; the bot's (no read:todo-stats) does not.
  const st = await fetch(node.url + '/v1/views/todo-stats/state', { headers: { authorization: `Bearer ${app}` } });
  assert.equal(st.status, 200);
  const no = await fetch(node.url + '/v1/views/todo-stats/state', { headers: { authorization: `Bearer ${bot}` } });
  assert.equal(no.status, 403);
});

test('the todo page in chromium: #token= in the URL opens it, without a token it stays offline', { skip: skipBrowser, timeout: 120000 }, async () => {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: apt-get install -y chromium (or set CHROMIUM, or NODB_E2E_SKIP_BROWSER=1)`);
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update'],
    timeout: 60000,
  });
  try {
    const page = await browser.newPage();
    await page.goto(`${node.url}/#token=${encodeURIComponent(app)}`);
    await page.waitForSelector('[data-testid=conn]:text("online")', { timeout: 15000 });
    assert.ok(!page.url().includes('token'), `the token stays in the address bar: ${page.url()}`);
    await page.fill('[data-testid=new-todo]', 'from chromium');
    await page.press('[data-testid=new-todo]', 'Enter');
    await page.waitForSelector('[data-testid=list] label:text-is("from chromium")', { timeout: 15000 });
    // The third party's todo-stats cascade is on the page, and agrees with todos.
    const todos = await (await fetch(node.url + '/v1/views/todos/state', { headers: { authorization: `Bearer ${app}` } })).json();
    const n = Object.keys(todos.todos).length;
    await page.waitForSelector(`[data-testid=stats-summary]:text-matches("^${n} todos")`, { timeout: 15000 });
    await page.reload(); // the tab keeps its token
    await page.waitForSelector('[data-testid=conn]:text("online")', { timeout: 15000 });

    const anon = await browser.newPage();
    await anon.goto(node.url + '/');
    await new Promise((r) => setTimeout(r, 1000));
    assert.notEqual(await anon.textContent('[data-testid=conn]'), 'online');
  } finally {
    await browser.close();
  }
});
