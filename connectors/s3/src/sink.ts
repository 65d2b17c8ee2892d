/**
 * The S3 sink. Each `write` is self-contained: it uploads the objects for its own batch and answers
 * `ok()` only once they — and the unit's done marker — are in the bucket. Nothing is buffered across
 * writes (the runtime sends one batch per partition at a time and waits for the answer, so holding
 * messages back would only hold the partition back); the connector's batch settings (`maxMessages`,
 * `maxBytes`, `maxLatencyMs`) are therefore what sets object size and the wall-clock flush, and
 * `rotate` only splits a batch further. See ledger.ts for exactly-once.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import {
  deadLetter,
  ErrorCode,
  JunctionError,
  ok,
  retry,
  type Counter,
  type Histogram,
  type Logger,
  type PartitionRef,
  type Sink,
  type SinkBatch,
  type SinkContext,
  type SinkMessage,
  type WriteOptions,
  type WriteResult,
  stationIdSegment,
} from '@junction/sdk-connector';
import { checkBucket } from './client.js';
import { normalizePrefix } from './connection.js';
import type { S3SinkConfig } from './config.js';
import { encodeBuffer, encodeStream, formatSpec, objectCompression, type ObjectContent } from './encode.js';
import { classifyS3Error, isAbort } from './errors.js';
import { compressionSuffix } from './formats/compression.js';
import { jsonValueText } from './formats/jsonl.js';
import { parquetRowProblem } from './formats/parquet.js';
import { formatExtension, formatToMetadata, ObjectMeta, type FormatSpec } from './formats/spec.js';
import { compileTimeFormat, fieldSegment, isSafeSegment, newAttempt, objectFileName, valueAtPath } from './layout.js';
import { Ledger, type PartitionState, type Unit, type UnitObject } from './ledger.js';
import { planObjects, type PlannedObject } from './plan.js';
import { PARQUET_META_COLUMNS } from './formats/parquet.js';
import { schemaDecoder, type SchemaDecoder } from '@junction/sdk-connector/schema';
import type { StationSchemaInfo } from '@junction/sdk-connector';

const CONTENT_TYPES = {
  jsonl: 'application/x-ndjson',
  parquet: 'application/vnd.apache.parquet',
  raw: 'application/octet-stream',
} as const;

/** Test seams: nothing a user configures. */
export interface S3SinkOptions {
  /** Called after every ledger rollback (tests count them). */
  onRollback?: (unit: Unit) => void;
}

export class S3Sink implements Sink {
  private closed = false;
  private readonly prefix: string;
  private readonly spec: FormatSpec;
  private readonly ext: string;
  private readonly contentType: string;
  private readonly timePath: ((ms: number) => string) | undefined;
  private readonly fieldPath: string[] | undefined;
  private readonly ledger: Ledger;
  private readonly partitions = new Map<string, PartitionState>();
  /** Decoders of station schemas (format parquet, columns schema), by schema id and the subject's versions; or why the schema cannot make rows. */
  private readonly decoders = new Map<string, Promise<SchemaDecoder | { unusable: string }>>();
  /** The tail of each partition's write chain: writes to a partition never overlap. */
  private readonly chains = new Map<string, Promise<unknown>>();
  private readonly log: Logger;
  private readonly m: {
    messages: Counter;
    bytes: Counter;
    objects: Counter;
    multipart: Counter;
    replayed: Counter;
    deadLetters: Counter;
    rollbacks: Counter;
    abortedUploads: Counter;
    writeSeconds: Histogram;
  };

