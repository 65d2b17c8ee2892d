import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
// The built server (`npm test` builds first), as the bench runs it: a process of its own.
import { startEchoServer } from '../dist/echo-process.js';
import { Http } from '../dist/http.js';

/** One POST through the bench's own client (keep-alive agent, whole body). */
async function post(port: number, body: Buffer): Promise<{ status: number; text: string }> {
  const http = new Http(`http://127.0.0.1:${port}`);
  try {
    const res = await http.send('POST', '/v1/stations/echo/messages', body);
    return { status: res.status, text: res.body.toString('utf8') };
  } finally {
    http.close();
  }
}

describe('echo-server.js, the references of the single-produce latency row', () => {
  const dir = mkdtempSync(join(tmpdir(), 'junction-echo-test-'));
  const children: ChildProcess[] = [];
  afterAll(() => {
    for (const c of children) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('echo: answers a produce-shaped JSON and writes nothing', async () => {
    const { child, port } = await startEchoServer();
    children.push(child);
    const a = await post(port, Buffer.from('one'));
    const b = await post(port, Buffer.from('two'));
    expect(a).toEqual({ status: 200, text: '{"results":[{"partition":0,"offset":1}]}' });
    expect(b.text).toBe('{"results":[{"partition":0,"offset":2}]}');
  });

  it('--durable: each body is in the file, byte for byte and in order, when its answer arrives', async () => {
    const { child, port } = await startEchoServer(dir);
    children.push(child);
    const bodies = [Buffer.alloc(1024, 1), Buffer.from('second body'), Buffer.alloc(70_000, 9)];
    let expected = Buffer.alloc(0);
    for (const [i, body] of bodies.entries()) {
      const r = await post(port, body);
      expect(r).toEqual({ status: 200, text: `{"results":[{"partition":0,"offset":${i + 1}}]}` });
      expected = Buffer.concat([expected, body]);
      expect(readFileSync(join(dir, 'durable-echo.log')).equals(expected)).toBe(true);
    }
  });
});
