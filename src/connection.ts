// Connection: one client of a service. Its state machine, callback order and
// statistics follow libqb's (docs/wire.md §10, §13); the transport moves bytes.
import { debuglog } from 'node:util';
import { ConnectionState, LoopPriority } from './constants.js';
import { EAGAIN, EBADMSG, EMSGSIZE, ENOMEM, ENOTCONN, ETIMEDOUT, errnoName, isDisconnectError } from './errno.js';
import { buildConnectionResponse, buildRejection, CONNECTION_RESPONSE_SIZE } from './handshake.js';
import { MessageId, REQUEST_HEADER_SIZE } from './headers.js';
import { native } from './native.js';
import type { PollHandlers } from './poll.js';
import { ConnectionBase } from './connection-base.js';
import { CpuHandoff } from './cpu-handoff.js';
import { Cell } from './connection-cells.js';
import { anyFaulted, faultCount } from './mapping-faults.js';
import { largestMessage } from './shm/layout.js';
import { openTransport, type TransportFiles } from './transport/files.js';
import type { Transport, TransportHost } from './transport/transport.js';

const log = debuglog('qbipc');

/** What a connection needs from its service (kept narrow on purpose). */
export interface ConnectionOwner {
  readonly serviceId: number;
  readonly context: unknown;
  readonly poll: PollHandlers;
  readonly priority: LoopPriority;
  /** Requests handled per dispatch round: 50/5/1 by rate limit. */
  readonly budget: number;
  /** options.yieldToClients: after a dry round's wake, let the client run first (src/cpu-handoff.ts). */
  readonly yieldToClients: boolean;
  readonly handlers: ConnectionHandlers;
  /** The handshake succeeded so far: the connection is listed and counted as active. */
  connectionActivated(conn: Connection): void;
  connectionClosing(conn: Connection, wasEstablished: boolean): void;
  connectionGone(conn: Connection): void;
  handlerFailed(error: unknown, conn: Connection, handler: string): void;
}

export interface ConnectionHandlers {
  connectionCreated?(conn: Connection): void;
  msgProcess?(conn: Connection, data: Uint8Array): number | void;
  connectionClosed?(conn: Connection): number | void;
  connectionDestroyed?(conn: Connection): void;
}

export class Connection extends ConnectionBase implements TransportHost {
  private refs = 1;
  private transport: Transport | undefined;
  private setupFd: number;
  private flowControl = 0;
  /** Responses may exceed the buffer size by the ring's rounding, never this (set with the buffer size). */
  private largestResponse = 0;
  /** Set while a dispatch job is queued, so it is queued once. */
  private dispatchScheduled = false;
  /** The process's mapping-fault count when this connection last looked. */
  private faultsSeen = faultCount();

  /** Why the server ended this connection, when it did (for logs and tests). */
  disconnectReason: string | undefined;
  private readonly one: Uint8Array[] = [new Uint8Array(0)];
  private readonly handoff: CpuHandoff | undefined;

  /** @internal created by the service when a handshake arrives. */
  constructor(
    private readonly service: ConnectionOwner,
    setupFd: number,
    id: number,
    credentials: { pid: number; uid: number; gid: number },
    cells?: Float64Array,
  ) {
    super(service, id, credentials, cells);
    this.setupFd = setupFd;
    this.cells[Cell.SETUP_OPEN] = 1;
    this.handoff = service.yieldToClients ? new CpuHandoff() : undefined;
  }

  private get stateValue(): ConnectionState {
    return this.cells[Cell.STATE]!;
  }

  private set stateValue(state: ConnectionState) {
    this.cells[Cell.STATE] = state;
  }

  // ---- sending ----

  /** qb_ipcs_response_send: bytes sent or a negative errno (-EAGAIN: ring full, retry later). */
  responseSend(data: Uint8Array): number {
    this.one[0] = data;
    return this.respond(this.one, data.byteLength);
  }

  /** qb_ipcs_response_sendv. */
  responseSendv(iov: readonly Uint8Array[]): number {
    return this.respond(iov, totalLength(iov));
  }

