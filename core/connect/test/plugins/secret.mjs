// Has a secret field; writes the resolved values it was opened with to <dir>/opened.json.
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { defineSink, ok, secret, z } from '@junction/sdk-connector';

export default defineSink({
  name: 'test-secret',
  version: '0.0.1',
  sdk: '^1',
  config: z.strictObject({ dir: z.string(), user: z.string(), token: secret(z.string()), password: secret(z.string()).optional() }),
  open(config) {
    mkdirSync(config.dir, { recursive: true });
    writeFileSync(join(config.dir, 'opened.json'), JSON.stringify(config));
    return {
      async write(batch) {
        return batch.messages.map(() => ok());
      },
      async close() {},
    };
  },
});
