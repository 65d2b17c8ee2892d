/**
 * Late writes, for the fakes: requests a fake holds — received from the client, not applied — until
 * the test releases them. What a write looks like whose writer was killed (kill -9) after sending it:
 * the service still applies it, later, and its answer reaches nobody.
 *
 *   const held = fake.holdWrites();      // from now on the fake holds its write requests
 *   …                                    // a writer sends one and dies; another replays the range
 *   await held.held();                   // at least one is held
 *   held.stop();                         // the writer is dead: new requests go through again
 *   await held.release();                // each applied in the order received; their connections stay silent
 *
 * `held` / `stop` / `release` are what the SDK kit's `lateWrite.hold()` asks for (HeldWrites).
 */

/** The handle of a hold (the SDK kit's HeldWrites). */
export interface HeldWrites {
  held: () => Promise<void>;
  stop: () => void;
  release: () => Promise<void>;
}
export class Holds {
  private active = false;
  private readonly queue: { go: () => void; applied: Promise<void> }[] = [];
  private waiters: (() => void)[] = [];

  /** Whether new write requests are held. */
  get holding(): boolean {
    return this.active;
  }

  /** How many requests are held now. */
  get count(): number {
    return this.queue.length;
  }

  /** Starts holding write requests. */
  start(): HeldWrites {
    this.active = true;
    return { held: () => this.held(), stop: () => void (this.active = false), release: () => this.release() };
  }

  /**
   * For the fake: holds one request. Resolves (with `applied`, to call once the request took effect)
   * when the test releases it; the fake then applies it and never answers.
   */
  hold(): Promise<() => void> {
    let go!: () => void;
    let applied!: () => void;
    const released = new Promise<void>((r) => (go = r));
    const done = new Promise<void>((r) => (applied = r));
    this.queue.push({ go, applied: done });
    for (const w of this.waiters.splice(0)) w();
    return released.then(() => applied);
  }

  /** Resolves once at least one request is held. */
  held(): Promise<void> {
    if (this.queue.length > 0) return Promise.resolve();
    return new Promise((r) => this.waiters.push(r));
  }

  /** Stops holding; applies the held requests in the order received; resolves once each took effect. */
  async release(): Promise<void> {
    this.active = false;
    for (const q of this.queue.splice(0)) {
      q.go();
      await q.applied;
    }
  }
}
