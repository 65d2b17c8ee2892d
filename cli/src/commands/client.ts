import { JunctionClient } from '@junction/client';
import type { Command } from 'commander';

/** The broker URL the client commands use when neither --url nor JUNCTION_URL says otherwise. */
export const DEFAULT_URL = 'http://127.0.0.1:6666';

/** Runs `fn` with a client of the broker named by the global --url, and closes the client after. */
export async function withClient<T>(command: Command, fn: (client: JunctionClient) => Promise<T>): Promise<T> {
  const { url } = command.optsWithGlobals<{ url: string }>();
  const client = new JunctionClient({ url });
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}
