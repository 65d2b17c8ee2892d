/**
 * The connector runtime's desired-state apply (see runtime.ts, applyDesired): makes the `connectors:`
 * of junction.yaml the desired state of the connectors they name.
 */
import type { Logger } from 'pino';
import { ConnectorOrigin } from './declaration.js';
import type { ConnectorDeclaration } from './declaration.js';
import { configInvalid, isJunctionError, messageOf } from './errors.js';
import type { Issue } from './errors.js';
import { sameDeclaration } from './runtime-helpers.js';
import type { ApplyResult, ConnectorRt } from './runtime-types.js';

/** The runtime's operations the apply uses. */
export interface DesiredTarget {
  readonly connectors: ReadonlyMap<string, ConnectorRt>;
  readonly log: Logger;
  validate(raw: unknown, prefix: string): Promise<ConnectorDeclaration>;
  create(d: ConnectorDeclaration, origin: ConnectorOrigin): Promise<unknown>;
  update(c: ConnectorRt, d: ConnectorDeclaration, origin: ConnectorOrigin): Promise<void>;
  persist(name: string): Promise<void>;
  delete(name: string): Promise<void>;
}

/** See ConnectRuntime.applyDesired. */
export async function applyDesiredState(t: DesiredTarget, raw: readonly unknown[]): Promise<ApplyResult> {
  const decls: ConnectorDeclaration[] = [];
  const issues: Issue[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < raw.length; i++) {
    try {
      const d = await t.validate(raw[i], `connectors[${i}]`);
      if (seen.has(d.name)) issues.push({ path: `connectors[${i}].name`, message: `duplicate connector "${d.name}"` });
      seen.add(d.name);
      decls.push(d);
    } catch (err) {
      if (isJunctionError(err) && err.issues) issues.push(...err.issues);
      else issues.push({ path: `connectors[${i}]`, message: messageOf(err) });
    }
  }
  if (issues.length > 0) throw configInvalid('connectors', issues);
  const result: ApplyResult = { created: [], updated: [], deleted: [], unchanged: [] };
  for (const d of decls) {
    const c = t.connectors.get(d.name);
    if (!c || c.deleted) {
      await t.create(d, ConnectorOrigin.file);
      result.created.push(d.name);
    } else if (!sameDeclaration(c.declaration, d)) {
      await t.update(c, d, ConnectorOrigin.file);
      result.updated.push(d.name);
    } else {
      if (c.origin !== ConnectorOrigin.file) {
        c.origin = ConnectorOrigin.file;
        await t.persist(d.name);
      }
      result.unchanged.push(d.name);
    }
  }
  for (const c of [...t.connectors.values()]) {
    if (c.origin === ConnectorOrigin.file && !seen.has(c.declaration.name)) {
      await t.delete(c.declaration.name);
      result.deleted.push(c.declaration.name);
    }
  }
  if (result.created.length + result.updated.length + result.deleted.length > 0) {
    t.log.info(result, 'connectors from the configuration applied');
  }
  return result;
}
