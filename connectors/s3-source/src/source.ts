/**
 * The S3 source. It lists the objects under the prefix in key order (S3 lists in UTF-8 byte order)
 * and emits each record (a line, a Parquet row, a raw value) as a message. Its position is the key
 * of the object it stands in and how many records of it were emitted; a restart reads that object
 * again, skips those records, and goes on with the keys after it. msgId = `<key>#<record index>`, so
 * a batch emitted again after a crash is dropped by the station's dedup window.
 *
 * Keys under `<prefix>_junction/` (the S3 sink's ledger) and "folder" keys ending in `/` are skipped.
 * New objects are picked up only when their keys sort after the position (pollIntervalMs > 0).
 */
import type { Readable } from 'node:stream';
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import {
  ErrorCode,
  JunctionError,
  type Logger,
  type Source,
  type SourceBatch,
  type SourceContext,
  type SourceMessage,
} from '@junction/sdk-connector';
import { checkBucket, classifyS3Error, isNotFound, normalizePrefix } from '@junction/connector-s3/client';
import {
  ObjectMeta,
  compressionFromKey,
  decodeJsonlLine,
  decompressStream,
  formatFromMetadata,
  readParquetMetadata,
  readParquetRows,
  type Compression,
  type FormatSpec,
  type MetaField,
} from '@junction/connector-s3/formats';
import type { S3SourceConfig } from './config.js';
import { msgIdFor } from './msg-id.js';

/** Where the source stands: `records` records of `key` are emitted; `complete` once all of them are. */
export type S3SourcePosition = { key: string; records: number; complete: boolean };

interface ObjectInfo {
  spec: FormatSpec;
  compression: Compression;
}

export class S3Source implements Source<S3SourcePosition> {
  private closed = new AbortController();
  private readonly prefix: string;
  private readonly log: Logger;

  constructor(
    private readonly client: S3Client,
    private readonly config: S3SourceConfig,
    private readonly ctx: SourceContext<S3SourcePosition>,
  ) {
    this.prefix = normalizePrefix(config.prefix);
    this.log = ctx.logger.child({ bucket: config.bucket, prefix: this.prefix });
  }

  private opts(signal: AbortSignal): { abortSignal: AbortSignal } {
    return { abortSignal: AbortSignal.any([signal, this.closed.signal]) };
  }

  private skip(key: string): boolean {
    return key.endsWith('/') || key.startsWith(`${this.prefix}_junction/`);
  }

  /** Keys after `after`, in order, page by page. */
  private async *keys(after: string | undefined, signal: AbortSignal): AsyncGenerator<string> {
    let token: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({
          Bucket: this.config.bucket,
          Prefix: this.prefix,
          ...(token === undefined ? (after === undefined ? {} : { StartAfter: after }) : { ContinuationToken: token }),
        }),
        this.opts(signal),
      );
      for (const o of page.Contents ?? []) if (o.Key !== undefined && !this.skip(o.Key)) yield o.Key;
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  private describe(key: string, metadata: Record<string, string> | undefined): ObjectInfo {
    const recorded = formatFromMetadata(metadata?.[ObjectMeta.format]);
    let spec: FormatSpec;
    switch (this.config.format) {
      case 'auto':
        spec =
          recorded ??
          (key.endsWith('.parquet')
            ? { type: 'parquet', fields: [] }
            : /\.bin(\.gz|\.zst)?$/.test(key)
              ? { type: 'raw', separator: this.config.raw.separator }
              : { type: 'lines' });
        break;
      case 'jsonl':
        spec = recorded?.type === 'jsonl' ? recorded : { type: 'jsonl', value: 'json', fields: ['offset', 'timestamp', 'key', 'headers'] };
        break;
      case 'parquet':
        spec = recorded?.type === 'parquet' ? recorded : { type: 'parquet', fields: ['offset', 'timestamp', 'key', 'headers'] };
        break;
      case 'raw':
        spec = recorded?.type === 'raw' ? recorded : { type: 'raw', separator: this.config.raw.separator };
        break;
      case 'lines':
        spec = { type: 'lines' };
        break;
    }
    let compression: Compression;
    if (this.config.compression !== 'auto') compression = this.config.compression;
    else {
      const meta = metadata?.[ObjectMeta.compression];
      compression = meta === 'gzip' || meta === 'zstd' || meta === 'none' ? meta : compressionFromKey(key);
    }
    if (spec.type === 'parquet') compression = 'none';
    return { spec, compression };
  }

