/**
 * One message as one JSON line:
 * `{"offset":7,"timestamp":1700000000000,"key":"k"|null,"headers":{…},"value":"…"}` and, when the
 * value is base64 rather than UTF-8 text, `"base64":true` at the end. Text round-trips byte for byte
 * (a BOM included); base64 is standard with padding.
 */
import { Buffer, isUtf8 } from 'node:buffer';
import type { SinkMessage } from '@junction/sdk-connector';
import type { FileSinkConfig } from './config.js';

export type Encoded = { line: string } | { rejected: string };

export function encodeLine(m: SinkMessage, valueEncoding: FileSinkConfig['valueEncoding']): Encoded {
  const bytes = Buffer.from(m.value.buffer, m.value.byteOffset, m.value.byteLength);
  let value: string;
  let base64 = false;
  if (valueEncoding === 'base64') {
    value = bytes.toString('base64');
    base64 = true;
  } else if (isUtf8(bytes)) {
    value = bytes.toString('utf8');
  } else if (valueEncoding === 'utf8') {
    return { rejected: 'value is not valid UTF-8 (valueEncoding is "utf8")' };
  } else {
    value = bytes.toString('base64');
    base64 = true;
  }
  const key = m.key === undefined ? 'null' : JSON.stringify(m.key);
  return {
    line: `{"offset":${m.offset},"timestamp":${m.timestamp},"key":${key},"headers":${JSON.stringify(m.headers)},"value":${JSON.stringify(value)}${base64 ? ',"base64":true' : ''}}\n`,
  };
}
