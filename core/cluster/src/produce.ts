/**
 * Produce (per-message results, keyless messages spread over partitions with a leader) and browsing reads
 * (STREAM.MSG.GET from the stream leader).
 */
import { partitionForKey, type MessageInput, type ProduceResult, type ReadOptions, type StoredMessage } from '@junction/broker';
import { decodeEnvelope, encodeEnvelope } from './envelope.js';
import { ErrorCode, isApiError, JsErr, JunctionError } from './errors.js';
import type { StationMeta } from './meta.js';
import { LeaderlessError, RequestTimeoutError, WireClosedError } from './wire.js';
import type { StoreCore } from './core.js';
import { claim, headerMsgId } from './claims.js';

/** Junction's message size: value, key and header bytes (the embedded engine's measure). */
function messageSize(m: MessageInput): number {
  let n = m.value.length;
  if (m.key !== undefined) n += Buffer.byteLength(m.key);
  if (m.headers) for (const k in m.headers) n += Buffer.byteLength(k) + Buffer.byteLength(m.headers[k]!);
  return n;
}

/** The per-message answer of a publish that failed. */
function produceRejection(err: unknown): ProduceResult {
  if (err instanceof LeaderlessError) {
    return err.sent
      ? {
          status: 'rejected',
          code: ErrorCode.NOT_ACKNOWLEDGED,
          message: `${err.what} lost its leader with the message in flight (${err.reason}); the message may or may not be stored — retry with a msgId`,
        }
      : {
          status: 'rejected',
          code: ErrorCode.UNAVAILABLE,
          message: `not stored: ${err.what} has no leader right now (${err.reason}); retry`,
        };
  }
  if (err instanceof RequestTimeoutError)
    return {
      status: 'rejected',
      code: ErrorCode.NOT_ACKNOWLEDGED,
      message: 'no store acknowledgement in time; the message may or may not be stored',
    };
  return { status: 'rejected', code: ErrorCode.UNAVAILABLE, message: `not stored: ${err instanceof Error ? err.message : String(err)}` };
}

/** RFC 3339 with nanoseconds (Go's time.Time in JSON) to ms since the epoch, truncated like the ack subject's. */
function parseTimeMs(s: string): number {
  const m = /^(.+T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(s);
  if (!m) return Date.parse(s);
  return Date.parse(`${m[1]}${m[3]}`) + Number((m[2] ?? '').padEnd(3, '0').slice(0, 3));
}

export function produce(c: StoreCore, station: string, messages: readonly MessageInput[]): Promise<ProduceResult[]> {
  return c.run('produce', async () => produceTo(c, await c.stationMeta(station), messages, false));
}

export async function produceTo(
  c: StoreCore,
  st: StationMeta,
  messages: readonly MessageInput[],
  internal: boolean,
): Promise<ProduceResult[]> {
  const { config } = st;
  const P = config.partitions;
  const dedup = config.dedupWindowMs > 0;
  const claims = dedup && P > 1;
  const results: ProduceResult[] = new Array(messages.length);
  let bytes = 0;
  let stored = 0;
  const work: Promise<void>[] = [];
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i]!;
    const size = messageSize(m);
    if (!internal && size > config.maxMessageBytes) {
      results[i] = {
        status: 'rejected',
        code: ErrorCode.MESSAGE_TOO_LARGE,
        message: `message is ${size} bytes; the station allows ${config.maxMessageBytes}`,
      };
      continue;
    }
    const data = encodeEnvelope(m);
    // Subject, reply subject and the Nats-Msg-Id header ride along in the same NATS message.
    if (data.length + 512 > c.maxPayload) {
      results[i] = {
        status: 'rejected',
        code: ErrorCode.MESSAGE_TOO_LARGE,
        message: `message is ${data.length} bytes framed; the NATS servers allow ${c.maxPayload} (max_payload)`,
      };
      continue;
    }
    const msgId = dedup && m.msgId !== undefined ? m.msgId : undefined;
    // A message without a key may go to any partition: not to one known to have no leader right now.
    const candidate = m.key !== undefined ? partitionForKey(m.key, P) : withLeader(c, st.name, nextRr(c, st.name, P), P);
    const valueBytes = m.value.length;
    const send = async (): Promise<void> => {
      try {
        const p = msgId !== undefined && claims ? await claim(c, st, msgId, candidate) : candidate;
        const ack = await c.publishTo(
          c.names.subject(st.name, p),
          c.names.stream(st.name, p),
          `partition ${p} of station "${st.name}"`,
          data,
          msgId === undefined ? undefined : { 'Nats-Msg-Id': headerMsgId(msgId) },
        );
        if (ack.duplicate) results[i] = { status: 'duplicate', partition: p, offset: ack.seq };
        else {
          c.producedAt.set(c.names.stream(st.name, p), performance.now());
          results[i] = { status: 'stored', partition: p, offset: ack.seq };
          stored++;
          bytes += valueBytes;
        }
      } catch (err) {
        if (err instanceof WireClosedError) throw err;
        results[i] = produceRejection(err);
      }
    };
    work.push(send());
  }
  await Promise.all(work);
  if (stored > 0) c.emit({ type: 'produced', station: st.name, messages: stored, bytes });
  return results;
}

