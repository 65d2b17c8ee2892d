/**
 * A station's dedup index: the msgIds seen inside its dedup window, with where each was stored, in
 * about 38–47 bytes per id (41–44 measured; a Map of strings cost ~250–280).
 *
 * An id is kept as a 128-bit digest: the first 16 bytes of SHA-256(hex(key) ‖ msgId as UTF-8), where
 * `key` is 32 random bytes of the station's index (kept in its snapshot); node:crypto's one-shot `hash`
 * (~0.4 µs an id; a Hash object per id cost ~1.3 µs). Nobody who does not know the key
 * can choose ids that collide. Two different ids share a digest with probability 2^-128 per pair: with
 * n ids in the window, a new id is taken for a duplicate with probability about n / 2^128 (1.2·10^-32
 * at n = 4M). Such a false duplicate is answered like a real one: `duplicate`, naming the partition and
 * offset of the earlier, stored message — never an offset that holds nothing.
 *
 * Layout (typed arrays, no object per id):
 * - a FIFO of chunks in insertion (= time) order; a slot holds the digest (4 × u32), the offset (f64),
 *   the timestamp (u32 ms from its chunk's base) and the partition (u16): 30 bytes. Chunks grow with
 *   the index (64 … 65,536 slots, at most ~1/16 of the ids), so a half-empty chunk wastes little and an
 *   idle station holds one small chunk or none.
 * - an open-addressing table (linear probing, backward-shift deletion) of u32 slot references and u8
 *   tags (8 digest bits, so a probe rarely reads another id's slot), sized a power of two between 4/3×
 *   and 8/3× the ids: 7–13 bytes per id.
 * Expiry pops the oldest slots; at `maxIds` slots the oldest ids leave early (counted in `evicted`).
 */
import { hash, randomBytes } from 'node:crypto';

/** msgIds seen inside a station's dedup window, with where they were stored. */
export interface DedupHit {
  partition: number;
  offset: number;
  timestamp: number;
}

/**
 * A msgId's SHA-256 as a string of 32 latin1 characters, one per byte (the index keeps the first 16):
 * a string, not a Buffer, because node:crypto answers a one-shot hash (Node ≥ 20.12) as one ~3× faster.
 */
export type DedupKey = string;

/** Bytes of the random key of an index. */
export const DEDUP_KEY_BYTES = 32;
/** Bytes of a digest. */
export const DIGEST_BYTES = 16;

const CHUNK_MIN = 64;
const CHUNK_MAX = 65_536;
/** Chunk sequence numbers wrap at this (a slot reference is seq << 16 | position; 0xFFFFFFFF is "empty"). */
const SEQ_MOD = 65_535;
/** With more chunks than this in the FIFO, new chunks get the largest size (keeps the FIFO under SEQ_MOD). */
const MANY_CHUNKS = 4_096;
const EMPTY = 0xffffffff;
const TS_SPAN = 0x1_0000_0000;
const MIN_TABLE = 64;

class Chunk {
  readonly digest: Uint32Array;
  readonly offset: Float64Array;
  readonly ts: Uint32Array;
  readonly partition: Uint16Array;
  used = 0;
  constructor(
    readonly seq: number,
    readonly size: number,
    /** Timestamps of the slots are `base + ts[i]`. */
    readonly base: number,
    /** The global number of slot 0 (slots are numbered in append order over the index's life). */
    readonly start: number,
  ) {
    this.digest = new Uint32Array(size * 4);
    this.offset = new Float64Array(size);
    this.ts = new Uint32Array(size);
    this.partition = new Uint16Array(size);
  }

  get bytes(): number {
    return this.size * 30;
  }
}

/** A consistent view of the slots at one moment (see DedupIndex.view): slot contents never change once written. */
export interface DedupView {
  /** Chunks with the slot range [from, to) of each, oldest first. */
  readonly parts: ReadonlyArray<{ chunk: ChunkReader; from: number; to: number }>;
  /** The global number of the slot after the last one. */
  readonly end: number;
}

/** The partition of a slot whose id was forgotten (its message was not stored): never written, never restored. */
export const DEAD_SLOT = 0xffff;

/** Read access to a chunk's slots (for snapshots). */
export interface ChunkReader {
  readonly digest: Uint32Array;
  readonly offset: Float64Array;
  readonly ts: Uint32Array;
  readonly partition: Uint16Array;
  readonly base: number;
  readonly start: number;
}

