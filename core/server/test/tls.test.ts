import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { startServer } from '../src/index.js';
import type { RunningServer } from '../src/index.js';

const logger = pino({ level: 'silent' });
let dir: string;
let server: RunningServer | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'junction-tls-'));
  // A self-signed pair made now, for 127.0.0.1.
  await promisify(execFile)('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=127.0.0.1',
    '-addext',
    'subjectAltName=IP:127.0.0.1',
    '-keyout',
    join(dir, 'key.pem'),
    '-out',
    join(dir, 'cert.pem'),
  ]);
});
afterEach(async () => {
  await server?.close();
  server = undefined;
  await rm(dir, { recursive: true, force: true });
});

function get(url: string, ca: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('TLS', () => {
  it('serves HTTPS with the configured pair (tls: in junction.yaml, paths from its folder); plain HTTP gets no answer', async () => {
    await writeFile(join(dir, 'junction.yaml'), 'server:\n  dataDir: data\ntls:\n  cert: cert.pem\n  key: key.pem\n');
    server = await startServer({ configPath: join(dir, 'junction.yaml'), host: '127.0.0.1', port: 0, logger, env: {}, watchConfig: false });
    expect(server.url).toBe(`https://127.0.0.1:${server.port}`);
    const ca = await readFile(join(dir, 'cert.pem'));
    const res = await get(`${server.url}/healthz`, ca);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toEqual({ status: 'ok' });
    // Plain HTTP on the TLS port: no HTTP answer.
    const plain = await fetch(`http://127.0.0.1:${server.port}/healthz`).then(
      (r) => r.status,
      () => 'failed',
    );
    expect(plain).not.toBe(200);
    // A client that does not trust the certificate refuses it.
    await expect(get(`${server.url}/healthz`, Buffer.from(''))).rejects.toThrow();
  });

  it('refuses unreadable or non-PEM files with the field path, and half of the flags', async () => {
    await writeFile(join(dir, 'bad.pem'), 'not a certificate');
    await expect(
      startServer({ dataDir: join(dir, 'd'), port: 0, logger, env: {}, tlsCert: join(dir, 'bad.pem'), tlsKey: join(dir, 'key.pem') }),
    ).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      issues: [{ path: 'tls.cert' }],
    });
    await expect(
      startServer({ dataDir: join(dir, 'd'), port: 0, logger, env: {}, tlsCert: join(dir, 'cert.pem'), tlsKey: join(dir, 'missing.pem') }),
    ).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      issues: [{ path: 'tls.key' }],
    });
    await expect(startServer({ dataDir: join(dir, 'd'), port: 0, logger, env: {}, tlsCert: join(dir, 'cert.pem') })).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      issues: [{ path: '--tls-key' }],
    });
  });
});
