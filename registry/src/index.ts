/**
 * @junction/registry — the catalog of connector plugins.
 *
 * `Registry.open({ builtinDirs, pluginsDir })` finds the built-in connectors and the plugins installed
 * in the plugins dir, checks each one (package.json `junction` field, entry module, the SDK's
 * `checkPlugin`, unique names) and refuses the broken or incompatible ones without failing.
 * `installPlugin(spec, pluginsDir)` installs a plugin package there; `registryRoutes` serves the
 * catalog at `/v1/connector-plugins`.
 */
export { Registry, type RegistryOptions, type RegistryLogger, type Validation } from './registry.js';
export { type PluginDescriptor, type RefusedPlugin } from './check.js';
export {
  installPlugin,
  uninstallPlugin,
  preparePluginsDir,
  hostSdkDir,
  TARBALLS_DIR,
  PLUGINS_PACKAGE_NAME,
  type InstallOptions,
  type UninstallOptions,
  type Uninstalled,
} from './install.js';
export {
  registryRoutes,
  InstallBody,
  type RegistryRoutesOptions,
  type RegistryManageOptions,
  type PluginSummary,
  type PluginDetail,
  type PluginValidation,
} from './routes.js';
export { JunctionField, readPluginPackage, type PluginPackage } from './package.js';
export { SDK_PACKAGE } from './discover.js';
export { RegistryError, RegistryErrorCode, isJunctionError } from './errors.js';
