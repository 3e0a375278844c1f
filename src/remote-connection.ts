// The main thread's view of a connection served by a worker thread: identity,
// authSet (during accept), statistics read from shared memory, and disconnect
// and events routed to the owning shard (a ring has exactly one producer).
import { ConnectionBase, type ServiceView } from './connection-base.js';
import { EMSGSIZE } from './errno.js';
import { asByteParts, asBytes } from './errors.js';
import type { MappedProbe } from './shm/probe.js';

/** What a RemoteConnection asks of the pool that owns its shard. */
export interface RemoteOwner extends ServiceView {
  disconnect(conn: RemoteConnection): void;
  eventSend(conn: RemoteConnection, parts: Uint8Array[]): Promise<number>;
}

export class RemoteConnection extends ConnectionBase {
  /** @internal set when the shard is chosen. */
  shard = -1;
  /** @internal reads eventQLength from the connection's shared memory (event ring or control file). */
  private eventQueue: MappedProbe<number> | undefined;
  /** @internal wakes the client's response waiters if the serving thread dies (see shmResponseWaker). */
  private responseWaker: MappedProbe<void> | undefined;

  /** @internal */
  constructor(
    private readonly service: RemoteOwner,
    id: number,
    credentials: { pid: number; uid: number; gid: number },
    setupFd: number,
  ) {
    super(service, id, credentials, setupFd);
  }

  /** @internal */
  placed(
    shard: number,
    bufferSize: number,
    eventQueue: MappedProbe<number> | undefined,
    responseWaker: MappedProbe<void> | undefined,
  ): void {
    this.shard = shard;
    this.bufferSizeValue = bufferSize;
    this.eventQueue = eventQueue;
    this.responseWaker = responseWaker;
  }

  /** @internal the serving thread died: responses it posted must still reach the client. */
  wakeResponseWaiters(): void {
    this.responseWaker?.();
  }

  /** @internal the connection is gone: this thread's mappings of its shared memory go back now (eventQLength reads 0). */
  releaseProbes(): void {
    this.eventQueue?.release();
    this.responseWaker?.release();
  }

  /** qb_ipcs_disconnect, carried out by the shard. */
  disconnect(): void {
    this.service.disconnect(this);
  }

  /** qb_ipcs_event_send, carried out by the shard: resolves to bytes or -errno (-EMSGSIZE above the buffer size). */
  eventSend(data: Uint8Array): Promise<number> {
    const bytes = asBytes(data, 'eventSend(data)');
    if (bytes.byteLength > this.bufferSizeValue) return Promise.resolve(-EMSGSIZE);
    return this.service.eventSend(this, [bytes]);
  }

  /** qb_ipcs_event_sendv, carried out by the shard. */
  eventSendv(iov: readonly Uint8Array[]): Promise<number> {
    return this.service.eventSend(this, [...asByteParts(iov, 'eventSendv(iov)')]);
  }

  protected get eventQueueLength(): number {
    return this.eventQueue?.() ?? 0;
  }
}
