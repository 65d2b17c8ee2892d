/**
 * Which streams (partitions, claim streams) have no reachable leader right now, so that produce answers
 * for them at once instead of waiting out the request timeout (README, "Produce during a leader
 * election").
 *
 * Why it is needed: when a stream leader is cut off, the other servers keep its subscription to the
 * stream subject (the route to it is not closed for minutes), so a publish is forwarded into the void:
 * no "no responders", just no answer. And the followers wait for their election timeout (4–9 s in
 * nats-server 2.9) before they elect another leader. Without this, every publish to that partition waits
 * the full request timeout, and so does every produce call that has one message for it.
 *
 * How: per stream, publishes in flight and the last time one of them was answered. A stream with
 * publishes in flight and no answer for `stallMs` is probed: STREAM.INFO with a short timeout. No answer
 * (the followers still believe in the unreachable leader, so nobody answers), an answer without a leader
 * (an election is under way) or from a leader that has not heard from a quorum of its followers lately
 * (it is the one cut off) mark the stream down: its publishes in flight are failed (they may still be
 * stored: NOT_ACKNOWLEDGED), new ones are not sent (UNAVAILABLE, or another partition for a message
 * without a key), and it is probed every `reprobeMs` until a leader answers. A publish answered "no
 * responders" (nobody subscribed: a leader stepped down) asks for the same check at once.
 *
 * Publishes can also be lost to a former leader: sent while the followers still believed in the leader
 * that was cut off, they were forwarded into the void and will never be answered, while later ones reach
 * the new leader. So a stall with a healthy leader has the publishes that waited `stallMs` and carry a
 * msgId sent again (the dedup makes that safe: a copy that lands second answers "duplicate" with the
 * first one's offset). For the others: a leader stores messages in the order they arrive and this
 * store's arrive in the order it sent them (one connection), so a publish still unanswered `overtakenMs`
 * after a later one to the same stream was stored (a PubAck; duplicates and errors may be answered out
 * of order) is lost: it is failed (NOT_ACKNOWLEDGED), the stream is not marked down. And with nothing
 * stored after it (every producer waits for its lost message), a healthy leader that stored nothing at
 * all between two stall probes `stallMs` apart has what waited more than twice `stallMs` failed (a
 * leader that is merely slow is storing other messages meanwhile).
 *
 * Nothing here runs while publishes are answered: per publish, one map lookup and a few counter updates.
 */

/** The `cluster` part of a STREAM.INFO answer (nats-server 2.9 field names; `active` in ns). */
export interface ClusterInfo {
  leader?: string | undefined;
  replicas?: { name: string; current?: boolean; offline?: boolean; active?: number }[] | undefined;
}

/** `lastSeq`: the stream's last sequence as the probe's answer gave it. */
/**
 * `starting`: no reachable leader on a stream created or reconfigured a moment ago (its first election,
 * or the hand-over to its preferred peer): its publishes wait for the leader, they are not refused.
 */
export type Verdict = { down: false; lastSeq?: number | undefined } | { down: true; reason: string; starting?: boolean | undefined };

/**
 * Whether a STREAM.INFO answer shows a leader that can store a message now. The answer names the leader
 * and lists every replica but the one that answered, each with how long ago the answering server last
 * heard from it. Usually the leader answers: it can store if it heard from enough followers in the last
 * `silentMs` to make a quorum with itself. A follower answers only while the group is new (nats-server
 * 2.9 lets the group's preferred peer answer for its first 10 s) — then the leader is in the list, and
 * what counts is whether that follower heard from it lately.
 */
export function leaderVerdict(cluster: ClusterInfo | undefined, silentMs: number): Verdict {
  if (!cluster) return { down: false }; // not clustered: the server that answered is the stream
  const leader = cluster.leader;
  if (!leader) return { down: true, reason: 'no leader (an election is under way)' };
  const replicas = cluster.replicas ?? [];
  const live = (r: { offline?: boolean; active?: number }) => !r.offline && (r.active ?? 0) < silentMs * 1_000_000;
  const asLeader = replicas.find((r) => r.name === leader);
  if (asLeader) {
    return live(asLeader)
      ? { down: false }
      : { down: true, reason: `its leader ${leader} has not been heard from for ${silentMs} ms (it is unreachable)` };
  }
  const needed = Math.floor((replicas.length + 1) / 2);
  if (replicas.filter(live).length < needed) {
    return {
      down: true,
      reason: `its leader ${leader} has not heard from a quorum of its replicas for ${silentMs} ms (it is cut off from them)`,
    };
  }
  return { down: false };
}

