// Browser end-to-end: Debian's chromium, driven by playwright-core, opens the
// todos example served by `nodb serve --web` in two tabs of one profile (so
// they share localStorage and must still use distinct producers). The
// todo-stats cascade's panel follows the list. Each tab
// sees the other's changes live; the server is restarted mid-test (SIGTERM,
// then started again on the same data directory and port) and the pages go
// offline, queue changes, come back online and end with no lost or doubled todo.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startNodb, fetchSnapshot, until, STATS_WASM } from './lib.js';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const skip = process.env.NODB_E2E_SKIP_BROWSER === '1';

let node;
let ctx;
let profile;
const consoleErrors = [];

before(async () => {
  if (skip) return;
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: apt-get install -y chromium (or set CHROMIUM, or NODB_E2E_SKIP_BROWSER=1)`);
  // todo-stats, the example's cascade over todos, fills the stats panel.
  node = await startNodb({ web: true, extraArgs: ['--plugin', `todo-stats=${STATS_WASM}`] });
  profile = fs.mkdtempSync(path.join(os.tmpdir(), 'nodb-chromium-'));
  ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout: 60000,
  });
});

after(async () => {
  await ctx?.close().catch(() => {});
  if (profile) fs.rmSync(profile, { recursive: true, force: true });
  await node?.cleanup();
});

async function openPage() {
  const page = await ctx.newPage();
  page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()));
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  // Record every connection state the page goes through.
  await page.addInitScript(() => {
    window.__states = [];
  });
  await page.goto(node.url + '/');
  await page.waitForFunction(() => window.__nodb?.client, null, { timeout: 15000 });
  await page.evaluate(() => window.__nodb.client.on('state', (s) => window.__states.push(s)));
  await page.waitForSelector('[data-testid=conn]:text("online")', { timeout: 15000 });
  return page;
}

const texts = (page) => page.$$eval('[data-testid=list] li:not([hidden]) label', (ls) => ls.map((l) => l.textContent));
const doneTexts = (page) => page.$$eval('[data-testid=list] li.done label', (ls) => ls.map((l) => l.textContent));
const sorted = (a) => [...a].sort();

async function add(page, text) {
  await page.fill('[data-testid=new-todo]', text);
  await page.press('[data-testid=new-todo]', 'Enter');
}
const row = (page, text) => page.locator('[data-testid=list] li', { has: page.locator(`label:text-is("${text}")`) });

async function waitTexts(page, want, what) {
  await until(async () => JSON.stringify(sorted(await texts(page))) === JSON.stringify(sorted(want)), 15000,
    `${what}: want ${JSON.stringify(sorted(want))}, have ${JSON.stringify(sorted(await texts(page)))}`);
}

test('two tabs see each other live; a server restart loses and doubles nothing', { skip, timeout: 150000 }, async () => {
  const a = await openPage();
  const b = await openPage();
  const [pa, pb] = await Promise.all([a.evaluate(() => window.__nodb.client.producer), b.evaluate(() => window.__nodb.client.producer)]);
  assert.ok(pa && pb && pa !== pb, `tabs sharing localStorage use distinct producers (${pa}, ${pb})`);

  // Add in one tab, see it in the other.
  await add(a, 'milk');
  await add(a, 'eggs');
  await waitTexts(b, ['milk', 'eggs'], 'b sees a\'s adds');
  await add(b, 'bread');
  await waitTexts(a, ['milk', 'eggs', 'bread'], 'a sees b\'s add');

  // Toggle in b, seen in a.
  await row(b, 'milk').locator('.toggle').check();
  await until(async () => (await doneTexts(a)).includes('milk'), 10000, 'a sees the toggle');

  // Rename in a (double-click, type, Enter), seen in b.
  await row(a, 'bread').locator('label').dblclick();
  await a.fill('[data-testid=list] li .edit', 'rye bread');
  await a.press('[data-testid=list] li .edit', 'Enter');
  await waitTexts(b, ['milk', 'eggs', 'rye bread'], 'b sees the rename');

  // Delete in b, clear completed in a.
  await row(b, 'eggs').hover();
  await row(b, 'eggs').locator('.destroy').click();
  await waitTexts(a, ['milk', 'rye bread'], 'a sees the delete');
  await a.click('[data-testid=clear-completed]');
  await waitTexts(b, ['rye bread'], 'b sees clear-completed');

  // --- the server goes away (SIGTERM) and comes back on the same data and port.
  await node.stop();
  for (const p of [a, b]) await p.waitForSelector('[data-testid=conn]:is(:text("offline"), :text("connecting"))', { timeout: 10000 });
  // Changes made while offline are queued (persisted in localStorage) and shown as unsaved.
  for (let i = 0; i < 5; i++) await add(a, `offline a${i}`);
  for (let i = 0; i < 3; i++) await add(b, `offline b${i}`);
  await a.waitForSelector('[data-testid=unsaved]:text("5 changes not yet saved")', { timeout: 5000 });
  await node.start();
  for (const p of [a, b]) await p.waitForSelector('[data-testid=conn]:text("online")', { timeout: 20000 });
  const want = ['rye bread', ...[0, 1, 2, 3, 4].map((i) => `offline a${i}`), ...[0, 1, 2].map((i) => `offline b${i}`)];
  await waitTexts(a, want, 'a after the restart');
  await waitTexts(b, want, 'b after the restart');
  await a.waitForSelector('[data-testid=unsaved]', { state: 'hidden', timeout: 10000 });

  // --- restart again while a burst of adds is in flight: every add once.
  const burst = Array.from({ length: 30 }, (_, i) => `burst ${i}`);
  await a.evaluate((burst) => {
    const { client } = window.__nodb;
    for (const text of burst) client.publish('todo/add', { id: `${text}-${crypto.randomUUID()}`, text });
  }, burst);
  await node.stop();
  await node.start();
  try {
    await waitTexts(b, [...want, ...burst], 'b after the burst and second restart');
  } catch (e) {
    const diag = async (p) => p.evaluate(() => {
      const c = window.__nodb.client;
      return { state: c.state, unacked: c.unacked, stats: c.stats, seq: c.getSeq('todos'), states: window.__states, producer: c.producer };
    });
    const snap = await fetchSnapshot(node, 'todos').catch((x) => ({ error: String(x) }));
    e.message += `\na: ${JSON.stringify(await diag(a))}\nb: ${JSON.stringify(await diag(b))}\nserver seq ${snap.seq}, ${Object.keys(snap.state?.todos ?? {}).length} todos\n${node.output}`;
    throw e;
  }
  await waitTexts(a, [...want, ...burst], 'a after the burst and second restart');

  // The host agrees: no lost or doubled todo.
  const snap = await fetchSnapshot(node, 'todos');
  const serverTexts = Object.values(snap.state.todos).map((t) => t.text);
  assert.deepEqual(sorted(serverTexts), sorted([...want, ...burst]));
  assert.equal(new Set(serverTexts).size, serverTexts.length, 'no doubled todo');

  for (const p of [a, b]) {
    const states = await p.evaluate(() => window.__states);
    const off = states.indexOf('closed');
    assert.ok(off >= 0 && states.indexOf('open', off) > off, `offline then online: ${states.join(' → ')}`);
  }
  assert.deepEqual(consoleErrors.filter((e) => !/WebSocket|ERR_CONNECTION_REFUSED|Failed to load resource/.test(e)), []);
});

test('the todo-stats cascade panel follows the list', { skip, timeout: 60000 }, async () => {
  const page = await openPage();
  await add(page, 'call mom #home');
  await add(page, 'ship it #work #Home');
  await waitTexts(page, [...(await texts(page)).filter((t) => !/#/.test(t)), 'call mom #home', 'ship it #work #Home'], 'adds with tags');
  await row(page, 'ship it #work #Home').locator('.toggle').check();
  const chips = () => page.$$eval('[data-testid=stats-tag]', (cs) => cs.map((c) => c.textContent));
  await until(async () => JSON.stringify(await chips()) === JSON.stringify(['#home 1/2', '#work 1/1']), 15000,
    `tag chips: have ${JSON.stringify(await chips())}`);
  // The summary agrees with the todos view on the host.
  await until(async () => {
    const snap = await fetchSnapshot(node, 'todos');
    const all = Object.values(snap.state.todos);
    const done = all.filter((t) => t.done).length;
    const want = `${all.length} todos · ${done} done · ${all.length - done} active · ${Math.round((done / all.length) * 100)}% complete`;
    return (await page.textContent('[data-testid=stats-summary]')) === want;
  }, 15000, `stats summary: have ${await page.textContent('[data-testid=stats-summary]')}`);
  await page.close();
});
