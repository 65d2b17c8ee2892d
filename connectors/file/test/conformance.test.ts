/** The file sink against the SDK's conformance kit, in its default form and in its gzip / base64 forms. */
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { assertConformance, runSinkConformance, sinkConformanceSuite, type SinkConformanceOptions } from '@junction/sdk-connector/testing';
import plugin from '../src/index.js';
import { readFileSink } from '../src/read.js';

// Not created here: the sink creates its dir on open, so a filtered run that opens nothing leaves nothing.
const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

/** A plain file, made now, to stand where a directory would have to be. */
function blocker(): string {
  const path = join(tmpdir(), `junction-file-kit-blocker-${randomUUID()}`);
  writeFileSync(path, 'not a directory');
  dirs.push(path);
  return path;
}

function kitOptions(extra: Record<string, unknown> = {}): SinkConformanceOptions {
  const dir = join(tmpdir(), `junction-file-kit-${randomUUID()}`);
  dirs.push(dir);
  const config = { dir, ...extra };
  return {
    plugin,
    config,
    readBack: async () => (await readFileSink(dir)).map((r) => r.value),
    // With valueEncoding utf8, bytes that are not UTF-8 can never be written: they are dead-lettered.
    deadLetter: { value: new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]), config: { ...config, valueEncoding: 'utf8' } },
    // A plain file where a parent directory should be: the directory can never be created (ENOTDIR).
    unusable: { config: { ...config, dir: join(blocker(), 'sub') } },
    stall: { notApplicable: 'a local file system cannot be made to hold a write from outside' },
    // A plain file where the station's directory should be: every write fails until it is removed.
    retry: {
      breakDestination: async ({ station }) => {
        const blocker = join(dir, station);
        await writeFile(blocker, 'not a directory');
        return () => rm(blocker, { force: true });
      },
    },
    // Files are written with syscalls of the writing process: once it is killed nothing of its write is
    // still on the way to the directory (a temp file it left is never read, and the next load deletes it).
    lateWrite: { notApplicable: 'a local filesystem: a killed writer has no request in flight that could land later' },
  };
}

// Registered at the top level, one vitest test per check.
sinkConformanceSuite({ describe, it }, kitOptions());

describe('file sink conformance in other configurations', () => {
  for (const extra of [{ gzip: true }, { valueEncoding: 'base64' }, { fsync: false }, { gzip: true, valueEncoding: 'utf8' }]) {
    it(`passes with ${JSON.stringify(extra)}`, async () => {
      const results = await runSinkConformance(kitOptions(extra));
      assertConformance(results);
      // The file sink has no secret fields (secrets-not-logged), no config under which its destination is merely down (open-unreachable), writes it
      // cannot stall, and no destination that holds a write (late-write).
      expect(results.filter((r) => r.status !== 'passed').map((r) => r.check)).toEqual([
        'secrets-not-logged',
        'open-unreachable',
        'write-stalled-abort',
        'late-write',
      ]);
    });
  }
});
