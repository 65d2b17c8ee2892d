/**
 * Secrets at rest for the connector runtime (see runtime.ts and sealed.ts): the keyring, loaded once,
 * opening a stored declaration's sealed secrets and sealing the literal ones of a declaration to store.
 */
import type { Logger } from 'pino';
import type { ConnectorDeclaration } from './declaration.js';
import { codeOf, messageOf } from './errors.js';
import { hasLiteralSecrets, hasSealed, loadKeyring, sealConfig, unsealConfig } from './sealed.js';
import type { SecretKeyring, SecretsKeySource } from './sealed.js';
import type { ConnectorRt } from './runtime-types.js';

/** The runtime's seals: its keyring and what it seals and opens. */
export class RuntimeSeals {
  private keyringP: Promise<SecretKeyring> | undefined;

  constructor(
    private readonly source: SecretsKeySource,
    private readonly log: Logger,
  ) {}

  /** The keyring, loaded once (a failure is not kept: the next call tries again). `create`: make the key file when missing. */
  keyring(create: boolean): Promise<SecretKeyring> {
    if (!this.keyringP) {
      const p = loadKeyring(this.source, create);
      this.keyringP = p;
      p.catch(() => {
        if (this.keyringP === p) this.keyringP = undefined;
      });
    }
    return this.keyringP;
  }

  /** Why the last unseal failed (see unseal). */
  lastUnsealError: Error | undefined;

  /**
   * The declaration with its sealed secrets opened; the same object (still sealed) when they do not open
   * — then `lastUnsealError` says why (no key, another key, altered), and the connector cannot start.
   */
  async unseal(d: ConnectorDeclaration): Promise<ConnectorDeclaration> {
    if (!hasSealed(d.config)) return d;
    try {
      return { ...d, config: unsealConfig(await this.keyring(false), d.name, d.config) };
    } catch (err) {
      this.lastUnsealError = err instanceof Error ? err : new Error(String(err));
      this.log.error(
        { connector: d.name, code: codeOf(err), err: messageOf(err) },
        'the stored secrets of a connector do not open; it cannot start until they do',
      );
      return d;
    }
  }

  /** The declaration as stored: its literal secrets sealed (per the plugin's schema), references as written. */
  async sealed(c: ConnectorRt): Promise<ConnectorDeclaration> {
    const d = c.declaration;
    // Secrets that did not open stay as they were stored; nothing else is sealed for them.
    if (c.sealError || !hasLiteralSecrets(c.schema, d.config)) return d;
    return { ...d, config: sealConfig(await this.keyring(true), d.name, c.schema, d.config) };
  }
}
