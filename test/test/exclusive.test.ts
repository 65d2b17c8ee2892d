/** The turn keeper that lets the files sharing PostgreSQL run beside the rest of the suite, one at a time. */
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { afterAll, describe, expect, it } from 'vitest';
import { GRANTED, startExclusiveServer } from '../src/exclusive-server.js';

const keeper = await startExclusiveServer();
afterAll(() => keeper.close());

interface Asker {
  socket: Socket;
  granted: Promise<void>;
  isGranted(): boolean;
}

async function ask(name: string): Promise<Asker> {
  const socket = connect({ host: '127.0.0.1', port: keeper.port });
  await once(socket, 'connect');
  socket.setEncoding('utf8');
  let granted = false;
  let seen = '';
  const promise = new Promise<void>((resolve) =>
    socket.on('data', (chunk: string) => {
      seen += chunk;
      if (seen.includes(GRANTED)) {
        granted = true;
        resolve();
      }
    }),
  );
  socket.write(`${name}\n`);
  return { socket, granted: promise, isGranted: () => granted };
}

/** A round trip through the keeper: everything it was sent before this has been handled. */
async function settled(): Promise<void> {
  const probe = await ask(`probe-${Math.random()}`);
  await probe.granted;
  probe.socket.destroy();
}

describe('turn keeper', () => {
  it('grants a name to one file at a time, in the order asked, and the next turn when the holder ends', async () => {
    const a = await ask('pg');
    await a.granted;
    const b = await ask('pg');
    const c = await ask('pg');
    await settled();
    expect([b.isGranted(), c.isGranted()]).toEqual([false, false]);
    a.socket.end();
    await b.granted;
    await settled();
    expect(c.isGranted()).toBe(false);
    b.socket.end();
    await c.granted;
    c.socket.end();
  });

  it('a holder whose process dies (socket destroyed) gives its turn back; a waiter that leaves is skipped', async () => {
    const a = await ask('pg2');
    await a.granted;
    const gone = await ask('pg2');
    const b = await ask('pg2');
    await settled();
    gone.socket.destroy();
    await settled();
    expect(b.isGranted()).toBe(false);
    a.socket.destroy();
    await b.granted;
    expect(gone.isGranted()).toBe(false);
    b.socket.end();
  });

  it('different names do not wait for each other', async () => {
    const a = await ask('x');
    const b = await ask('y');
    await Promise.all([a.granted, b.granted]);
    a.socket.end();
    b.socket.end();
  });
});
