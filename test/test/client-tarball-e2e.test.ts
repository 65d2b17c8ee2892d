/**
 * The client as an application outside the repository gets it: `junction plugins sdk --client` writes
 * the client and protocol tarballs, a temp app installs them (and typescript from the registry cache),
 * type-checks a TypeScript program against the packaged types, runs it, and the program produces and
 * consumes through a running broker — the values it consumed equal the ones it produced, byte for byte.
 */
import { lstat, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startBroker, type BrokerProcess } from '../src/index.js';
import { junction, linksOutside, run } from '../src/outside.js';

const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

const PROGRAM = `import { JunctionClient, isJunctionApiError, type ProduceResult } from '@junction/client';

const url = process.argv[2]!;
const n = Number(process.argv[3]);
const client = new JunctionClient({ url });
await client.createStation('app-orders', { partitions: 2 });
const producer = client.producer('app-orders');
const sent: string[] = [];
const results: ProduceResult[] = await Promise.all(
  Array.from({ length: n }, (_, i) => {
    const value = i % 4 === 0 ? Uint8Array.from([0, 255, i % 256, 10, 13]) : JSON.stringify({ i, text: 'héllo ✓' });
    sent.push(Buffer.from(typeof value === 'string' ? Buffer.from(value, 'utf8') : value).toString('base64'));
    return producer.send({ value, key: 'k' + (i % 5), msgId: 'm' + i });
  }),
);
await producer.flush();
const consumer = client.consumer('app-orders', 'app', { maxMessages: 50, waitMs: 500, create: { start: { type: 'earliest' } } });
const got: string[] = [];
for await (const m of consumer) {
  got.push(Buffer.from(m.value).toString('base64'));
  await m.ack();
  if (got.length === n) break;
}
let missing: unknown;
try {
  await client.getStation('no-such-station');
} catch (err) {
  missing = isJunctionApiError(err) ? err.code : err;
}
await client.close();
process.stdout.write(JSON.stringify({ stored: results.filter((r) => r.status === 'stored').length, sent: sent.sort(), got: got.sort(), missing }));
`;

describe('the client tarball in an application outside the repository', () => {
  const dirs: string[] = [];
  let broker: BrokerProcess | undefined;
  afterAll(async () => {
    await broker?.stop();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('installs, type-checks, produces and consumes', { timeout: 600_000 }, async () => {
    const work = await mkdtemp(join(tmpdir(), 'junction-app-'));
    dirs.push(work);
    const packed = await junction(['plugins', 'sdk', '--client', '--out', join(work, 'tarballs')], work);
    expect(packed.stderr).toBe('');
    expect(packed.code).toBe(0);
    expect(packed.stdout.trim().split('\n')).toEqual([
      join(work, 'tarballs', 'junction-protocol-0.1.0.tgz'),
      join(work, 'tarballs', 'junction-client-0.1.0.tgz'),
    ]);

    const app = join(work, 'app');
    const { mkdir } = await import('node:fs/promises');
    await mkdir(app);
    await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
    await writeFile(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2023',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          types: ['node'],
          outDir: 'dist',
        },
        include: ['main.ts'],
      }),
    );
    await writeFile(join(app, 'main.ts'), PROGRAM);
    const install = await run(
      npm,
      [
        'install',
        '--prefer-offline',
        '--no-audit',
        '--no-fund',
        '../tarballs/junction-protocol-0.1.0.tgz',
        '../tarballs/junction-client-0.1.0.tgz',
        'typescript@^5.9.3',
        '@types/node@^20.19.0',
      ],
      app,
    );
    expect(install.code, install.stderr).toBe(0);
    expect((await lstat(join(app, 'node_modules', '@junction', 'client'))).isSymbolicLink()).toBe(false);
    expect(await linksOutside(join(app, 'node_modules'))).toEqual([]);
    const pkg = JSON.parse(await readFile(join(app, 'node_modules', '@junction', 'client', 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    expect(pkg.dependencies).toEqual({ '@junction/protocol': '0.1.0' });

    // The packaged types: the program compiles under strict settings.
    const tsc = await run(process.execPath, [join(app, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], app);
    expect(tsc.code, `${tsc.stdout}\n${tsc.stderr}`).toBe(0);

    const dataDir = join(work, 'data');
    await mkdir(dataDir);
    broker = await startBroker({ dataDir, timeoutMs: 120_000 });
    const n = 200;
    const ran = await run(process.execPath, [join(app, 'dist', 'main.js'), broker.url, String(n)], app);
    expect(ran.code, ran.stderr).toBe(0);
    const out = JSON.parse(ran.stdout) as { stored: number; sent: string[]; got: string[]; missing: unknown };
    expect(out.stored).toBe(n);
    expect(out.got.length).toBe(n);
    expect(out.got).toEqual(out.sent);
    expect(out.missing).toBe('STATION_NOT_FOUND');
  });
});