  /** qb_ipcs_event_send: refuses messages larger than the buffer size with -EMSGSIZE. */
  eventSend(data: Uint8Array): number {
    this.one[0] = data;
    return this.notify(this.one, data.byteLength);
  }

  /** qb_ipcs_event_sendv. */
  eventSendv(iov: readonly Uint8Array[]): number {
    return this.notify(iov, totalLength(iov));
  }

  private respond(parts: readonly Uint8Array[], length: number): number {
    const t = this.liveTransport();
    if (t === undefined) return -ENOTCONN;
    // Responses may exceed the buffer size by what the ring's rounding leaves (libqb allows it);
    // one that no ring of this size could ever hold fails now instead of with EAGAIN forever.
    if (length > this.largestResponse) return -EMSGSIZE;
    // Counted before the client can see the message: another thread may read the
    // counters the moment the client reacts. Taken back if the send fails.
    this.cells[Cell.RESPONSES]!++;
    const rc = t.sendResponse(parts, length);
    return this.countSend(rc, length, 'responses');
  }

  private notify(parts: readonly Uint8Array[], length: number): number {
    const t = this.liveTransport();
    if (t === undefined) return -ENOTCONN;
    if (length > this.bufferSizeValue) return -EMSGSIZE; // qb_ipcs_event_send's limit
    this.cells[Cell.EVENTS]!++;
    const rc = t.sendEvent(parts, length);
    return this.countSend(rc, length, 'events');
  }

  /**
   * A send's result, as libqb counts it: the message is counted only when sent
   * whole; EAGAIN/ETIMEDOUT are retries; only a disconnect-class error (the
   * shared isDisconnectError rule) ends the connection — EMSGSIZE, EINVAL and
   * the like fail this message alone.
   */
  private countSend(rc: number, length: number, counter: 'responses' | 'events'): number {
    if (this.mappingsFaulted()) return -ENOTCONN;
    if (rc === length) return rc;
    this.cells[counter === 'events' ? Cell.EVENTS : Cell.RESPONSES]!--;
    const what = counter === 'events' ? 'event' : 'response';
    if (rc === -EAGAIN || rc === -ETIMEDOUT) this.cells[Cell.SEND_RETRIES]!++;
    else if (rc === -EBADMSG) {
      this.protocolError(`the client corrupted the read pointer of its ${what} ring`);
      return -ENOTCONN;
    } else if (isDisconnectError(rc)) this.hangUp(`${what} send failed: ${errnoName(rc)}`);
    return rc;
  }

  private liveTransport(): Transport | undefined {
    const s = this.stateValue;
    return s === ConnectionState.ESTABLISHED || s === ConnectionState.ACTIVE ? this.transport : undefined;
  }

  // ---- requests ----

  /** @internal TransportHost: doorbells arrived. */
  requestsReady(): void {
    this.processRequests();
  }

  /** @internal TransportHost: requests wait with no doorbell left to announce them. */
  requestsPending(): void {
    if (this.stateValue === ConnectionState.ESTABLISHED && this.flowControl === 0) this.scheduleDispatch();
  }

  /**
   * @internal one dispatch round: up to `budget` requests, in ring order. The
   * client is woken once per batch: when the ring runs dry (it may then answer
   * at once, and the round goes on) and at the round's end.
   */
  processRequests(): void {
    const t = this.transport;
    if (t === undefined || this.stateValue !== ConnectionState.ESTABLISHED || this.flowControl !== 0) return;
    t.holdClientWakes();
    try {
      this.processRound(t);
    } finally {
      t.wakeClient();
    }
  }