  constructor(
    private readonly client: S3Client,
    private readonly config: S3SinkConfig,
    private readonly ctx: SinkContext,
    options: S3SinkOptions = {},
  ) {
    this.prefix = normalizePrefix(config.prefix);
    this.spec = formatSpec(config);
    const compression = objectCompression(config);
    this.ext = formatExtension(this.spec) + compressionSuffix(compression);
    this.contentType =
      compression === 'gzip' ? 'application/gzip' : compression === 'zstd' ? 'application/zstd' : CONTENT_TYPES[config.format];
    this.timePath = config.path.layout === 'time' ? compileTimeFormat(config.path.format) : undefined;
    this.fieldPath = config.path.layout === 'field' ? (config.path.field as string).split('.') : undefined;
    this.log = ctx.logger.child({ bucket: config.bucket, prefix: this.prefix });
    this.m = {
      messages: ctx.metrics.counter('messages_written_total', 'Messages written to S3'),
      bytes: ctx.metrics.counter('bytes_written_total', 'Object bytes uploaded (after compression)'),
      objects: ctx.metrics.counter('objects_written_total', 'Data objects uploaded'),
      multipart: ctx.metrics.counter('multipart_uploads_total', 'Data objects uploaded in more than one part'),
      replayed: ctx.metrics.counter('replayed_messages_total', 'Messages answered ok because the ledger shows them in the bucket already'),
      deadLetters: ctx.metrics.counter('dead_letters_total', 'Messages that cannot be encoded in the configured format'),
      rollbacks: ctx.metrics.counter('rollbacks_total', 'Unfinished writes (of a crash or a failed upload) removed from the bucket'),
      abortedUploads: ctx.metrics.counter(
        'uploads_aborted_total',
        'Multipart uploads of unfinished or killed writes aborted (so no late request of theirs can land)',
      ),
      writeSeconds: ctx.metrics.histogram('write_seconds', 'Time to write one batch, markers included'),
    };
    this.ledger = new Ledger(client, config.bucket, this.prefix, this.log, {
      rollback: (unit) => {
        this.m.rollbacks.inc();
        options.onRollback?.(unit);
      },
      aborted: (n) => this.m.abortedUploads.inc(n),
    });
  }

  async write(batch: SinkBatch, { signal }: WriteOptions): Promise<WriteResult[]> {
    if (this.closed) throw new JunctionError(ErrorCode.INTERNAL, 'write() after close()');
    if (!isSafeSegment(batch.station)) {
      throw new JunctionError(ErrorCode.SINK_REJECTED, `station name ${JSON.stringify(batch.station)} cannot be a key segment`, {
        retryable: false,
      });
    }
    if (!Number.isSafeInteger(batch.partition) || batch.partition < 0) {
      throw new JunctionError(ErrorCode.SINK_REJECTED, `partition ${String(batch.partition)} is not a non-negative integer`, {
        retryable: false,
      });
    }
    const id = `${batch.station}/${batch.partition}`;
    const previous = this.chains.get(id) ?? Promise.resolve();
    const next = previous.then(
      () => this.writeLocked(id, batch, signal),
      () => this.writeLocked(id, batch, signal),
    );
    const tail = next.catch(() => undefined);
    this.chains.set(id, tail);
    void tail.then(() => {
      if (this.chains.get(id) === tail) this.chains.delete(id);
    });
    return next;
  }

  /** The ledger state of a partition of an incarnation, knowing every present offset ≥ `from`. */
  private async state(key: string, ref: PartitionRef, sid: string, from: number, signal: AbortSignal): Promise<PartitionState> {
    let state = this.partitions.get(key);
    if (!state) {
      state = await this.ledger.load(ref, sid, from, signal);
      this.partitions.set(key, state);
    } else {
      await this.ledger.extend(state, from, signal);
    }
    return state;
  }

  /** The directory of a message under the layout, or why it has none. */
  private dirOf(batch: SinkBatch, m: SinkMessage, parsed: unknown): { dir: string } | { rejected: string } {
    const base = `${this.prefix}${batch.station}/`;
    if (this.timePath) return { dir: `${base}${this.timePath(m.timestamp)}/` };
    if (this.fieldPath) {
      const seg = fieldSegment(valueAtPath(parsed, this.fieldPath));
      if ('rejected' in seg) return seg;
      return { dir: `${base}${this.config.path.field}=${seg.segment}/` };
    }
    return { dir: `${base}${batch.partition}/` };
  }

