/** Envelope, names and ack subjects: no server needed. */
import { describe, expect, it } from 'vitest';
import { ackSubject, decodeEnvelope, encodeEnvelope, Names, parseAckSubject } from '../src/index.js';

describe('envelope', () => {
  it('round trips values, keys and arbitrary header names and values byte for byte', () => {
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const cases = [
      { value: new Uint8Array(0) },
      { value: all, key: '' },
      { value: Buffer.from('v'), key: 'ключ 🔑', headers: { 'with: colon': 'line\r\nbreak', '': 'empty name', __proto__x: 'y', 'x-ü': '駅 🚉' } },
      { value: Buffer.from('proto'), headers: JSON.parse('{"__proto__":"data"}') as Record<string, string> },
    ];
    for (const c of cases) {
      const d = decodeEnvelope(encodeEnvelope(c));
      expect(Buffer.compare(Buffer.from(d.value), Buffer.from(c.value))).toBe(0);
      expect(d.key).toBe(c.key);
      expect(d.headers).toEqual(c.headers ?? {});
    }
  });

  it('costs 3 bytes for a bare value; a payload without the magic is a bare value', () => {
    expect(encodeEnvelope({ value: Buffer.from('abc') }).length).toBe(6);
    const raw = Buffer.from('{"plain":"nats"}');
    expect(decodeEnvelope(raw)).toEqual({ key: undefined, headers: {}, value: raw });
  });

  it('rejects a truncated envelope', () => {
    const b = encodeEnvelope({ value: Buffer.from('x'), key: 'long key' });
    expect(() => decodeEnvelope(b.subarray(0, 6))).toThrow(/truncated/);
  });
});

describe('names', () => {
  it('maps names with dots one to one onto JetStream names and KV keys', () => {
    const n = new Names('junction');
    expect(n.stream('orders.dls', 0)).toBe('JUNCTION_orders=dls_0');
    expect(n.subject('a.b', 2)).toBe('junction.a=b.2');
    expect(n.consumer('connector.sink', 3)).toBe('connector=sink_g3');
    expect(n.groupKey('a.b', 'c')).not.toBe(n.groupKey('a', 'b.c'));
    expect(n.parseKey(n.groupKey('a.b', 'c.d'))).toEqual({ kind: 'g', station: 'a.b', group: 'c.d' });
    expect(n.parseKey(n.stationKey('x.dls'))).toEqual({ kind: 's', station: 'x.dls' });
    expect(() => new Names('Bad-Prefix')).toThrow(RangeError);
  });

  it('parses ack subjects as nats-server 2.9 writes them, and rebuilds them', () => {
    const a = parseAckSubject('$JS.ACK.JUNCTION_s_0.g_g1.3.42.57.1795699081316114888.9');
    expect(a).toEqual({ stream: 'JUNCTION_s_0', consumer: 'g_g1', deliveryCount: 3, streamSeq: 42, consumerSeq: 57, timestamp: 1795699081316, pending: 9 });
    expect(parseAckSubject('$JS.ACK.x')).toBeUndefined();
    expect(parseAckSubject(ackSubject('S', 'C', 2, 10, 0))).toMatchObject({ stream: 'S', consumer: 'C', deliveryCount: 2, streamSeq: 10, consumerSeq: 0 });
    // the 2.10+ form with domain and account hash
    expect(parseAckSubject('$JS.ACK._.HASH.S.C.1.5.6.1795699081316114888.0.tok')).toMatchObject({ stream: 'S', consumer: 'C', streamSeq: 5 });
  });
});
