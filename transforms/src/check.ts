/** Validating a connector's `transforms:` beyond its shape: what a step may do where. */
import { issuesFromZod, type Issue } from '@junction/sdk-connector';
import { TransformsConfig, type TransformsConfig as Steps } from './config.js';
import { compileExpression } from './steps.js';

export type TransformsCheck = { ok: true; steps: Steps } | { ok: false; issues: Issue[] };

/**
 * Checks a raw `transforms:` list for a connector of `kind`. Issue paths start with `prefix`
 * (`transforms`, or `connectors[1].transforms` in junction.yaml). Never throws for bad input.
 * - every step's shape (zod);
 * - a `map` step's expression compiles (JSONata);
 * - `route` only on sources: a sink reads one station through its group and writes one destination,
 *   so there is no other station for it to send a message to (route before the source's produce does).
 * Plugin steps' names and configs are the registry's to check (see core/connect).
 */
export function checkTransforms(raw: unknown, kind: 'sink' | 'source', prefix = 'transforms'): TransformsCheck {
  const parsed = TransformsConfig.safeParse(raw ?? []);
  if (!parsed.success) return { ok: false, issues: issuesFromZod(parsed.error, prefix) };
  const issues: Issue[] = [];
  parsed.data.forEach((step, i) => {
    const at = `${prefix}[${i}]`;
    if (step.type === 'route' && kind !== 'source') {
      issues.push({
        path: `${at}.type`,
        message:
          'route is for source connectors (it picks the station a message is produced to); a sink reads one station — filter on that station instead, or route with a source',
      });
    }
    if (step.type === 'map') {
      try {
        compileExpression(step.expression);
      } catch (err) {
        const e = err as { message?: string; position?: number };
        issues.push({
          path: `${at}.expression`,
          message: `not a valid JSONata expression${e.position !== undefined ? ` (at ${e.position})` : ''}: ${e.message ?? String(err)}`,
        });
      }
    }
  });
  return issues.length > 0 ? { ok: false, issues } : { ok: true, steps: parsed.data };
}
