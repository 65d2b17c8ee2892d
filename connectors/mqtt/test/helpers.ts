/**
 * The real Mosquitto this machine (and CI) runs on 127.0.0.1:1883 (JUNCTION_TEST_MQTT_URL overrides).
 * No broker is a clear failure, never a skip.
 */
import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import mqtt, { type MqttClient } from 'mqtt';

export const MQTT_URL = process.env.JUNCTION_TEST_MQTT_URL ?? 'mqtt://127.0.0.1:1883';

export function unique(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

/** A connected plain client (publisher, or a bare subscriber). */
export async function client(opts: mqtt.IClientOptions = {}): Promise<MqttClient> {
  try {
    return await mqtt.connectAsync(MQTT_URL, { reconnectPeriod: 0, connectTimeout: 5000, ...opts });
  } catch (err) {
    throw new Error(`Mosquitto is not reachable at ${MQTT_URL} (.ci/run starts it): ${String(err)}`, { cause: err });
  }
}

/** Removes a persistent session from the broker: connect clean with its id, then disconnect. */
export async function dropSession(clientId: string, protocolVersion: 4 | 5 = 5): Promise<void> {
  const c = await client({
    clientId,
    clean: true,
    protocolVersion,
    ...(protocolVersion === 5 ? { properties: { sessionExpiryInterval: 0 } } : {}),
  });
  await c.endAsync();
}

export async function until<T>(f: () => Promise<T> | T, what: string, timeoutMs = 30_000): Promise<NonNullable<Awaited<T>>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v) return v as NonNullable<Awaited<T>>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A Mosquitto process of the test's own (its config, port and data dir), for refusals and restarts. */
export class PrivateMosquitto {
  private child: import('node:child_process').ChildProcess | undefined;
  port = 0;
  dir = '';

  constructor(private readonly conf: string) {}

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    const { spawn } = await import('node:child_process');
    const { mkdtemp, writeFile } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const net = await import('node:net');
    if (!this.dir) {
      this.dir = await mkdtemp(join(tmpdir(), 'junction-mosquitto-'));
      // Started as root, Mosquitto drops to its own user: it must be able to write its persistence file here.
      await (await import('node:fs/promises')).chmod(this.dir, 0o777);
    }
    if (!this.port) {
      const s = net.createServer();
      await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
      this.port = (s.address() as import('node:net').AddressInfo).port;
      await new Promise<void>((r) => s.close(() => r()));
    }
    const file = join(this.dir, 'mosquitto.conf');
    await writeFile(file, `listener ${this.port} 127.0.0.1\npersistence true\npersistence_location ${this.dir}/\n${this.conf}\n`);
    const bin = ['/usr/sbin/mosquitto', '/usr/bin/mosquitto'].find((p) => require_exists(p));
    if (!bin) throw new Error('the mosquitto binary is not installed (.ci/run installs it)');
    this.child = spawn(bin, ['-c', file], { stdio: 'ignore' });
    await until(
      async () => {
        const ok = await new Promise<boolean>((r) => {
          const c = net.connect(this.port, '127.0.0.1', () => {
            c.destroy();
            r(true);
          });
          c.on('error', () => r(false));
        });
        return ok;
      },
      `mosquitto on ${this.port}`,
      10_000,
    );
    return this;
  }

  /** Stops it and removes its directory. */
  async dispose(): Promise<void> {
    await this.stop();
    if (this.dir) await (await import('node:fs/promises')).rm(this.dir, { recursive: true, force: true });
  }

  /** SIGTERM (Mosquitto saves its persistence file) and wait for the exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill(signal);
    await exited;
  }
}

function require_exists(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}