  private async writeLocked(id: string, batch: SinkBatch, signal: AbortSignal): Promise<WriteResult[]> {
    const started = performance.now();
    const sid = stationIdSegment(batch.stationId);
    const ref: PartitionRef = { station: batch.station, stationId: batch.stationId, partition: batch.partition };
    const stateKey = `${id}\u0000${sid}`;
    const n = batch.messages.length;
    const results: (WriteResult | undefined)[] = new Array<WriteResult | undefined>(n).fill(undefined);
    signal.throwIfAborted();
    let from = Number.POSITIVE_INFINITY;
    for (const [i, m] of batch.messages.entries()) {
      if (!Number.isSafeInteger(m.offset) || m.offset < 1) {
        throw new JunctionError(ErrorCode.INTERNAL, `message ${i} has offset ${String(m.offset)}, not a positive integer`, {
          retryable: false,
        });
      }
      from = Math.min(from, m.offset);
    }
    let state: PartitionState;
    try {
      state = await this.state(stateKey, ref, sid, from, signal);
    } catch (err) {
      this.partitions.delete(stateKey);
      return this.failed(err, batch, results, 'reading the ledger');
    }

    // Decide per message: already present (ok), cannot be encoded (dead letter), or to write.
    const toWrite: number[] = [];
    const dirs: string[] = [];
    const json: (string | null | undefined)[] = [];
    const parsed: unknown[] = [];
    const inBatch = new Set<number>();
    const needsParse =
      this.config.format === 'parquet' ||
      (this.config.format === 'jsonl' && this.config.jsonl.value === 'json') ||
      this.fieldPath !== undefined;
    // Parquet with a station schema: columns and types from the schema, values decoded with it.
    const schemaRows =
      this.config.format === 'parquet' && this.config.parquet.columns === 'schema' && batch.schema
        ? await this.decoderFor(batch.schema)
        : undefined;
    let replayed = 0;
    for (const [i, m] of batch.messages.entries()) {
      if (state.present.has(m.offset) || inBatch.has(m.offset)) {
        results[i] = ok();
        replayed += 1;
        continue;
      }
      inBatch.add(m.offset);
      let text: string | null | undefined;
      let value: unknown;
      if (schemaRows) {
        if ('unusable' in schemaRows) {
          results[i] = deadLetter(ErrorCode.SINK_REJECTED, schemaRows.unusable);
          continue;
        }
        const d = schemaRows.decode(m.value);
        if (!d.ok) {
          results[i] = deadLetter(ErrorCode.SINK_REJECTED, d.reason);
          continue;
        }
        value = d.row;
      } else if (needsParse) {
        const r = jsonValueText(m.value);
        if ('rejected' in r) {
          results[i] = deadLetter(
            ErrorCode.SINK_REJECTED,
            `${r.rejected} (format ${this.config.format}${this.config.format === 'jsonl' ? ` with value ${this.config.jsonl.value}` : ''}${this.fieldPath ? `, layout field` : ''})`,
          );
          continue;
        }
        // null: the value's own bytes are its one-line JSON (copied as bytes; no string kept per message).
        text = r.asIs ? null : r.json;
        value = r.parsed;
        if (this.config.format === 'parquet') {
          const problem = parquetRowProblem(value, this.config.parquet.fields);
          if (problem) {
            results[i] = deadLetter(ErrorCode.SINK_REJECTED, problem);
            continue;
          }
        }
      }
      const dir = this.dirOf(batch, m, value);
      if ('rejected' in dir) {
        results[i] = deadLetter(ErrorCode.SINK_REJECTED, `${dir.rejected} (path.field ${this.config.path.field})`);
        continue;
      }
      toWrite.push(i);
      dirs.push(dir.dir);
      json.push(this.config.format === 'jsonl' ? text : undefined);
      parsed.push(this.config.format === 'parquet' ? value : undefined);
    }
    if (replayed > 0) this.m.replayed.inc(replayed);
    const dead = results.filter((r) => r?.status === 'deadLetter').length;
    if (dead > 0) this.m.deadLetters.inc(dead);
    if (toWrite.length === 0) {
      this.m.writeSeconds.observe((performance.now() - started) / 1000);
      return results as WriteResult[];
    }

    const messages = toWrite.map((i) => batch.messages[i] as SinkMessage);
    const planned = planObjects({
      offsets: messages.map((m) => m.offset),
      timestamps: messages.map((m) => m.timestamp),
      sizes: messages.map((m) => this.estimate(m)),
      dirs,
      maxMessages: this.config.rotate.maxMessages,
      maxBytes: this.config.rotate.maxBytes,
      intervalMs: this.config.rotate.intervalMs,
    });
    const ranges: [number, number][] = [];
    for (const m of messages) {
      const last = ranges[ranges.length - 1];
      if (last && m.offset === last[1] + 1) last[1] = m.offset;
      else ranges.push([m.offset, m.offset]);
    }
    const attempt = newAttempt();
    const objects: UnitObject[] = planned.map((p) => ({
      key: `${p.dir}${objectFileName(batch.station, batch.partition, p.first, p.last, sid, attempt, this.ext)}`,
      first: p.first,
      last: p.last,
      count: p.members.length,
    }));
    const first = (messages[0] as SinkMessage).offset;
    const last = (messages[messages.length - 1] as SinkMessage).offset;
    const unit: Unit = {
      v: 2,
      station: batch.station,
      stationId: sid,
      partition: batch.partition,
      first,
      last,
      count: messages.length,
      ranges,
      objects,
      attempt,
      writer: { connector: this.ctx.connector, task: this.ctx.task },
    };

    const step: { phase: 'upload' | 'commit' } = { phase: 'upload' };
    // The uploads are created first (the pending marker names them). Parts may go up beside the pending
    // marker — an upload is invisible until completed — but no upload is completed before the marker is
    // there. Small objects are encoded meanwhile.
    const created = this.createUploads(unit, signal);
    const begun = created.then(() => this.ledger.begin(unit, signal));
    created.catch(() => undefined); // awaited below; these only keep an early rejection from counting as unhandled
    begun.catch(() => undefined);
    try {
      const columns = schemaRows && !('unusable' in schemaRows) ? schemaRows.fields : undefined;
      await this.uploadAll(planned, objects, unit, messages, json, parsed, columns, created, begun, signal);
      await begun;
      step.phase = 'commit';
      await this.ledger.commit(unit, signal);
    } catch (err) {
      await begun.catch(() => undefined);
      // The next write reloads the partition, which settles what this one left behind. Before the done
      // marker was sent that can be done at once; after, it may still land, so only the next load —
      // later, after the runtime's backoff — judges (it keeps the unit if all its objects are there).
      this.partitions.delete(stateKey);
      this.ledger.forget(ref, sid);
      if (step.phase !== 'commit' && !signal.aborted) {
        await this.ledger
          .rollback(unit)
          .catch((e: unknown) => this.log.warn({ err: e }, 'rollback after a failed write failed; the next load retries it'));
      }
      return this.failed(err, batch, results, `writing ${batch.station}/${batch.partition} offsets ${unit.first}-${unit.last}`);
    }
    for (const [a, b] of ranges) state.present.add(a, b);
    for (const i of toWrite) results[i] = ok();
    this.m.messages.inc(toWrite.length);
    this.m.writeSeconds.observe((performance.now() - started) / 1000);
    return results as WriteResult[];
  }

