/**
 * The one place the client touches the network. A Transport sends one HTTP request and returns the
 * whole answer, whatever its status; it rejects only when no full answer arrived (NETWORK_ERROR,
 * TIMEOUT, ABORTED). Tests inject their own Transport to drive the producer and consumer without a
 * broker.
 *
 * The default is node:http with a keep-alive Agent: on Node 20 it serves many small requests faster
 * than the global fetch (undici) — see the client README for the numbers we measured.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import { ClientErrorCode, JunctionApiError, networkError } from './errors.js';
import { abortedError } from './backoff.js';
import { BodyReceiver } from './body.js';

export interface TransportRequest {
  method: string;
  /** Path and query, starting with "/". */
  path: string;
  headers: Record<string, string>;
  body?: Uint8Array | undefined;
  /** Give up (TIMEOUT) when no full answer arrived after this long. */
  timeoutMs: number;
  signal?: AbortSignal | undefined;
}

export interface TransportResponse {
  status: number;
  /** Lower-case header names. */
  headers: Record<string, string | undefined>;
  body: Buffer;
}

export interface Transport {
  request(req: TransportRequest): Promise<TransportResponse>;
  /** Releases sockets. Requests still running may fail with NETWORK_ERROR. */
  close(): void;
}

export interface HttpTransportOptions {
  /** Base URL of the broker, e.g. `http://127.0.0.1:8080`. A path prefix is kept. */
  url: string | URL;
  /** Use this Agent instead of the transport's own keep-alive Agent (it is then not destroyed on close). */
  agent?: http.Agent | undefined;
}

/** A Transport over node:http / node:https with a keep-alive Agent. */
export class HttpTransport implements Transport {
  private readonly base: URL;
  private readonly prefix: string;
  private readonly agent: http.Agent;
  private readonly ownAgent: boolean;
  private readonly requestFn: typeof http.request;

  constructor(opts: HttpTransportOptions) {
    this.base = new URL(opts.url);
    if (this.base.protocol !== 'http:' && this.base.protocol !== 'https:') {
      throw new JunctionApiError(ClientErrorCode.INVALID_INPUT, `url must be http: or https:, got ${this.base.protocol}`);
    }
    this.prefix = this.base.pathname.replace(/\/+$/, '');
    const secure = this.base.protocol === 'https:';
    this.requestFn = secure ? https.request : http.request;
    this.ownAgent = opts.agent === undefined;
    // scheduling 'lifo' reuses the most recently used socket, so idle sockets age out instead of
    // every socket staying barely alive (and racing the server's keep-alive timeout).
    this.agent = opts.agent ?? new (secure ? https.Agent : http.Agent)({ keepAlive: true, scheduling: 'lifo', maxFreeSockets: 64 });
  }

  request(req: TransportRequest): Promise<TransportResponse> {
    return new Promise<TransportResponse>((resolve, reject) => {
      if (req.signal?.aborted) {
        reject(abortedError());
        return;
      }
      let done = false;
      const headers: Record<string, string | number> = { ...req.headers };
      if (req.body !== undefined) headers['content-length'] = req.body.byteLength;
      const r = this.requestFn({
        protocol: this.base.protocol,
        hostname: this.base.hostname,
        port: this.base.port,
        method: req.method,
        path: this.prefix + req.path,
        headers,
        agent: this.agent,
      });
      const finish = (err: JunctionApiError | undefined, res?: TransportResponse) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        req.signal?.removeEventListener('abort', onAbort);
        if (err) {
          r.destroy();
          reject(err);
        } else resolve(res!);
      };
      const onAbort = () => finish(abortedError());
      const timer = setTimeout(
        () =>
          finish(
            new JunctionApiError(ClientErrorCode.TIMEOUT, `${req.method} ${req.path} got no answer within ${req.timeoutMs} ms`, {
              retryable: true,
            }),
          ),
        req.timeoutMs,
      );
      req.signal?.addEventListener('abort', onAbort, { once: true });
      r.on('error', (err) => finish(networkError(err, req.method, req.path)));
      r.on('response', (res) => {
        const received = new BodyReceiver(res);
        res.on('data', (c: Buffer) => received.push(c));
        res.on('error', (err) => finish(networkError(err, req.method, req.path)));
        res.on('aborted', () => finish(networkError(new Error('answer cut short'), req.method, req.path)));
        res.on('end', () => {
          if (!res.complete) {
            finish(networkError(new Error('answer cut short'), req.method, req.path));
            return;
          }
          const h: Record<string, string | undefined> = {};
          for (const [k, v] of Object.entries(res.headers)) h[k] = Array.isArray(v) ? v.join(', ') : v;
          finish(undefined, {
            status: res.statusCode ?? 0,
            headers: h,
            body: received.body(),
          });
        });
      });
      if (req.body !== undefined) r.end(req.body);
      else r.end();
    });
  }

  close(): void {
    if (this.ownAgent) this.agent.destroy();
  }
}
