/**
 * `@junction/auth`: users (scrypt), service tokens (hashed, expiring, revocable), roles as grant sets,
 * sessions (HS256 JWTs plus rotated refresh tokens), the decision (default deny, deny wins) and the
 * HTTP routes that manage them. core/server wires it: it adds the access hook that calls
 * `AuthService.authenticate` / `authorize` for every route. The broker and the connector runtime never
 * import this package.
 */
export { AuthErrorCode, AUTH_STATUS, forbidden, unauthenticated } from './errors.js';
export {
  Action,
  ACTIONS,
  AuthState,
  Grant,
  Pattern,
  Resource,
  RESOURCES,
  RoleName,
  ROLES,
  UserName,
  Password,
  emptyState,
} from './model.js';
export type { GrantInput, Principal, SessionRecord, TokenRecord, UserRecord } from './model.js';
export { matchPattern, patternContains, patternsIntersect } from './patterns.js';
export { allows, grantSets, grantWithin, principalAllows } from './policy.js';
export { hashPassword, verifyPassword, DEFAULT_SCRYPT_LOG_N } from './passwords.js';
export { FileAuthStore } from './store.js';
export type { AuthStore, FileAuthStoreOptions, VersionedState } from './store.js';
export { JwtKeys, ISSUER } from './jwt.js';
export { AuthService, CreateTokenBody, CreateUserBody, LoginBody, RefreshBody, UpdateUserBody } from './service.js';
export type { AuthLogger, AuthServiceOptions, MemphisTokens, SessionTokens, TokenInfo, UserInfo } from './service.js';
export { authRoutes, authErrorHandler, principalOf, setPrincipal } from './routes.js';
export type { AuthRoutesOptions } from './routes.js';
