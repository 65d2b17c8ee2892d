/**
 * The turn keeper of test/src/exclusive.ts, started by vitest's global setup in its own process (no
 * vitest runtime API here: the global setup does not run inside a test).
 */
import { createServer, type Socket } from 'node:net';

declare module 'vitest' {
  interface ProvidedContext {
    /** Port of the turn keeper on 127.0.0.1 (test/global-setup.ts). */
    exclusivePort: number;
  }
}

/** What the keeper writes to the file whose turn it is. */
export const GRANTED = 'granted\n';

export interface ExclusiveServer {
  port: number;
  close(): Promise<void>;
}

/** The turn keeper: a socket per file asking; the first asker of a name holds it until its socket closes. */
export async function startExclusiveServer(): Promise<ExclusiveServer> {
  const queues = new Map<string, Socket[]>();
  const grant = (name: string) => {
    const q = queues.get(name);
    const head = q?.[0];
    if (head && !head.destroyed) head.write(GRANTED);
  };
  const server = createServer((socket) => {
    let name: string | undefined;
    let asked = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      if (name !== undefined) return;
      asked += chunk;
      const nl = asked.indexOf('\n');
      if (nl === -1) return;
      name = asked.slice(0, nl);
      const q = queues.get(name) ?? [];
      queues.set(name, q);
      q.push(socket);
      if (q.length === 1) grant(name);
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      if (name === undefined) return;
      const q = queues.get(name) ?? [];
      const i = q.indexOf(socket);
      if (i === -1) return;
      q.splice(i, 1);
      if (i === 0) grant(name);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const addr = server.address();
  if (typeof addr !== 'object' || addr === null) throw new Error('the turn keeper has no port');
  return {
    port: addr.port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const q of queues.values()) for (const s of q) s.destroy();
        server.close(() => resolve());
      }),
  };
}
