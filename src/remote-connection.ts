// The main thread's view of a connection served by a worker thread: identity,
// authSet (during accept), statistics read from shared memory, and disconnect
// and events routed to the owning shard (a ring has exactly one producer).
import { Cell, clearStats, newCells, readStats } from './connection-cells.js';
import type { ConnectionDirectory, FileOwner } from './connection-dir.js';
import { ConnectionState } from './constants.js';
import { EMSGSIZE } from './errno.js';
import { semValue } from './shm/semaphore.js';
import type { ConnectionStats, ConnectionStats2 } from './stats.js';

/** What a RemoteConnection asks of the pool that owns its shard. */
export interface RemoteOwner {
  readonly serviceId: number;
  readonly context: unknown;
  disconnect(conn: RemoteConnection): void;
  eventSend(conn: RemoteConnection, parts: Uint8Array[]): Promise<number>;
}

export class RemoteConnection {
  context: unknown = undefined;
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
  readonly id: number;
  /** Shared with the shard: it writes, we read. */
  readonly cells = newCells();
  /** @internal set when the shard is chosen. */
  shard = -1;
  /** @internal the event ring's header, mapped here too, for eventQLength. */
  eventHeader: Int32Array | undefined;
  private owner_: FileOwner;
  private bufferSizeValue = 0;
  private directoryValue: ConnectionDirectory | undefined;

  /** @internal */
  constructor(
    private readonly service: RemoteOwner,
    id: number,
    credentials: { pid: number; uid: number; gid: number },
    /** @internal the setup socket; closed here only if the shard died with it open. */
    readonly setupFd: number,
  ) {
    this.id = id;
    this.pid = credentials.pid;
    this.uid = credentials.uid;
    this.gid = credentials.gid;
    this.owner_ = { uid: credentials.uid, gid: credentials.gid, mode: 0o600 };
  }

  get state(): ConnectionState {
    return this.cells[Cell.STATE]!;
  }

  get serviceId(): number {
    return this.service.serviceId;
  }

  get serviceContext(): unknown {
    return this.service.context;
  }

  get bufferSize(): number {
    return this.bufferSizeValue;
  }

  get description(): string {
    return this.directoryValue?.description ?? '';
  }

  /** @internal the main thread owns the directory and removes it when the connection goes. */
  get directory(): ConnectionDirectory | undefined {
    return this.directoryValue;
  }

  /** @internal */
  attach(directory: ConnectionDirectory): void {
    this.directoryValue = directory;
  }

  get fileOwner(): Readonly<FileOwner> {
    return this.owner_;
  }

  /** qb_ipcs_connection_auth_set, inside connectionAccept. */
  authSet(uid: number, gid: number, mode: number): void {
    this.owner_ = { uid, gid, mode };
    this.directoryValue?.setOwner(uid, gid);
  }

  /** @internal */
  placed(shard: number, bufferSize: number, eventHeader: Int32Array | undefined): void {
    this.shard = shard;
    this.bufferSizeValue = bufferSize;
    this.eventHeader = eventHeader;
  }

  /** qb_ipcs_disconnect, carried out by the shard. */
  disconnect(): void {
    this.service.disconnect(this);
  }

  /** qb_ipcs_event_send, carried out by the shard: resolves to bytes or -errno. */
  eventSend(data: Uint8Array): Promise<number> {
    if (data.byteLength > this.bufferSizeValue) return Promise.resolve(-EMSGSIZE);
    return this.service.eventSend(this, [data]);
  }

  /** qb_ipcs_event_sendv, carried out by the shard. */
  eventSendv(iov: readonly Uint8Array[]): Promise<number> {
    return this.service.eventSend(this, [...iov]);
  }

  /** qb_ipcs_connection_stats_get_2, read from shared memory. */
  stats(clearAfterRead = false): ConnectionStats2 {
    const copy = { ...readStats(this.cells, this.pid), eventQLength: this.eventHeader ? semValue(this.eventHeader) : 0 };
    if (clearAfterRead) clearStats(this.cells);
    return copy;
  }

  /** qb_ipcs_connection_stats_get. */
  statsGet(clearAfterRead = false): ConnectionStats {
    const copy = readStats(this.cells, this.pid);
    if (clearAfterRead) clearStats(this.cells);
    return copy;
  }
}
