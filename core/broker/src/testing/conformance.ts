/**
 * The StationStore conformance suite: one set of behaviour tests that every engine — the embedded
 * segment log here, the JetStream engine in core/cluster — must pass unchanged (BullMQ-style: the
 * backend is a parameter, the behaviour is the contract).
 *
 * Published as `@junction/broker/conformance`. It defines vitest `describe` / `it` blocks, so it must be
 * called at the top level of a test file:
 *
 * ```ts
 * runStationStoreConformance({ name: 'embedded', create: async () => { … }, reopen: async (s) => { … } });
 * ```
 *
 * Rules the suite keeps so that any engine can run it:
 * - real time only (no fake timers: a JetStream server cannot be faked), short deadlines (100–300 ms);
 *   waits for the engine to act are polls with a timeout, so a fast engine finishes fast;
 * - every test creates its own uniquely named stations in a store of its own and closes it after;
 * - errors are checked by their stable `code`, never by class or message text.
 */
import { afterEach, beforeEach, describe } from 'vitest';
import { deadLettersSection } from './conformance/dead-letters.js';
import { fetchSection } from './conformance/fetch.js';
import { groupsSection } from './conformance/groups.js';
import { identitySection } from './conformance/identity.js';
import { messagesSection } from './conformance/messages.js';
import { reopenSection } from './conformance/reopen.js';
import { retentionSection } from './conformance/retention.js';
import { stationsSection } from './conformance/stations.js';
import { makeSuite } from './conformance/suite.js';
import type { ConformanceTarget } from './conformance/util.js';

export type { ConformanceTarget } from './conformance/util.js';

/**
 * Defines the conformance suite for one engine. Call at the top level of a vitest file. Every test
 * gets a store from `target.create()` and closes it afterwards.
 */
export function runStationStoreConformance(target: ConformanceTarget): void {
  describe(`StationStore conformance: ${target.name}`, () => {
    const t = makeSuite(target);

    beforeEach(async () => {
      t.store = await target.create();
    });

    afterEach(async () => {
      await t.store.close();
    });

    stationsSection(t);
    messagesSection(t);
    groupsSection(t);
    identitySection(t);
    deadLettersSection(t);
    fetchSection(t);
    retentionSection(t);
    reopenSection(t);
  });
}