  private processRound(t: Transport): void {
    const budget = this.service.budget;
    const msgProcess = this.service.handlers.msgProcess;
    let handled = 0;
    while (handled < budget) {
      let rc = t.nextRequest();
      // Dry: wake the client for what we answered; on this CPU it may send the next
      // request before we look again, which then costs no trip through the loop.
      // (Its doorbell may come later and find the ring empty: a recv retry, counted.)
      if (rc === 0 && t.wakeClientSoFar()) {
        rc = t.nextRequest();
        if (rc === 0 && this.handoff !== undefined && this.handoff.yieldToClient()) {
          rc = t.nextRequest();
          this.handoff.found(rc !== 0);
        }
      }
      if (rc === 0) {
        if (handled === 0) this.cells[Cell.RECV_RETRIES]!++;
        break;
      }
      if (this.mappingsFaulted()) return; // before the application sees a request read from zero pages
      if (rc < 0) return this.protocolError(`corrupt request ring (${errnoName(rc)})`);
      const capacity = t.requestCapacity;
      if (capacity < REQUEST_HEADER_SIZE) {
        return this.protocolError(capacity === 0 ? 'zero-length request' : `a ${capacity}-byte request cannot hold its header`);
      }
      if (t.requestId === MessageId.DISCONNECT) return this.protocolError('the client asked to disconnect (id -3)');
      const size = t.requestSize;
      if (size < REQUEST_HEADER_SIZE || size > capacity) {
        return this.protocolError(`request header says ${size} bytes but the message has ${capacity}`);
      }
      this.cells[Cell.REQUESTS]!++;
      let result: number | void = 0;
      try {
        result = msgProcess?.(this, t.requestView(size));
      } catch (error) {
        t.releaseRequest();
        this.service.handlerFailed(error, this, 'msgProcess');
        return;
      }
      if (t.releaseRequest() < 0) return this.protocolError('a request chunk changed while it was processed');
      handled++;
      if (this.stateValue !== ConnectionState.ESTABLISHED) return;
      if (typeof result === 'number' && result < 0) break; // back off: the rest waits for the next round
    }
    if (this.mappingsFaulted()) return;
    if (this.flowControl === 0 && t.hasPendingRequests) this.scheduleDispatch();
  }

  /**
   * §14 item 8: the client truncated a file we map (our access faulted and now
   * hits private zero pages): disconnect it. One Atomics.load when nothing faulted.
   */
  private mappingsFaulted(): boolean {
    const now = faultCount();
    if (now === this.faultsSeen) return false;
    this.faultsSeen = now;
    if (this.transport === undefined || !anyFaulted(this.transport.mappings)) return false;
    this.protocolError('the client truncated a shared file (an access faulted)');
    return true;
  }

  // ---- flow control ----

  /** @internal the rate limit's flow-control value (0, 1 or 2) for this connection. */
  setFlowControl(value: number): void {
    if (value === this.flowControl) return;
    this.flowControl = value;
    this.cells[Cell.FLOW_CONTROL_STATE] = value;
    this.cells[Cell.FLOW_CONTROL_COUNT]!++;
    this.transport?.setFlowControl(value);
    if (this.mappingsFaulted()) return;
    if (value === 0 && this.transport?.hasPendingRequests) this.scheduleDispatch();
  }

  /** @internal the rate limit changed the loop priority. */
  reprioritise(): void {
    if (this.stateValue === ConnectionState.ESTABLISHED || this.stateValue === ConnectionState.ACTIVE) this.transport?.reprioritise();
  }

  get poll(): PollHandlers {
    return this.service.poll;
  }

  get priority(): LoopPriority {
    return this.service.priority;
  }

  // ---- lifecycle ----


  /** Queues one dispatch round as a job (more requests are waiting than one round takes). */
  private scheduleDispatch(): void {
    if (this.dispatchScheduled) return;
    this.dispatchScheduled = true;
    this.service.poll.jobAdd(this.service.priority, this.dispatchJob);
  }

  private readonly dispatchJob = (): void => {
    this.dispatchScheduled = false;
    this.processRequests();
  };

