import { afterEach, describe, expect, it, vi } from 'vitest';
import { BufferShelf, roomy } from '../src/buffer-shelf.js';

describe('buffer shelf', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('gives the smallest spare that fits, keeps at most max of at most maxBytes, ignores detached ones', () => {
    const shelf = new BufferShelf(2, 1000);
    expect(shelf.take(10)).toBeUndefined();
    const a = new ArrayBuffer(100);
    const b = new ArrayBuffer(300);
    shelf.give(b);
    shelf.give(a);
    expect(shelf.take(50)).toBe(a);
    expect(shelf.take(50)).toBe(b);
    expect(shelf.reused).toBe(2);
    // Beyond max the smallest goes; beyond maxBytes nothing is kept; a transferred-away buffer neither.
    shelf.give(new ArrayBuffer(200));
    shelf.give(new ArrayBuffer(400));
    shelf.give(new ArrayBuffer(600));
    expect(shelf.size).toBe(2);
    expect(shelf.take(150)?.byteLength).toBe(400);
    shelf.give(new ArrayBuffer(2000));
    const gone = new ArrayBuffer(64);
    structuredClone(gone, { transfer: [gone] });
    shelf.give(gone);
    expect(shelf.size).toBe(1);
    // A fresh buffer has an eighth to spare, in whole pages.
    expect(roomy(100).byteLength).toBe(100);
    expect(roomy(1 << 20).byteLength).toBe(Math.ceil(((1 << 20) * 1.125) / 4096) * 4096);
    expect(shelf.takeOrAlloc(10_000).byteLength).toBeGreaterThanOrEqual(10_000);
  });

  it('buffer / release: shelved between 64 KiB and maxBytes; a slab slice or a buffer too large is never shelved', () => {
    const shelf = new BufferShelf(4, 1 << 20);
    const small = shelf.buffer(100);
    expect(small.buffer.byteLength).toBeLessThan(65_536); // Node's shared slab: other Buffers live in it
    shelf.release(small);
    shelf.release(small.subarray(10));
    const huge = shelf.buffer(2 << 20);
    shelf.release(huge);
    expect(shelf.size).toBe(0);
    const mid = shelf.buffer(100_000);
    expect(mid.byteLength).toBeGreaterThanOrEqual(100_000);
    shelf.release(mid.subarray(0, 500)); // a view of it gives back the whole buffer
    expect(shelf.size).toBe(1);
    expect(shelf.buffer(90_000).buffer).toBe(mid.buffer);
  });

  it('drops every spare once unused for idleMs, and not while in use', () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    const shelf = new BufferShelf(4, 1 << 20, 1000);
    shelf.give(new ArrayBuffer(100));
    shelf.give(new ArrayBuffer(200));
    vi.advanceTimersByTime(600);
    // Used: the idle time starts again.
    const t = shelf.take(150)!;
    vi.advanceTimersByTime(600);
    expect(shelf.size).toBe(1);
    shelf.give(t);
    vi.advanceTimersByTime(999);
    expect(shelf.size).toBe(2);
    vi.advanceTimersByTime(2);
    expect(shelf.size).toBe(0);
    // And it starts watching again with the next spare.
    shelf.give(new ArrayBuffer(100));
    vi.advanceTimersByTime(1001);
    expect(shelf.size).toBe(0);
  });
});
