/**
 * Signed tokens (JWT, HS256 via `jose`) with the installation's secrets: the first signs, every one
 * verifies (the `kid` header names which), so a new secret can be put first without logging everybody out.
 */
import { createHash } from 'node:crypto';
import { SignJWT, decodeProtectedHeader, jwtVerify } from 'jose';
import type { JWTPayload } from 'jose';

export const ISSUER = 'junction';

export class JwtKeys {
  private readonly keys: { kid: string; key: Uint8Array }[];
  constructor(secrets: readonly Buffer[]) {
    if (secrets.length === 0) throw new Error('at least one secret');
    this.keys = secrets.map((s) => ({ kid: createHash('sha256').update(s).digest('hex').slice(0, 16), key: new Uint8Array(s) }));
  }

  /** Signs `claims` (iss, iat and exp set here; `expSeconds` since the epoch). */
  async sign(claims: JWTPayload, nowMs: number, expSeconds: number): Promise<string> {
    const current = this.keys[0]!;
    return new SignJWT(claims)
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT', kid: current.kid })
      .setIssuer(ISSUER)
      .setIssuedAt(Math.floor(nowMs / 1000))
      .setExpirationTime(expSeconds)
      .sign(current.key);
  }

  /** The verified claims, or undefined when the token is malformed, forged, from another installation or expired. */
  async verify(token: string, nowMs: number): Promise<JWTPayload | undefined> {
    let kid: unknown;
    try {
      kid = decodeProtectedHeader(token).kid;
    } catch {
      return undefined;
    }
    const entry = this.keys.find((k) => k.kid === kid);
    if (!entry) return undefined;
    try {
      const { payload } = await jwtVerify(token, entry.key, {
        algorithms: ['HS256'],
        issuer: ISSUER,
        currentDate: new Date(nowMs),
        clockTolerance: 0,
      });
      return payload;
    } catch {
      return undefined;
    }
  }
}
