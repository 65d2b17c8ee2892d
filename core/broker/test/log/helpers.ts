/** Shared helpers of the partition-log tests: temp dirs, record builders, log factories. */
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'vitest';
import { createMemoryLog, openFileLog } from '../../src/log/index.js';
import type { LogOptions, LogRecord, PartitionLog, RecordInput } from '../../src/log/index.js';

export const T0 = 1_700_000_000_000;

export async function makeTempDir(): Promise<string> {
  return fsp.mkdtemp(path.join(os.tmpdir(), 'junction-log-'));
}

export async function removeDir(dir: string): Promise<void> {
  await fsp.rm(dir, { recursive: true, force: true });
}

/** A deterministic record: value bytes derived from `i`, optional key/msgId/headers. */
export function record(i: number, opts: { size?: number; key?: boolean; headers?: boolean; timestamp?: number } = {}): RecordInput {
  const size = opts.size ?? 50 + (i % 37);
  const value = Buffer.allocUnsafe(size);
  for (let b = 0; b < size; b++) value[b] = (i * 31 + b * 7) & 0xff;
  const r: RecordInput = { timestamp: opts.timestamp ?? T0 + i, value };
  if (opts.key ?? i % 3 === 0) r.key = `key-${i}`;
  if (opts.headers ?? i % 4 === 0) r.headers = { 'content-type': 'application/octet-stream', n: String(i) };
  return r;
}

export function records(from: number, n: number, opts: Parameters<typeof record>[1] = {}): RecordInput[] {
  return Array.from({ length: n }, (_, k) => record(from + k, opts));
}

/** Asserts a read record equals the input it came from, byte for byte. */
export function expectRecord(actual: LogRecord | undefined, expected: RecordInput, offset: number): void {
  expect(actual).toBeDefined();
  const a = actual as LogRecord;
  expect(a.offset).toBe(offset);
  expect(a.timestamp).toBe(expected.timestamp);
  expect(a.key).toBe(expected.key);
  expect(a.msgId).toBe(expected.msgId);
  expect(a.headers).toEqual(expected.headers ?? {});
  expect(Buffer.isBuffer(a.value)).toBe(true);
  expect(Buffer.compare(a.value, Buffer.from(expected.value))).toBe(0);
  expect(a.size).toBeGreaterThan(a.value.length);
}

/** Reads every retained record, in pages of `page`. */
export async function readAll(log: PartitionLog, page = 1000, maxBytes = 1 << 30): Promise<LogRecord[]> {
  const out: LogRecord[] = [];
  let from = log.firstOffset;
  for (;;) {
    const recs = await log.read(from, { maxMessages: page, maxBytes });
    if (recs.length === 0) return out;
    out.push(...recs);
    from = (recs[recs.length - 1] as LogRecord).offset + 1;
  }
}

/** One kind of log under test: open a fresh one, and (for files) reopen it from its directory. */
export interface LogKind {
  name: 'file' | 'memory';
  persistent: boolean;
  create(options?: Partial<LogOptions>): Promise<LogHandle>;
}

export interface LogHandle {
  log: PartitionLog;
  dir: string | undefined;
  /** Closes and reopens (file logs); returns the new log. */
  reopen(options?: Partial<LogOptions>): Promise<PartitionLog>;
  dispose(): Promise<void>;
}

export const fileKind: LogKind = {
  name: 'file',
  persistent: true,
  async create(options = {}) {
    const dir = await makeTempDir();
    const opts = { segmentBytes: 1 << 20, fsync: 'never' as const, ...options, dir };
    const handle: LogHandle = {
      log: await openFileLog(opts),
      dir,
      async reopen(more = {}) {
        await handle.log.close();
        handle.log = await openFileLog({ ...opts, ...more, dir });
        return handle.log;
      },
      async dispose() {
        await handle.log.close();
        await removeDir(dir);
      },
    };
    return handle;
  },
};

export const memoryKind: LogKind = {
  name: 'memory',
  persistent: false,
  async create(options = {}) {
    const handle: LogHandle = {
      log: createMemoryLog({ segmentBytes: options.segmentBytes ?? 1 << 20 }),
      dir: undefined,
      reopen() {
        return Promise.resolve(handle.log);
      },
      dispose() {
        return handle.log.close();
      },
    };
    return handle;
  },
};

/** Runs `fn` with a fresh log of `kind`, disposing of it afterwards. */
export async function withLog<T>(kind: LogKind, options: Partial<LogOptions>, fn: (h: LogHandle) => Promise<T>): Promise<T> {
  const h = await kind.create(options);
  try {
    return await fn(h);
  } finally {
    await h.dispose();
  }
}

export async function segmentFiles(dir: string, ext = '.log'): Promise<string[]> {
  return (await fsp.readdir(dir)).filter((n) => n.endsWith(ext)).sort();
}
