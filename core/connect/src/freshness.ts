/**
 * Freshness of a sink connector: when each task last landed a batch, and the produce time (the message's
 * broker timestamp) of the last message of that batch it landed. Kept per connector by the runtime, so it
 * outlives a runner (pause, resume, restart, reconfiguration); the hot path stores two numbers per
 * answered batch, and the ISO strings and seconds are made only when a status or a scrape asks.
 */

/** What status answers show: `lastLandedAt − lastProducedAt` in seconds (never below 0). */
export interface Freshness {
  /** When the sink confirmed the batch (ISO 8601). */
  lastLandedAt: string;
  /** The produce time of the last message of that batch the sink confirmed (ISO 8601). */
  lastProducedAt: string;
  /** From produce to landed, of that message, in seconds. */
  seconds: number;
}

/** A connector's freshness per task (see the file comment). */
export class FreshnessTracker {
  private readonly landedAt: number[] = [];
  private readonly producedAt: number[] = [];

  /** Task `task` landed a batch now (ms since epoch) whose last confirmed message was produced at `producedAt` (ms). */
  landed(task: number, producedAt: number, landedAt = Date.now()): void {
    this.landedAt[task] = landedAt;
    this.producedAt[task] = producedAt;
  }

  /** The task's freshness; null until it landed something. */
  ofTask(task: number): Freshness | null {
    const l = this.landedAt[task];
    return l === undefined ? null : view(l, this.producedAt[task]!);
  }

  /** The connector's: that of the task that landed most recently; null until one landed something. */
  overall(): Freshness | null {
    const t = this.latestTask();
    return t === undefined ? null : view(this.landedAt[t]!, this.producedAt[t]!);
  }

  /** The connector's freshness in seconds (the gauge), undefined until a task landed something. */
  seconds(): number | undefined {
    const t = this.latestTask();
    return t === undefined ? undefined : secondsOf(this.landedAt[t]!, this.producedAt[t]!);
  }

  private latestTask(): number | undefined {
    let best: number | undefined;
    for (let t = 0; t < this.landedAt.length; t++) {
      const l = this.landedAt[t];
      if (l !== undefined && (best === undefined || l > this.landedAt[best]!)) best = t;
    }
    return best;
  }
}

function secondsOf(landedAt: number, producedAt: number): number {
  // Timestamps are the broker's (one clock per node); a cluster node's clock may run a little behind.
  return Math.max(0, landedAt - producedAt) / 1000;
}

function view(landedAt: number, producedAt: number): Freshness {
  return {
    lastLandedAt: new Date(landedAt).toISOString(),
    lastProducedAt: new Date(producedAt).toISOString(),
    seconds: secondsOf(landedAt, producedAt),
  };
}
