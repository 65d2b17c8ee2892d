/**
 * Snappy for Parquet's column chunks through the `snappy` package (napi-rs: Google's algorithm in Rust,
 * a prebuilt binary per platform from npm, nothing compiled at install), loaded once per thread. Where
 * the platform has no binary, hyparquet-writer's own JavaScript snappy is used: the same raw snappy
 * blocks, about 6x the CPU (measured on 1 KiB JSON events: ~8 µs a message in JavaScript).
 */
import { createRequire } from 'node:module';

type Compress = (data: Uint8Array) => Uint8Array;

let native: Compress | null | undefined;

/** The native raw-block compressor, or undefined when this platform has no `snappy` binary. */
export function nativeSnappy(): Compress | undefined {
  if (native === undefined) {
    try {
      const { compressSync } = createRequire(import.meta.url)('snappy') as { compressSync: (data: Uint8Array) => Buffer };
      native = (data) => compressSync(data);
    } catch {
      native = null;
    }
  }
  return native ?? undefined;
}
