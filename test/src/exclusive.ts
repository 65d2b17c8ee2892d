/**
 * Test files that share one outside service (the machine's PostgreSQL) take turns, while the rest of
 * the suite runs beside them. vitest's global setup (`startExclusiveServer`, exclusive-server.ts) holds
 * one queue per name in its own process; a file asks for its turn with `await holdExclusive(name)` at the
 * top of the file, before it connects to anything, and keeps it until its last `afterAll` has run. A file
 * whose process dies (a crash, a timeout) gives its turn back with its socket.
 *
 * This replaced a second vitest project that ran those files one after another once every other file had
 * finished: that tail ran alone on an otherwise idle machine (test/README.md "Running the suite").
 */
import { connect } from 'node:net';
import { afterAll, inject } from 'vitest';
import { GRANTED } from './exclusive-server.js';

/**
 * Waits for this file's turn on `name` and keeps it until the file's `afterAll` hooks have run (the
 * hook registered here runs last). Throws if the turn does not come within `timeoutMs`.
 */
export async function holdExclusive(name: string, timeoutMs = 600_000): Promise<void> {
  const socket = connect({ host: '127.0.0.1', port: inject('exclusivePort') });
  const release = () => {
    socket.end();
  };
  await new Promise<void>((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => fail(new Error(`no turn on "${name}" within ${timeoutMs} ms`)), timeoutMs);
    const fail = (err: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    socket.setEncoding('utf8');
    socket.once('error', fail);
    socket.once('close', () => fail(new Error(`the turn keeper closed before "${name}" was granted`)));
    socket.on('data', (chunk: string) => {
      seen += chunk;
      if (!seen.includes(GRANTED)) return;
      clearTimeout(timer);
      socket.removeAllListeners('close');
      socket.removeAllListeners('error');
      socket.on('error', () => undefined);
      resolve();
    });
    socket.once('connect', () => socket.write(`${name}\n`));
  });
  afterAll(release);
}
