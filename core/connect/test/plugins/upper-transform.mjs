// A community-style transform plugin: upper-cases the value's text (field `only` limits it to values
// that start with that text) and drops empty values. Throws on the value "boom".
import { defineTransform, z } from '@junction/sdk-connector';

export default defineTransform({
  name: 'test-upper',
  version: '0.0.1',
  sdk: '^1',
  config: z.strictObject({ only: z.string().optional() }),
  open(config) {
    return {
      transform(m) {
        const text = new TextDecoder().decode(m.value);
        if (text === '') return null;
        if (text === 'boom') throw new Error('the upper transform refuses "boom"');
        if (config.only !== undefined && !text.startsWith(config.only)) return m;
        return { ...m, value: new TextEncoder().encode(text.toUpperCase()), headers: { ...m.headers, upper: 'yes' } };
      },
    };
  },
});
