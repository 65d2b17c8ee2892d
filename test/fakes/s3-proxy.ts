/**
 * S3's semantics that s3rver lacks, as an HTTP proxy in front of it (127.0.0.1, port 0), so they hold
 * for every client and across processes (a writer killed with SIGKILL, a new one started):
 *
 * - multipart uploads are tracked from CreateMultipartUpload answers; **AbortMultipartUpload** ends an
 *   open upload (s3rver answers 405), and UploadPart / CompleteMultipartUpload of an aborted or
 *   completed upload answer 404 `NoSuchUpload`, as S3 does — so an abort fences a late Complete;
 * - **ListMultipartUploads** (s3rver answers 501) lists the open ones (`prefix` honoured);
 * - **conditional writes**: PutObject / CompleteMultipartUpload with `If-None-Match: *` answer 412
 *   `PreconditionFailed` when the key exists (s3rver ignores the header);
 * - **late writes** (see ./hold.ts): `holdWrites(match)` holds the matching requests — received whole,
 *   not forwarded — until `release()` forwards them in order and drops their answers: the client
 *   connection stays silent, as for a writer killed after sending them.
 *
 * Everything else is forwarded byte for byte (SigV4 signs the Host header, which is passed through).
 * `log` records each request's operation and key; `uploads` the state of each upload; `intercept` lets a
 * test act before a request is served, or answer an error instead.
 */
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Holds, type HeldWrites } from './hold.js';

/** What the proxy knows of a request. */
export interface S3Request {
  method: string;
  bucket: string;
  /** The object key (decoded), '' for a bucket request. */
  key: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  /** CreateMultipartUpload, UploadPart, CompleteMultipartUpload, AbortMultipartUpload, ListMultipartUploads, PutObject, … */
  op: string;
}

export interface UploadState {
  bucket: string;
  key: string;
  initiated: string;
  state: 'open' | 'completed' | 'aborted';
}

function opOf(method: string, key: string, q: URLSearchParams): string {
  if (key === '') {
    if (method === 'GET' && q.has('uploads')) return 'ListMultipartUploads';
    if (method === 'GET') return 'ListObjects';
    return `${method} bucket`;
  }
  if (method === 'POST' && q.has('uploads')) return 'CreateMultipartUpload';
  if (method === 'PUT' && q.has('uploadId')) return 'UploadPart';
  if (method === 'POST' && q.has('uploadId')) return 'CompleteMultipartUpload';
  if (method === 'DELETE' && q.has('uploadId')) return 'AbortMultipartUpload';
  if (method === 'PUT') return 'PutObject';
  if (method === 'GET') return 'GetObject';
  if (method === 'HEAD') return 'HeadObject';
  if (method === 'DELETE') return 'DeleteObject';
  return method;
}

