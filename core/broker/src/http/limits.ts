/**
 * Bounds on what requests may cost before a route runs: memory for large bodies (a gate on the bytes of
 * large bodies being received and parsed at once) and bodies on methods that take none.
 */
import type { FastifyReply, FastifyRequest, onRequestAsyncHookHandler } from 'fastify';
import { JunctionError } from '../errors.js';
import { bodyInvalid, HttpErrorCode } from './errors.js';

/** Bodies up to this size pass the gate without counting (small requests are never held up). */
export const GATE_FREE_BYTES = 1024 * 1024;
/** A JSON body counts this many times its size: parsing holds several times the text (see routes.ts). */
export const JSON_BODY_WEIGHT = 4;

export interface BodyGateOptions {
  /** Most bytes of large bodies being received and parsed at once. Default 128 MiB. */
  maxBytes?: number | undefined;
  /** How long a request may wait for room before it is answered 503 SERVER_BUSY. Default 30 s. */
  maxWaitMs?: number | undefined;
}

/**
 * A budget of bytes shared by the routes that take large bodies (produce): a request whose body is
 * larger than GATE_FREE_BYTES reserves its declared length (the route's body limit when it declares
 * none: chunked) before its body is read, and gives it back when its answer is sent or it fails. While
 * the budget is spent, requests wait (their bodies stay in the socket, not in memory); one that waits
 * longer than `maxWaitMs` answers 503 SERVER_BUSY (retryable). A single body larger than the whole
 * budget is admitted alone. So what JSON parsing and decoding of large bodies holds at once is bounded
 * by the budget (times the parse's expansion), however many clients send at once.
 */
export class BodyGate {
  readonly maxBytes: number;
  private readonly maxWaitMs: number;
  private used = 0;
  private readonly waiting: { bytes: number; grant: () => void }[] = [];

  constructor(options: BodyGateOptions = {}) {
    this.maxBytes = options.maxBytes ?? 128 * 1024 * 1024;
    this.maxWaitMs = options.maxWaitMs ?? 30_000;
  }

  /** Bytes reserved now (tests and metrics). */
  get inUse(): number {
    return this.used;
  }

  private fits(bytes: number): boolean {
    return this.used === 0 || this.used + bytes <= this.maxBytes;
  }

  /** Waits for room for `bytes`; resolves with its release (idempotent). Throws SERVER_BUSY after maxWaitMs. */
  async acquire(bytes: number, signal?: AbortSignal): Promise<() => void> {
    if (this.waiting.length === 0 && this.fits(bytes)) return this.take(bytes);
    return new Promise((resolve, reject) => {
      const entry = {
        bytes,
        grant: () => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          resolve(this.take(bytes));
        },
      };
      const leave = (err: JunctionError): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        const i = this.waiting.indexOf(entry);
        if (i >= 0) this.waiting.splice(i, 1);
        this.pump();
        reject(err);
      };
      const timer = setTimeout(
        () =>
          leave(
            new JunctionError(HttpErrorCode.SERVER_BUSY, `the server is receiving ${this.used} bytes of request bodies; try again`, {
              retryable: true,
            }),
          ),
        this.maxWaitMs,
      );
      const onAbort = (): void => leave(new JunctionError(HttpErrorCode.REQUEST_ABORTED, 'the client went away while its request waited'));
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(entry);
    });
  }

  private take(bytes: number): () => void {
    this.used += bytes;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.used -= bytes;
      this.pump();
    };
  }

  private pump(): void {
    while (this.waiting.length > 0 && this.fits(this.waiting[0]!.bytes)) this.waiting.shift()!.grant();
  }
}

/**
 * An onRequest hook for a route that takes large bodies: reserves the body's bytes in `gate` before the
 * body is read (see BodyGate) and releases them when the request ends, whichever way.
 */
export function gateLargeBodies(gate: BodyGate, bodyLimit: number): onRequestAsyncHookHandler {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const length = Number(request.headers['content-length'] ?? NaN);
    const declared = Number.isFinite(length) && length >= 0 ? length : request.headers['transfer-encoding'] !== undefined ? bodyLimit : 0;
    if (declared <= GATE_FREE_BYTES) return;
    const type = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    const weight = type === 'application/json' ? JSON_BODY_WEIGHT : 1;
    const controller = new AbortController();
    const onClose = (): void => controller.abort();
    request.raw.once('close', onClose);
    let release: () => void;
    try {
      release = await gate.acquire(Math.min(declared, bodyLimit) * weight, controller.signal);
    } finally {
      request.raw.off('close', onClose);
    }
    reply.raw.once('close', release);
  };
}

/** Methods whose requests carry no body (RFC 9110 gives a body on them no meaning). */
const BODYLESS = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS']);

/** Route config: this DELETE route takes a body. */
export interface BodyConfig {
  acceptsBody?: boolean | undefined;
}

/**
 * An onRequest hook (core/server installs it at the root): a GET, HEAD, OPTIONS or DELETE request that
 * carries a body answers 400 BODY_INVALID — unless its route says it takes one (`config.acceptsBody`).
 * The body is read and dropped first (up to `maxBytes`; a longer one closes the connection), so the
 * client gets the answer on a connection that stays usable.
 */
export function refuseUnexpectedBodies(maxBytes: number): onRequestAsyncHookHandler {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    if (!BODYLESS.has(request.method)) return;
    const length = Number(request.headers['content-length'] ?? 0);
    const chunked = request.headers['transfer-encoding'] !== undefined;
    if (!chunked && !(length > 0)) return;
    if ((request.routeOptions.config as BodyConfig | undefined)?.acceptsBody === true) return;
    const read = await drain(request, maxBytes);
    if (!read) reply.header('connection', 'close');
    throw bodyInvalid('', `${request.method} requests take no body; pass parameters in the path or query`);
  };
}

/** Reads and drops a request body; false when it was longer than `maxBytes` (or the client went away). */
function drain(request: FastifyRequest, maxBytes: number): Promise<boolean> {
  return new Promise((resolve) => {
    const raw = request.raw;
    let seen = 0;
    const done = (ok: boolean): void => {
      raw.off('data', onData);
      raw.off('end', onEnd);
      raw.off('error', onEnd);
      raw.off('close', onEnd);
      if (!ok) raw.pause();
      resolve(ok);
    };
    const onData = (chunk: Buffer): void => {
      seen += chunk.length;
      if (seen > maxBytes) done(false);
    };
    const onEnd = (): void => done(raw.complete);
    raw.on('data', onData);
    raw.on('end', onEnd);
    raw.on('error', onEnd);
    raw.on('close', onEnd);
  });
}