function nextRr(c: StoreCore, station: string, partitions: number): number {
  const n = c.rr.get(station) ?? 0;
  c.rr.set(station, n + 1);
  return n % partitions;
}

/** `candidate`, or the next partition after it not known to be without a leader (candidate if all are). */
function withLeader(c: StoreCore, station: string, candidate: number, partitions: number): number {
  if (!c.leaders) return candidate;
  for (let k = 0; k < partitions; k++) {
    const p = (candidate + k) % partitions;
    if (!c.leaders.isDown(c.names.subject(station, p))) return p;
  }
  return candidate;
}

export function read(c: StoreCore, station: string, options: ReadOptions): Promise<StoredMessage[]> {
  return c.run('read', async () => {
    const st = await c.stationMeta(station);
    const { partition } = options;
    if (!Number.isInteger(partition) || partition < 0 || partition >= st.config.partitions) {
      throw new JunctionError(
        ErrorCode.PARTITION_NOT_FOUND,
        `station "${station}" has no partition ${partition} (it has ${st.config.partitions})`,
      );
    }
    return readRange(c, st, partition, options.fromOffset, options.limit, options.maxBytes ?? 64 * 1024 * 1024);
  });
}

/** Reads from the stream leader (STREAM.MSG.GET, pipelined); skips offsets retention removed. */
export async function readRange(
  c: StoreCore,
  st: StationMeta,
  partition: number,
  fromOffset: number | undefined,
  limit: number,
  maxBytes: number,
  toOffset?: number,
): Promise<StoredMessage[]> {
  const s = await c.streamState(st.name, partition);
  const first = s.messages === 0 ? s.last_seq + 1 : s.first_seq;
  let seq = Math.max(fromOffset ?? first, first);
  const last = Math.min(s.last_seq, toOffset ?? Infinity);
  const stream = c.names.stream(st.name, partition);
  const out: StoredMessage[] = [];
  let bytes = 0;
  while (seq <= last && out.length < limit) {
    const n = Math.min(256, limit - out.length, last - seq + 1);
    const seqs = Array.from({ length: n }, (_, i) => seq + i);
    const got = await Promise.all(seqs.map((q) => getMessage(c, stream, q)));
    for (let i = 0; i < got.length; i++) {
      const g = got[i];
      if (!g) continue;
      const env = decodeEnvelope(g.data);
      if (out.length > 0 && bytes + env.value.length > maxBytes) return out;
      bytes += env.value.length;
      out.push({
        station: st.name,
        partition,
        offset: seqs[i]!,
        timestamp: g.timestamp,
        key: env.key,
        headers: env.headers,
        value: env.value,
      });
      if (out.length >= limit) return out;
    }
    seq += n;
  }
  return out;
}

export async function getMessage(c: StoreCore, stream: string, seq: number): Promise<{ data: Buffer; timestamp: number } | undefined> {
  try {
    const r = await c.api<{ message: { data?: string; time: string } }>(`STREAM.MSG.GET.${stream}`, { seq });
    return { data: Buffer.from(r.message.data ?? '', 'base64'), timestamp: parseTimeMs(r.message.time) };
  } catch (err) {
    if (isApiError(err, JsErr.NO_MESSAGE_FOUND)) return undefined;
    throw err;
  }
}
