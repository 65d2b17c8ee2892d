/**
 * msgId dedup across partitions: a station with several partitions is several streams, and the contract
 * makes a msgId a duplicate anywhere in the station, so a msgId'd message first claims its id on the
 * station's claim stream (README, difference 11).
 */
import { duplicateWindowMs, JS_MIN_WINDOW_MS, streamConfig, type JsStreamConfig } from './config.js';
import { isApiError, JetStreamApiError, JsErr } from './errors.js';
import type { StationMeta } from './meta.js';
import { enc } from './names.js';
import { NoRespondersError, RequestTimeoutError } from './wire.js';
import { type StoreCore, NS, PROBE_TIMEOUT_MS } from './core.js';

/** A msgId as a NATS header value: printable ASCII as is, anything else (or a leading "~") base64url-encoded. */
export function headerMsgId(id: string): string {
  return /^[\x21-\x7d]+$/.test(id) && !id.startsWith('~') ? id : `~${Buffer.from(id, 'utf8').toString('base64url')}`;
}

export function claimStreamName(c: StoreCore, station: string): string {
  return `${c.names.streamPrefix}_${enc(station)}_ids`;
}

export async function claimStreamExists(c: StoreCore, station: string): Promise<boolean> {
  try {
    await c.api(`STREAM.INFO.${claimStreamName(c, station)}`);
    return true;
  } catch (err) {
    if (isApiError(err, JsErr.STREAM_NOT_FOUND)) return false;
    throw err;
  }
}

export async function ensureClaimStream(c: StoreCore, st: StationMeta, update = false): Promise<void> {
  const window = duplicateWindowMs(st.config);
  const cfg: JsStreamConfig = {
    ...streamConfig(claimStreamName(c, st.name), `${c.names.prefix}.${enc(st.name)}.ids`, st.name, -1, st.config),
    description: `Junction station ${st.name}: msgId claims`,
    retention: 'limits',
    max_msgs: -1,
    max_bytes: -1,
    max_age: Math.max(JS_MIN_WINDOW_MS, window) * NS,
    duplicate_window: window * NS,
  };
  if (update) {
    await c.api(`STREAM.UPDATE.${cfg.name}`, cfg);
    c.settling(cfg.name);
  } else {
    try {
      await c.createStream(cfg);
    } catch (err) {
      // Another node created it with another window a moment ago: it exists, which is all a claim needs.
      if (!isApiError(err, JsErr.STREAM_NAME_EXISTS)) throw err;
    }
  }
  c.claimStreams.add(st.name);
}

/**
 * This node's first claim on a station: the claim stream usually exists (another node made it). Asked
 * of the stream itself (its leader answers), not created right away: a create goes to the meta leader,
 * which may be the node that is unreachable right now. No answer in time: the claim is published all
 * the same (its own leader check answers for it).
 */
async function knowClaimStream(c: StoreCore, st: StationMeta): Promise<void> {
  try {
    const info = await c.wire.api<{ created?: string }>(`$JS.API.STREAM.INFO.${claimStreamName(c, st.name)}`, undefined, PROBE_TIMEOUT_MS);
    c.settling(claimStreamName(c, st.name), info.created);
    c.claimStreams.add(st.name);
  } catch (err) {
    if (isApiError(err, JsErr.STREAM_NOT_FOUND)) await ensureClaimStream(c, st);
    else if (!(
      err instanceof RequestTimeoutError ||
      err instanceof NoRespondersError ||
      (err instanceof JetStreamApiError && err.status >= 500)
    ))
      throw err;
  }
}

/** The partition a msgId'd message goes to: the first claim's. */
export async function claim(c: StoreCore, st: StationMeta, msgId: string, candidate: number): Promise<number> {
  if (!c.claimStreams.has(st.name)) await knowClaimStream(c, st);
  const subject = `${c.names.prefix}.${enc(st.name)}.ids`;
  const ack = await c.publishTo(
    subject,
    claimStreamName(c, st.name),
    `the msgId claims of station "${st.name}"`,
    Buffer.from(String(candidate)),
    {
      'Nats-Msg-Id': headerMsgId(msgId),
    },
  );
  if (!ack.duplicate) return candidate;
  const got = await c.api<{ message: { data?: string } }>(`STREAM.MSG.GET.${claimStreamName(c, st.name)}`, { seq: ack.seq });
  const p = Number(Buffer.from(got.message.data ?? '', 'base64').toString());
  return Number.isInteger(p) && p >= 0 && p < st.config.partitions ? p : candidate;
}
