import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  BatchDecodeError,
  decodeMessageBatch,
  decodeProduceBatch,
  deliveryId,
  encodeMessageBatch,
  encodePackedMessageBatch,
  encodeProduceBatch,
  PACKED_FIELDS,
  type PackedMessages,
  type WireMessage,
  expandSettleSummary,
  parseDeliveryId,
  epochToken,
} from '../src/index.js';

const headers = fc.dictionary(fc.string({ minLength: 1, maxLength: 20 }), fc.string({ maxLength: 40 }), { maxKeys: 4 });

describe('binary batch codec', () => {
  it('round-trips produce batches byte for byte (property)', () => {
    const msg = fc.record(
      {
        value: fc.uint8Array({ maxLength: 300 }),
        key: fc.string({ maxLength: 30 }),
        msgId: fc.string({ minLength: 1, maxLength: 30 }),
        headers,
      },
      { requiredKeys: ['value'] },
    );
    fc.assert(
      fc.property(fc.array(msg, { maxLength: 20 }), (messages) => {
        const decoded = decodeProduceBatch(encodeProduceBatch(messages));
        expect(decoded).toHaveLength(messages.length);
        decoded.forEach((d, i) => {
          const m = messages[i]!;
          expect(Buffer.from(d.value).equals(Buffer.from(m.value))).toBe(true);
          expect(d.key).toBe(m.key);
          expect(d.msgId).toBe(m.msgId);
          expect(d.headers).toEqual(m.headers ?? {});
        });
      }),
    );
  });

  it('round-trips message batches with partition, offset, timestamp and delivery count', () => {
    const m = {
      partition: 3,
      offset: 2 ** 40 + 7,
      timestamp: 1_790_000_000_123,
      deliveryCount: 2,
      deliveryId: 'opaque-ü-1',
      key: 'k',
      headers: { a: 'ü' },
      value: Buffer.from([0, 255, 1]),
    };
    const [d] = decodeMessageBatch(encodeMessageBatch([m]));
    expect(d).toEqual({ ...m, value: expect.anything() });
    expect(Buffer.from(d!.value).equals(m.value)).toBe(true);
  });

  it('round-trips message batches mixing plain frames (no key, no headers) and full ones (property)', () => {
    const msg = fc.record(
      {
        partition: fc.nat({ max: 1000 }),
        offset: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
        timestamp: fc.nat(),
        deliveryCount: fc.nat({ max: 100 }),
        deliveryId: fc.oneof(fc.string({ maxLength: 30 }), fc.constant('0-12-1-abc')),
        value: fc.uint8Array({ maxLength: 300 }),
        key: fc.string({ maxLength: 30 }),
        headers,
      },
      { requiredKeys: ['partition', 'offset', 'timestamp', 'deliveryCount', 'deliveryId', 'value', 'headers'] },
    );
    fc.assert(
      fc.property(fc.array(msg, { maxLength: 20 }), (messages) => {
        const decoded = decodeMessageBatch(encodeMessageBatch(messages));
        expect(decoded).toHaveLength(messages.length);
        decoded.forEach((d, i) => {
          const m = messages[i]!;
          expect({ ...d, value: Buffer.from(d.value) }).toEqual({ ...m, value: Buffer.from(m.value) });
        });
      }),
    );
  });

  it('encodes a plain delivery as the documented frame, byte for byte', () => {
    const buf = encodeMessageBatch([
      { partition: 2, offset: 5, timestamp: 7, deliveryCount: 1, deliveryId: '2-5-1-z', headers: {}, value: Buffer.from('hi') },
    ]);
    const want = Buffer.alloc(4 + 26 + 7 + 3 + 2);
    want.writeUInt32LE(26 + 7 + 3 + 2, 0);
    want.writeUInt32LE(2, 4);
    want.writeDoubleLE(5, 8);
    want.writeDoubleLE(7, 16);
    want.writeUInt32LE(1, 24);
    want.writeUInt16LE(7, 28);
    want.write('2-5-1-z', 30, 'latin1');
    want.write('hi', 40, 'latin1'); // after flags 0 and header count 0
    expect(buf.equals(want)).toBe(true);
  });

  it('encodes packed deliveries to the very bytes of encodeMessageBatch on the same messages (property)', () => {
    const msg = fc.record(
      {
        gap: fc.uint8Array({ maxLength: 12 }), // stored bytes between two values (the log's framing)
        offsetStep: fc.oneof(fc.constant(1), fc.integer({ min: 1, max: 2 ** 40 })),
        timestamp: fc.nat(),
        attempt: fc.oneof(fc.constant(1), fc.integer({ min: 1, max: 1_000_000 })),
        value: fc.uint8Array({ maxLength: 300 }),
        key: fc.option(fc.string({ maxLength: 30 }), { nil: undefined }),
        headers: fc.option(headers, { nil: undefined }),
        otherId: fc.string({ maxLength: 30 }),
      },
      { requiredKeys: ['gap', 'offsetStep', 'timestamp', 'attempt', 'value', 'otherId'] },
    );
    const part = fc.record({
      partition: fc.oneof(fc.nat({ max: 12 }), fc.nat({ max: 2 ** 32 - 1 })),
      firstOffset: fc.oneof(fc.nat({ max: 20 }), fc.integer({ min: 0, max: 2 ** 52 })),
      epoch: fc.option(fc.stringMatching(/^[0-9a-z]{1,7}$/), { nil: undefined }),
      ownIds: fc.boolean(),
      messages: fc.array(msg, { minLength: 1, maxLength: 12 }),
    });
    fc.assert(
      fc.property(fc.array(part, { maxLength: 4 }), (spec) => {
        const wire: WireMessage[] = [];
        const parts: PackedMessages[] = spec.map((s) => {
          const bytes: number[] = [];
          const nums: number[] = [];
          const distinct: Record<string, string>[] = [{}];
          const keys = s.messages.some((m) => m.key !== undefined) ? s.messages.map((m) => m.key) : undefined;
          const attempts = s.messages.some((m) => m.attempt !== 1) ? s.messages.map((m) => m.attempt) : undefined;
          let offset = s.firstOffset;
          s.messages.forEach((m, i) => {
            if (i > 0) offset = Math.min(Number.MAX_SAFE_INTEGER, offset + m.offsetStep);
            bytes.push(...m.gap);
            const h = m.headers ?? distinct[0]!;
            if (!distinct.includes(h)) distinct.push(h);
            nums.push(offset, m.timestamp, bytes.length, m.value.length, distinct.indexOf(h));
            bytes.push(...m.value);
            const id = s.ownIds ? m.otherId : deliveryId(s.partition, offset, m.attempt, s.epoch);
            const w: WireMessage = {
              partition: s.partition,
              offset,
              timestamp: m.timestamp,
              deliveryCount: m.attempt,
              deliveryId: id,
              headers: h,
              value: m.value,
            };
            if (m.key !== undefined) w.key = m.key;
            wire.push(w);
          });
          expect(nums).toHaveLength(s.messages.length * PACKED_FIELDS);
          // The data of a chunk is a view into a larger read buffer.
          const backing = new Uint8Array(bytes.length + 16).fill(0xee);
          backing.set(bytes, 8);
          return {
            partition: s.partition,
            count: s.messages.length,
            data: backing.subarray(8, 8 + bytes.length),
            nums: new Float64Array(nums),
            headers: distinct,
            keys,
            attempts,
            epoch: s.epoch,
            deliveryIds: s.ownIds ? s.messages.map((m) => m.otherId) : undefined,
          };
        });
        const packed = encodePackedMessageBatch(parts);
        expect(packed.equals(encodeMessageBatch(wire))).toBe(true);
        expect(decodeMessageBatch(packed).map((m) => m.deliveryId)).toEqual(wire.map((m) => m.deliveryId));
      }),
      { numRuns: 300 },
    );
  });

  it('encodes a packed plain delivery as the documented frame', () => {
    const part: PackedMessages = {
      partition: 2,
      count: 1,
      data: Buffer.from('..hi'),
      nums: new Float64Array([5, 7, 2, 2, 0]),
      headers: [{}],
      epoch: 'z',
    };
    const want = encodeMessageBatch([
      { partition: 2, offset: 5, timestamp: 7, deliveryCount: 1, deliveryId: '2-5-1-z', headers: {}, value: Buffer.from('hi') },
    ]);
    expect(encodePackedMessageBatch([part]).equals(want)).toBe(true);
    expect(encodePackedMessageBatch([])).toHaveLength(0);
  });

  it('rejects every truncation of a batch with the frame that failed', () => {
    const buf = encodeProduceBatch([{ value: Buffer.from('first') }, { value: Buffer.from('second'), key: 'k', headers: { h: 'v' } }]);
    const firstLen = 4 + buf.readUInt32LE(0);
    for (let cut = 1; cut < buf.length; cut++) {
      if (cut === firstLen) continue; // a whole first frame is a valid one-message batch
      let err: unknown;
      try {
        decodeProduceBatch(buf.subarray(0, cut));
      } catch (e) {
        err = e;
      }
      expect(err, `cut at ${cut}`).toBeInstanceOf(BatchDecodeError);
      expect((err as BatchDecodeError).index).toBe(cut < firstLen ? 0 : 1);
    }
    expect(() => decodeProduceBatch(buf, 1)).toThrow(BatchDecodeError);
  });
});

