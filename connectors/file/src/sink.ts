/**
 * The file sink. Exactly once across crashes and replays, per offset:
 *
 * - A file is written as temp → fsync → rename → fsync(dir), and holds exactly the offsets its name
 *   says (first..last, no gaps) — but the offsets the connector's transforms dropped (`batch.dropped`),
 *   which a file's range may span: they count as done, and a replay drops them again. A message is
 *   confirmed `ok()` only after its file's rename is durable.
 * - Before writing, the sink knows which offsets of the partition the directory already holds for the
 *   batch's station incarnation (from the file names, which carry the station id: a station deleted and
 *   created again under the same name restarts at offset 1, and the old incarnation's files must not
 *   count for the new one; loaded once and reloaded whenever the directory changed behind its back). Those
 *   messages are answered `ok()` and not written again; the rest are split into runs of consecutive
 *   offsets and each run becomes one file. So a replay — the same batch, or batches cut differently,
 *   or a retry batch with gaps — adds only what is missing, and the files' union holds each offset once.
 * - A crash leaves at worst a temp file (ignored, and deleted the next time the partition is loaded)
 *   or renamed files whose messages were never confirmed: the runtime sends them again, they are
 *   found present and answered `ok()`.
 *
 * Assumes one writer per partition at a time (the runtime's guarantee); writes to one partition are
 * also serialized inside the sink.
 */
import { link, open, readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzip as gzipCb } from 'node:zlib';
import {
  deadLetter,
  ErrorCode,
  JunctionError,
  ok,
  retry,
  type Counter,
  type Histogram,
  type Logger,
  type Sink,
  type SinkBatch,
  type SinkContext,
  type WriteOptions,
  type WriteResult,
  OffsetRanges,
  stationIdSegment,
} from '@junction/sdk-connector';
import type { FileSinkConfig } from './config.js';
import { makeDirs, UNUSABLE_DIR_CODES } from './dirs.js';
import { LineBuffer } from './encode.js';
import { dataFileName, isTempFileName, LEGACY_OWNER_FILE, parseDataFileName, partitionDir, tempFileName } from './layout.js';

const gzip = promisify(gzipCb);

/** Whether every offset of [from, to] was dropped by the connector's transforms. */
function spansDropped(dropped: ReadonlySet<number>, from: number, to: number): boolean {
  for (let o = from; o <= to; o++) if (!dropped.has(o)) return false;
  return true;
}

interface PartitionState {
  present: OffsetRanges;
  /** The directory's mtime after our last change: anything else means someone else changed it. */
  mtimeNs: bigint;
}

interface Run {
  first: number;
  last: number;
  /** Its lines: bytes [start, end) of the batch's LineBuffer. */
  start: number;
  end: number;
  /** Indexes into the batch. */
  indexes: number[];
}

/**
 * Copy buffers kept for the next batches, per thread — not per sink: a thread of the runtime's shared
 * pool runs hundreds of file sinks, and a batch-sized buffer kept by each idle one (1.4 MB for 1000 × 1 KiB)
 * was most of the broker's memory at 1000 connectors. Sinks on one thread take turns (a buffer is popped
 * for a write and pushed back after it), so a few serve them all.
 */
const SPARE: Buffer[] = [];
const MAX_SPARE = 4;

export class FileSink implements Sink {
  private closed = false;
  /** By `<dir>\0<station id segment>`. */
  private readonly partitions = new Map<string, PartitionState>();
  /** The tail of each partition's write chain: writes to a partition never overlap. */
  private readonly chains = new Map<string, Promise<unknown>>();
  private readonly log: Logger;
  private readonly m: {
    messages: Counter;
    bytes: Counter;
    files: Counter;
    replayed: Counter;
    deadLetters: Counter;
    tempCleaned: Counter;
    writeSeconds: Histogram;
  };

  constructor(
    private readonly root: string,
    private readonly config: FileSinkConfig,
    ctx: SinkContext,
  ) {
    this.log = ctx.logger.child({ dir: root });
    this.m = {
      messages: ctx.metrics.counter('messages_written_total', 'Messages written to files'),
      bytes: ctx.metrics.counter('bytes_written_total', 'Bytes written to files (after gzip)'),
      files: ctx.metrics.counter('files_written_total', 'Files written'),
      replayed: ctx.metrics.counter('replayed_messages_total', 'Messages answered ok because their offset was already in the directory'),
      deadLetters: ctx.metrics.counter('dead_letters_total', 'Messages dead-lettered (value not valid UTF-8 with valueEncoding utf8)'),
      tempCleaned: ctx.metrics.counter('temp_files_removed_total', 'Leftover temp files of interrupted writes removed'),
      writeSeconds: ctx.metrics.histogram('write_seconds', 'Time to write and fsync one batch'),
    };
  }

