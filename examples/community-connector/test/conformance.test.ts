/** The webhook sink against the SDK's conformance kit, in message mode and in batch mode. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertConformance, runSinkConformance, sinkConformanceSuite, type SinkConformanceOptions } from '@junction/sdk-connector/testing';
import plugin from '../src/index.js';
import { FakeEndpoint, POISON } from './fake-endpoint.js';

// Started before the suite registers its tests (top-level await), so the options can carry its URL.
const endpoint = await FakeEndpoint.start();
afterAll(() => endpoint.close());

function kitOptions(extra: Record<string, unknown> = {}, path = '/message'): SinkConformanceOptions {
  const config = { url: `${endpoint.url}${path}`, token: 't0ken', timeoutMs: 2000, ...extra };
  return {
    plugin,
    config,
    readBack: async () => endpoint.accepted,
    deadLetter: { value: POISON },
    retry: {
      breakDestination: async () => {
        endpoint.failWith(503);
        return async () => endpoint.heal();
      },
    },
    // The endpoint takes requests and never answers: a write must settle once its signal aborts.
    stall: async () => {
      endpoint.stall();
      return async () => endpoint.unstall();
    },
    unusable: { notApplicable: 'a webhook cannot tell a URL that will never work from one that is down for now: it answers per message' },
    // A POST received from a sender killed before the answer, taken after the replay: at least once holds.
    lateWrite: { hold: async () => endpoint.hold() },
  };
}

// One vitest test per check, in the default (message) mode.
sinkConformanceSuite({ describe, it }, kitOptions());

describe('webhook sink conformance in other configurations', () => {
  let closedPort: string;
  beforeAll(async () => {
    // A port that was just free: nothing listens there, so every POST fails to connect.
    const other = await FakeEndpoint.start();
    closedPort = other.url;
    await other.close();
  });

  for (const [label, extra, path] of [
    ['batch mode', { mode: 'batch' }, '/batch'],
    ['message mode, concurrency 8', { concurrency: 8 }, '/message'],
  ] as const) {
    it(`passes in ${label}`, async () => {
      const results = await runSinkConformance(kitOptions(extra, path));
      assertConformance(results);
      // open-unusable does not apply (see kitOptions); open-unreachable runs below, with a port that does not listen.
      expect(results.filter((r) => r.status !== 'passed').map((r) => r.check)).toEqual(['open-unusable', 'open-unreachable']);
    });
  }

  it('passes the retry, open-unreachable and close-after-failure checks against an endpoint that does not listen', async () => {
    const results = await runSinkConformance({
      ...kitOptions(),
      retry: { config: { url: `${closedPort}/message`, timeoutMs: 2000 } },
      checks: ['retry', 'open-unreachable', 'close-after-failure'],
    });
    assertConformance(results);
    expect(results.map((r) => r.status)).toEqual(['passed', 'passed', 'passed']);
  });
});
