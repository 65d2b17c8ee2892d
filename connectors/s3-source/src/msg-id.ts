import { createHash } from 'node:crypto';

/** The broker's limit on a msgId. */
const MAX_MSG_ID = 1024;

/** `<key>#<record index>`, or a hash of the key when that would be too long for a msgId. */
export function msgIdFor(key: string, index: number): string {
  const id = `${key}#${index}`;
  if (Buffer.byteLength(id) <= MAX_MSG_ID) return id;
  return `sha256:${createHash('sha256').update(key).digest('hex')}#${index}`;
}