  /** The decoder of a station schema, made once per schema version (and set of the subject's versions). */
  private decoderFor(schema: StationSchemaInfo): Promise<SchemaDecoder | { unusable: string }> {
    const key = `${schema.id}:${schema.versions.map((v) => v.id).join(',')}`;
    let d = this.decoders.get(key);
    if (!d) {
      d = schemaDecoder(schema).then(
        (dec): SchemaDecoder | { unusable: string } => {
          const clash = dec.fields.find((f) => this.config.parquet.fields.some((m) => PARQUET_META_COLUMNS[m] === f.name));
          if (clash)
            return {
              unusable: `schema subject "${schema.subject}" version ${schema.version} has a field "${clash.name}", which is a metadata column (parquet.fields)`,
            };
          this.log.info(
            { subject: schema.subject, version: schema.version, id: schema.id, columns: dec.fields.length },
            'Parquet columns from the station schema',
          );
          return dec;
        },
        (err: unknown) => ({
          unusable: `schema subject "${schema.subject}" version ${schema.version} cannot make Parquet rows: ${(err as Error).message}`,
        }),
      );
      if (this.decoders.size > 16) this.decoders.clear();
      this.decoders.set(key, d);
    }
    return d;
  }

  /** Bytes a message takes in an object before compression: exact for raw, an upper bound for common JSON Lines. */
  private estimate(m: SinkMessage): number {
    if (this.config.format === 'raw') return m.value.byteLength + this.config.raw.separator.length;
    let headers = 2;
    for (const k in m.headers) headers += k.length + (m.headers[k] as string).length + 6;
    const value =
      this.config.format === 'jsonl' && this.config.jsonl.value === 'string'
        ? Math.ceil(m.value.byteLength * 1.34) + 16
        : m.value.byteLength;
    return value + 96 + (m.key === undefined ? 0 : m.key.length + 2) + headers;
  }

  /** A failed write: rethrow what must fail the task (or was aborted), answer retry for the rest. */
  private failed(err: unknown, batch: SinkBatch, results: (WriteResult | undefined)[], what: string): WriteResult[] {
    if (signalAborted(err)) throw err;
    const e = classifyS3Error(err, what, this.config.bucket);
    if (!e.retryable) throw e;
    this.log.warn({ err: e, station: batch.station, partition: batch.partition }, 'S3 write failed; answering retry');
    return results.map((r) => r ?? retry(e.message));
  }