export class DedupIndex {
  readonly key: Buffer;
  private readonly prefix: string;
  /** Chunks, oldest first, from `first`. */
  private chunks: Chunk[] = [];
  private first = 0;
  /** Next slot to pop in chunks[first]. */
  private headPos = 0;
  private nextSeq = 0;
  /** Slots ever appended: the global number of the next one. */
  private appended = 0;
  /** Slots between head and tail (live, expired-but-unpopped and dead ones). */
  private slots = 0;
  private table = new Uint32Array(0);
  /**
   * Per table cell, 8 bits of the digest (of its second word): a probe past another id's cell compares
   * these first and only reads that id's slot (a likely cache miss) when they agree (1 in 256).
   */
  private tags = new Uint8Array(0);
  private mask = 0;
  /** References in the table: the ids remembered. */
  private live = 0;
  /** Ids that left the window early because the bound was reached. */
  evicted = 0;

  /**
   * `maxIds`: the most slots (ids) kept; at the bound the oldest leave early. `key`: the digest key
   * (a fresh random one when absent; a restored snapshot brings its own).
   */
  constructor(
    public maxIds: number,
    key?: Buffer,
  ) {
    this.key = key ?? randomBytes(DEDUP_KEY_BYTES);
    this.prefix = this.key.toString('hex');
  }

  /** Ids remembered (inside the window, or expired and not yet dropped). */
  get size(): number {
    return this.live;
  }

  /** Slots ever appended: the global number the next one gets (see view). */
  get appendedSlots(): number {
    return this.appended;
  }

  /** Bytes the index holds in typed arrays (its whole memory but a few hundred bytes of objects). */
  get bytes(): number {
    let n = this.table.byteLength + this.tags.byteLength;
    for (let i = this.first; i < this.chunks.length; i++) n += this.chunks[i]!.bytes;
    return n;
  }

  /** The digest of a msgId under this index's key. */
  digest(msgId: string): DedupKey {
    return hash('sha256', this.prefix + msgId, 'binary');
  }

  /** The earlier message with this id if it is inside the window. */
  lookup(key: DedupKey, now: number, windowMs: number): DedupHit | undefined {
    const ref = this.find(word(key, 0), word(key, 4), word(key, 8), word(key, 12));
    if (ref === EMPTY) return undefined;
    const c = this.chunkOf(ref);
    const pos = ref & 0xffff;
    const timestamp = c.base + c.ts[pos]!;
    if (timestamp <= now - windowMs) return undefined;
    return { partition: c.partition[pos]!, offset: c.offset[pos]!, timestamp };
  }

  /** Remembers an id (replacing what it had); the oldest id leaves early when the index is at its bound. */
  remember(key: DedupKey, hit: DedupHit): void {
    this.rememberDigest(word(key, 0), word(key, 4), word(key, 8), word(key, 12), hit.partition, hit.offset, hit.timestamp);
  }

  /** remember() by the digest's four 32-bit words (little endian), as a snapshot holds them. */
  rememberDigest(d0: number, d1: number, d2: number, d3: number, partition: number, offset: number, timestamp: number): void {
    while (this.slots >= this.maxIds && this.slots > 0) this.popHead(true);
    const ref = this.append(d0, d1, d2, d3, partition, offset, timestamp);
    const tag = d1 & 0xff;
    let i = d0 & this.mask;
    if (this.table.length > 0) {
      for (;;) {
        const r = this.table[i]!;
        if (r === EMPTY) break;
        if (this.tags[i] === tag && this.sameDigest(r, d0, d1, d2, d3)) {
          // A newer message with the same id: it takes the entry (the old slot becomes dead).
          this.table[i] = ref;
          return;
        }
        i = (i + 1) & this.mask;
      }
    }
    if ((this.live + 1) * 4 > this.table.length * 3) {
      this.resize(Math.max(MIN_TABLE, this.table.length * 2));
      i = d0 & this.mask;
      while (this.table[i] !== EMPTY) i = (i + 1) & this.mask;
    }
    this.table[i] = ref;
    this.tags[i] = tag;
    this.live++;
  }

