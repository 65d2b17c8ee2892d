import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HttpTransport } from '../src/transport.js';

let server: Server;
let url: string;
/** What each path answers: the body, sent in `pieces` writes, with or without content-length. */
const answers = new Map<string, { body: Buffer; pieces: number; length: boolean }>();

beforeEach(async () => {
  server = createServer((req, res) => {
    const a = answers.get(req.url ?? '')!;
    if (a.length) res.setHeader('content-length', a.body.length);
    const step = Math.ceil(a.body.length / a.pieces);
    for (let at = 0; at < a.body.length; at += step) res.write(a.body.subarray(at, at + step));
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterEach(async () => {
  await new Promise((r) => server.close(r));
});

function pattern(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

describe('HttpTransport answer bodies', () => {
  it('receives bodies byte for byte: one chunk or many, with and without content-length', async () => {
    const t = new HttpTransport({ url });
    try {
      const cases = [
        { path: '/empty', body: Buffer.alloc(0), pieces: 1, length: true },
        { path: '/small', body: pattern(57, 1), pieces: 1, length: true },
        { path: '/big', body: pattern(3 * 1024 * 1024 + 17, 2), pieces: 40, length: true },
        { path: '/chunked', body: pattern(1024 * 1024 + 5, 3), pieces: 9, length: false },
      ];
      for (const c of cases) answers.set(c.path, c);
      for (const c of cases) {
        const res = await t.request({ method: 'GET', path: c.path, headers: {}, timeoutMs: 10_000 });
        expect(res.status, c.path).toBe(200);
        expect(res.body.length, c.path).toBe(c.body.length);
        expect(res.body.equals(c.body), c.path).toBe(true);
      }
    } finally {
      t.close();
    }
  });
});
