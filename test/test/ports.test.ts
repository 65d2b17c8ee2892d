/** Ports for child processes: outside the ephemeral range, never twice, and a taken port recognised. */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PortTaken, startBroker } from '../src/index.js';
import { ephemeralRange, freePort, pickRange } from '../src/ports.js';

describe('freePort', () => {
  it('reads the kernel range, and picks below it (above it when below is too small)', () => {
    expect(ephemeralRange('32768\t60999\n')).toEqual([32_768, 60_999]);
    expect(ephemeralRange('garbage')).toEqual([32_768, 60_999]);
    expect(pickRange([32_768, 60_999])).toEqual([10_000, 32_767]);
    expect(pickRange([10_500, 60_000])).toEqual([60_001, 65_535]);
    expect(pickRange([10_500, 64_000])).toEqual([10_000, 65_535]);
  });

  it('hands out bindable ports outside the ephemeral range (where there is room), none twice', async () => {
    const ephemeral = ephemeralRange();
    const [from, to] = pickRange(ephemeral);
    const outside = to < ephemeral[0] || from > ephemeral[1];
    const ports = await Promise.all(Array.from({ length: 200 }, () => freePort()));
    expect(new Set(ports).size).toBe(200);
    for (const p of ports) {
      expect(p >= from && p <= to, `port ${p} in ${from}-${to}`).toBe(true);
      if (outside) expect(p < ephemeral[0] || p > ephemeral[1], `port ${p} in the ephemeral ${ephemeral.join('-')}`).toBe(true);
    }
    const srv = createServer().listen(ports[0], '127.0.0.1');
    await once(srv, 'listening');
    srv.close();
  });
});

describe('startBroker on a port someone else holds', () => {
  it('fails with PortTaken (the error it starts again on another port after)', async () => {
    const holder = createServer().listen(await freePort(), '127.0.0.1');
    await once(holder, 'listening');
    const port = (holder.address() as { port: number }).port;
    const dataDir = await mkdtemp(join(tmpdir(), 'junction-port-taken-'));
    try {
      const err = await startBroker({ dataDir, port }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(PortTaken);
      expect(String(err)).toMatch(/LISTEN_FAILED.*EADDRINUSE/);
    } finally {
      holder.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 60_000);
});
