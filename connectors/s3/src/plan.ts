/**
 * Cutting one write into objects: messages go to the directory their layout names, and within a
 * directory an object is closed when the next message would pass `rotate.maxMessages` or
 * `rotate.maxBytes`, or when its time reaches the object's first message time + `rotate.intervalMs`
 * (record time, as in Confluent's rotate.interval.ms). The cut depends only on the messages, never
 * on the clock.
 */
export interface PlanInput {
  /** Offsets, timestamps, estimated encoded sizes and directories of the messages to write, in offset order. */
  offsets: readonly number[];
  timestamps: readonly number[];
  sizes: readonly number[];
  dirs: readonly string[];
  maxMessages?: number | undefined;
  maxBytes?: number | undefined;
  intervalMs?: number | undefined;
}

export interface PlannedObject {
  dir: string;
  /** Positions in the input arrays, ascending. */
  members: number[];
  first: number;
  last: number;
  /** Estimated bytes before compression. */
  bytes: number;
  firstTimestamp: number;
}

/** The objects to write, in the order their first message appears. */
export function planObjects(input: PlanInput): PlannedObject[] {
  const out: PlannedObject[] = [];
  const open = new Map<string, PlannedObject>();
  for (let i = 0; i < input.offsets.length; i++) {
    const dir = input.dirs[i] as string;
    const offset = input.offsets[i] as number;
    const ts = input.timestamps[i] as number;
    const size = input.sizes[i] as number;
    let obj = open.get(dir);
    if (
      obj &&
      ((input.maxMessages !== undefined && obj.members.length >= input.maxMessages) ||
        (input.maxBytes !== undefined && obj.bytes + size > input.maxBytes) ||
        (input.intervalMs !== undefined && ts >= obj.firstTimestamp + input.intervalMs))
    ) {
      obj = undefined;
    }
    if (!obj) {
      obj = { dir, members: [], first: offset, last: offset, bytes: 0, firstTimestamp: ts };
      open.set(dir, obj);
      out.push(obj);
    }
    obj.members.push(i);
    obj.last = offset;
    obj.bytes += size;
  }
  return out;
}