export interface Track {
  readonly subject: string;
  readonly stream: string;
  /** For messages: `partition 0 of station "orders"`. */
  readonly what: string;
  inflight: number;
  /** When a publish was last answered, or the first one went out after none was in flight (performance.now()). */
  lastAnswer: number;
  lastUse: number;
  down: boolean;
  reason: string;
  /** No stall check before this (after a check found the leader well). */
  nextCheck: number;
  /** While down: the next re-probe. */
  nextProbe: number;
  checking: Promise<boolean> | undefined;
  /** When the last verdict was taken, and the probe generation (a late verdict never overrides a newer one). */
  checkedAt: number;
  gen: number;
  applied: number;
  /** Send time of the latest publish answered; the cut-off being aged (`overtakenMs`) and the last one applied. */
  answeredSent: number;
  cutoff: { sent: number; at: number } | undefined;
  cutoffDone: number;
  /** The stream's last sequence at the previous probe of the current stall (healthy leader). */
  stallSeq: number | undefined;
  /** This store saw the stream led (an answer to a publish, or a probe): "no leader" then means lost, not starting. */
  seenLeader: boolean;
  /** When this store first published to it (performance.now()). */
  firstUse: number;
}

export interface LeaderWatchOptions {
  /** Publishes in flight with no answer for this long make the stream be probed. */
  stallMs: number;
  /** Timeout of one probe. */
  probeTimeoutMs: number;
  /** How often a stream that is down is probed again. */
  reprobeMs: number;
  /** A publish still unanswered this long after a later one to the same stream was answered is lost. */
  overtakenMs: number;
  /**
   * A stream this store never saw led, first used less than this ago, is taken to be electing its first
   * leader (created a moment ago): no verdict marks it down, its publishes wait for the leader.
   */
  firstElectionMs: number;
  /** Asks about a stream's leader (STREAM.INFO with `probeTimeoutMs`). */
  probe(stream: string): Promise<Verdict>;
  /** A stream went down: fail its publishes in flight. */
  onDown(t: Track): void;
  /** Publishes sent before `sentBefore` (performance.now()) went to a former leader (`reason`): fail them. */
  onLost(t: Track, sentBefore: number, reason: string): void;
  /** A stall with a healthy leader: send again what was sent before `sentBefore` and may be (msgId'd). */
  onResend(t: Track, sentBefore: number): void;
  log?: { warn(o: object, msg: string): void; info(o: object, msg: string): void } | undefined;
  now?: () => number;
}

/** A track unused this long (and with nothing in flight) is forgotten; a stream down is no longer probed. */
const FORGET_MS = 60_000;
/** A verdict this young answers a "no responders" check without a new probe. */
const VERDICT_FRESH_MS = 100;

export class LeaderWatch {
  private readonly tracks = new Map<string, Track>();
  private readonly now: () => number;

  constructor(private readonly o: LeaderWatchOptions) {
    this.now = o.now ?? (() => performance.now());
  }

  /** The track of a stream subject (created on first use). */
  track(subject: string, stream: string, what: string): Track {
    let t = this.tracks.get(subject);
    if (!t) {
      const now = this.now();
      t = {
        ...{ subject, stream, what, inflight: 0, lastAnswer: now, lastUse: now, down: false, reason: '', nextCheck: 0, nextProbe: 0 },
        ...{
          checking: undefined,
          checkedAt: -Infinity,
          gen: 0,
          applied: 0,
          answeredSent: -Infinity,
          cutoff: undefined,
          cutoffDone: -Infinity,
          stallSeq: undefined,
          seenLeader: false,
          firstUse: now,
        },
      };
      this.tracks.set(subject, t);
    }
    return t;
  }

  /** Known to have no reachable leader (a subject never used: not known, so not down). */
  isDown(subject: string): boolean {
    return this.tracks.get(subject)?.down === true;
  }

  /** A publish goes out; returns its send time (for settled). */
  sent(t: Track): number {
    const now = this.now();
    if (t.inflight++ === 0) t.lastAnswer = now;
    t.lastUse = now;
    return now;
  }

