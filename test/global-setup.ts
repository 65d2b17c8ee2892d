/** vitest's global setup: the turn keeper for files that share an outside service (test/src/exclusive.ts). */
import type { TestProject } from 'vitest/node';
import { startExclusiveServer } from './src/exclusive-server.js';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const keeper = await startExclusiveServer();
  project.provide('exclusivePort', keeper.port);
  return () => keeper.close();
}
