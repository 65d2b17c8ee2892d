import { describe, expect, it } from 'vitest';
import { configJsonSchema, isSecret, parseConfig, redact, secret, secretPaths, validateConfig, z } from '../src/config.js';

const Schema = z.strictObject({
  url: z.url().describe('where to send'),
  token: secret(z.string()).describe('the API token'),
  auth: z
    .strictObject({
      user: z.string(),
      password: secret(z.string().min(8)),
    })
    .optional(),
  endpoints: z.array(z.strictObject({ host: z.string(), apiKey: secret(z.string()).optional() })).default([]),
  headers: z.record(z.string(), secret(z.string())).optional(),
  mode: z
    .discriminatedUnion('type', [
      z.strictObject({ type: z.literal('basic'), secretKey: secret(z.string()) }),
      z.strictObject({ type: z.literal('none') }),
    ])
    .optional(),
  retries: z.int().min(0).default(3),
});

const raw = {
  url: 'https://example.com/hook',
  token: 'tok-123456',
  auth: { user: 'ann', password: 'hunter2hunter2' },
  endpoints: [{ host: 'a', apiKey: 'key-aaaa' }, { host: 'b' }],
  headers: { 'x-api-key': 'hdr-secret' },
  mode: { type: 'basic', secretKey: 'sk-999' },
};

describe('secret fields', () => {
  it('secret() keeps the type and other metadata and is introspectable', () => {
    const s = secret(z.string().describe('pw'));
    expect(isSecret(s)).toBe(true);
    expect(s.description).toBe('pw');
    expect(isSecret(secret(z.string()).describe('later'))).toBe(true);
    expect(isSecret(z.string())).toBe(false);
    expect(s.parse('x')).toBe('x');
  });

  it('secretPaths lists nested, array, record and union secrets', () => {
    expect(secretPaths(Schema).sort()).toEqual(['auth.password', 'endpoints[*].apiKey', 'headers.*', 'mode.secretKey', 'token']);
    expect(secretPaths(secret(z.object({ a: z.string() })))).toEqual(['']);
  });

  it('redact replaces every secret value with *** and leaves the rest', () => {
    const out = redact(Schema, raw);
    expect(out).toEqual({
      url: 'https://example.com/hook',
      token: '***',
      auth: { user: 'ann', password: '***' },
      endpoints: [{ host: 'a', apiKey: '***' }, { host: 'b' }],
      headers: { 'x-api-key': '***' },
      mode: { type: 'basic', secretKey: '***' },
    });
    expect(raw.token).toBe('tok-123456'); // a copy, not in place
    const text = JSON.stringify(redact(Schema, Schema.parse(raw)));
    for (const s of ['tok-123456', 'hunter2hunter2', 'key-aaaa', 'hdr-secret', 'sk-999']) expect(text).not.toContain(s);
  });

  it('redact never throws on input that does not match the schema', () => {
    expect(redact(Schema, null)).toBeNull();
    expect(redact(Schema, 'str')).toBe('str');
    expect(redact(Schema, { auth: 'not an object', token: 5 })).toEqual({ auth: 'not an object', token: '***' });
    expect(redact(Schema, { endpoints: 'nope' })).toEqual({ endpoints: 'nope' });
  });

  it('redact handles recursive (lazy) schemas', () => {
    interface Node {
      name: string;
      key?: string;
      children?: Node[];
    }
    const NodeSchema: z.ZodType<Node> = z.lazy(() =>
      z.object({ name: z.string(), key: secret(z.string()).optional(), children: z.array(NodeSchema).optional() }),
    );
    expect(redact(NodeSchema, { name: 'a', key: 'k1', children: [{ name: 'b', key: 'k2' }] })).toEqual({
      name: 'a',
      key: '***',
      children: [{ name: 'b', key: '***' }],
    });
    expect(secretPaths(NodeSchema)).toContain('key');
  });
});

describe('configJsonSchema', () => {
  it('describes the input with descriptions, defaults and writeOnly secrets', () => {
    const json = configJsonSchema(Schema) as { properties: Record<string, Record<string, unknown>>; required: string[] };
    expect(json.properties.url).toMatchObject({ type: 'string', description: 'where to send' });
    expect(json.properties.token).toMatchObject({ type: 'string', writeOnly: true, 'x-secret': true, description: 'the API token' });
    expect(json.properties.token).not.toHaveProperty('secret');
    expect(json.properties.retries).toMatchObject({ default: 3 });
    expect(json.required.sort()).toEqual(['token', 'url']);
    expect(JSON.stringify(json)).toContain('"writeOnly":true');
    const auth = json.properties.auth as { properties: Record<string, Record<string, unknown>> };
    expect(auth.properties.password).toMatchObject({ writeOnly: true, minLength: 8 });
  });

  it('does not fail on what JSON Schema cannot express', () => {
    const s = z.strictObject({ when: z.date(), n: z.string().transform((v) => v.length) });
    expect(() => configJsonSchema(s)).not.toThrow();
  });
});

describe('validateConfig / parseConfig', () => {
  it('report every issue with a field path', () => {
    const result = validateConfig(Schema, { url: 'not a url', auth: { user: 'a', password: 'short' }, endpoints: [{}], extra: 1 });
    expect(result.success).toBe(false);
    if (result.success) return;
    const paths = result.issues.map((i) => i.path).sort();
    expect(paths).toEqual(expect.arrayContaining(['url', 'token', 'auth.password', 'endpoints[0].host', '']));
    expect(JSON.stringify(result.issues)).not.toContain('short');
  });

  it('parseConfig returns the typed config or throws CONFIG_INVALID with issues', () => {
    expect(parseConfig(Schema, raw).retries).toBe(3);
    try {
      parseConfig(Schema, { url: 'https://x.y' }, 'connectors[1].config');
      expect.unreachable();
    } catch (err) {
      expect(err).toMatchObject({ code: 'CONFIG_INVALID', retryable: false });
      expect((err as Error).message).toContain('connectors[1].config.token');
      expect((err as { issues: unknown[] }).issues[0]).toMatchObject({ path: 'connectors[1].config.token' });
    }
  });
});
