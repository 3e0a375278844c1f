// What every view of a connection shares, on whichever thread: identity from
// the handshake credentials, the application's context, file ownership
// (authSet), and the counters in shared memory.
import { Cell, newCells, readStats } from './connection-cells.js';
import type { ConnectionDirectory, FileOwner } from './connection-dir.js';
import type { ConnectionState } from './constants.js';
import type { ConnectionStats, ConnectionStats2 } from './stats.js';

/** The service as a connection sees it. */
export interface ServiceView {
  readonly serviceId: number;
  readonly context: unknown;
}

export abstract class ConnectionBase {
  /** Arbitrary data of the application (qb_ipcs_context_set/get). */
  context: unknown = undefined;
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
  /** A number unique within the service; sent to the client instead of a pointer. */
  readonly id: number;
  /** Counters and state; in worker mode shared between the worker and the main thread. */
  readonly cells: Float64Array;
  protected bufferSizeValue = 0;
  protected directoryValue: ConnectionDirectory | undefined;
  private owner: FileOwner;

  protected constructor(
    private readonly serviceView: ServiceView,
    id: number,
    credentials: { pid: number; uid: number; gid: number },
    cells?: Float64Array,
  ) {
    this.id = id;
    this.pid = credentials.pid;
    this.uid = credentials.uid;
    this.gid = credentials.gid;
    this.owner = { uid: credentials.uid, gid: credentials.gid, mode: 0o600 };
    this.cells = cells ?? newCells();
  }

  get state(): ConnectionState {
    return this.cells[Cell.STATE]!;
  }

  get serviceId(): number {
    return this.serviceView.serviceId;
  }

  get serviceContext(): unknown {
    return this.serviceView.context;
  }

  /** The negotiated size of each of the three channels (qb_ipcs_connection_get_buffer_size). */
  get bufferSize(): number {
    return this.bufferSizeValue;
  }

  /** qb_ipcs_connection_get_description: the connection directory + "/qb". */
  get description(): string {
    return this.directoryValue?.description ?? '';
  }

  /** @internal the connection's directory, removed with the connection. */
  get directory(): ConnectionDirectory | undefined {
    return this.directoryValue;
  }

  /** @internal */
  attach(directory: ConnectionDirectory): void {
    this.directoryValue = directory;
  }

  /** The owner and mode the connection's files get. */
  get fileOwner(): Readonly<FileOwner> {
    return this.owner;
  }

  /**
   * qb_ipcs_connection_auth_set: who owns the connection's files and their mode.
   * Takes effect when called inside connectionAccept (the files do not exist yet).
   */
  authSet(uid: number, gid: number, mode: number): void {
    this.owner = { uid, gid, mode };
    this.directoryValue?.setOwner(uid, gid);
  }

  /** Events posted and not yet taken by the client. */
  protected abstract get eventQueueLength(): number;

  /** qb_ipcs_connection_stats_get_2. `clearAfterRead` zeroes all but clientPid. */
  stats(clearAfterRead = false): ConnectionStats2 {
    return { ...readStats(this.cells, this.pid, clearAfterRead), eventQLength: this.eventQueueLength };
  }

  /** qb_ipcs_connection_stats_get (the older struct, without eventQLength). */
  statsGet(clearAfterRead = false): ConnectionStats {
    return readStats(this.cells, this.pid, clearAfterRead);
  }
}