  /**
   * A publish ended: `answered` when the stream answered it (a PubAck or a JetStream error), `stored` when
   * the answer was a PubAck of a new message (the ones a leader sends in order).
   */
  settled(t: Track, answered: boolean, sentAt: number, stored: boolean): void {
    t.inflight--;
    if (!answered) return;
    t.seenLeader = true;
    t.lastAnswer = this.now();
    t.stallSeq = undefined;
    if (stored && sentAt > t.answeredSent) t.answeredSent = sentAt;
  }

  /**
   * A publish got "no responders": nobody is subscribed, so the leader stepped down or is not there yet.
   * True when the stream has no leader (a fresh verdict, the check under way, or a new probe) — unless
   * this store never saw it led: then it is most likely a stream created a moment ago whose first leader
   * is being elected, and the publish is better retried than refused (false).
   */
  async confirmDown(t: Track): Promise<boolean> {
    if (t.down) return true;
    if (t.checking) return t.checking;
    if (this.now() - t.checkedAt < VERDICT_FRESH_MS) return t.down;
    return this.check(t);
  }

  /** Probes now; applies the verdict unless a newer one was applied meanwhile. Resolves with "down". */
  private check(t: Track, stalled = false): Promise<boolean> {
    const gen = ++t.gen;
    const started = this.now();
    const p = this.o
      .probe(t.stream)
      .catch((err: unknown): Verdict => ({ down: true, reason: err instanceof Error ? err.message : String(err) }))
      .then((v) => {
        if (t.checking === p) t.checking = undefined;
        if (gen < t.applied) return t.down;
        t.applied = gen;
        t.checkedAt = this.now();
        if (!v.down) t.seenLeader = true;
        else if (!t.down && (v.starting === true || (!t.seenLeader && (!stalled || this.now() - t.firstUse < this.o.firstElectionMs)))) {
          t.nextCheck = this.now() + this.o.reprobeMs;
          return false; // starting, not lost (see confirmDown)
        }
        this.apply(t, v);
        if (stalled && !v.down) {
          this.o.onResend(t, started - this.o.stallMs);
          if (v.lastSeq !== undefined && v.lastSeq === t.stallSeq) {
            this.o.onLost(
              t,
              started - 2 * this.o.stallMs,
              `no answer for ${2 * this.o.stallMs} ms from a leader that stores nothing: the message went to a former leader`,
            );
          }
          t.stallSeq = v.lastSeq;
        }
        return t.down;
      });
    t.checking = p;
    return p;
  }

  private apply(t: Track, v: Verdict): void {
    if (v.down) {
      t.reason = v.reason;
      if (!t.down) {
        t.down = true;
        t.nextProbe = this.now() + this.o.reprobeMs;
        this.o.log?.warn(
          { stream: t.stream, reason: v.reason },
          'stream has no reachable leader: produce to it is refused until one is back',
        );
        this.o.onDown(t);
      }
    } else {
      t.nextCheck = this.now() + this.o.stallMs;
      if (t.down) {
        t.down = false;
        t.reason = '';
        t.lastAnswer = this.now();
        this.o.log?.info({ stream: t.stream }, 'stream has a leader again');
      }
    }
  }

  /** Every ~100 ms: stalled streams are checked, streams down are probed again, unused tracks forgotten. */
  scan(): void {
    const now = this.now();
    for (const t of this.tracks.values()) {
      if (t.down) {
        if (now - t.lastUse > FORGET_MS) {
          this.tracks.delete(t.subject);
          continue;
        }
        // Probes overlap (each has its own timeout) so a leader is noticed within reprobeMs of answering.
        if (now >= t.nextProbe) {
          t.nextProbe = now + this.o.reprobeMs;
          void this.check(t);
        }
        continue;
      }
      if (t.inflight > 0) {
        // Overtaken: what was sent before a publish answered `overtakenMs` ago is lost.
        if (t.cutoff && now - t.cutoff.at >= this.o.overtakenMs) {
          this.o.onLost(t, t.cutoff.sent, 'a message sent after it was answered and this one was not: it went to a former leader');
          t.cutoff = undefined;
        }
        if (!t.cutoff && t.answeredSent > t.cutoffDone) {
          t.cutoff = { sent: t.answeredSent, at: now };
          t.cutoffDone = t.answeredSent;
        }
        if (!t.checking && now - t.lastAnswer >= this.o.stallMs && now >= t.nextCheck) void this.check(t, true);
      } else if (now - t.lastUse > FORGET_MS && !t.checking) {
        this.tracks.delete(t.subject);
      }
    }
  }
}