  /** Records of one object from record `from` on, as messages with their record index. */
  private async *records(key: string, from: number, signal: AbortSignal): AsyncGenerator<{ index: number; message: SourceMessage }> {
    let res;
    try {
      res = await this.client.send(new GetObjectCommand({ Bucket: this.config.bucket, Key: key }), this.opts(signal));
    } catch (err) {
      if (isNotFound(err)) {
        this.log.warn({ key }, 'object vanished before it was read; skipping it');
        return;
      }
      throw err;
    }
    const info = this.describe(key, res.Metadata);
    if (info.spec.type === 'parquet') {
      (res.Body as Readable | undefined)?.destroy();
      yield* this.parquetRecords(key, info.spec.fields, from, res.ContentLength ?? 0, signal);
      return;
    }
    const body = res.Body as Readable;
    const decompressor = await decompressStream(info.compression);
    const stream: Readable = decompressor ? body.pipe(decompressor) : body;
    if (decompressor) body.on('error', (err) => decompressor.destroy(err));
    const sep = Buffer.from(info.spec.type === 'raw' ? info.spec.separator : '\n', 'utf8');
    let pending: Buffer = Buffer.alloc(0);
    let index = 0;
    const emit = (piece: Buffer): SourceMessage | undefined => {
      const spec = info.spec;
      if (spec.type === 'raw') return { value: new Uint8Array(piece), msgId: msgIdFor(key, index) };
      const line = piece.length > 0 && piece[piece.length - 1] === 0x0d ? piece.subarray(0, -1) : piece;
      if (line.length === 0) return undefined;
      if (spec.type === 'lines') return { value: new Uint8Array(line), msgId: msgIdFor(key, index) };
      if (spec.type !== 'jsonl') return undefined;
      let rec;
      try {
        rec = decodeJsonlLine(line.toString('utf8'), spec);
      } catch (err) {
        throw new JunctionError(
          ErrorCode.SINK_REJECTED,
          `s3://${this.config.bucket}/${key} line ${index + 1} is not a JSON Lines record of this format: ${(err as Error).message}`,
          {
            retryable: false,
          },
        );
      }
      return {
        value: new Uint8Array(rec.value.buffer, rec.value.byteOffset, rec.value.byteLength),
        ...(rec.key === undefined ? {} : { key: rec.key }),
        ...(rec.headers === undefined ? {} : { headers: rec.headers }),
        msgId: msgIdFor(key, index),
      };
    };
    try {
      for await (const chunk of stream) {
        pending = pending.length === 0 ? (chunk as Buffer) : Buffer.concat([pending, chunk as Buffer]);
        let start = 0;
        for (let at = pending.indexOf(sep, start); at >= 0; at = pending.indexOf(sep, start)) {
          if (index >= from) {
            const m = emit(pending.subarray(start, at));
            if (m) yield { index, message: m };
          }
          index++;
          start = at + sep.length;
        }
        pending = pending.subarray(start);
      }
      // A last line without its newline is still a record; raw values always end with the separator.
      if (pending.length > 0 && index >= from) {
        const m = emit(pending);
        if (m) yield { index, message: m };
      }
    } finally {
      stream.destroy();
      body.destroy();
    }
  }

  private async *parquetRecords(
    key: string,
    fields: readonly MetaField[],
    from: number,
    size: number,
    signal: AbortSignal,
  ): AsyncGenerator<{ index: number; message: SourceMessage }> {
    const file = {
      byteLength: size,
      slice: async (start: number, end?: number): Promise<ArrayBuffer> => {
        const res = await this.client.send(
          new GetObjectCommand({ Bucket: this.config.bucket, Key: key, Range: `bytes=${start}-${(end ?? size) - 1}` }),
          this.opts(signal),
        );
        const bytes = await (res.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray();
        return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
      },
    };
    const metadata = await readParquetMetadata(file);
    // Files from elsewhere: a column named like a metadata column is read as one.
    const names = new Set(metadata.schema.map((s) => s.name));
    const meta: MetaField[] =
      fields.length > 0 ? [...fields] : (['offset', 'timestamp', 'key', 'headers'] as const).filter((f) => names.has(`_${f}`));
    let start = 0;
    for (const group of metadata.row_groups) {
      const end = start + Number(group.num_rows);
      if (end > from) {
        const rows = await readParquetRows(file, metadata, meta, Math.max(start, from), end);
        let index = Math.max(start, from);
        for (const r of rows) {
          yield {
            index,
            message: {
              value: new TextEncoder().encode(JSON.stringify(r.value)),
              ...(r.key === undefined ? {} : { key: r.key }),
              ...(r.headers === undefined ? {} : { headers: r.headers }),
              msgId: msgIdFor(key, index),
            },
          };
          index++;
        }
      }
      start = end;
    }
  }

  async *read(signal: AbortSignal): AsyncGenerator<SourceBatch<S3SourcePosition>> {
    const stop = AbortSignal.any([signal, this.closed.signal]);
    let position = this.ctx.position;
    let lastYielded = position;
    let messages: SourceMessage[] = [];
    const batch = (): SourceBatch<S3SourcePosition> => {
      const out = { messages, position: position as S3SourcePosition };
      messages = [];
      lastYielded = position;
      return out;
    };
    const readObject = async function* (this: S3Source, key: string, from: number): AsyncGenerator<SourceBatch<S3SourcePosition>> {
      let count = from;
      for await (const { index, message } of this.records(key, from, stop)) {
        messages.push(message);
        count = index + 1;
        position = { key, records: count, complete: false };
        if (messages.length >= this.config.batchSize) yield batch();
        if (stop.aborted) return;
      }
      position = { key, records: count, complete: true };
    }.bind(this);
    try {
      if (position && !position.complete) {
        yield* readObject(position.key, position.records);
        if (stop.aborted) return;
      }
      let after = position?.key ?? this.config.startAfter;
      for (;;) {
        for await (const key of this.keys(after, stop)) {
          yield* readObject(key, 0);
          if (stop.aborted) return;
          after = key;
        }
        if (messages.length > 0 || position !== lastYielded) yield batch();
        if (this.config.pollIntervalMs === 0 || stop.aborted) return;
        await sleep(this.config.pollIntervalMs, stop);
        if (stop.aborted) return;
      }
    } catch (err) {
      if (stop.aborted) return;
      throw classifyS3Error(err, 'reading objects', this.config.bucket);
    }
  }

  async commit(): Promise<void> {}

  async checkConnection(): Promise<void> {
    await checkBucket(this.client, this.config.bucket);
  }

  async close(): Promise<void> {
    if (this.closed.signal.aborted) return;
    this.closed.abort();
    this.client.destroy();
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
