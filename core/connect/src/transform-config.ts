/**
 * A connector's `transforms:` on the runtime's side: checked for the connector's kind (route only on
 * sources; a map's JSONata compiles; a plugin step names a transform plugin of the catalog and its config
 * parses), and handed to the task's worker with secret references resolved and plugin entries found.
 * The steps themselves run in the worker (@junction/transforms' Pipeline).
 */
import { checkTransforms, type TransformStep } from '@junction/transforms';
import type { PluginCatalog, PluginDescriptor } from './catalog.js';
import type { ConnectorDeclaration } from './declaration.js';
import { ConnectErrorCode, configInvalid, connectError, type Issue } from './errors.js';
import { resolveReferences } from './secrets.js';
import { pluginIsolation, type ConnectSettings } from './isolation.js';

/** What a task's worker needs to run the chain. Plain data (crosses to the worker). */
export interface WorkerTransforms {
  /** The steps, validated, references (a mask's `key`) resolved. */
  steps: TransformStep[];
  /** Plugin steps' entries (absolute module paths), by plugin name. */
  plugins: Record<string, string>;
  /** A message a step fails: `deadLetter` (errors.tolerance all) or `fail` the task (none). */
  onFailure: 'deadLetter' | 'fail';
}

/**
 * Checks a declaration's transforms against the plugin's kind and the catalog. Issue paths start with
 * `at('transforms')`. A connector whose plugin is itself a transform is refused too (`plugin`).
 * @throws CONFIG_INVALID (issues with paths), PLUGIN_KIND_MISMATCH.
 */
export async function validateTransforms(
  catalog: PluginCatalog,
  decl: ConnectorDeclaration,
  descriptor: PluginDescriptor,
  at: (path: string) => string,
): Promise<void> {
  if (descriptor.kind === 'transform') {
    const message = `plugin "${descriptor.name}" is a transform: name it in a connector's transforms ({ type: plugin, plugin: ${descriptor.name} }), not as the connector's plugin`;
    throw connectError(ConnectErrorCode.PLUGIN_KIND_MISMATCH, message, { issues: [{ path: at('plugin'), message }] });
  }
  if (decl.transforms.length === 0) return;
  const checked = checkTransforms(decl.transforms, descriptor.kind, at('transforms'));
  const issues: Issue[] = checked.ok ? [] : [...checked.issues];
  for (let i = 0; i < decl.transforms.length; i++) {
    const step = decl.transforms[i]!;
    if (step.type !== 'plugin') continue;
    const path = at(`transforms[${i}]`);
    const d = catalog.get(step.plugin);
    if (!d) {
      issues.push({ path: `${path}.plugin`, message: `no transform plugin named "${step.plugin}"` });
      continue;
    }
    if (d.kind !== 'transform') {
      issues.push({ path: `${path}.plugin`, message: `plugin "${step.plugin}" is a ${d.kind}, not a transform` });
      continue;
    }
    const { value } = await resolveReferences(step.config, {});
    const v = await catalog.validate(d.name, value, `${path}.config`);
    if (!v.ok) issues.push(...v.issues);
  }
  if (issues.length > 0) throw configInvalid(`connector ${decl.name}`, issues);
}

/**
 * When a task starts: the chain checked again (plugins may have changed since the declaration was
 * accepted) and as its worker gets it (undefined for none), references resolved against `env`; the
 * resolved secrets (to hide from errors); whether a transform plugin in it is not trusted to share threads.
 * @throws SECRET_UNRESOLVED (a mask key's reference), CONFIG_INVALID / PLUGIN_KIND_MISMATCH / PLUGIN_NOT_FOUND as validate.
 */
export async function workerTransforms(
  catalog: PluginCatalog,
  decl: ConnectorDeclaration,
  descriptor: PluginDescriptor,
  env: Readonly<Record<string, string | undefined>>,
  settings: ConnectSettings,
): Promise<{ transforms: WorkerTransforms | undefined; secrets: string[]; untrusted: boolean }> {
  await validateTransforms(catalog, decl, descriptor, (p) => p);
  if (decl.transforms.length === 0) return { transforms: undefined, secrets: [], untrusted: false };
  const { value, issues } = await resolveReferences(decl.transforms, { env, prefix: 'transforms' });
  if (issues.length > 0) {
    const first = issues[0]!;
    throw connectError(ConnectErrorCode.SECRET_UNRESOLVED, `${first.path}: ${first.message}`, { issues });
  }
  const steps = value as TransformStep[];
  const plugins: Record<string, string> = {};
  const secrets: string[] = [];
  for (const s of steps) {
    if (s.type === 'mask' && s.key !== undefined) secrets.push(s.key);
    if (s.type !== 'plugin') continue;
    const d = catalog.get(s.plugin);
    if (!d || d.kind !== 'transform') throw connectError(ConnectErrorCode.PLUGIN_NOT_FOUND, `no transform plugin named "${s.plugin}"`);
    plugins[s.plugin] = d.entry;
  }
  return {
    transforms: { steps, plugins, onFailure: decl.errors.tolerance === 'all' ? 'deadLetter' : 'fail' },
    secrets,
    untrusted: hasUntrustedTransform(catalog, decl, settings),
  };
}

/**
 * Whether a transform plugin in the chain is not trusted to share threads: its code runs on the sink's
 * thread, so the sink's tasks then get threads of their own whatever the sink plugin's trust.
 */
export function hasUntrustedTransform(catalog: PluginCatalog, decl: ConnectorDeclaration, settings: ConnectSettings): boolean {
  return decl.transforms.some((s) => {
    if (s.type !== 'plugin') return false;
    const d = catalog.get(s.plugin);
    return d === undefined || pluginIsolation(d, settings) !== 'shared';
  });
}
