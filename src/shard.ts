// A shard: the serving runtime. It owns the connections one thread serves —
// opening their transports, their request rounds, their callbacks, counters,
// rate limit and failures — start to end. In-thread mode runs one on the main
// thread; worker mode runs one in each worker (workers/shard.ts). What is not
// serving (accepting, authenticating, placing, supervising) is the Service's.
import type { LoopPriority } from './constants.js';
import { Connection, type ConnectionHandlers, type ConnectionOwner } from './connection.js';
import type { ServiceView } from './connection-base.js';
import { ENOTCONN } from './errno.js';
import type { HandlerName } from './errors.js';
import type { LogSink } from './logger.js';
import type { PollHandlers } from './poll.js';
import type { ServiceCounters } from './service-counters.js';
import type { TransportFiles } from './transport/files.js';

/** qb_ipcs_request_rate_limit's effect: the loop priority, requests per round, the flow-control value. */
export interface RateSettings {
  priority: LoopPriority;
  budget: number;
  flowControl: number;
}

/** Where a shard reports what the rest of the service must know. */
export interface ShardHost {
  /** The connection's last reference is gone (connectionDestroyed has run). */
  connectionGone(conn: Connection): void;
  /** A handler threw or rejected; the connection was disconnected already. */
  handlerFailed(conn: Connection, handler: HandlerName, error: unknown): void;
}

export interface ShardSettings {
  poll: PollHandlers;
  counters: ServiceCounters;
  rate: RateSettings;
  yieldToClients: boolean;
  log: LogSink;
}

export class Shard implements ConnectionOwner {
  readonly poll: PollHandlers;
  readonly yieldToClients: boolean;
  readonly log: LogSink;
  private rate: RateSettings;
  private readonly counters: ServiceCounters;
  /** By id, oldest first (Map order); walked newest first, as libqb's list. */
  private readonly connections = new Map<number, Connection>();

  constructor(
    private readonly host: ShardHost,
    readonly handlers: ConnectionHandlers,
    private readonly service: ServiceView,
    settings: ShardSettings,
  ) {
    this.poll = settings.poll;
    this.counters = settings.counters;
    this.rate = settings.rate;
    this.yieldToClients = settings.yieldToClients;
    this.log = settings.log;
  }

  get serviceId(): number {
    return this.service.serviceId;
  }

  get context(): unknown {
    return this.service.context;
  }

  get priority(): LoopPriority {
    return this.rate.priority;
  }

  get budget(): number {
    return this.rate.budget;
  }

  /** A connection this shard will serve (or refuse); `cells` are shared with the main thread in worker mode. */
  connection(setupFd: number, id: number, credentials: { pid: number; uid: number; gid: number }, cells?: Float64Array): Connection {
    return new Connection(this, setupFd, id, credentials, cells);
  }

  /** Serves an accepted client: opens its transport and answers it, or refuses it if that fails. */
  adopt(conn: Connection, files: TransportFiles, bufferSize: number): void {
    this.connections.set(conn.id, conn);
    const rc = conn.open(files, bufferSize);
    if (rc < 0) this.refuse(conn, rc);
  }

  /** A client refused before it was served (the refusal may already be sent): connectionDestroyed runs, its files go. */
  refuse(conn: Connection, negErrno: number): void {
    conn.refuse(negErrno);
    conn.unref();
  }

  disconnect(id: number): void {
    this.connections.get(id)?.disconnect();
  }

  eventSendv(id: number, parts: readonly Uint8Array[]): number {
    return this.connections.get(id)?.eventSendv(parts) ?? -ENOTCONN;
  }

  /** qb_ipcs_request_rate_limit, for this shard's connections. */
  setRate(rate: RateSettings): void {
    const moved = rate.priority !== this.rate.priority;
    this.rate = rate;
    for (const conn of this.newestFirst()) {
      conn.setFlowControl(rate.flowControl);
      if (moved) conn.reprioritise();
    }
  }

  /** qb_ipcs_destroy's part here: every connection disconnected, newest first. */
  disconnectAll(): void {
    for (const conn of this.newestFirst()) {
      conn.disconnectReason ??= 'the service is shutting down';
      conn.disconnect();
    }
  }

  private newestFirst(): Connection[] {
    return [...this.connections.values()].reverse();
  }

  // ---- ConnectionOwner ----

  connectionActivated(): void {
    this.counters.activated();
  }

  connectionClosing(_conn: Connection, wasEstablished: boolean): void {
    this.counters.closed(wasEstablished);
  }

  connectionGone(conn: Connection): void {
    this.connections.delete(conn.id);
    this.host.connectionGone(conn);
  }

  handlerFailed(error: unknown, conn: Connection, handler: HandlerName): void {
    conn.disconnectReason ??= `${handler} failed`;
    this.host.handlerFailed(conn, handler, error); // first: the report must reach the host while it still knows the connection
    conn.disconnect();
  }
}
