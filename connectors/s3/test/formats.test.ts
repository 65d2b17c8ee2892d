/** Pure pieces: key layout, planning, JSON Lines envelopes, zstd framing, format specs, Parquet files. */
import { describe, expect, it } from 'vitest';
import {
  ZstdFrameSplitter,
  compressBuffer,
  decodeJsonlLine,
  gzipChunks,
  encodeJsonlLine,
  formatFromMetadata,
  formatToMetadata,
  loadZstd,
  rawMember,
  zstdCompress,
  type FormatSpec,
} from '../src/formats/index.js';
import {
  compileTimeFormat,
  doneKey,
  doneStartAfter,
  fieldSegment,
  newAttempt,
  parseMarkerName,
  parseObjectFileName,
  objectFileName,
  pendingKey,
} from '../src/layout.js';
import { planObjects } from '../src/plan.js';
import { readParquetMetadata, readParquetRows, writeParquet } from '../src/formats/parquet.js';
import { nativeSnappy } from '../src/formats/snappy.js';
import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { snappyUncompress, type AsyncBuffer } from 'hyparquet';

describe('layout', () => {
  it('time formats: tokens in UTC, quoted literals, unsafe results refused', () => {
    const t = Date.UTC(2025, 11, 31, 23, 5);
    expect(compileTimeFormat('year=YYYY/month=MM/day=dd/hour=HH')(t)).toBe('year=2025/month=12/day=31/hour=23');
    expect(compileTimeFormat("'added'=dd/'mm'=mm/''x")(t)).toBe("added=31/mm=05/'x");
    expect(() => compileTimeFormat('YYYY//HH')).toThrow(/unsafe/);
    expect(() => compileTimeFormat("'..'")).toThrow(/unsafe/);
    expect(() => compileTimeFormat("'open")).toThrow(/unclosed/);
  });

  it('field segments: scalars, percent-encoding, Hive default partition', () => {
    expect(fieldSegment('eu-west_1.a~b')).toEqual({ segment: 'eu-west_1.a~b' });
    expect(fieldSegment('a/b c=é')).toEqual({ segment: 'a%2Fb%20c%3D%C3%A9' });
    expect(fieldSegment(null)).toEqual({ segment: '__HIVE_DEFAULT_PARTITION__' });
    expect(fieldSegment('')).toEqual({ segment: '__HIVE_DEFAULT_PARTITION__' });
    expect(fieldSegment('..')).toEqual({ segment: '%2E%2E' });
    expect(fieldSegment(true)).toEqual({ segment: 'true' });
    expect(fieldSegment([1])).toMatchObject({ rejected: expect.stringContaining('array') });
  });

  it('object names and ledger keys sort by offset; StartAfter selects units ending at or after an offset', () => {
    const name = objectFileName('orders.v2', 3, 42, 60, '5b0e6a0c-3f5e-4a56-9d1f-6f0c2b7e8a11', 'k3x9a0b1c2', '.jsonl.gz');
    expect(name).toBe('orders.v2+3+00000000000000000042-00000000000000000060+5b0e6a0c-3f5e-4a56-9d1f-6f0c2b7e8a11+k3x9a0b1c2.jsonl.gz');
    expect(parseObjectFileName(name)).toEqual({
      station: 'orders.v2',
      partition: 3,
      firstOffset: 42,
      lastOffset: 60,
      stationId: '5b0e6a0c-3f5e-4a56-9d1f-6f0c2b7e8a11',
      attempt: 'k3x9a0b1c2',
    });
    // Names the sink gave before station ids.
    expect(parseObjectFileName('orders.v2+3+00000000000000000042.jsonl.gz')).toEqual({
      station: 'orders.v2',
      partition: 3,
      firstOffset: 42,
    });
    expect(newAttempt()).toMatch(/^[0-9a-z]{10}$/);
    expect(newAttempt()).not.toBe(newAttempt());
    const keys = [
      doneKey('d/', 1, 9, 9, 'a1'),
      doneKey('d/', 10, 10, 1, 'b2'),
      doneKey('d/', 11, 99, 50),
      doneKey('d/', 100, 100, 1, 'c3'),
    ].sort();
    const after = doneStartAfter('d/', 10);
    expect(keys.filter((k) => k > after).map((k) => parseMarkerName(k.slice(7)))).toEqual([
      { last: 10, first: 10, count: 1, attempt: 'b2' },
      { last: 99, first: 11, count: 50 },
      { last: 100, first: 100, count: 1, attempt: 'c3' },
    ]);
    expect(parseMarkerName(pendingKey('d/', 6, 15, 'zz9').slice(10))).toEqual({ last: 15, first: 6, attempt: 'zz9' });
  });
});

