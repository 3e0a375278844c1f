// How a Service reaches the shards that serve its connections: one on this
// thread (src/local-shards.ts) or one per worker thread (src/worker-pool.ts).
// The service accepts and authenticates; these place, serve and report back.
import type { Handshake } from './acceptor.js';
import type { ConnectionBase } from './connection-base.js';
import type { HandlerName } from './errors.js';
import type { LogSink } from './logger.js';
import type { RateSettings } from './shard.js';
import type { TransportFiles } from './transport/files.js';

export interface Shards<C extends ConnectionBase> {
  /** The connection connectionAccept sees (in-thread: the very object its shard serves). */
  create(id: number, handshake: Handshake): C;
  /** Serve an accepted client: its shard opens the transport and answers it. */
  place(conn: C, files: TransportFiles, bufferSize: number): void;
  /** A client refused here and answered already: connectionDestroyed runs, its directory goes. */
  rejected(conn: C): void;
  /** Resolves once every shard applied it. */
  setRate(rate: RateSettings): Promise<void>;
  /** qb_ipcs_destroy's part: every connection disconnected, the shards stopped. */
  close(): Promise<void>;
}

/** What the shards tell their service. */
export interface ShardsHost<C extends ConnectionBase> {
  /** The connection's last reference is gone. */
  connectionGone(conn: C): void;
  /** A handler failed for `conn` (already disconnected), or a worker died (`conn` undefined). */
  handlerFailed(conn: C, handler: HandlerName, cause: unknown, where?: string): void;
  workerFailed(error: Error): void;
  /** A shard's log point (in worker mode, carried over from the worker). */
  readonly log: LogSink;
}
