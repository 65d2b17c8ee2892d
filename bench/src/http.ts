/**
 * The smallest HTTP/1.1 client the bench needs: node:http with a keep-alive agent, whole bodies in
 * and out. No retries: a failed request fails the scenario.
 */
import { Agent, request } from 'node:http';

export interface HttpResponse {
  status: number;
  body: Buffer;
}

export class Http {
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 64, keepAliveMsecs: 10_000 });
  private readonly host: string;
  private readonly port: number;

  /** Sent with every request (the bench's auth row: `authorization`). */
  private readonly defaults: Record<string, string>;

  constructor(baseUrl: string, defaults: Record<string, string> = {}) {
    this.defaults = defaults;
    const u = new URL(baseUrl);
    this.host = u.hostname;
    this.port = Number(u.port);
  }

  /** Sends one request; resolves with the status and the whole body (any status). */
  send(method: string, path: string, body?: Buffer | string, headers: Record<string, string> = {}): Promise<HttpResponse> {
    return new Promise((resolve, reject) => {
      const h: Record<string, string | number> = { ...this.defaults, ...headers };
      if (body !== undefined) h['content-length'] = Buffer.byteLength(body);
      const req = request({ host: this.host, port: this.port, method, path, headers: h, agent: this.agent }, (res) => {
        // Like @junction/client: one buffer sized from content-length, each chunk copied in as it arrives
        // (no list of chunks held to the end and concatenated); a one-chunk body is kept as is.
        const announced = Number(res.headers['content-length']);
        let buf: Buffer | undefined;
        let first: Buffer | undefined;
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          if (size === 0 && c.length === announced) first = c;
          else if (buf !== undefined || (size === 0 && Number.isSafeInteger(announced) && announced > c.length)) {
            buf ??= Buffer.allocUnsafe(announced);
            if (size + c.length > buf.length) {
              res.destroy(new Error(`answer longer than its content-length ${announced}`));
              return;
            }
            c.copy(buf, size);
          } else chunks.push(c);
          size += c.length;
        });
        res.on('end', () => {
          const body = first ?? buf?.subarray(0, size) ?? (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
          resolve({ status: res.statusCode ?? 0, body });
        });
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  /** JSON in, JSON out; throws with the broker's answer on a non-2xx status. */
  async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.send(
      method,
      path,
      body === undefined ? undefined : JSON.stringify(body),
      body === undefined ? {} : { 'content-type': 'application/json' },
    );
    if (res.status < 200 || res.status > 299)
      throw new Error(`${method} ${path}: HTTP ${res.status} ${res.body.toString('utf8').slice(0, 500)}`);
    return (res.body.length ? JSON.parse(res.body.toString('utf8')) : undefined) as T;
  }

  close(): void {
    this.agent.destroy();
  }
}