describe('planning objects', () => {
  it('splits per directory, by count, bytes and record time; never by the clock', () => {
    const offsets = [1, 2, 3, 4, 5, 6, 7];
    const plan = planObjects({
      offsets,
      timestamps: [0, 1, 2, 3, 4, 5, 6],
      sizes: Array(7).fill(10),
      dirs: ['a', 'b', 'a', 'a', 'b', 'a', 'a'],
      maxMessages: 2,
    });
    expect(plan.map((p) => [p.dir, p.first, p.last, p.members.length])).toEqual([
      ['a', 1, 3, 2],
      ['b', 2, 5, 2],
      ['a', 4, 6, 2],
      ['a', 7, 7, 1],
    ]);
    expect(
      planObjects({ offsets, timestamps: Array(7).fill(0), sizes: Array(7).fill(10), dirs: Array(7).fill('x'), maxBytes: 30 }).map(
        (p) => p.members.length,
      ),
    ).toEqual([3, 3, 1]);
    expect(
      planObjects({
        offsets,
        timestamps: [0, 5, 9, 10, 11, 25, 26],
        sizes: Array(7).fill(1),
        dirs: Array(7).fill('x'),
        intervalMs: 10,
      }).map((p) => p.first),
    ).toEqual([1, 4, 6]);
  });
});

describe('JSON Lines', () => {
  const m = {
    offset: 7,
    timestamp: 1,
    key: 'k"ey',
    headers: { value: '"value":', b: 'x' },
    value: new TextEncoder().encode('{"value": {"value":1}, "s":"a\\"value\\":"}'),
  };
  it('the exact value text comes back, whatever the headers or key hold', () => {
    const opts = { value: 'json' as const, fields: ['offset', 'timestamp', 'key', 'headers'] as const };
    const enc = encodeJsonlLine(m, { ...opts, fields: [...opts.fields] });
    expect('text' in enc).toBe(true);
    const line = (enc as { text: string }).text.trimEnd();
    expect(rawMember(line, 'value')).toBe('{"value": {"value":1}, "s":"a\\"value\\":"}');
    const back = decodeJsonlLine(line, { ...opts, fields: [...opts.fields] });
    expect(Buffer.from(back.value).toString()).toBe('{"value": {"value":1}, "s":"a\\"value\\":"}');
    expect(back).toMatchObject({ key: 'k"ey', headers: m.headers, offset: 7, timestamp: 1 });
  });
  it('rawMember skips nested structures and strings with brackets and escapes', () => {
    expect(rawMember('{"a":[1,{"b":"]}"}],"value" : 12.5e3 ,"c":null}', 'value')).toBe('12.5e3');
    expect(rawMember('{"a":"\\\\","value":"x"}', 'value')).toBe('"x"');
    expect(rawMember('{"a":1}', 'value')).toBeUndefined();
  });
});

describe('compression', () => {
  it('gzip of a large buffer is several members that gunzip reads as one stream', async () => {
    const data = Buffer.alloc(3 * 1024 * 1024 + 17, 'abc');
    const gz = await compressBuffer(data, 'gzip');
    expect(gunzipSync(gz).equals(data)).toBe(true);
  });
  it('gzip of a body made in chunks: one member per chunk, read back as the chunks joined; nothing still a valid empty gzip', async () => {
    const chunks = [Buffer.alloc(1024 * 1024 + 5, 'line one\n'), Buffer.from('{"a":1}\n'), Buffer.alloc(700_000, 'xyz\n')];
    const gz = await gzipChunks(chunks, 1);
    expect(gunzipSync(gz).equals(Buffer.concat(chunks))).toBe(true);
    // Three members: each starts with gzip's magic bytes and its own header.
    let members = 0;
    for (let i = gz.indexOf(Buffer.from([0x1f, 0x8b, 8])); i >= 0; i = gz.indexOf(Buffer.from([0x1f, 0x8b, 8]), i + 1)) members++;
    expect(members).toBeGreaterThanOrEqual(3);
    expect(gunzipSync(await gzipChunks([], 1)).length).toBe(0);
  });
  it('zstd frames are found and decoded however the stream is chunked; skippable frames are skipped', async () => {
    await loadZstd();
    const a = Buffer.from('first frame '.repeat(1000));
    const b = Buffer.from('second frame, different '.repeat(700));
    const skippable = Buffer.concat([Buffer.from([0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0]), Buffer.from([1, 2, 3])]);
    const stream = Buffer.concat([zstdCompress(a), skippable, zstdCompress(b), zstdCompress(new Uint8Array(0))]);
    for (const size of [1, 7, 100, stream.length]) {
      const s = new ZstdFrameSplitter();
      const out: Uint8Array[] = [];
      for (let i = 0; i < stream.length; i += size) out.push(...s.push(stream.subarray(i, i + size)));
      s.end();
      expect(Buffer.concat(out).equals(Buffer.concat([a, b]))).toBe(true);
    }
    const torn = new ZstdFrameSplitter();
    torn.push(stream.subarray(0, 20));
    expect(() => torn.end()).toThrow(/inside a frame/);
    expect(() => new ZstdFrameSplitter().push(Buffer.from('not zstd at all'))).toThrow(/not a zstd frame/);
  });
});

