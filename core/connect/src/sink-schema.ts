/**
 * The schema of a sink's station, as the runtime hands it to the plugin (SinkContext.schema,
 * SinkBatch.schema). core/connect does not know the registry: core/server gives the runtime a resolver
 * (`ConnectRuntimeOptions.stationSchemaOf`). The sink runner re-resolves after every fetch that brought
 * messages, before they are cut into batches, so a batch carries a schema at least as new as the binding
 * its values were validated against on this node.
 */
import type { Logger } from 'pino';
import type { StationSchemaInfo } from '@junction/sdk-connector';

/** Resolves a station's schema binding to the schema (undefined: the station has none). Must be cheap: called per fetch. */
export type StationSchemaResolver = (station: string) => Promise<StationSchemaInfo | undefined>;

export class SchemaWatch {
  /** The newest resolution (kept when a later one fails). */
  current: StationSchemaInfo | undefined;
  private failing = false;

  constructor(
    private readonly station: string,
    private readonly resolve: StationSchemaResolver,
    private readonly log: Logger,
  ) {}

  /** Resolves again; a failure keeps the previous answer and is logged once until it recovers. */
  async refresh(): Promise<void> {
    try {
      this.current = await this.resolve(this.station);
      if (this.failing) this.log.info({ station: this.station }, 'the station schema resolves again');
      this.failing = false;
    } catch (err) {
      if (!this.failing)
        this.log.warn(
          { station: this.station, err: (err as Error).message },
          'the station schema could not be resolved; batches keep the last one resolved',
        );
      this.failing = true;
    }
  }
}