  /** Forgets an id (its message was not stored after all). */
  forget(key: DedupKey): void {
    const i = this.findIndex(word(key, 0), word(key, 4), word(key, 8), word(key, 12));
    if (i < 0) return;
    const ref = this.table[i]!;
    // Marked, so a snapshot never writes it (only slots of stored messages are ever written).
    this.chunkOf(ref).partition[ref & 0xffff] = DEAD_SLOT;
    this.deleteAt(i);
  }

  /** Drops ids older than the window (and shrinks the table after a burst). */
  expire(now: number, windowMs: number): void {
    const limit = now - windowMs;
    while (this.slots > 0) {
      const c = this.chunks[this.first]!;
      if (c.base + c.ts[this.headPos]! > limit) break;
      this.popHead(false);
    }
    if (this.table.length > MIN_TABLE && this.live * 8 < this.table.length)
      this.resize(Math.max(MIN_TABLE, nextPow2(Math.ceil((this.live * 8) / 3))));
  }

  /** Sizes the table for `n` ids at once (a restore that knows how many come: no rehash on the way). */
  reserve(n: number): void {
    const want = nextPow2(Math.ceil((Math.min(n, this.maxIds) * 4) / 3) + 1);
    if (want > this.table.length) this.resize(Math.max(MIN_TABLE, want));
  }

  /** Lowers or raises the bound; the oldest ids above a lower bound leave at once (counted in `evicted`). */
  setMaxIds(maxIds: number): void {
    this.maxIds = maxIds;
    while (this.slots > maxIds) this.popHead(true);
  }

  /**
   * The slots as they are now, oldest first, for a snapshot written while the index goes on changing:
   * the chunks named stay readable (this holds them), and a slot's contents never change once written.
   * A slot may be dead (its id forgotten, or remembered again later): a reader replays them in order.
   */
  view(fromSlot = 0): DedupView {
    const parts: Array<{ chunk: ChunkReader; from: number; to: number }> = [];
    for (let i = this.first; i < this.chunks.length; i++) {
      const c = this.chunks[i]!;
      const from = Math.max(i === this.first ? this.headPos : 0, fromSlot - c.start);
      if (c.used > from) parts.push({ chunk: c, from, to: c.used });
    }
    return { parts, end: this.appended };
  }

  // ------------------------------------------------------------ internals

  private append(d0: number, d1: number, d2: number, d3: number, partition: number, offset: number, timestamp: number): number {
    let c = this.chunks.length > this.first ? this.chunks[this.chunks.length - 1]! : undefined;
    const rel = c ? timestamp - c.base : 0;
    if (!c || c.used === c.size || rel >= TS_SPAN) {
      c = this.newChunk(timestamp);
    }
    const pos = c.used++;
    const d = pos * 4;
    c.digest[d] = d0;
    c.digest[d + 1] = d1;
    c.digest[d + 2] = d2;
    c.digest[d + 3] = d3;
    c.offset[pos] = offset;
    // A clock that stepped back: the id is kept as of the chunk's base (a little longer, never shorter).
    c.ts[pos] = Math.max(0, Math.min(TS_SPAN - 1, timestamp - c.base));
    c.partition[pos] = partition;
    this.slots++;
    this.appended++;
    return ((c.seq << 16) | pos) >>> 0;
  }

  private newChunk(base: number): Chunk {
    const count = this.chunks.length - this.first;
    const size = count >= MANY_CHUNKS ? CHUNK_MAX : Math.min(CHUNK_MAX, Math.max(CHUNK_MIN, nextPow2(Math.ceil(this.slots / 16))));
    const c = new Chunk(this.nextSeq, size, base, this.appended);
    this.nextSeq = (this.nextSeq + 1) % SEQ_MOD;
    if (count === 0) {
      this.chunks = [c];
      this.first = 0;
      this.headPos = 0;
    } else {
      this.chunks.push(c);
    }
    return c;
  }

