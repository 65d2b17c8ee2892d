/**
 * The dashboard end to end: a real broker (`junction start`, the built CLI) and Debian's Chromium.
 * Every assertion is on what the page shows. Saves a screenshot of each main screen to
 * docs/screenshots/ (the README shows them).
 */
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { api, eventually, repoRoot, startBroker } from '@junction/e2e';
import type { BrokerProcess } from '@junction/e2e';
import { launchChromium } from './browser.js';
import type { Chromium } from './browser.js';

const SHOTS = join(repoRoot, 'docs', 'screenshots');
const WAIT = 45_000;

async function shot(page: Page, name: string): Promise<void> {
  await mkdir(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, `${name}.png`) });
}

/** Waits until the locator's text (trimmed) satisfies `ok`; the last text is in the failure. */
async function seeText(page: Page, selector: string, ok: (text: string) => boolean, what: string): Promise<string> {
  return eventually(what, WAIT, async () => {
    const text = ((await page.locator(selector).first().textContent({ timeout: 2000 })) ?? '').trim();
    if (!ok(text)) throw new Error(`saw "${text}"`);
    return text;
  });
}

describe('the dashboard (auth off)', () => {
  let dir: string;
  let broker: BrokerProcess;
  let chrome: Chromium;
  let page: Page;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'junction-ui-'));
    broker = await startBroker({ dataDir: dir, timeoutMs: 90_000 });
    chrome = await launchChromium();
    page = await chrome.context.newPage();
    page.on('pageerror', (e) => pageErrors.push(e.message));
  }, 180_000);

  afterAll(async () => {
    await chrome?.close();
    await broker?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('serves the app at / and keeps /v1 answers JSON', async () => {
    const index = await fetch(`${broker.url}/stations/any/messages`);
    expect(index.status).toBe(200);
    expect(index.headers.get('content-type')).toContain('text/html');
    expect(await index.text()).toContain('<div id="app">');
    const missing = await fetch(`${broker.url}/v1/no-such-route`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ code: 'ROUTE_NOT_FOUND' });
  });

  it('creates a station, produces from the UI, shows the message, a group lag falling, a dead letter resent', async () => {
    await page.goto(`${broker.url}/stations`);
    await page.getByTestId('create-station').click();
    const form = page.locator('.modal form');
    await form.locator('input[name=name]').fill('orders');
    await form.locator('input[name=maxDeliveries]').fill('3');
    await form.getByRole('button', { name: 'Create', exact: true }).click();
    await seeText(page, '[data-testid=station-name]', (t) => t === 'orders', 'the station page');
    await seeText(page, '[data-testid=station-messages] .stat-value', (t) => t === '0', 'an empty station');

    // Produce five messages from the UI; the browser shows each one.
    await page.getByRole('link', { name: 'messages', exact: true }).click();
    for (let i = 1; i <= 5; i++) {
      await page.locator('[data-testid=produce-form] textarea[name=value]').fill(`{"order":${i},"item":"book"}`);
      await page.locator('[data-testid=produce-form] input[name=key]').fill(`k${i}`);
      if (i === 1) await page.locator('[data-testid=produce-form] textarea[name=headers]').fill('source: dashboard');
      await page.locator('[data-testid=produce-form] button[type=submit]').click();
      await seeText(page, '[data-testid=produce-result]', (t) => t === `stored at partition 0, offset ${i}`, `produce ${i}`);
    }
    const first = page.locator('.message[data-offset="1"]');
    await first.waitFor({ timeout: WAIT });
    expect(await first.locator('pre.value').textContent()).toBe('{\n  "order": 1,\n  "item": "book"\n}');
    expect(await first.locator('.headers').textContent()).toContain('source: dashboard');
    expect(await first.locator('.message-meta').textContent()).toContain('key k1');
    await page.locator('.browser label.check', { hasText: 'hex' }).locator('input').check();
    expect(await first.locator('pre.value').textContent()).toMatch(/^00000000 {2}7b 22 6f 72 64 65 72 22/);
    await page.locator('.browser label.check', { hasText: 'json' }).locator('input').check();
    await shot(page, 'station-messages');

    // A consumer group: its lag shows 5, then falls as a consumer acknowledges.
    await api(broker.url, 'PUT', '/v1/stations/orders/groups/billing', { start: { type: 'earliest' } });
    await page.getByRole('link', { name: 'overview', exact: true }).click();
    const lag = '[data-testid=groups] tr[data-group=billing] td.lag';
    await seeText(page, lag, (t) => t === '5', 'lag 5');
    const got = await api<{ messages: { deliveryId: string; offset: number }[] }>(
      broker.url,
      'POST',
      '/v1/stations/orders/groups/billing/fetch',
      { maxMessages: 2 },
    );
    expect(got.messages.map((m) => m.offset)).toEqual([1, 2]);
    await api(broker.url, 'POST', '/v1/stations/orders/groups/billing/ack', { deliveryIds: got.messages.map((m) => m.deliveryId) });
    await seeText(page, lag, (t) => t === '3', 'lag falls to 3');
    // How old the oldest unsettled message is (offset 3, produced moments ago).
    await seeText(
      page,
      '[data-testid=groups] tr[data-group=billing] td.oldest',
      (t) => /^\d+(\.\d+)? (ms|s|min)$/.test(t),
      'the oldest unacked age',
    );
    // Plotted over time too (issue: "the dashboard plots them"): the groups' chart with both series.
    const groupsChart = page.locator('.chart', { hasText: 'Consumer groups: lag and oldest unacked' });
    await seeText(
      page,
      '.chart:has-text("Consumer groups") .u-legend',
      (t) => t.includes('lag, all groups') && t.includes('oldest unacked s'),
      'the groups chart',
    );
    expect(await groupsChart.locator('canvas').count()).toBe(1);
    await shot(page, 'station');

    // The consumer dead-letters offset 3; the page shows it with its reason and where it came from.
    const poison = await api<{ messages: { deliveryId: string; offset: number }[] }>(
      broker.url,
      'POST',
      '/v1/stations/orders/groups/billing/fetch',
      { maxMessages: 1 },
    );
    expect(poison.messages[0]!.offset).toBe(3);
    await api(broker.url, 'POST', '/v1/stations/orders/groups/billing/dead-letter', {
      deliveryIds: [poison.messages[0]!.deliveryId],
      reason: 'unknown item code',
    });
    await seeText(page, '[data-testid=station-dead-letters] .stat-value', (t) => t === '1', 'one dead letter');
    await page.getByRole('link', { name: /dead letters/ }).click();
    const row = page.locator('[data-testid=dead-letters] tr[data-dls-offset]').first();
    await row.waitFor({ timeout: WAIT });
    expect(await row.locator('td.reason').textContent()).toContain('unknown item code');
    expect(await row.textContent()).toContain('p0 · offset 3');
    expect(await row.textContent()).toContain('billing');
    await row.getByRole('button', { name: 'journey', exact: true }).click();
    const journey = page.getByRole('dialog', { name: 'Message journey' });
    expect(await journey.textContent()).toContain('produced to partition 0 at offset 3');
    expect(await journey.textContent()).toContain('group billing: dead-lettered');
    expect(await journey.locator('pre.value').textContent()).toContain('"order": 3');
    await shot(page, 'dead-letter-journey');
    await journey.getByRole('button', { name: 'close' }).click();
    await shot(page, 'dead-letters');

    // Resend it: the group gets the message again.
    await row.getByRole('button', { name: 'resend', exact: true }).click();
    await seeText(page, '[data-testid=dls-result]', (t) => t === 'resent 1', 'resent');
    const again = await eventually('the resent message', WAIT, async () => {
      const r = await api<{ messages: { value: string }[] }>(broker.url, 'POST', '/v1/stations/orders/groups/billing/fetch', {
        maxMessages: 10,
      });
      return r.messages.find((m) => m.value === '{"order":3,"item":"book"}');
    });
    expect(again.value).toBe('{"order":3,"item":"book"}');

    // The overview counts it all.
    await page.getByRole('link', { name: 'Overview', exact: true }).click();
    await seeText(page, '[data-testid=stat-stations] .stat-value', (t) => t === '1', 'one station');
    await seeText(page, '[data-testid=stat-messages] .stat-value', (t) => Number(t) >= 5, 'the messages');
    await shot(page, 'overview');
    expect(pageErrors).toEqual([]);
  });

  it('creates a file sink from the form generated from its JSON Schema, shows it RUNNING, pauses and resumes it', async () => {
    const out = join(dir, 'sink-out');
    await page.goto(`${broker.url}/connectors`);
    await page.getByTestId('create-file').click();
    const form = page.getByTestId('connector-form');
    // Fields come from the plugin's schema (fetched when the form opens): its description is shown, booleans are checkboxes.
    await form.locator('input[name="config.dir"]').waitFor({ timeout: WAIT });
    expect(await form.textContent()).toContain('Directory the files go under');
    expect(await form.locator('input[name="config.gzip"]').getAttribute('type')).toBe('checkbox');
    await form.locator('input[name=name]').fill('to-files');
    await form.locator('input[name=station]').fill('orders');
    await form.locator('input[name="config.dir"]').fill(out);
    await form.locator('input[name="config.fsync"]').uncheck();
    await form.getByRole('button', { name: 'Create connector' }).click();
    await seeText(page, '[data-testid=connector-state]', (t) => t === 'RUNNING', 'RUNNING');
    // What it wrote: every message of the station, in files under the directory.
    await eventually('the sink wrote 5 messages', WAIT, async () => {
      const files = (await readdir(out, { recursive: true })).filter((f) => f.endsWith('.jsonl'));
      const lines = (await Promise.all(files.map((f) => readFile(join(out, f), 'utf8')))).join('').split('\n').filter(Boolean);
      return lines.length >= 5 ? lines : undefined;
    });
    // Its freshness: produce → landed of the last message it landed, in seconds.
    await seeText(page, '[data-testid=connector-freshness]', (t) => /^\d[\d,.]* s$/.test(t), 'the freshness');
    await shot(page, 'connector');
    await page.getByRole('button', { name: 'Pause', exact: true }).click();
    await seeText(page, '[data-testid=connector-state]', (t) => t === 'PAUSED', 'PAUSED');
    await page.getByRole('button', { name: 'Resume', exact: true }).click();
    await seeText(page, '[data-testid=connector-state]', (t) => t === 'RUNNING', 'RUNNING again');
    await page.getByRole('link', { name: 'Connectors' }).first().click();
    await seeText(page, '[data-testid=connectors] tr[data-connector=to-files] .state', (t) => t === 'RUNNING', 'the list shows it');
    await shot(page, 'connectors');
    // A plugin's secret (the postgres sink's password, `writeOnly` in its schema) is a password field.
    await page.getByTestId('create-postgres').click();
    const pg = page.getByTestId('connector-form');
    await pg.locator('input[name="config.password"]').waitFor({ timeout: WAIT });
    expect(await pg.locator('input[name="config.password"]').getAttribute('type')).toBe('password');
    expect(await pg.locator('input[name="config.password"]').inputValue()).toBe('');
  });

  it('lists stations with server-side search and sort', async () => {
    for (const name of ['alpha', 'beta', 'gamma']) await api(broker.url, 'POST', '/v1/stations', { name, storage: 'memory' });
    await api(broker.url, 'POST', '/v1/stations/gamma/messages', {
      messages: [{ value: 'a' }, { value: 'b' }, { value: 'c' }, { value: 'd' }, { value: 'e' }, { value: 'f' }],
    });
    await page.goto(`${broker.url}/stations`);
    await seeText(page, '[data-testid=stations-total]', (t) => t === '4 stations', 'four stations');
    const names = () => page.locator('.station-row').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-station')));
    expect(await names()).toEqual(['alpha', 'beta', 'gamma', 'orders']);
    await page.getByRole('button', { name: /^messages/ }).click();
    await eventually('sorted by messages, most first', WAIT, async () =>
      (await names()).join() === 'gamma,orders,alpha,beta' ? true : undefined,
    );
    await page.getByLabel('search stations').fill('ha');
    await seeText(page, '[data-testid=stations-total]', (t) => t === '1 stations', 'one match');
    expect(await names()).toEqual(['alpha']);
    await page.getByLabel('search stations').fill('');
    await seeText(page, '[data-testid=stations-total]', (t) => t === '4 stations', 'all again');
    await shot(page, 'stations');
  });

  it('shows dead-lettered per group and per partition of the group', async () => {
    await api(broker.url, 'POST', '/v1/stations', { name: 'shipments', partitions: 3 });
    await api(broker.url, 'PUT', '/v1/stations/shipments/groups/packing', { start: { type: 'earliest' } });
    const produced = await api<{ results: { partition: number }[] }>(broker.url, 'POST', '/v1/stations/shipments/messages', {
      messages: Array.from({ length: 12 }, (_, i) => ({ key: `parcel-${i}`, value: `{"parcel":${i}}` })),
    });
    // A partition other than 0, so the number cannot come from a single-partition shortcut.
    const target = produced.results.find((r) => r.partition !== 0)?.partition;
    if (target === undefined) throw new Error('every key went to partition 0');
    const onTarget = produced.results.filter((r) => r.partition === target).length;
    const got = await api<{ messages: { deliveryId: string; partition: number }[] }>(
      broker.url,
      'POST',
      '/v1/stations/shipments/groups/packing/fetch',
      { maxMessages: 100 },
    );
    expect(got.messages).toHaveLength(12);
    await api(broker.url, 'POST', '/v1/stations/shipments/groups/packing/dead-letter', {
      deliveryIds: got.messages.filter((m) => m.partition === target).map((m) => m.deliveryId),
      reason: 'address unknown',
    });
    await api(broker.url, 'POST', '/v1/stations/shipments/groups/packing/ack', {
      deliveryIds: got.messages.filter((m) => m.partition !== target).map((m) => m.deliveryId),
    });

    await page.goto(`${broker.url}/stations/shipments`);
    const group = '[data-testid=groups] tr[data-group=packing]';
    await seeText(page, `${group} td.dead`, (t) => t === String(onTarget), `${onTarget} dead-lettered in the group`);
    await page.locator(group).getByRole('button').click();
    for (const p of [0, 1, 2]) {
      const want = p === target ? String(onTarget) : '0';
      await seeText(page, `[data-testid=groups] tr.sub[data-partition="${p}"] td.dead`, (t) => t === want, `partition ${p}: ${want}`);
    }
    expect(pageErrors).toEqual([]);
  });
});

