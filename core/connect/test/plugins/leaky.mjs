// Quotes its secret everywhere it can: in a validation message, in open()'s error, in dead-letter
// reasons. The runtime must hide it in every answer, status, log line and dead-letter header.
import { deadLetter, defineSink, JunctionError, secret, z } from '@junction/sdk-connector';

export default defineSink({
  name: 'test-leaky',
  version: '0.0.1',
  sdk: '^1',
  config: z.strictObject({
    token: secret(z.string().refine((v) => !v.startsWith('bad'), { error: (iss) => `the token ${String(iss.input)} is refused` })),
    failOpen: z.boolean().default(false),
  }),
  open(config) {
    if (config.failOpen) throw new JunctionError('AUTH_FAILED', `login with token ${config.token} refused`);
    return {
      async write(batch) {
        return batch.messages.map(() => deadLetter('SINK_REJECTED', `rejected under token ${config.token}`));
      },
      async close() {},
    };
  },
});
