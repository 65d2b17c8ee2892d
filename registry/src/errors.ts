/**
 * Errors of the registry. Everything it throws or reports on purpose is a `JunctionError` (the SDK's,
 * so the HTTP layer and the CLI read `code`, `message` and `issues` alike) with a stable code: the
 * SDK's `PLUGIN_INVALID` / `SDK_INCOMPATIBLE` for what `checkPlugin` finds, and the codes below for
 * what only the registry can find (the package around the plugin, the catalog as a whole, installs).
 */
import { JunctionError, isJunctionError, ErrorCode, type Issue } from '@junction/sdk-connector';

export { JunctionError, isJunctionError, ErrorCode, type Issue };

/** Stable codes of the registry (besides the SDK's ErrorCode). Clients may switch on them. */
export const RegistryErrorCode = {
  /** No plugin of that name is listed (it may have been refused: see `refused()`). */
  PLUGIN_NOT_FOUND: 'PLUGIN_NOT_FOUND',
  /** The package.json is missing, not JSON, or its `junction` field is malformed (`issues` say where). */
  PACKAGE_INVALID: 'PACKAGE_INVALID',
  /** The package has no `junction` field: it is not a connector plugin. */
  NOT_A_PLUGIN: 'NOT_A_PLUGIN',
  /** The `junction.entry` module does not exist (not built?) or lies outside the package. */
  ENTRY_NOT_FOUND: 'ENTRY_NOT_FOUND',
  /** Importing the entry module threw (a syntax error, a missing dependency, a throw at top level). */
  IMPORT_FAILED: 'IMPORT_FAILED',
  /** The module's default export is not a valid plugin (from the SDK's `checkPlugin`, or a kind mismatch). */
  PLUGIN_INVALID: ErrorCode.PLUGIN_INVALID,
  /** The plugin needs an SDK range this Junction's SDK does not satisfy (from the SDK's `checkPlugin`). */
  SDK_INCOMPATIBLE: ErrorCode.SDK_INCOMPATIBLE,
  /** Another installed plugin already has this name. */
  DUPLICATE_PLUGIN: 'DUPLICATE_PLUGIN',
  /** An installed plugin has the name of a built-in connector; built-ins cannot be replaced. */
  PLUGIN_SHADOWS_BUILTIN: 'PLUGIN_SHADOWS_BUILTIN',
  /** `installPlugin` could not fetch, pack or install the package (npm's own message is in `message`). */
  INSTALL_FAILED: 'INSTALL_FAILED',
  /** `uninstall` of a plugin a connector still uses (the connectors are named in the message and issues). */
  PLUGIN_IN_USE: 'PLUGIN_IN_USE',
  /** `uninstall` of a built-in connector: built-ins are part of Junction, not installed. */
  PLUGIN_BUILTIN: 'PLUGIN_BUILTIN',
} as const;
export type RegistryErrorCode = (typeof RegistryErrorCode)[keyof typeof RegistryErrorCode];

/** A JunctionError raised by the registry; never retryable (the plugin or the request must change). */
export class RegistryError extends JunctionError {
  override name = 'RegistryError';
  constructor(code: RegistryErrorCode, message: string, opts: { cause?: unknown; issues?: Issue[] | undefined } = {}) {
    super(code, message, {
      retryable: false,
      ...(opts.cause === undefined ? {} : { cause: opts.cause }),
      ...(opts.issues ? { issues: opts.issues } : {}),
    });
  }
}

/** PLUGIN_NOT_FOUND for `name`. */
export function pluginNotFound(name: string): RegistryError {
  return new RegistryError(RegistryErrorCode.PLUGIN_NOT_FOUND, `no connector plugin named ${JSON.stringify(name)}`);
}