const xml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export class S3Proxy {
  /** UploadId → its state. */
  readonly uploads = new Map<string, UploadState>();
  /** Every request seen: operation and key, in order. */
  readonly log: { op: string; key: string }[] = [];
  private server!: Server;
  private readonly sockets = new Set<Socket>();
  private readonly holds = new Holds();
  private match: (r: S3Request) => boolean = () => false;
  /**
   * Called before each request is served: may act first (e.g. put a foreign object under the key a
   * Complete is about to write) or answer an S3 error instead of serving it.
   */
  intercept: ((r: S3Request) => Promise<{ status: number; code: string } | void> | { status: number; code: string } | void) | undefined;
  /** false: ListMultipartUploads answers 501 NotImplemented (as s3rver and some S3-compatible stores do). */
  listsUploads = true;
  url = '';

  /** @param target s3rver's endpoint, e.g. `http://127.0.0.1:4568` (it may change: see `retarget`). */
  constructor(private target: string) {}

  async start(port = 0): Promise<this> {
    this.server = createServer(
      (req, res) =>
        void this.handle(req, res).catch((err: unknown) => {
          if (!res.headersSent) this.error(res, 500, 'InternalError', String(err));
          else res.destroy();
        }),
    );
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((r) => this.server.listen(port, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  /** Stops listening (connections refused, open ones dropped), as S3 gone away; `up()` listens again on the same port. */
  async down(): Promise<void> {
    await this.close();
  }

  async up(): Promise<void> {
    const port = Number(new URL(this.url).port);
    for (let attempt = 0; ; attempt++) {
      try {
        await this.start(port);
        return;
      } catch (err) {
        // The port of a server just closed can take a moment to be free again.
        if (attempt >= 20 || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  /** Points the proxy at another s3rver endpoint (after a restart on another port). */
  retarget(target: string): void {
    this.target = target;
  }

  /** Uploads neither completed nor aborted. */
  openUploads(): { uploadId: string; key: string }[] {
    return [...this.uploads].filter(([, u]) => u.state === 'open').map(([uploadId, u]) => ({ uploadId, key: u.key }));
  }

  /**
   * Holds the requests `match` accepts from now on until `stop()`; `release()` forwards them in the
   * order received and drops their answers (../hold.ts).
   */
  holdWrites(match: (r: S3Request) => boolean): HeldWrites {
    this.match = match;
    return this.holds.start();
  }

  private error(res: ServerResponse, status: number, code: string, message: string, extra = ''): void {
    const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${xml(message)}</Message>${extra}</Error>`;
    res.writeHead(status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const url = new URL(req.url ?? '/', 'http://x');
    const [, bucket = '', ...rest] = url.pathname.split('/');
    const key = decodeURIComponent(rest.join('/'));
    const method = req.method ?? 'GET';
    const r: S3Request = {
      method,
      bucket: decodeURIComponent(bucket),
      key,
      query: url.searchParams,
      headers: req.headers,
      op: opOf(method, key, url.searchParams),
    };
    this.log.push({ op: r.op, key: r.key });
    const injected = await this.intercept?.(r);
    if (injected) return this.error(res, injected.status, injected.code, `injected ${injected.code}`);
    if (this.holds.holding && this.match(r)) {
      const applied = await this.holds.hold();
      // Its writer is gone: the request takes effect, its answer goes nowhere.
      try {
        await this.serve(req, r, body, null);
      } finally {
        applied();
      }
      return;
    }
    await this.serve(req, r, body, res);
  }

  /** Applies a request with S3's semantics; answers `res` (null: answer nobody). */
  private async serve(req: IncomingMessage, r: S3Request, body: Buffer, res: ServerResponse | null): Promise<void> {
    const sink = res ?? silentResponse();
    const uploadId = r.query.get('uploadId') ?? '';
    switch (r.op) {
      case 'ListMultipartUploads': {
        if (!this.listsUploads)
          return this.error(sink, 501, 'NotImplemented', 'A header you provided implies functionality that is not implemented');
        const prefix = r.query.get('prefix') ?? '';
        const items = [...this.uploads]
          .filter(([, u]) => u.state === 'open' && u.bucket === r.bucket && u.key.startsWith(prefix))
          .sort(([a, ua], [b, ub]) => (ua.key < ub.key ? -1 : ua.key > ub.key ? 1 : a < b ? -1 : 1))
          .map(
            ([id, u]) =>
              `<Upload><Key>${xml(u.key)}</Key><UploadId>${xml(id)}</UploadId><StorageClass>STANDARD</StorageClass><Initiated>${u.initiated}</Initiated></Upload>`,
          )
          .join('');
        const text = `<?xml version="1.0" encoding="UTF-8"?>\n<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>${xml(r.bucket)}</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker><Prefix>${xml(prefix)}</Prefix><MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated>${items}</ListMultipartUploadsResult>`;
        sink.writeHead(200, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(text) });
        sink.end(text);
        return;
      }
      case 'AbortMultipartUpload': {
        const u = this.uploads.get(uploadId);
        if (!u || u.state !== 'open')
          return this.error(
            sink,
            404,
            'NoSuchUpload',
            'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.',
            `<UploadId>${xml(uploadId)}</UploadId>`,
          );
        u.state = 'aborted';
        sink.writeHead(204);
        sink.end();
        return;
      }
      case 'UploadPart':
      case 'CompleteMultipartUpload': {
        const u = this.uploads.get(uploadId);
        if (u && u.state !== 'open')
          return this.error(
            sink,
            404,
            'NoSuchUpload',
            'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.',
            `<UploadId>${xml(uploadId)}</UploadId>`,
          );
        if (r.op === 'CompleteMultipartUpload' && r.headers['if-none-match'] === '*' && (await this.exists(req, r))) {
          return this.error(
            sink,
            412,
            'PreconditionFailed',
            'At least one of the pre-conditions you specified did not hold',
            '<Condition>If-None-Match</Condition>',
          );
        }
        break;
      }
      case 'PutObject':
        if (r.headers['if-none-match'] === '*' && (await this.exists(req, r))) {
          return this.error(
            sink,
            412,
            'PreconditionFailed',
            'At least one of the pre-conditions you specified did not hold',
            '<Condition>If-None-Match</Condition>',
          );
        }
        break;
    }
    const answer = await this.forward(req, body);
    if (answer === undefined) {
      // s3rver is down: the client sees its connection fail, as with S3 unreachable.
      res?.destroy();
      return;
    }
    if (answer.status < 300) {
      if (r.op === 'CreateMultipartUpload') {
        const id = /<UploadId>([^<]+)<\/UploadId>/.exec(answer.body.toString('utf8'))?.[1];
        if (id) this.uploads.set(id, { bucket: r.bucket, key: r.key, initiated: new Date().toISOString(), state: 'open' });
      }
      if (r.op === 'CompleteMultipartUpload') {
        const u = this.uploads.get(uploadId);
        // A Complete racing an Abort: S3 lets exactly one win. Here the abort ran first only if the
        // upload is no longer open, which the check above refused; so this one won.
        if (u) u.state = 'completed';
      }
    }
    const headers = { ...answer.headers };
    delete headers['transfer-encoding'];
    headers['content-length'] = String(answer.body.length);
    sink.writeHead(answer.status, headers);
    sink.end(answer.body);
  }

  private async exists(req: IncomingMessage, r: S3Request): Promise<boolean> {
    // A signed HEAD cannot be forged here; s3rver answers unsigned requests for its own key anyway.
    const a = await this.forwardRaw(
      'HEAD',
      `/${encodeURIComponent(r.bucket)}/${r.key.split('/').map(encodeURIComponent).join('/')}`,
      { host: req.headers.host ?? '' },
      Buffer.alloc(0),
    );
    return a !== undefined && a.status === 200;
  }

  private forward(
    req: IncomingMessage,
    body: Buffer,
  ): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer } | undefined> {
    const headers = { ...req.headers };
    delete headers.expect;
    headers['content-length'] = String(body.length);
    delete headers['transfer-encoding'];
    return this.forwardRaw(req.method ?? 'GET', req.url ?? '/', headers, body);
  }

  private forwardRaw(
    method: string,
    path: string,
    headers: Record<string, string | string[] | undefined>,
    body: Buffer,
  ): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer } | undefined> {
    const t = new URL(this.target);
    return new Promise((resolve) => {
      const out = request({ host: t.hostname, port: Number(t.port), method, path, headers }, (answer) => {
        const chunks: Buffer[] = [];
        answer.on('data', (c: Buffer) => chunks.push(c));
        answer.on('end', () => resolve({ status: answer.statusCode ?? 500, headers: answer.headers, body: Buffer.concat(chunks) }));
        answer.on('error', () => resolve(undefined));
      });
      out.on('error', () => resolve(undefined));
      out.end(body);
    });
  }
}

/** A response that goes nowhere (its client is dead). */
function silentResponse(): ServerResponse {
  return {
    writeHead: () => undefined,
    end: () => undefined,
    setHeader: () => undefined,
    destroy: () => undefined,
    headersSent: false,
  } as unknown as ServerResponse;
}
