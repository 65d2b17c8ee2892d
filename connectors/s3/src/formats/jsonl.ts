/**
 * JSON Lines: one message per line. The sink's envelope is an object with the chosen metadata fields
 * in a fixed order, then `value` last:
 *
 * `{"offset":7,"timestamp":1700000000000,"key":"k","headers":{"a":"b"},"value":{"n":7}}`
 *
 * With value `json` the value's own text is embedded as is (byte for byte) when it is one line of valid
 * JSON, and compacted when it spans lines; with value `string` it is a JSON string, or base64 with
 * `"base64":true` before it when the bytes are not UTF-8. With value `json` and no fields, a line is
 * the value alone.
 */
import { Buffer, isUtf8 } from 'node:buffer';
import type { MetaField } from './spec.js';

export interface JsonlOptions {
  value: 'json' | 'string';
  fields: readonly MetaField[];
}

/** What a format needs of a message (a SinkMessage fits). */
export interface EncodableMessage {
  readonly offset: number;
  readonly timestamp: number;
  readonly key?: string | undefined;
  readonly headers: Readonly<Record<string, string>>;
  readonly value: Uint8Array;
}

export type Encoded = { text: string } | { rejected: string };

function bytesOf(v: Uint8Array): Buffer {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

/**
 * The value as JSON text fit for one line, or why it is not JSON. The text is the value's own bytes
 * when they are one line already.
 */
export function jsonValueText(value: Uint8Array): { json: string; parsed: unknown; asIs: boolean } | { rejected: string } {
  const bytes = bytesOf(value);
  if (!isUtf8(bytes)) return { rejected: 'value is not valid UTF-8, so not JSON' };
  const text = bytes.toString('utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    return { rejected: `value is not valid JSON: ${(err as Error).message}` };
  }
  if (text.includes('\n') || text.includes('\r')) return { json: JSON.stringify(parsed), parsed, asIs: false };
  return { json: text, parsed, asIs: true };
}

/** One line (with its newline), or why the message cannot be written in this format. */
export function encodeJsonlLine(m: EncodableMessage, opts: JsonlOptions, preParsed?: string): Encoded {
  let valuePart: string;
  if (opts.value === 'json') {
    let json = preParsed;
    if (json === undefined) {
      const r = jsonValueText(m.value);
      if ('rejected' in r) return r;
      json = r.json;
    }
    if (opts.fields.length === 0) return { text: `${json}\n` };
    valuePart = `"value":${json}`;
  } else {
    const bytes = bytesOf(m.value);
    valuePart = isUtf8(bytes) ? `"value":${JSON.stringify(bytes.toString('utf8'))}` : `"base64":true,"value":"${bytes.toString('base64')}"`;
  }
  return { text: `${linePrefix(m, opts)}${valuePart}}\n` };
}

/** A line's envelope up to its value part: `{` and the metadata fields, each followed by a comma. */
export function linePrefix(m: EncodableMessage, opts: JsonlOptions): string {
  let line = '{';
  for (const f of opts.fields) {
    switch (f) {
      case 'offset':
        line += `"offset":${m.offset},`;
        break;
      case 'timestamp':
        line += `"timestamp":${m.timestamp},`;
        break;
      case 'key':
        line += `"key":${m.key === undefined ? 'null' : JSON.stringify(m.key)},`;
        break;
      case 'headers':
        line += `"headers":${JSON.stringify(m.headers)},`;
        break;
    }
  }
  return line;
}

/** A message read back from a line. */
export interface DecodedRecord {
  value: Uint8Array;
  key?: string;
  headers?: Record<string, string>;
  offset?: number;
  timestamp?: number;
}

/** Index just past the JSON value starting at `i` (which must not be whitespace). */
function skipValue(s: string, i: number): number {
  const c = s[i];
  if (c === '"') {
    for (let j = i + 1; j < s.length; j++) {
      if (s[j] === '\\') j++;
      else if (s[j] === '"') return j + 1;
    }
    throw new Error('unterminated string');
  }
  if (c === '{' || c === '[') {
    let depth = 0;
    for (let j = i; j < s.length; j++) {
      const d = s[j];
      if (d === '"') j = skipValue(s, j) - 1;
      else if (d === '{' || d === '[') depth++;
      else if (d === '}' || d === ']') {
        depth--;
        if (depth === 0) return j + 1;
      }
    }
    throw new Error('unterminated object or array');
  }
  let j = i;
  while (j < s.length && !',}] \t\r\n'.includes(s[j] as string)) j++;
  return j;
}

function skipWs(s: string, i: number): number {
  while (i < s.length && ' \t\r\n'.includes(s[i] as string)) i++;
  return i;
}

/** The exact text of the top-level member `name` of the JSON object `line`, or undefined. */
export function rawMember(line: string, name: string): string | undefined {
  let i = skipWs(line, 0);
  if (line[i] !== '{') return undefined;
  i = skipWs(line, i + 1);
  while (i < line.length && line[i] !== '}') {
    const keyEnd = skipValue(line, i);
    const key = JSON.parse(line.slice(i, keyEnd)) as string;
    i = skipWs(line, keyEnd);
    if (line[i] !== ':') return undefined;
    i = skipWs(line, i + 1);
    const end = skipValue(line, i);
    if (key === name) return line.slice(i, end);
    i = skipWs(line, end);
    if (line[i] === ',') i = skipWs(line, i + 1);
  }
  return undefined;
}

/**
 * Decodes one line written with `opts` (no newline). A `json` value comes back as the exact text the
 * line holds for it. Throws on a line that is not such an envelope.
 */
export function decodeJsonlLine(line: string, opts: JsonlOptions): DecodedRecord {
  if (opts.value === 'json' && opts.fields.length === 0) return { value: Buffer.from(line, 'utf8') };
  const obj = JSON.parse(line) as Record<string, unknown>;
  if (typeof obj !== 'object' || obj === null || !('value' in obj)) throw new Error('line has no "value"');
  const out: DecodedRecord = { value: new Uint8Array(0) };
  if (opts.value === 'json') {
    const raw = rawMember(line, 'value');
    out.value = Buffer.from(raw ?? JSON.stringify(obj.value), 'utf8');
  } else {
    if (typeof obj.value !== 'string') throw new Error('"value" is not a string');
    out.value = obj.base64 === true ? Buffer.from(obj.value, 'base64') : Buffer.from(obj.value, 'utf8');
  }
  if (typeof obj.key === 'string') out.key = obj.key;
  if (typeof obj.headers === 'object' && obj.headers !== null) out.headers = obj.headers as Record<string, string>;
  if (typeof obj.offset === 'number') out.offset = obj.offset;
  if (typeof obj.timestamp === 'number') out.timestamp = obj.timestamp;
  return out;
}