describe('delivery ids', () => {
  it('parse what deliveryId makes (property)', () => {
    fc.assert(
      fc.property(fc.nat(1023), fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), fc.integer({ min: 1, max: 1000 }), (p, o, a) => {
        expect(parseDeliveryId(deliveryId(p, o, a))).toEqual({ partition: p, offset: o, attempt: a });
      }),
    );
  });

  it('parse what deliveryId makes with an epoch (property)', () => {
    fc.assert(
      fc.property(
        fc.nat(1023),
        fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
        fc.integer({ min: 1, max: 1000 }),
        fc.nat(),
        (p, o, a, e) => {
          const epoch = epochToken(e);
          expect(epoch).toMatch(/^[0-9a-z]{1,7}$/);
          expect(parseDeliveryId(deliveryId(p, o, a, epoch))).toEqual({ partition: p, offset: o, attempt: a, epoch });
        },
      ),
    );
  });

  it('refuse anything else', () => {
    for (const bad of [
      '',
      '-',
      '1-2',
      '1-2-',
      '-1-2',
      '1--2',
      'a-1-1',
      '1-1-1-',
      '1-1-1-A',
      '1-1-1-abcdefgh',
      '1-1-1-a-b',
      '1-1--a',
      '1-1e3-1',
      ' 1-1-1',
      '1-99999999999999999-1',
      '1234567890-1-1',
      '1-1-x',
    ]) {
      expect(parseDeliveryId(bad), bad).toBeUndefined();
    }
  });

  it('a summary expands back to one outcome per id, in order', () => {
    const ids = ['0-1-1', '0-2-1', '0-3-1'];
    expect(expandSettleSummary(ids, { count: 2, results: [{ deliveryId: '0-2-1', status: 'unknown' }] }, 'acked')).toEqual([
      { deliveryId: '0-1-1', status: 'acked' },
      { deliveryId: '0-2-1', status: 'unknown' },
      { deliveryId: '0-3-1', status: 'acked' },
    ]);
  });
});
