/** The Firebolt sink against the SDK's conformance kit, on the local fake with the real firebolt-sdk. */
import { afterAll, describe, expect, it } from 'vitest';
import { assertConformance, fakeContext, runSinkConformance, sinkConformanceSuite } from '@junction/sdk-connector/testing';
import plugin from '../src/index.js';
import { forgetRequestsInFlight } from '../src/sink.js';
import { FakeFirebolt } from '../../../test/fakes/firebolt/server.js';
import { config, query } from './helpers.js';

const fake = await new FakeFirebolt().start();
afterAll(() => fake.close());

sinkConformanceSuite(
  { describe, it },
  {
    plugin,
    config: config(fake, { table: 'kit_raw', writeTimeoutMs: 2000, maxAttempts: 2 }),
    readBack: async () => (await query(fake, 'SELECT "value" FROM "kit_raw"')).map((r) => JSON.stringify(JSON.parse(String(r.value)))),
    deadLetter: { value: '{"broken json' },
    // Firebolt answering 503 for as long as it likes: the sink tries maxAttempts times, then retry().
    retry: {
      breakDestination: async () => {
        fake.fail(503, 1000);
        return async () => fake.heal();
      },
    },
    // An INSERT held by the warehouse across its writer's death, run after the replay.
    lateWrite: { hold: async () => fake.holdWrites(), afterKill: forgetRequestsInFlight },
    timeoutMs: 20_000,
  },
);

describe('firebolt sink conformance in mode columns', () => {
  it('passes every check', async () => {
    const results = await runSinkConformance({
      plugin,
      config: config(fake, {
        table: 'kit_columns',
        mode: 'columns',
        writeTimeoutMs: 2000,
        maxAttempts: 2,
        columns: [
          { name: 'junctionConformance', type: 'TEXT' },
          { name: 'station', type: 'TEXT' },
          { name: 'partition', type: 'INTEGER' },
          { name: 'offset', type: 'BIGINT' },
          { name: 'text', type: 'TEXT' },
          // The kit's station-identity check writes a second incarnation's messages with "incarnation": 2.
          { name: 'incarnation', type: 'INTEGER' },
        ],
      }),
      readBack: async () =>
        (await query(fake, 'SELECT * FROM "kit_columns"')).map((r) =>
          JSON.stringify({
            junctionConformance: r.junctionconformance,
            station: r.station,
            partition: Number(r.partition),
            offset: Number(r.offset),
            text: r.text,
            ...(r.incarnation == null ? {} : { incarnation: Number(r.incarnation) }),
          }),
        ),
      // BIGINT column, text value: Firebolt's "Unable to cast text …".
      deadLetter: { value: '{"offset":"not-a-number"}' },
      retry: {
        breakDestination: async () => {
          fake.fail(503, 1000);
          return async () => fake.heal();
        },
      },
      // An INSERT held by the warehouse across its writer's death, run after the replay.
      lateWrite: { hold: async () => fake.holdWrites(), afterKill: forgetRequestsInFlight },
      // An INSERT held by the warehouse across its writer's death, run after the replay.
      lateWrite: { hold: async () => fake.holdWrites(), afterKill: forgetRequestsInFlight },
      timeoutMs: 20_000,
    });
    assertConformance(results);
    // The kit's wedge checks that need cases these options do not give yet (unusable, retry.config, stall) are not applicable.
    expect(results.filter((r) => r.status !== 'passed').map((r) => r.check)).toEqual([
      'open-unusable',
      'open-unreachable',
      'write-stalled-abort',
    ]);
  });
});

/** The kit's values as a station schema (JSON Schema): mode schema makes its table from it. */
const KIT_VERSION = {
  subject: 'kit-value',
  version: 1,
  id: 1,
  schemaType: 'JSON' as const,
  references: [],
  schema: JSON.stringify({
    type: 'object',
    properties: {
      junctionConformance: { type: 'string' },
      station: { type: 'string' },
      partition: { type: 'integer' },
      offset: { type: 'integer' },
      text: { type: 'string' },
      incarnation: { type: 'integer' },
    },
  }),
};
const kitContext = () => fakeContext({ schema: { ...KIT_VERSION, versions: [KIT_VERSION] } });

describe('firebolt sink conformance in mode schema', () => {
  it('passes every check', async () => {
    const results = await runSinkConformance({
      plugin,
      context: kitContext,
      config: config(fake, { table: 'kit_schema', mode: 'schema', writeTimeoutMs: 2000, maxAttempts: 2 }),
      readBack: async () =>
        (await query(fake, 'SELECT * FROM "kit_schema"')).map((r) =>
          JSON.stringify({
            junctionConformance: r.junctionconformance,
            station: r.station,
            partition: Number(r.partition),
            offset: Number(r.offset),
            text: r.text,
            ...(r.incarnation == null ? {} : { incarnation: Number(r.incarnation) }),
          }),
        ),
      // Not JSON: it does not decode with the station schema.
      deadLetter: { value: '{"broken json' },
      retry: {
        breakDestination: async () => {
          fake.fail(503, 1000);
          return async () => fake.heal();
        },
      },
      lateWrite: { hold: async () => fake.holdWrites(), afterKill: forgetRequestsInFlight },
      timeoutMs: 20_000,
    });
    assertConformance(results);
    expect(results.filter((r) => r.status !== 'passed').map((r) => r.check)).toEqual([
      'open-unusable',
      'open-unreachable',
      'write-stalled-abort',
    ]);
  });
});
