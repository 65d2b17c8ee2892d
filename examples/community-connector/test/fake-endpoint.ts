/**
 * A webhook receiver on 127.0.0.1 for the tests: records every request, keeps the values it
 * accepted, answers 400 to a poison value, and can be told to fail with a status for a while, or to
 * hold POSTs (received, not taken) until released: a delivery whose sender died before its answer.
 * `<url>/message` expects message-mode POSTs (the body is the value), `<url>/batch` batch-mode JSON.
 */
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { WebhookBatchBody } from '../src/index.js';

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
  status: number;
}

export const POISON = 'POISON';

export class FakeEndpoint {
  readonly requests: RecordedRequest[] = [];
  /** Every value accepted (2xx), in arrival order; repeats stay (at-least-once). */
  readonly accepted: Buffer[] = [];
  private failure: { status: number; headers: Record<string, string> } | undefined;
  /** Requests held unanswered while stalled. */
  private stalled: import('node:http').ServerResponse[] | undefined;
  private holding = false;
  private readonly held: (() => void)[] = [];
  private readonly waiting: (() => void)[] = [];

  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(): Promise<FakeEndpoint> {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (endpoint.stalled) {
          endpoint.stalled.push(res);
          return;
        }
        const body = Buffer.concat(chunks);
        if (endpoint.holding && req.method === 'POST') {
          // Taken at release; the answer goes nowhere (the sender is gone): the connection stays silent.
          endpoint.held.push(() => void endpoint.answer(req.url ?? '/', req.method ?? 'GET', body));
          for (const w of endpoint.waiting.splice(0)) w();
          return;
        }
        const { status, headers } = endpoint.answer(req.url ?? '/', req.method ?? 'GET', body);
        endpoint.requests.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers, body, status });
        res.writeHead(status, headers).end(status < 300 ? 'ok' : `status ${status}`);
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    const endpoint = new FakeEndpoint(server, `http://127.0.0.1:${port}`);
    return endpoint;
  }

  /** Answers every request with `status` until `heal()`. */
  failWith(status: number, headers: Record<string, string> = {}): void {
    this.failure = { status, headers };
  }

  heal(): void {
    this.failure = undefined;
  }

  /** Accepts requests and never answers them, until `unstall()` (which drops the held ones). */
  stall(): void {
    this.stalled ??= [];
  }

  unstall(): void {
    for (const res of this.stalled ?? []) res.destroy();
    this.stalled = undefined;
  }

  /**
   * Holds POSTs from now on (the SDK kit's lateWrite.hold): `held()` once one is, `stop()` lets new ones
   * through, `release()` takes the held ones in order and never answers them.
   */
  hold(): { held: () => Promise<void>; stop: () => void; release: () => Promise<void> } {
    this.holding = true;
    return {
      held: () => new Promise<void>((r) => (this.held.length > 0 ? r() : this.waiting.push(r))),
      stop: () => {
        this.holding = false;
      },
      release: async () => {
        this.holding = false;
        for (const take of this.held.splice(0)) take();
      },
    };
  }

  /** The values accepted, as text. */
  acceptedText(): string[] {
    return this.accepted.map((b) => b.toString('utf8'));
  }

  private answer(path: string, method: string, body: Buffer): { status: number; headers: Record<string, string> } {
    if (this.failure) return this.failure;
    if (method !== 'POST') return { status: 200, headers: {} };
    if (path.startsWith('/batch')) {
      const batch = JSON.parse(body.toString('utf8')) as WebhookBatchBody;
      const values = batch.messages.map((m) =>
        m.value !== undefined ? Buffer.from(m.value, 'utf8') : Buffer.from(m.valueBase64 ?? '', 'base64'),
      );
      if (values.some((v) => v.toString('utf8') === POISON)) return { status: 400, headers: {} };
      this.accepted.push(...values);
      return { status: 200, headers: {} };
    }
    if (body.toString('utf8') === POISON) return { status: 422, headers: {} };
    this.accepted.push(body);
    return { status: 204, headers: {} };
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    this.server.close();
    await once(this.server, 'close');
  }
}