  async write(batch: SinkBatch, { signal }: WriteOptions): Promise<WriteResult[]> {
    if (this.closed) throw new JunctionError(ErrorCode.INTERNAL, 'write() after close()');
    const dir = partitionDir(this.root, batch.station, batch.partition);
    const previous = this.chains.get(dir) ?? Promise.resolve();
    const next = previous.then(
      () => this.writeLocked(dir, batch, signal),
      () => this.writeLocked(dir, batch, signal),
    );
    const tail = next.catch(() => undefined);
    this.chains.set(dir, tail);
    void tail.then(() => {
      if (this.chains.get(dir) === tail) this.chains.delete(dir);
    });
    return next;
  }

  private async writeLocked(dir: string, batch: SinkBatch, signal: AbortSignal): Promise<WriteResult[]> {
    const started = performance.now();
    const results: (WriteResult | undefined)[] = new Array(batch.messages.length).fill(undefined);
    const runs: Run[] = [];
    const sid = stationIdSegment(batch.stationId);
    try {
      signal.throwIfAborted();
      const state = await this.load(dir, sid);
      // Offsets within this batch so far, to answer a repeated one ok(): contiguous batches (the usual)
      // need only the highest, so the set is made only when offsets go out of order.
      let inBatch: Set<number> | undefined;
      let highest = 0;
      let run: Run | undefined;
      let replayed = 0;
      let estimate = 0;
      for (const m of batch.messages) estimate += m.value.byteLength;
      const lines = new LineBuffer(this.config.valueEncoding, Math.ceil(estimate * 1.1) + batch.messages.length * 96);
      const messages = batch.messages;
      // Offsets the connector's transforms dropped: a file may span them (its range then holds them as
      // done; a replay drops them again), so a filter does not cut a batch into a file per gap.
      const dropped = batch.dropped !== undefined && batch.dropped.length > 0 ? new Set(batch.dropped) : undefined;
      for (let i = 0; i < messages.length; i++) {
        const m = messages[i]!;
        if (!Number.isSafeInteger(m.offset) || m.offset < 1) {
          throw new JunctionError(ErrorCode.INTERNAL, `message ${i} has offset ${String(m.offset)}, not a positive integer`);
        }
        let seen: boolean;
        if (inBatch === undefined && m.offset > highest) {
          seen = false;
        } else {
          if (inBatch === undefined) {
            inBatch = new Set<number>();
            for (let j = 0; j < i; j++) inBatch.add(messages[j]!.offset);
          }
          seen = inBatch.has(m.offset);
        }
        if (seen || state.present.has(m.offset)) {
          results[i] = ok();
          replayed += 1;
          run = undefined;
          continue;
        }
        inBatch?.add(m.offset);
        if (m.offset > highest) highest = m.offset;
        const start = lines.length;
        const rejected = lines.append(m);
        if (rejected !== undefined) {
          results[i] = deadLetter(ErrorCode.SINK_REJECTED, rejected);
          this.m.deadLetters.inc();
          // A file never spans an offset it does not hold, or a replay would take it for written.
          run = undefined;
          continue;
        }
        if (run && (m.offset === run.last + 1 || (dropped !== undefined && spansDropped(dropped, run.last + 1, m.offset - 1)))) {
          run.last = m.offset;
          run.end = lines.length;
          run.indexes.push(i);
        } else {
          run = { first: m.offset, last: m.offset, start, end: lines.length, indexes: [i] };
          runs.push(run);
        }
      }
      if (replayed > 0) this.m.replayed.inc(replayed);

      // Copied out before the first await: the LineBuffer's memory is the thread's (see encode.ts). The
      // copies go into buffers the thread keeps for the next batches, not a new allocation each time.
      const data = runs.map((r) => lines.copyInto(SPARE.pop(), r.start, r.end));
      try {
        for (let k = 0; k < runs.length; k++) {
          signal.throwIfAborted();
          await this.writeFile(dir, sid, runs[k]!, data[k]!.subarray(0, runs[k]!.end - runs[k]!.start));
        }
      } finally {
        for (const d of data) if (SPARE.length < MAX_SPARE) SPARE.push(d);
      }
      if (runs.length > 0) {
        if (this.config.fsync) await fsyncDir(dir);
        for (const r of runs) {
          state.present.add(r.first, r.last);
          for (const i of r.indexes) results[i] = ok();
          this.m.messages.inc(r.indexes.length);
        }
        state.mtimeNs = (await stat(dir, { bigint: true })).mtimeNs;
      }
      this.m.writeSeconds.observe((performance.now() - started) / 1000);
      return results as WriteResult[];
    } catch (err) {
      // Renamed files may not be durable, and the directory changed: learn it afresh next time.
      this.partitions.delete(`${dir}\u0000${sid}`);
      if (signal.aborted || (err instanceof JunctionError && !err.retryable)) throw err;
      const reason = `cannot write ${dir}: ${describe(err)}`;
      this.log.warn({ err, station: batch.station, partition: batch.partition }, 'file write failed; answering retry');
      return results.map((r) => r ?? retry(reason));
    }
  }

