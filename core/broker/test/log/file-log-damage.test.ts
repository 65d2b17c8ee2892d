/**
 * Property test of recovery: a random log is written and closed, random damage is done to its files
 * (flipped bytes, truncations, zeroed ranges, garbage tails; in segments, indexes, the checkpoint and the
 * meta file), and the log is reopened. It must open; every record it returns must be exactly what was
 * written at that offset; every record it lacks inside [firstOffset, nextOffset) must be named by a
 * corrupt range; while the checkpoint is whole, no offset is handed out again; count must match what
 * reads return; and appends must continue.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { openFileLog } from '../../src/log/index.js';
import type { RecordInput } from '../../src/log/index.js';
import { expectRecord, makeTempDir, readAll, record, removeDir } from './helpers.js';

type Damage = { kind: 'flip' | 'truncate' | 'zero' | 'garbage'; file: number; at: number; len: number; seed: number };

const damageArb: fc.Arbitrary<Damage> = fc.record({
  kind: fc.constantFrom('flip' as const, 'flip' as const, 'truncate' as const, 'zero' as const, 'garbage' as const),
  file: fc.nat(),
  at: fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }),
  len: fc.integer({ min: 1, max: 200 }),
  seed: fc.integer({ min: 1, max: 255 }),
});

async function damage(dir: string, d: Damage): Promise<void> {
  const names = (await fsp.readdir(dir))
    .filter((n) => n.endsWith('.log') || n.endsWith('.idx') || n === 'checkpoint' || n === 'meta')
    .sort();
  const file = path.join(dir, names[d.file % names.length] as string);
  const buf = await fsp.readFile(file);
  if (buf.length === 0 && d.kind !== 'garbage') return;
  const at = Math.floor(d.at * buf.length);
  switch (d.kind) {
    case 'flip':
      buf[at] = (buf[at] as number) ^ d.seed;
      await fsp.writeFile(file, buf);
      break;
    case 'truncate':
      await fsp.truncate(file, at);
      break;
    case 'zero':
      buf.fill(0, at, Math.min(buf.length, at + d.len));
      await fsp.writeFile(file, buf);
      break;
    case 'garbage':
      await fsp.appendFile(file, Buffer.alloc(d.len, d.seed));
      break;
  }
}

describe('file log: recovery from random damage', () => {
  it(
    'opens, returns only intact records, names every lost one, and keeps appending',
    { timeout: 60_000 * Number(process.env.LOG_PROPERTY_RUNS ?? 1) },
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.integer({ min: 1, max: 120 }),
          fc.constantFrom(700, 2000, 8000),
          fc.array(damageArb, { minLength: 1, maxLength: 3 }),
          async (n, segmentBytes, damages) => {
            const dir = await makeTempDir();
            try {
              const inputs: RecordInput[] = Array.from({ length: n }, (_, i) => record(i, { size: (i * 37) % 150 }));
              let log = await openFileLog({ dir, segmentBytes, fsync: 'never' });
              for (let i = 0; i < n; i += 7) await log.append(inputs.slice(i, i + 7));
              await log.close();
              const lastBase = Number(
                (await fsp.readdir(dir))
                  .filter((f) => f.endsWith('.log'))
                  .sort()
                  .at(-1)
                  ?.slice(0, 20),
              );
              const checkpointBefore = await fsp.readFile(path.join(dir, 'checkpoint'));
              for (const d of damages) await damage(dir, d);
              const checkpointWhole = checkpointBefore.equals(await fsp.readFile(path.join(dir, 'checkpoint')));

              log = await openFileLog({ dir, segmentBytes, fsync: 'never' });
              try {
                expect(log.nextOffset).toBeLessThanOrEqual(n + 1);
                // With its checkpoint whole, a log never hands out an offset it handed out before; without
                // it, only the active segment's end may be lost.
                if (checkpointWhole) expect(log.nextOffset).toBe(n + 1);
                else expect(log.nextOffset).toBeGreaterThanOrEqual(Math.min(lastBase, n + 1));
                const got = await readAll(log, 5);
                for (let i = 1; i < got.length; i++)
                  expect((got[i] as { offset: number }).offset).toBeGreaterThan((got[i - 1] as { offset: number }).offset);
                for (const r of got) expectRecord(r, inputs[r.offset - 1] as RecordInput, r.offset);
                expect(log.count).toBe(got.length);
                const present = new Set(got.map((r) => r.offset));
                for (let o = log.firstOffset; o < log.nextOffset; o++) {
                  if (present.has(o)) continue;
                  expect(
                    log.corruptRanges.some((c) => c.fromOffset <= o && o <= c.toOffset),
                    `offset ${o} lost without a report`,
                  ).toBe(true);
                }
                const next = log.nextOffset;
                const extra = record(9999, { size: 33 });
                expect(await log.append([extra])).toBe(next);
                const back = await log.read(next, { maxMessages: 1, maxBytes: 1 });
                expectRecord(back[0], extra, next);
              } finally {
                await log.close();
              }
              // A second open agrees with the first about what is there.
              log = await openFileLog({ dir, segmentBytes, fsync: 'never' });
              try {
                const got = await readAll(log, 50);
                expect(log.count).toBe(got.length);
                for (const r of got.slice(0, -1)) expectRecord(r, inputs[r.offset - 1] as RecordInput, r.offset);
              } finally {
                await log.close();
              }
            } finally {
              await removeDir(dir);
            }
          },
        ),
        { numRuns: 120 * Number(process.env.LOG_PROPERTY_RUNS ?? 1) },
      );
    },
  );
});
