/**
 * Runs one warehouse fake (test/fakes, compiled into dist/fakes) in a process of its own for the sink
 * rows of the bench, as s3rver runs in its own: the service's CPU is not the broker's (a real warehouse
 * is another machine), and a fake sharing the broker's event loop would tax the runtime row alone.
 *
 * Argument: JSON `{ kind, options?, datasets?: [project, dataset][] }`. Prints `{"url": …}` on stdout
 * once listening; runs until killed.
 */
const arg = JSON.parse(process.argv[2] ?? '{}') as { kind: string; options?: unknown; datasets?: [string, string][] };
const mod = (await import(new URL(`./fakes/${arg.kind}/server.js`, import.meta.url).href)) as Record<string, unknown>;
const Cls = Object.values(mod).find(
  (v): v is new (o?: unknown) => { url: string; start(): Promise<unknown>; createDataset?(p: string, d: string): unknown } =>
    typeof v === 'function' && /^Fake/.test(v.name),
);
if (!Cls) throw new Error(`no Fake class in fakes/${arg.kind}/server.js`);
const fake = new Cls(arg.options);
await fake.start();
for (const [p, d] of arg.datasets ?? []) fake.createDataset?.(p, d);
process.stdout.write(`${JSON.stringify({ url: fake.url })}\n`);
process.on('SIGTERM', () => process.exit(0));
