import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

// The built server (`npm test` builds first), as the bench runs it: a process of its own.
const serverJs = fileURLToPath(new URL('../dist/echo-server.js', import.meta.url));

async function start(args: string[]): Promise<{ child: ChildProcessWithoutNullStreams; port: number }> {
  const child = spawn(process.execPath, [serverJs, ...args]);
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString('utf8');
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve((JSON.parse(out.slice(0, nl)) as { port: number }).port);
    });
    child.once('exit', (code) => reject(new Error(`echo server exited (${code})`)));
  });
  return { child, port };
}

function post(port: number, body: Buffer): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/v1/stations/echo/messages' }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('echo-server.js, the references of the single-produce latency row', () => {
  const dir = mkdtempSync(join(tmpdir(), 'junction-echo-test-'));
  const children: ChildProcessWithoutNullStreams[] = [];
  afterAll(() => {
    for (const c of children) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('echo: answers a produce-shaped JSON and writes nothing', async () => {
    const { child, port } = await start([]);
    children.push(child);
    const a = await post(port, Buffer.from('one'));
    const b = await post(port, Buffer.from('two'));
    expect(a).toEqual({ status: 200, text: '{"results":[{"partition":0,"offset":1}]}' });
    expect(b.text).toBe('{"results":[{"partition":0,"offset":2}]}');
  });

  it('--durable: each body is in the file, byte for byte and in order, when its answer arrives', async () => {
    const { child, port } = await start(['--durable', dir]);
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