  /**
   * @internal the serving half of the handshake (docs/wire.md §4.4 steps 9–11):
   * open the transport, answer the client in one write, connectionCreated, ESTABLISHED.
   */
  open(files: TransportFiles, bufferSize: number): void {
    let transport: Transport;
    try {
      transport = openTransport(this, this.setupFd, files);
    } catch (error) {
      const errno = (error as { errno?: unknown }).errno;
      return this.reject(typeof errno === 'number' && errno < 0 ? errno : -ENOMEM, `cannot open its transport: ${(error as Error).message}`);
    }
    this.transport = transport;
    this.bufferSizeValue = bufferSize;
    this.largestResponse = largestMessage(bufferSize);
    this.stateValue = ConnectionState.ACTIVE;
    this.service.connectionActivated(this);
    transport.start();
    const response = buildConnectionResponse({
      error: 0, type: transport.type, maxMsgSize: bufferSize, connectionId: this.id, ...transport.responsePaths,
    });
    // One write: a libqb 2.0.6 client fails its connect if the response arrives split.
    const sent = native.send(this.setupFd, response);
    if (sent !== CONNECTION_RESPONSE_SIZE) return this.hangUp(`handshake response not sent whole (${sent})`);
    try {
      this.service.handlers.connectionCreated?.(this);
    } catch (error) {
      this.service.handlerFailed(error, this, 'connectionCreated');
    }
    if (this.stateValue !== ConnectionState.ACTIVE) return;
    this.stateValue = ConnectionState.ESTABLISHED;
    if (transport.hasPendingRequests) this.scheduleDispatch();
  }

  /**
   * @internal refuses the client: the response carries only -errno; then the
   * connection is released (connectionDestroyed fires, as in libqb).
   */
  reject(negErrno: number, why: string): void {
    log('rejecting client pid %d with %s: %s', this.pid, errnoName(negErrno), why);
    native.send(this.setupFd, buildRejection(negErrno));
    this.unref();
  }

  /** @internal TransportHost: the peer is gone or the socket failed. */
  hangUp(reason: string): void {
    this.disconnectReason ??= reason;
    this.disconnect();
  }

  private protocolError(reason: string): void {
    log('disconnecting client pid %d: %s', this.pid, reason);
    this.hangUp(reason);
  }

  /**
   * qb_ipcs_disconnect. The client sees EOF/ENOTCONN; connectionClosed runs
   * (again later while it returns non-zero), then connectionDestroyed once the
   * last reference is dropped.
   */
  disconnect(): void {
    switch (this.stateValue) {
      case ConnectionState.ACTIVE:
        this.stopSockets();
        this.stateValue = ConnectionState.INACTIVE;
        this.service.connectionClosing(this, false);
        this.unref();
        return;
      case ConnectionState.ESTABLISHED:
        this.stopSockets();
        this.stateValue = ConnectionState.SHUTTING_DOWN;
        this.service.connectionClosing(this, true);
        this.runClosed();
        return;
      default:
        return;
    }
  }

  private readonly runClosed = (): void => {
    let rc: number | void = 0;
    try {
      rc = this.service.handlers.connectionClosed?.(this);
    } catch (error) {
      this.service.handlerFailed(error, this, 'connectionClosed');
    }
    if (typeof rc === 'number' && rc !== 0) {
      this.service.poll.jobAdd(LoopPriority.LOW, this.runClosed);
      return;
    }
    this.unref();
  };

  private stopSockets(): void {
    this.transport?.stop();
    this.closeSetupSocket();
  }

  /** @internal */
  closeSetupSocket(): void {
    if (this.setupFd < 0) return;
    this.cells[Cell.SETUP_OPEN] = 0; // before the close: another thread may clean up after a crash
    native.shutdown(this.setupFd);
    native.close(this.setupFd);
    this.setupFd = -1;
  }

  /** qb_ipcs_connection_ref: keeps the connection (and its files) until unref. */
  ref(): void {
    this.refs++;
  }

  /** qb_ipcs_connection_unref: the last one destroys the connection. */
  unref(): void {
    if (this.refs <= 0) return;
    if (--this.refs > 0) return;
    this.closeSetupSocket();
    this.service.connectionGone(this);
    try {
      this.service.handlers.connectionDestroyed?.(this);
    } catch (error) {
      this.service.handlerFailed(error, this, 'connectionDestroyed');
    }
    this.transport?.destroy();
    this.transport = undefined;
    this.directoryValue?.remove();
    this.directoryValue = undefined;
  }

  protected get eventQueueLength(): number {
    return this.transport?.eventQueueLength ?? 0;
  }
}

function totalLength(iov: readonly Uint8Array[]): number {
  let n = 0;
  for (let i = 0; i < iov.length; i++) n += iov[i]!.byteLength;
  return n;
}