  /** Creates the multipart uploads of the unit's objects (a few at a time); records their ids in `unit`. */
  private async createUploads(unit: Unit, signal: AbortSignal): Promise<void> {
    let next = 0;
    const errors: unknown[] = [];
    const worker = async () => {
      while (next < unit.objects.length && errors.length === 0) {
        const o = unit.objects[next++] as UnitObject;
        try {
          o.uploadId = await this.ledger.multipart.create(o.key, this.contentType, this.metadata(o, unit), signal);
        } catch (err) {
          errors.push(err);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.config.upload.concurrency, unit.objects.length) }, worker));
    if (errors.length > 0) throw errors[0];
  }

  private async uploadAll(
    planned: PlannedObject[],
    objects: UnitObject[],
    unit: Unit,
    messages: SinkMessage[],
    json: (string | null | undefined)[],
    parsed: unknown[],
    columns: SchemaDecoder['fields'] | undefined,
    created: Promise<void>,
    begun: Promise<void>,
    signal: AbortSignal,
  ): Promise<void> {
    const small: number[] = [];
    const large: number[] = [];
    planned.forEach((p, i) => (p.bytes > this.config.upload.multipartThreshold ? large : small).push(i));
    const content = (p: PlannedObject): ObjectContent => ({
      messages: p.members.map((j) => messages[j] as SinkMessage),
      json: p.members.map((j) => json[j]),
      parsed: p.members.map((j) => parsed[j]),
      columns,
    });
    // Small objects (encoded whole, one part) go up a few at a time; large ones stream up in parts one
    // object after another (each holds about partSize × (queueSize + 1) bytes).
    let next = 0;
    const errors: unknown[] = [];
    const worker = async () => {
      while (next < small.length && errors.length === 0) {
        const i = small[next++] as number;
        try {
          await this.putSmall(objects[i] as UnitObject, content(planned[i] as PlannedObject), created, begun, signal);
        } catch (err) {
          errors.push(err);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.config.upload.concurrency, small.length) }, worker));
    if (errors.length > 0) throw errors[0];
    if (large.length > 0) await created;
    for (const i of large) await this.putLarge(objects[i] as UnitObject, content(planned[i] as PlannedObject), begun, signal);
  }

  /** A data object's metadata: what the S3 source reads, and where it came from. */
  private metadata(o: UnitObject, unit: Unit): Record<string, string> {
    return {
      [ObjectMeta.format]: formatToMetadata(this.spec),
      [ObjectMeta.compression]: this.config.compression,
      [ObjectMeta.station]: unit.station,
      [ObjectMeta.stationId]: unit.stationId ?? '',
      [ObjectMeta.partition]: String(unit.partition),
      [ObjectMeta.firstOffset]: String(o.first),
      [ObjectMeta.lastOffset]: String(o.last),
      [ObjectMeta.count]: String(o.count),
      [ObjectMeta.unit]: `${unit.first}-${unit.last}`,
      [ObjectMeta.attempt]: unit.attempt ?? '',
    };
  }

  private async putSmall(
    o: UnitObject,
    content: ObjectContent,
    created: Promise<void>,
    begun: Promise<void>,
    signal: AbortSignal,
  ): Promise<void> {
    const body = await encodeBuffer(this.config, content);
    await created;
    const uploadId = o.uploadId as string;
    const part = await this.ledger.multipart.part(o.key, uploadId, 1, body, signal);
    await begun;
    await this.ledger.multipart.complete(o.key, uploadId, [part], this.config.conditionalWrites, signal);
    this.m.objects.inc();
    this.m.bytes.inc(body.byteLength);
  }

  private async putLarge(o: UnitObject, content: ObjectContent, begun: Promise<void>, signal: AbortSignal): Promise<void> {
    const body = await encodeStream(this.config, content);
    const uploadId = o.uploadId as string;
    const { parts, bytes } = await this.ledger.multipart.stream(
      o.key,
      uploadId,
      body,
      this.config.upload.partSize,
      this.config.upload.queueSize,
      signal,
    );
    await begun;
    await this.ledger.multipart.complete(o.key, uploadId, parts, this.config.conditionalWrites, signal);
    this.m.objects.inc();
    if (parts.length > 1) this.m.multipart.inc();
    this.m.bytes.inc(bytes);
  }

  async checkConnection(): Promise<void> {
    await checkBucket(this.client, this.config.bucket);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.chains.values()]);
    // Deleting committed units' pending markers is tidiness, not correctness: do not let an
    // unreachable S3 hold close() up.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.ledger.settle(), new Promise<void>((r) => (timer = setTimeout(r, 5_000)))]);
    clearTimeout(timer);
    this.partitions.clear();
    this.client.destroy();
  }
}

function signalAborted(err: unknown): boolean {
  return isAbort(err) || (err instanceof DOMException && err.name === 'AbortError');
}
