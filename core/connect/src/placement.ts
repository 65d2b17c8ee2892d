/**
 * Where connector tasks run. The runtime asks its `Placement` which tasks this node may run now and
 * reconciles its runners whenever the answer changes. `LocalPlacement` (one node, the default) owns
 * every task. The cluster one (`@junction/cluster`'s `ClusterPlacement`) owns a task only while it
 * holds the task's lease; core/connect knows nothing of NATS.
 *
 * Connector definitions go through a `DefinitionStore`: the default keeps them in
 * `<dataDir>/connect/connectors.json` (in runtime.ts); the cluster one keeps them in the shared
 * metadata bucket so every node serves the same connectors.
 */
import type { ConnectorDeclaration, ConnectorOrigin, TargetState } from './declaration.js';

export interface TaskRef {
  connector: string;
  task: number;
}

/** What another node says about a task it runs (for status). */
export interface RemoteTask {
  /** The node holding the task's lease. */
  worker: string;
  /** The task's state as that node last reported it. */
  state?: string | undefined;
}

export interface PlacementHooks {
  /** The tasks that should run somewhere (connectors whose target is RUNNING). */
  tasks(): TaskRef[];
  /** This node's state of a task it runs (written into its lease, shown by other nodes). */
  stateOf(ref: TaskRef): string | undefined;
  /** Ownership changed: make the runners match `owns()`. Resolves when the runners stopped/started. */
  changed(): Promise<void>;
}

export interface Placement {
  /** This node's name (the `worker` of the tasks it runs). */
  readonly node: string | undefined;
  start(hooks: PlacementHooks): Promise<void>;
  /** True while this node may run the task. */
  owns(ref: TaskRef): boolean;
  /** Who runs a task this node does not (undefined: nobody / unknown). */
  remote(ref: TaskRef): RemoteTask | undefined;
  /**
   * The fencing token of this node's lease on a task it owns (increases with every take and renewal,
   * larger for any later owner); undefined when it does not own it. Absent: no fencing (one node).
   */
  fence?(ref: TaskRef): number | undefined;
  /** The set of tasks to run changed (a connector was created, deleted, paused…): re-evaluate soon. */
  poke(): void;
  close(): Promise<void>;
}

/** One node: every task is this node's. */
export class LocalPlacement implements Placement {
  readonly node = undefined;
  async start(): Promise<void> {}
  owns(): boolean {
    return true;
  }
  remote(): RemoteTask | undefined {
    return undefined;
  }
  poke(): void {}
  async close(): Promise<void> {}
}

/** A connector as stored (file or shared bucket). */
export interface StoredConnector {
  declaration: ConnectorDeclaration;
  origin: ConnectorOrigin;
  target: TargetState;
  createdAt: number;
  updatedAt: number;
}

/** Shared connector definitions (cluster mode). */
export interface DefinitionStore {
  /** Everything stored now (raw: the runtime validates). */
  load(): Promise<unknown[]>;
  save(c: StoredConnector): Promise<void>;
  remove(name: string): Promise<void>;
  /** Changes made by any node (including this one): value undefined = deleted. */
  watch(listener: (name: string, value: unknown) => void): () => void;
}
