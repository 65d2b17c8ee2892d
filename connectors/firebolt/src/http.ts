/**
 * firebolt-sdk's Node HTTP client, able to speak plain http too. The SDK's `NodeHttpClient` builds
 * its https-only agent lookup inside its constructor (an instance property, not a method), so a
 * subclass replaces it after `super()`: `http://` URLs (a local Firebolt, tests) get a keep-alive
 * `http.Agent`; everything else keeps the SDK's own https agents. Injected through
 * `Firebolt({ dependencies: { httpClient, logger } })`, which the SDK documents.
 */
import { Agent } from 'node:http';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
// The SDK's package has no exports map and does not export NodeHttpClient from its index.
const { NodeHttpClient } = require('firebolt-sdk/build/src/http/node.js') as {
  NodeHttpClient: new () => { getAgent: (url: string) => unknown; agentCache: Map<string, unknown> };
};

export class PlainOrTlsHttpClient extends NodeHttpClient {
  private readonly plain = new Agent({ keepAlive: true, keepAliveMsecs: 1000 });
  constructor() {
    super();
    const tls = this.getAgent;
    this.getAgent = (url: string) => (url.startsWith('http://') ? this.plain : tls(url));
  }
  /** Closes idle sockets of every agent. */
  destroy(): void {
    this.plain.destroy();
    for (const a of this.agentCache.values()) (a as { destroy(): void }).destroy();
  }
}

/** The SDK wants a logger object; the sink logs through its own context. */
export const silentLogger = { info: (_message: string): void => undefined };
