/**
 * The access model: resources, actions, grants, roles, and the records the store keeps (users,
 * service tokens, sessions). Every input is checked with these zod schemas.
 */
import { z } from 'zod';

export const Resource = z.enum(['station', 'group', 'connector', 'schema', 'cluster']);
export type Resource = z.infer<typeof Resource>;
export const RESOURCES = Resource.options;

export const Action = z.enum(['produce', 'consume', 'manage', 'read']);
export type Action = z.infer<typeof Action>;
export const ACTIONS = Action.options;

/** A name pattern: 1–256 printable characters, `*` matching any run of them. */
export const Pattern = z
  .string()
  .min(1, 'must not be empty')
  .max(256)
  .regex(/^[\x21-\x7e]+$/, 'printable ASCII without spaces');

/**
 * One grant: `actions` on the `resource`s whose name matches `pattern`. `effect: 'deny'` takes those
 * actions away whatever else allows them (deny wins). Anything no grant allows is denied.
 */
export const Grant = z.strictObject({
  resource: Resource,
  pattern: Pattern,
  actions: z.array(Action).min(1).max(4),
  effect: z.enum(['allow', 'deny']).default('allow'),
});
export type Grant = z.output<typeof Grant>;
export type GrantInput = z.input<typeof Grant>;

export const RoleName = z.enum(['admin', 'editor', 'viewer']);
export type RoleName = z.infer<typeof RoleName>;

const all = (resource: Resource, actions: Action[] = [...ACTIONS]): Grant => ({ resource, pattern: '*', actions, effect: 'allow' });

/**
 * Roles are named grant sets. admin: everything. editor: every action on stations, groups,
 * connectors and schemas, plus `read` on the cluster (metrics, the plugin catalog) — not user or
 * token administration. viewer: `read` on everything (metadata, metrics; not message contents).
 */
export const ROLES: Readonly<Record<RoleName, readonly Grant[]>> = {
  admin: RESOURCES.map((r) => all(r)),
  editor: [all('station'), all('group'), all('connector'), all('schema'), all('cluster', ['read'])],
  viewer: RESOURCES.map((r) => all(r, ['read'])),
};

export const UserName = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._@-]*$/, 'letters, digits, ".", "_", "@", "-", starting with a letter or digit');

/** Passwords: 8–1024 characters (the upper bound keeps the KDF's input bounded). */
export const Password = z.string().min(8, 'at least 8 characters').max(1024);

export const UserRecord = z.strictObject({
  name: UserName,
  role: RoleName,
  /** `scrypt$<log2 N>$<r>$<p>$<salt b64>$<hash b64>` */
  passwordHash: z.string().min(1),
  createdAt: z.int(),
  updatedAt: z.int(),
});
export type UserRecord = z.infer<typeof UserRecord>;

export const TokenRecord = z.strictObject({
  /** Public id (hex): in the token text, in listings, in DELETE /v1/tokens/:id. */
  id: z.string().regex(/^[0-9a-f]{16}$/),
  name: z.string().min(1).max(128),
  /** The user who made it: the token never does more than this user may do now. */
  owner: UserName,
  grants: z.array(Grant),
  /** sha256 of the secret part (the secret is 32 random bytes, so a fast hash is enough). */
  secretHash: z.string().regex(/^[0-9a-f]{64}$/),
  createdAt: z.int(),
  /** ms since the epoch; absent: no expiry. */
  expiresAt: z.int().optional(),
  revokedAt: z.int().optional(),
});
export type TokenRecord = z.infer<typeof TokenRecord>;

/** A login: its access JWTs carry `sid`; its refresh token is stored hashed. */
export const SessionRecord = z.strictObject({
  id: z.string().regex(/^[0-9a-f]{32}$/),
  user: UserName,
  /** sha256 hex of the current refresh token (rotated on every refresh). */
  refreshHash: z.string().regex(/^[0-9a-f]{64}$/),
  createdAt: z.int(),
  expiresAt: z.int(),
  /** 'memphis': made by the Memphis gateway's /auth/authenticate (its refresh token is a JWT). */
  kind: z.enum(['v1', 'memphis']).default('v1'),
  /** Memphis connection-token logins: the service token the session acts as. */
  tokenId: z.string().optional(),
});
export type SessionRecord = z.output<typeof SessionRecord>;

/** Everything the AuthStore keeps, as one versioned document. */
export const AuthState = z.strictObject({
  version: z.literal(1),
  users: z.array(UserRecord),
  tokens: z.array(TokenRecord),
  sessions: z.array(SessionRecord),
});
export type AuthState = z.output<typeof AuthState>;

export function emptyState(): AuthState {
  return { version: 1, users: [], tokens: [], sessions: [] };
}

/** Who made a request. `grants` are what the principal itself holds; a token is also capped by its owner's. */
export type Principal =
  | { kind: 'user'; name: string; role: RoleName; sessionId: string }
  | {
      kind: 'token';
      id: string;
      name: string;
      owner: string;
      ownerRole: RoleName;
      grants: readonly Grant[];
      sessionId?: string | undefined;
    };
