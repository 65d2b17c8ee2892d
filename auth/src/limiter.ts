/**
 * Login attempts limited per user and per address: after `max` failures within `windowMs`, further
 * attempts for that key are refused (without checking the password, so the KDF is not spent either)
 * until the oldest failure leaves the window. A success clears the user's count. Memory is bounded:
 * at most `maxKeys` keys are tracked (the oldest are forgotten first).
 */
export class FailureLimiter {
  private readonly failures = new Map<string, number[]>();
  constructor(
    private readonly max: number,
    private readonly windowMs: number,
    private readonly maxKeys = 10_000,
  ) {}

  /** Milliseconds until `key` may try again; 0 when it may now. */
  retryAfterMs(key: string, now: number): number {
    const list = this.live(key, now);
    if (list.length < this.max) return 0;
    return list[0]! + this.windowMs - now;
  }

  fail(key: string, now: number): void {
    const list = this.live(key, now);
    list.push(now);
    this.failures.delete(key);
    this.failures.set(key, list);
    while (this.failures.size > this.maxKeys) this.failures.delete(this.failures.keys().next().value!);
  }

  clear(key: string): void {
    this.failures.delete(key);
  }

  private live(key: string, now: number): number[] {
    const list = (this.failures.get(key) ?? []).filter((t) => t > now - this.windowMs);
    if (list.length === 0) this.failures.delete(key);
    return list;
  }
}
