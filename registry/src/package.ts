/**
 * A plugin package as found on disk: its package.json and the `junction` field that says, without
 * importing anything, what kind of plugin it holds and which module to import.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { issuesFromZod } from '@junction/sdk-connector';
import { RegistryError, RegistryErrorCode } from './errors.js';

/** The `junction` field of a plugin's package.json: `{ "kind": "sink", "entry": "./dist/index.js" }`. */
export const JunctionField = z.strictObject({
  kind: z.enum(['sink', 'source', 'transform']),
  entry: z.string().min(1),
});
export type JunctionField = z.output<typeof JunctionField>;

/** The parts of a package.json the registry reads; other fields are left alone. */
export const PackageJson = z.looseObject({
  name: z.string().min(1),
  version: z.string().optional(),
  description: z.string().optional(),
  junction: z.unknown().optional(),
  dependencies: z.record(z.string(), z.string()).optional(),
});
export type PackageJson = z.output<typeof PackageJson>;

export interface PluginPackage {
  dir: string;
  name: string;
  version: string | undefined;
  junction: JunctionField;
}

/**
 * Reads and parses `<dir>/package.json`. Throws RegistryError PACKAGE_INVALID when it is missing, not
 * JSON, or not a package.json (issues with field paths).
 */
export async function readPackageJson(dir: string): Promise<PackageJson> {
  const path = join(dir, 'package.json');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'does not exist' : `cannot be read (${code ?? (err as Error).message})`;
    throw new RegistryError(RegistryErrorCode.PACKAGE_INVALID, `${path} ${why}`, { cause: err });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new RegistryError(RegistryErrorCode.PACKAGE_INVALID, `${path} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  const parsed = PackageJson.safeParse(json);
  if (!parsed.success) {
    const issues = issuesFromZod(parsed.error);
    const first = issues[0];
    throw new RegistryError(
      RegistryErrorCode.PACKAGE_INVALID,
      `${path} is invalid${first ? `: ${first.path || '(root)'}: ${first.message}` : ''}`,
      {
        issues,
      },
    );
  }
  return parsed.data;
}

/**
 * Reads a plugin package: its package.json must be valid and carry a valid `junction` field.
 * Throws RegistryError PACKAGE_INVALID (issues at `junction.kind`, `junction.entry`, …) or
 * NOT_A_PLUGIN (no `junction` field at all); once the package name is known, the error carries it
 * as `packageName`.
 */
export async function readPluginPackage(dir: string): Promise<PluginPackage> {
  const pkg = await readPackageJson(dir);
  if (pkg.junction === undefined) {
    const err = new RegistryError(
      RegistryErrorCode.NOT_A_PLUGIN,
      `package ${pkg.name} is not a connector plugin: its package.json has no "junction" field ` +
        `(add "junction": { "kind": "sink" | "source" | "transform", "entry": "./dist/index.js" })`,
    );
    throw Object.assign(err, { packageName: pkg.name });
  }
  const field = JunctionField.safeParse(pkg.junction);
  if (!field.success) {
    const issues = issuesFromZod(field.error, 'junction');
    const first = issues[0];
    const err = new RegistryError(
      RegistryErrorCode.PACKAGE_INVALID,
      `package ${pkg.name} has an invalid "junction" field${first ? `: ${first.path}: ${first.message}` : ''}`,
      { issues },
    );
    throw Object.assign(err, { packageName: pkg.name });
  }
  return { dir, name: pkg.name, version: pkg.version, junction: field.data };
}