  /**
   * Which offsets of the incarnation `sid` the partition's directory holds; reloaded when the directory
   * changed since we last looked.
   */
  private async load(dir: string, sid: string): Promise<PartitionState> {
    const key = `${dir}\u0000${sid}`;
    const cached = this.partitions.get(key);
    if (cached) {
      const now = (await stat(dir, { bigint: true })).mtimeNs;
      if (now === cached.mtimeNs) return cached;
      this.log.info({ dir }, 'partition directory changed by someone else; reloading its file list');
    }
    await makeDirs(dir);
    const present = new OffsetRanges();
    const legacy: [number, number][] = [];
    let cleaned = 0;
    for (const name of await readdir(dir)) {
      if (isTempFileName(name)) {
        await rm(join(dir, name), { force: true });
        cleaned += 1;
        continue;
      }
      const parsed = parseDataFileName(name);
      if (!parsed) continue;
      if (parsed.stationId === sid) present.add(parsed.first, parsed.last);
      else if (parsed.stationId === undefined) legacy.push([parsed.first, parsed.last]);
    }
    if (legacy.length > 0 && (await this.legacyOwner(dir, sid)) === sid) for (const [a, b] of legacy) present.add(a, b);
    if (cleaned > 0) {
      this.m.tempCleaned.inc(cleaned);
      this.log.info({ dir, cleaned }, 'removed temp files left by an interrupted write');
    }
    // Files renamed just before a crash are listed but perhaps not durable: make them so before trusting them.
    if (this.config.fsync) await fsyncDir(dir);
    const state: PartitionState = { present, mtimeNs: (await stat(dir, { bigint: true })).mtimeNs };
    this.partitions.set(key, state);
    return state;
  }

  /**
   * The incarnation the directory's files without a station id (written before station ids) belong to:
   * the one named in `.junction-legacy-owner`, or — the first time a write meets them — the writing one,
   * recorded then (written whole and linked into place, so it is never half there and never replaced).
   * They were written by the incarnation that existed then; the first one to write after the upgrade is
   * taken to be it.
   */
  private async legacyOwner(dir: string, sid: string): Promise<string> {
    const file = join(dir, LEGACY_OWNER_FILE);
    const read = async () => (await readFile(file, 'utf8')).trim();
    try {
      return await read();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const temp = join(dir, tempFileName(LEGACY_OWNER_FILE));
    const fh = await open(temp, 'wx');
    try {
      await fh.writeFile(`${sid}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await link(temp, file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      await unlink(temp).catch(() => undefined);
    }
    if (this.config.fsync) await fsyncDir(dir);
    const owner = await read();
    this.log.info({ dir, stationId: owner }, "files written before station ids are taken as this station incarnation's");
    return owner;
  }

  private async writeFile(dir: string, sid: string, run: Run, lines: Buffer): Promise<void> {
    const name = dataFileName(run.first, run.last, sid, this.config.gzip);
    const temp = join(dir, tempFileName(name));
    let data: Buffer = lines;
    if (this.config.gzip) data = await gzip(data);
    const fh = await open(temp, 'wx');
    try {
      await fh.writeFile(data);
      if (this.config.fsync) await fh.sync();
    } catch (err) {
      await fh.close().catch(() => undefined);
      await unlink(temp).catch(() => undefined);
      throw err;
    }
    await fh.close();
    try {
      await rename(temp, join(dir, name));
    } catch (err) {
      await unlink(temp).catch(() => undefined);
      throw err;
    }
    this.m.files.inc();
    this.m.bytes.inc(data.byteLength);
  }

  async checkConnection(): Promise<void> {
    const probe = join(this.root, `.probe-${process.pid}-${Math.random().toString(36).slice(2, 10)}.tmp`);
    try {
      await makeDirs(this.root);
      const fh = await open(probe, 'wx');
      await fh.writeFile('probe');
      await fh.sync();
      await fh.close();
      await unlink(probe);
    } catch (err) {
      await unlink(probe).catch(() => undefined);
      const code = (err as NodeJS.ErrnoException).code ?? '';
      const message = `cannot write to ${this.root}: ${describe(err)}`;
      if (UNUSABLE_DIR_CODES.has(code))
        throw new JunctionError(ErrorCode.DESTINATION_UNUSABLE, message, { cause: err, issues: [{ path: 'dir', message }] });
      throw new JunctionError(ErrorCode.CONNECTION_FAILED, message, { cause: err });
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.chains.values()]);
    this.partitions.clear();
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === 'string' ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}
