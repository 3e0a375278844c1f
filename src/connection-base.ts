// What every view of a connection shares, on whichever thread: identity from
// the handshake credentials, the application's context, file ownership
// (authSet), and the counters in shared memory.
import { Cell, newCells, readStats } from './connection-cells.js';
import type { ConnectionDirectory, FileOwner } from './connection-dir.js';
import type { ConnectionState } from './constants.js';
import { buildRejection } from './handshake.js';
import { native } from './native.js';
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
  /** @internal the setup socket; -1 once closed here. In worker mode both threads know it: cells[SETUP_OPEN] says who may still close it. */
  setupFd: number;
  private fileOwnerValue: FileOwner;

  protected constructor(
    private readonly serviceView: ServiceView,
    id: number,
    credentials: { pid: number; uid: number; gid: number },
    setupFd: number,
    cells?: Float64Array,
  ) {
    this.id = id;
    this.pid = credentials.pid;
    this.uid = credentials.uid;
    this.gid = credentials.gid;
    this.fileOwnerValue = { uid: credentials.uid, gid: credentials.gid, mode: 0o600 };
    this.setupFd = setupFd;
    this.cells = cells ?? newCells();
    if (cells === undefined) this.cells[Cell.SETUP_OPEN] = setupFd >= 0 ? 1 : 0;
  }

  /** @internal answers a client that is refused (the response carries only -errno) and closes its socket. */
  refuse(negErrno: number): void {
    if (this.cells[Cell.SETUP_OPEN] !== 1) return;
    native.send(this.setupFd, buildRejection(negErrno));
    this.closeSetupSocket();
  }

  /** @internal */
  closeSetupSocket(): void {
    if (this.setupFd < 0) return;
    const fd = this.setupFd;
    this.setupFd = -1;
    if (this.cells[Cell.SETUP_OPEN] !== 1) return;
    this.cells[Cell.SETUP_OPEN] = 0; // before the close: another thread may clean up after a crash
    native.shutdown(fd);
    native.close(fd);
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
    return this.fileOwnerValue;
  }

  /**
   * qb_ipcs_connection_auth_set: who owns the connection's files and their mode.
   * Takes effect when called inside connectionAccept (the files do not exist yet).
   * As libqb: SHM gives that owner the directory too; SOCKET only the control file.
   */
  authSet(uid: number, gid: number, mode: number): void {
    this.fileOwnerValue = { uid, gid, mode };
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
