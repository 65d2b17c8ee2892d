/**
 * s3rver (a local S3 server) in a child process, for connector tests with the real AWS SDK: on
 * 127.0.0.1, port 0 the first time; `stop()` SIGKILLs it and `start()` brings it back on the same
 * port with the same data, so a test can take S3 away for a while. See s3rver-main.mjs.
 *
 * Clients talk to it through an S3Proxy (./s3-proxy.ts) in this process, which adds what s3rver
 * lacks with S3's semantics — AbortMultipartUpload (a late Complete of an aborted upload fails),
 * ListMultipartUploads, conditional writes — and can hold requests (late writes). `endpoint` is the
 * proxy's; `stop()` takes both away (connections refused), `start()` brings both back on their ports.
 * ListParts is still missing. Paged
 * listings work because the child runs with --openssl-legacy-provider.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { S3Proxy } from './s3-proxy.js';

const MAIN = fileURLToPath(new URL('./s3rver-main.mjs', import.meta.url));

export interface S3rverProcess {
  /** s3rver's own port. */
  readonly port: number;
  /** The proxy's `http://127.0.0.1:<port>`: what clients use. */
  readonly endpoint: string;
  /** The proxy in front of s3rver (S3's semantics s3rver lacks; held requests). */
  readonly proxy: S3Proxy;
  /** Where s3rver keeps buckets and objects. */
  readonly directory: string;
  /** Whether the server is up. */
  readonly running: boolean;
  /** SIGKILLs the server (the data stays). */
  stop(): Promise<void>;
  /** Starts it again on the same port and directory. */
  start(): Promise<void>;
  /** Stops it and deletes its directory. */
  close(): Promise<void>;
}

async function launch(directory: string, port: number): Promise<{ child: ChildProcess; port: number }> {
  for (let attempt = 0; ; attempt++) {
    const child = spawn(process.execPath, ['--openssl-legacy-provider', MAIN, directory, String(port)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    try {
      const got = await new Promise<number>((resolve, reject) => {
        let out = '';
        child.stdout?.on('data', (d: Buffer) => {
          out += d.toString();
          const line = out.split('\n').find((l) => l.startsWith('{'));
          if (line) resolve((JSON.parse(line) as { port: number }).port);
        });
        child.once('exit', (code) => reject(new Error(`s3rver exited (${code}): ${stderr.trim()}`)));
      });
      child.removeAllListeners('exit');
      return { child, port: got };
    } catch (err) {
      // The port of a server we just killed can take a moment to be free again.
      if (port !== 0 && attempt < 20 && /EADDRINUSE/.test(String(err))) {
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      throw err;
    }
  }
}

/** Starts s3rver in a child process. Call `close()` when done. */
/**
 * Options for the AWS SDK's S3Client against this server: path-style, its fixed key, and checksums
 * only when required (s3rver does not know the newer default ones).
 */
export function s3ClientConfig(s3: S3rverProcess) {
  return {
    endpoint: s3.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    requestChecksumCalculation: 'WHEN_REQUIRED' as const,
    responseChecksumValidation: 'WHEN_REQUIRED' as const,
  };
}

export async function startS3rver(opts: { directory?: string } = {}): Promise<S3rverProcess> {
  const directory = opts.directory ?? (await mkdtemp(join(tmpdir(), 'junction-s3rver-')));
  let { child, port } = await launch(directory, 0);
  const proxy = await new S3Proxy(`http://127.0.0.1:${port}`).start();
  let running = true;
  const kill = async () => {
    if (!running) return;
    running = false;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  };
  let proxyUp = true;
  return {
    get port() {
      return port;
    },
    get endpoint() {
      return proxy.url;
    },
    proxy,
    directory,
    get running() {
      return running;
    },
    async stop() {
      // Clients see S3 gone: connections refused.
      if (proxyUp) await proxy.down();
      proxyUp = false;
      await kill();
    },
    async start() {
      if (!running) {
        ({ child, port } = await launch(directory, port));
        proxy.retarget(`http://127.0.0.1:${port}`);
        running = true;
      }
      if (!proxyUp) await proxy.up();
      proxyUp = true;
    },
    async close() {
      if (proxyUp) await proxy.close();
      proxyUp = false;
      await kill();
      await rm(directory, { recursive: true, force: true });
    },
  };
}
