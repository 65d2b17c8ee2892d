import { JunctionClient } from '@junction/client';
import type { Command } from 'commander';
import { credentialsPath, readCredentials } from './credentials.js';

/** The broker URL the client commands use when neither --url nor JUNCTION_URL says otherwise. */
export const DEFAULT_URL = 'http://127.0.0.1:6666';

/**
 * Runs `fn` with a client of the broker named by the global --url, and closes the client after. The
 * token: --token, else JUNCTION_TOKEN (both set as the option's default), else the one `junction login`
 * stored for this URL.
 */
export async function withClient<T>(
  command: Command,
  fn: (client: JunctionClient) => Promise<T>,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<T> {
  const { url, token } = command.optsWithGlobals<{ url: string; token?: string }>();
  const stored = token ? undefined : (await readCredentials(credentialsPath(env)))[url]?.token;
  const client = new JunctionClient({ url, ...((token || stored) && { token: token || stored }) });
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}