describe('format specs in object metadata', () => {
  it('round-trip and refuse garbage', () => {
    const specs: FormatSpec[] = [
      { type: 'jsonl', value: 'json', fields: ['offset', 'key'] },
      { type: 'jsonl', value: 'string', fields: [] },
      { type: 'parquet', fields: ['timestamp'] },
      { type: 'raw', separator: '\u241e\n' },
      { type: 'lines' },
    ];
    for (const s of specs) expect(formatFromMetadata(formatToMetadata(s))).toEqual(s);
    for (const bad of ['', 'csv', 'jsonl;value=xml;fields=', 'jsonl;value=json;fields=bogus', 'raw;separator=zz'])
      expect(formatFromMetadata(bad)).toBeUndefined();
  });
});

describe('Parquet files', () => {
  /** ~900-byte rows of hex digests (about as compressible as real text): a file of MiBs, so the writer's 1 MiB chunks are cut inside row groups. */
  const input = (n: number) => {
    const messages = Array.from({ length: n }, (_, i) => ({
      offset: i + 1,
      timestamp: 1_700_000_000_000 + i,
      key: undefined,
      headers: {},
      value: new Uint8Array(),
    }));
    const note = (o: number) => Array.from({ length: 14 }, (_, k) => createHash('sha256').update(`${o}:${k}`).digest('hex')).join('');
    const values = messages.map((m) => ({ id: m.offset, note: note(m.offset), ok: m.offset % 2 === 0 }));
    return { messages, values, fields: ['offset'] as const, rowGroupSize: 2_500 };
  };
  const bytesOf = (file: Uint8Array): AsyncBuffer => ({
    byteLength: file.byteLength,
    slice: (start: number, end?: number) => file.buffer.slice(file.byteOffset + start, file.byteOffset + (end ?? file.byteLength)),
  });

  it('snappy is the native codec here, and its blocks are what hyparquet decodes', () => {
    const compress = nativeSnappy();
    expect(compress).toBeDefined();
    const text = Buffer.from('alpha-1 bravo-2 '.repeat(10_000));
    const block = compress!(text);
    expect(block.byteLength).toBeLessThan(text.byteLength / 10);
    const back = new Uint8Array(text.byteLength);
    snappyUncompress(block, back);
    expect(Buffer.from(back).equals(text)).toBe(true);
  });

  for (const codec of ['snappy', 'none', 'gzip'] as const) {
    it(`${codec}: a multi-MiB file, whole or streamed in chunks, is the same bytes and reads back row for row`, async () => {
      const { messages, values, fields, rowGroupSize } = input(10_000);
      const whole = await writeParquet({ messages, values, fields, codec, rowGroupSize });
      expect(whole.byteLength).toBeGreaterThan(4 << 20);
      expect(whole).not.toBeInstanceOf(Buffer);
      const chunks: Uint8Array[] = [];
      const empty = await writeParquet({ messages, values, fields, codec, rowGroupSize, onChunk: (c) => void chunks.push(c.slice()) });
      expect(empty.byteLength).toBe(0);
      expect(chunks.length).toBeGreaterThan(1);
      expect(Buffer.concat(chunks).equals(whole)).toBe(true);
      const file = bytesOf(whole);
      const meta = await readParquetMetadata(file);
      expect(meta.row_groups).toHaveLength(4);
      const rows = await readParquetRows(file, meta, fields, 0, 10_000);
      expect(rows.map((r) => r.offset)).toEqual(messages.map((m) => m.offset));
      expect(rows.map((r) => r.value)).toEqual(values);
    });
  }
});