describe('the dashboard with auth on', () => {
  const PASSWORD = 'admin-password-for-ui-tests';
  let dir: string;
  let broker: BrokerProcess;
  let chrome: Chromium;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'junction-ui-auth-'));
    broker = await startBroker({ dataDir: dir, args: ['--auth'], env: { JUNCTION_ADMIN_PASSWORD: PASSWORD }, timeoutMs: 90_000 });
    chrome = await launchChromium();
    const login = await fetch(`${broker.url}/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'admin', password: PASSWORD }),
    });
    const { token } = (await login.json()) as { token: string };
    const call = async (method: string, path: string, body: unknown) => {
      const res = await fetch(`${broker.url}${path}`, {
        method,
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify(body),
      });
      if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
    };
    await call('POST', '/v1/users', { name: 'reader', password: 'reader-password', role: 'viewer' });
    await call('POST', '/v1/stations', { name: 'payments' });
    await call('POST', '/v1/stations/payments/messages', { messages: [{ value: 'p1' }] });
  }, 180_000);

  afterAll(async () => {
    await chrome?.close();
    await broker?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('asks for a login, and a read-only user sees the station but cannot produce or create', async () => {
    const page = await chrome.context.newPage();
    await page.goto(`${broker.url}/stations/payments/messages`);
    const form = page.getByTestId('login-form');
    await form.waitFor({ timeout: WAIT });
    await shot(page, 'login');
    await form.locator('input[name=username]').fill('reader');
    await form.locator('input[name=password]').fill('wrong-password');
    await form.getByRole('button', { name: 'Log in' }).click();
    await seeText(page, '[data-testid=login-form] .error', (t) => t.includes('wrong username or password'), 'refused');
    await form.locator('input[name=password]').fill('reader-password');
    await form.getByRole('button', { name: 'Log in' }).click();
    await seeText(page, '[data-testid=whoami]', (t) => t === 'reader (viewer)', 'logged in');
    await seeText(page, '[data-testid=station-name]', (t) => t === 'payments', 'the station page');
    await seeText(page, '[data-testid=produce-denied]', (t) => t === 'You may not produce to this station.', 'no produce form');
    expect(await page.getByTestId('produce-form').count()).toBe(0);
    await page.getByRole('link', { name: 'Stations' }).first().click();
    await seeText(page, '[data-testid=stations-total]', (t) => t === '1 stations', 'the listing');
    expect(await page.getByTestId('create-station').count()).toBe(0);
    // The API refuses too, with the session the page holds.
    const status = await page.evaluate(async () => {
      const s = JSON.parse(sessionStorage.getItem('junction.session') ?? '{}') as { token?: string };
      const res = await fetch('/v1/stations/payments/messages', {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${s.token}` },
        body: JSON.stringify({ messages: [{ value: 'x' }] }),
      });
      return res.status;
    });
    expect(status).toBe(403);
    await page.close();
  });

  it('an admin sees users and tokens, and registers a schema', async () => {
    const page = await chrome.context.newPage();
    await page.goto(`${broker.url}/users`);
    const form = page.getByTestId('login-form');
    await form.locator('input[name=username]').fill('admin');
    await form.locator('input[name=password]').fill(PASSWORD);
    await form.getByRole('button', { name: 'Log in' }).click();
    await seeText(page, '[data-testid=users]', (t) => t.includes('reader') && t.includes('admin'), 'the users');
    await shot(page, 'users');
    // Schemas: register a version from the page; the registry lists it and shows it back.
    await page.getByRole('link', { name: 'Schemas', exact: true }).click();
    const register = page.locator('form', { hasText: 'Register a schema version' });
    await register.locator('input').first().fill('payments-value');
    await register.locator('select').selectOption('JSON');
    await register.locator('textarea').fill('{"type":"object","properties":{"amount":{"type":"number"}},"required":["amount"]}');
    await register.getByRole('button', { name: 'Register', exact: true }).click();
    await seeText(page, '[data-testid=subjects]', (t) => t.includes('payments-value'), 'the subject');
    await seeText(page, 'pre.value', (t) => t.includes('"amount"'), 'the schema');
    await shot(page, 'schemas');
    await page.close();
  });
});
