/**
 * Live streams of the dashboard over Server-Sent Events: one stream per page.
 *
 * A stream key (`overview`, `station:<name>`, `connectors`) has one sampler and one timer, shared by
 * every client watching it: N open dashboards cost one snapshot per interval, not N. The timer runs only
 * while someone watches (the last client to leave stops it), so an idle broker pays nothing. A snapshot
 * never takes more than 1/MAX_SAMPLING_SHARE of the broker's time: the next one waits at least
 * MAX_SAMPLING_SHARE − 1 times as long as the last took (a 10,000-station overview that takes 200 ms
 * comes every 10 s, not every 2). A snapshot
 * is serialized once and written to every subscriber, and only when it differs from the previous one
 * (a comment line keeps idle connections open through proxies). A client that does not read its socket
 * is dropped once its unsent bytes pass MAX_BUFFERED_BYTES: memory stays bounded per client.
 */
import type { ServerResponse } from 'node:http';

/** What a stream computes at each tick. */
export interface Sampler<T> {
  sample(): Promise<T>;
}

export interface LiveHubOptions {
  /** Milliseconds between snapshots. Default 2000. */
  intervalMs?: number | undefined;
  /** Most concurrent subscribers (all keys). Default 1000; beyond it `subscribe` answers false. */
  maxSubscribers?: number | undefined;
  /**
   * A stream ends after this long (the client reconnects at once): its credential is checked again
   * then, so a revoked or expired token does not keep a stream open. Default 5 minutes.
   */
  maxStreamMs?: number | undefined;
  /** Called when a sample fails (logged by the caller). */
  onError?: ((key: string, err: unknown) => void) | undefined;
}

/** Unsent bytes after which a slow client is dropped. */
export const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;
/** A stream's sampling takes at most 1/this of the time (see the file comment). */
export const MAX_SAMPLING_SHARE = 50;
/** Keep-alive comment period. */
const KEEPALIVE_MS = 15_000;

interface Stream {
  sampler: Sampler<unknown>;
  clients: Set<ServerResponse>;
  timer: NodeJS.Timeout | undefined;
  last: string | undefined;
  /** The last snapshot without its `at`: what "changed" compares. */
  lastBody: string | undefined;
  /** The last snapshot itself (for one-off JSON requests). */
  lastSnapshot: unknown;
  running: boolean;
  lastWrite: number;
}

export class LiveHub {
  private readonly streams = new Map<string, Stream>();
  private readonly intervalMs: number;
  private readonly maxSubscribers: number;
  private subscribers = 0;
  private closed = false;
  /** Snapshots computed since the hub was made (for tests and the bench). */
  samples = 0;

  constructor(private readonly options: LiveHubOptions = {}) {
    this.intervalMs = options.intervalMs ?? 2000;
    this.maxSubscribers = options.maxSubscribers ?? 1000;
  }

  /** Streams with at least one client. */
  get activeStreams(): number {
    return this.streams.size;
  }

  get clients(): number {
    return this.subscribers;
  }

  /**
   * Adds `res` (headers not sent yet) to the stream `key`, making the stream with `makeSampler` when it
   * is new. Writes the SSE headers and, at once, the stream's latest snapshot (or computes the first).
   * The client leaves when its connection closes. False when the hub is full or closed (nothing written).
   */
  subscribe(key: string, res: ServerResponse, makeSampler: () => Sampler<unknown>): boolean {
    if (this.closed || this.subscribers >= this.maxSubscribers) return false;
    let stream = this.streams.get(key);
    if (!stream) {
      stream = {
        sampler: makeSampler(),
        clients: new Set(),
        timer: undefined,
        last: undefined,
        lastBody: undefined,
        lastSnapshot: undefined,
        running: false,
        lastWrite: 0,
      };
      this.streams.set(key, stream);
    }
    const s = stream;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write(`retry: ${Math.max(1000, this.intervalMs)}\n\n`);
    s.clients.add(res);
    this.subscribers++;
    const end = setTimeout(() => res.end(), this.options.maxStreamMs ?? 5 * 60_000);
    end.unref();
    res.on('close', () => {
      clearTimeout(end);
      this.leave(key, s, res);
    });
    if (s.last !== undefined) res.write(s.last);
    if (!s.timer && !s.running) void this.tick(key, s);
    return true;
  }

  /**
   * One snapshot of `key` without subscribing: the stream's latest when someone watches it (what they
   * were sent), else a fresh one from a new sampler (its rates are 0: they need two samples).
   */
  async snapshot(key: string, makeSampler: () => Sampler<unknown>): Promise<unknown> {
    const s = this.streams.get(key);
    if (s?.lastSnapshot !== undefined) return s.lastSnapshot;
    const snap = await makeSampler().sample();
    this.samples++;
    return snap;
  }

  /** Ends every stream (on server close). */
  close(): void {
    this.closed = true;
    for (const s of this.streams.values()) {
      if (s.timer) clearTimeout(s.timer);
      s.timer = undefined;
      for (const res of s.clients) res.end();
    }
    this.streams.clear();
  }

  private leave(key: string, s: Stream, res: ServerResponse): void {
    if (!s.clients.delete(res)) return;
    this.subscribers--;
    if (s.clients.size === 0) {
      if (s.timer) clearTimeout(s.timer);
      s.timer = undefined;
      if (this.streams.get(key) === s) this.streams.delete(key);
    }
  }

  /** Samples, sends, and schedules the next tick (a sample never overlaps the next one). */
  private async tick(key: string, s: Stream): Promise<void> {
    s.timer = undefined;
    if (s.running || s.clients.size === 0 || this.closed) return;
    s.running = true;
    const started = performance.now();
    try {
      let frame: string;
      let body: string;
      try {
        const snapshot = await s.sampler.sample();
        this.samples++;
        s.lastSnapshot = snapshot;
        const data = JSON.stringify(snapshot);
        // Whether anything but the time changed.
        body = snapshot !== null && typeof snapshot === 'object' && 'at' in snapshot ? JSON.stringify({ ...snapshot, at: 0 }) : data;
        frame = `event: snapshot\ndata: ${data}\n\n`;
      } catch (err) {
        this.options.onError?.(key, err);
        const e = err as { code?: unknown; message?: unknown };
        frame = `event: error\ndata: ${JSON.stringify({ code: typeof e.code === 'string' ? e.code : 'INTERNAL', message: typeof e.message === 'string' ? e.message : 'snapshot failed' })}\n\n`;
        body = frame;
      }
      const now = Date.now();
      const same = body === s.lastBody;
      if (same && now - s.lastWrite < KEEPALIVE_MS) return;
      const out = same ? ': keep-alive\n\n' : frame;
      s.lastBody = body;
      if (!same) s.last = frame;
      s.lastWrite = now;
      for (const res of s.clients) {
        if (res.writableLength > MAX_BUFFERED_BYTES) {
          res.destroy();
          continue;
        }
        res.write(out);
      }
    } finally {
      s.running = false;
      const took = performance.now() - started;
      if (s.clients.size > 0 && !this.closed && this.streams.get(key) === s) {
        s.timer = setTimeout(() => void this.tick(key, s), Math.max(this.intervalMs - took, took * (MAX_SAMPLING_SHARE - 1)));
      }
    }
  }
}