  /** Pops the oldest slot; `evict`: it leaves before its time (counted when its id was still remembered). */
  private popHead(evict: boolean): void {
    const c = this.chunks[this.first]!;
    const pos = this.headPos;
    const ref = ((c.seq << 16) | pos) >>> 0;
    const i = this.indexOfRef(ref, c.digest[pos * 4]!);
    if (i >= 0) {
      this.deleteAt(i);
      if (evict) this.evicted++;
    }
    this.slots--;
    this.headPos++;
    if (this.slots === 0) {
      // Empty: the next id starts a chunk sized for what comes then, not for the last burst.
      this.chunks = [];
      this.first = 0;
      this.headPos = 0;
    } else if (this.headPos === c.used && (this.first < this.chunks.length - 1 || c.used === c.size)) {
      this.first++;
      this.headPos = 0;
      if (this.first === this.chunks.length) {
        this.chunks = [];
        this.first = 0;
      } else if (this.first > 64 && this.first * 2 > this.chunks.length) {
        this.chunks = this.chunks.slice(this.first);
        this.first = 0;
      }
    }
  }

  private chunkOf(ref: number): Chunk {
    const seq = ref >>> 16;
    const head = this.chunks[this.first]!;
    return this.chunks[this.first + ((seq - head.seq + SEQ_MOD) % SEQ_MOD)]!;
  }

  private sameDigest(ref: number, d0: number, d1: number, d2: number, d3: number): boolean {
    const c = this.chunkOf(ref);
    const d = (ref & 0xffff) * 4;
    return c.digest[d] === d0 && c.digest[d + 1] === d1 && c.digest[d + 2] === d2 && c.digest[d + 3] === d3;
  }

  private findIndex(d0: number, d1: number, d2: number, d3: number): number {
    if (this.table.length === 0) return -1;
    const tag = d1 & 0xff;
    let i = d0 & this.mask;
    for (;;) {
      const r = this.table[i]!;
      if (r === EMPTY) return -1;
      if (this.tags[i] === tag && this.sameDigest(r, d0, d1, d2, d3)) return i;
      i = (i + 1) & this.mask;
    }
  }

  private find(d0: number, d1: number, d2: number, d3: number): number {
    const i = this.findIndex(d0, d1, d2, d3);
    return i < 0 ? EMPTY : this.table[i]!;
  }

  /** Where the table holds exactly this slot reference (its id's entry may have moved to a newer slot). */
  private indexOfRef(ref: number, d0: number): number {
    if (this.table.length === 0) return -1;
    let i = d0 & this.mask;
    for (;;) {
      const r = this.table[i]!;
      if (r === EMPTY) return -1;
      if (r === ref) return i;
      i = (i + 1) & this.mask;
    }
  }

  private homeOf(ref: number): number {
    const c = this.chunkOf(ref);
    return c.digest[(ref & 0xffff) * 4]! & this.mask;
  }

  /** Backward-shift deletion: no tombstones, so probe chains stay as short as the load allows. */
  private deleteAt(i: number): void {
    const t = this.table;
    const tags = this.tags;
    const mask = this.mask;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const r = t[j]!;
      if (r === EMPTY) break;
      const k = this.homeOf(r);
      // Move r into the hole unless its home lies cyclically in (i, j].
      const inRange = i <= j ? k > i && k <= j : k > i || k <= j;
      if (!inRange) {
        t[i] = r;
        tags[i] = tags[j]!;
        i = j;
      }
    }
    t[i] = EMPTY;
    this.live--;
  }

  private resize(size: number): void {
    const old = this.table;
    const oldTags = this.tags;
    this.table = new Uint32Array(size).fill(EMPTY);
    this.tags = new Uint8Array(size);
    this.mask = size - 1;
    for (let k = 0; k < old.length; k++) {
      const r = old[k]!;
      if (r === EMPTY) continue;
      let i = this.homeOf(r);
      while (this.table[i] !== EMPTY) i = (i + 1) & this.mask;
      this.table[i] = r;
      this.tags[i] = oldTags[k]!;
    }
  }
}

/** The 32-bit little-endian word at byte `at` of a latin1 digest string. */
function word(key: DedupKey, at: number): number {
  return (key.charCodeAt(at) | (key.charCodeAt(at + 1) << 8) | (key.charCodeAt(at + 2) << 16) | (key.charCodeAt(at + 3) << 24)) >>> 0;
}

function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/** FNV-1a over the key's UTF-8 bytes: stable across processes, versions and platforms. */
export function partitionForKey(key: string, partitions: number): number {
  let h = 0x811c9dc5;
  const bytes = Buffer.from(key, 'utf8');
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i]!;
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % partitions;
}
