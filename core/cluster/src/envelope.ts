/**
 * The bytes of a Junction message inside a JetStream message. Keys and headers travel in the payload,
 * not as NATS headers: Junction header names and values are arbitrary strings (spaces, colons, line
 * breaks, any Unicode), NATS headers are not, and a round trip must be byte for byte. NATS headers carry
 * only what JetStream itself reads (`Nats-Msg-Id`).
 *
 *   u8  0x4a ('J')   magic
 *   u8  1            version
 *   u8  flags        bit0: key present, bit1: headers present
 *   [u32le len, utf-8]  key                       (bit0)
 *   [u32le count, then per header u32le len, name, u32le len, value]   (bit1)
 *   value            the rest
 *
 * A message without key and headers costs 3 bytes. Payloads without the magic (published to a station's
 * subject by a plain NATS client) decode as a bare value.
 */

import { putHeader } from '@junction/protocol';

const MAGIC = 0x4a;
const VERSION = 1;
const F_KEY = 1;
const F_HEADERS = 2;

export interface EnvelopeFields {
  key?: string | undefined;
  headers?: Record<string, string> | undefined;
  value: Uint8Array;
}

export interface DecodedEnvelope {
  key: string | undefined;
  headers: Record<string, string>;
  value: Uint8Array;
}

/** Encodes one message. */
export function encodeEnvelope(m: EnvelopeFields): Buffer {
  const key = m.key !== undefined ? Buffer.from(m.key, 'utf8') : undefined;
  let hdrs: Buffer[] | undefined;
  let size = 3 + m.value.byteLength;
  if (key) size += 4 + key.length;
  if (m.headers) {
    for (const name in m.headers) {
      hdrs ??= [];
      const n = Buffer.from(name, 'utf8');
      const v = Buffer.from(m.headers[name] ?? '', 'utf8');
      hdrs.push(n, v);
      size += 8 + n.length + v.length;
    }
    if (hdrs) size += 4;
  }
  const buf = Buffer.allocUnsafe(size);
  buf[0] = MAGIC;
  buf[1] = VERSION;
  buf[2] = (key ? F_KEY : 0) | (hdrs ? F_HEADERS : 0);
  let pos = 3;
  if (key) {
    buf.writeUInt32LE(key.length, pos);
    pos += 4;
    pos += key.copy(buf, pos);
  }
  if (hdrs) {
    buf.writeUInt32LE(hdrs.length / 2, pos);
    pos += 4;
    for (const part of hdrs) {
      buf.writeUInt32LE(part.length, pos);
      pos += 4;
      pos += part.copy(buf, pos);
    }
  }
  buf.set(m.value, pos);
  return buf;
}

/** Thrown on a payload that has the magic but is damaged. */
export class EnvelopeError extends Error {
  override name = 'EnvelopeError';
}

/** Decodes one payload. The value is a view into `data` (no copy). */
export function decodeEnvelope(data: Uint8Array): DecodedEnvelope {
  if (data.byteLength < 3 || data[0] !== MAGIC || data[1] !== VERSION) return { key: undefined, headers: {}, value: data };
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const flags = buf[2]!;
  let pos = 3;
  const need = (n: number) => {
    if (pos + n > buf.length) throw new EnvelopeError(`message envelope is truncated at byte ${pos}`);
  };
  let key: string | undefined;
  if (flags & F_KEY) {
    need(4);
    const len = buf.readUInt32LE(pos);
    pos += 4;
    need(len);
    key = buf.toString('utf8', pos, pos + len);
    pos += len;
  }
  const headers: Record<string, string> = {};
  if (flags & F_HEADERS) {
    need(4);
    const count = buf.readUInt32LE(pos);
    pos += 4;
    for (let i = 0; i < count; i++) {
      need(4);
      const nl = buf.readUInt32LE(pos);
      pos += 4;
      need(nl + 4);
      const name = buf.toString('utf8', pos, pos + nl);
      pos += nl;
      const vl = buf.readUInt32LE(pos);
      pos += 4;
      need(vl);
      const value = buf.toString('utf8', pos, pos + vl);
      putHeader(headers, name, value);
      pos += vl;
    }
  }
  return { key, headers, value: buf.subarray(pos) };
}
