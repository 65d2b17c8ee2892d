export { makeDirs } from '@junction/sdk-connector';

/**
 * System error codes that say the directory cannot be used as configured — retrying will not help until
 * the configuration or the file system changes (as opposed to ENOSPC, EIO, EMFILE: passing conditions).
 */
export const UNUSABLE_DIR_CODES: ReadonlySet<string> = new Set([
  'ENOENT',
  'EACCES',
  'EPERM',
  'EROFS',
  'ENOTDIR',
  'EEXIST',
  'ELOOP',
  'ENAMETOOLONG',
  'EINVAL',
]);
