// Connection: one client of a service, on the thread that serves it. Its state
// machine, callback order and statistics follow libqb's (docs/wire.md §10, §13);
// the transport moves bytes and decides when the client is woken.
import { ConnectionState, LoopPriority } from './constants.js';
import { EAGAIN, EBADMSG, EMSGSIZE, ENOMEM, ENOTCONN, ETIMEDOUT, errnoName, isDisconnectError } from './errno.js';
import { asByteParts, asBytes, invalidArgType, type HandlerName } from './errors.js';
import { buildConnectionResponse, CONNECTION_RESPONSE_SIZE, TransportType } from './handshake.js';
import { MessageId, REQUEST_HEADER_SIZE } from './headers.js';
import { native } from './native.js';
import type { PollHandlers } from './poll.js';
import { ConnectionBase } from './connection-base.js';
import { Cell } from './connection-cells.js';
import type { LogEvent, LogLevel, LogSink } from './logger.js';
import { anyFaulted, faultCount } from './mapping-faults.js';
import { openTransport, type TransportFiles } from './transport/files.js';
import { Channel, ChannelBit, type Transport } from './transport/transport.js';

/** What a connection needs from the runtime that serves it (src/shard.ts). */
export interface ConnectionOwner {
  readonly serviceId: number;
  readonly context: unknown;
  readonly poll: PollHandlers;
  readonly priority: LoopPriority;
  /** Requests handled per dispatch round: 50/5/1 by rate limit. */
  readonly budget: number;
  readonly yieldToClients: boolean;
  readonly handlers: ConnectionHandlers;
  /** The service's log points (options.logger), on this thread. */
  readonly log: LogSink;
  /** The handshake response is about to go out: the connection counts as active. */
  connectionActivated(conn: Connection): void;
  connectionClosing(conn: Connection, wasEstablished: boolean): void;
  connectionGone(conn: Connection): void;
  /** A handler threw or rejected: disconnect the connection, report the error. */
  handlerFailed(error: unknown, conn: Connection, handler: HandlerName): void;
}

/**
 * The handlers that run where a connection is served. Each may be async: a
 * rejected promise is a handler failure like a throw. A promise's value is not
 * waited for, except connectionClosed's (non-zero: called again later).
 */
export interface ConnectionHandlers {
  connectionCreated?(conn: Connection): unknown;
  /** 0 (or nothing, or a promise) handled; negative: back off, the rest of the round waits. */
  msgProcess?(conn: Connection, data: Uint8Array): number | void | Promise<unknown>;
  connectionClosed?(conn: Connection): number | void | Promise<number | void>;
  connectionDestroyed?(conn: Connection): unknown;
}

export class Connection extends ConnectionBase {
  private refs = 1;
  private transport: Transport | undefined;
  /** The flow-control value in force: the rate limit's, or 1 while paused. What serveRound checks. */
  private flowControl = 0;
  /** The rate limit's value (qb_ipcs_request_rate_limit): the one the stats report, as libqb's. */
  private rateFlowControl = 0;
  private paused = false;
  /** ChannelBit mask: channels that refused a send (-EAGAIN) since the last drain. */
  private blockedChannels = 0;
  /** The mask awaitRoom was given last. */
  private awaitedChannels = 0;
  private drainCallbacks: Array<() => void> | undefined;
  /** The process's mapping-fault count when this connection last looked. */
  private faultsSeen = faultCount();
  /** Why the server ended this connection, when it did (for logs and tests). */
  disconnectReason: string | undefined;
  private readonly one: Uint8Array[] = [new Uint8Array(0)];

  /** @internal created where the handshake is answered. */
  constructor(
    private readonly owner: ConnectionOwner,
    setupFd: number,
    id: number,
    credentials: { pid: number; uid: number; gid: number },
    cells?: Float64Array,
  ) {
    super(owner, id, credentials, setupFd, cells);
  }

  private get stateValue(): ConnectionState {
    return this.cells[Cell.STATE]!;
  }

  private set stateValue(state: ConnectionState) {
    this.cells[Cell.STATE] = state;
  }

  // ---- sending ----

  /** qb_ipcs_response_send: bytes sent or a negative errno (-EAGAIN: no room now, retry later). */
  responseSend(data: Uint8Array): number {
    const bytes = asBytes(data, 'responseSend(data)');
    this.one[0] = bytes;
    return this.sendOn(Channel.RESPONSE, this.one, bytes.byteLength);
  }

  /** qb_ipcs_response_sendv. */
  responseSendv(iov: readonly Uint8Array[]): number {
    const parts = asByteParts(iov, 'responseSendv(iov)');
    return this.sendOn(Channel.RESPONSE, parts, totalLength(parts));
  }

  /** qb_ipcs_event_send: refuses messages larger than the buffer size with -EMSGSIZE. */
  eventSend(data: Uint8Array): number {
    const bytes = asBytes(data, 'eventSend(data)');
    if (bytes.byteLength > this.bufferSizeValue) return -EMSGSIZE;
    this.one[0] = bytes;
    return this.sendOn(Channel.EVENT, this.one, bytes.byteLength);
  }

  /** qb_ipcs_event_sendv: no size check of its own, as libqb (the ring takes what fits). */
  eventSendv(iov: readonly Uint8Array[]): number {
    const parts = asByteParts(iov, 'eventSendv(iov)');
    return this.sendOn(Channel.EVENT, parts, totalLength(parts));
  }

  /**
   * A send, counted as libqb counts it: the message only when sent whole
   * (counted before the client can see it — another thread may read the counters
   * the moment the client reacts — and taken back if the send fails);
   * EAGAIN/ETIMEDOUT are retries; only a disconnect-class error (isDisconnectError)
   * ends the connection — EMSGSIZE, EINVAL and the like fail this message alone.
   */
  private sendOn(channel: Channel, parts: readonly Uint8Array[], length: number): number {
    const s = this.stateValue;
    const t = this.transport;
    if (t === undefined || (s !== ConnectionState.ESTABLISHED && s !== ConnectionState.ACTIVE)) return -ENOTCONN;
    const counter = channel === Channel.RESPONSE ? Cell.RESPONSES : Cell.EVENTS;
    this.cells[counter]!++;
    const rc = t.send(channel, parts, length);
    if (this.mappingsFaulted()) return -ENOTCONN;
    if (rc === length) return rc;
    this.cells[counter]!--;
    const what = channel === Channel.RESPONSE ? 'response' : 'event';
    if (rc === -EAGAIN || rc === -ETIMEDOUT) {
      this.cells[Cell.SEND_RETRIES]!++;
      if (rc === -EAGAIN) this.blockedChannels |= channel === Channel.RESPONSE ? ChannelBit.RESPONSE : ChannelBit.EVENT;
    } else if (rc === -EBADMSG) {
      this.protocolError(`the client corrupted the read pointer of its ${what} ring`);
      return -ENOTCONN;
    } else if (isDisconnectError(rc)) this.hangUp(`${what} send failed: ${errnoName(rc)}`);
    return rc;
  }

  // ---- requests ----

  /**
   * @internal TransportHost: one dispatch round, up to `budget` requests in ring
   * order (libqb's qb_ipcs_dispatch_connection_request). Returns how many were
   * handled, or -1 when the connection is not serving.
   */
  serveRound(): number {
    const t = this.transport;
    if (t === undefined || this.stateValue !== ConnectionState.ESTABLISHED || this.flowControl !== 0) return -1;
    const budget = this.owner.budget;
    const handlers = this.owner.handlers;
    const msgProcess = handlers.msgProcess;
    let handled = 0;
    while (handled < budget) {
      const rc = t.peek();
      if (rc === 0) break;
      if (this.mappingsFaulted()) return handled; // before the application sees a request read from zero pages
      if (rc === -EAGAIN || rc === -ETIMEDOUT) {
        this.cells[Cell.RECV_RETRIES]!++;
        break;
      }
      if (rc < 0) {
        this.protocolError(`corrupt request (${errnoName(rc)})`);
        return handled;
      }
      const capacity = t.requestCapacity;
      if (capacity < REQUEST_HEADER_SIZE) {
        this.protocolError(capacity === 0 ? 'zero-length request' : `a ${capacity}-byte request cannot hold its header`);
        return handled;
      }
      if (t.requestId === MessageId.DISCONNECT) {
        this.protocolError('the client asked to disconnect (id -3)');
        return handled;
      }
      const size = t.requestSize;
      if (size < REQUEST_HEADER_SIZE || size > capacity) {
        this.protocolError(`request header says ${size} bytes but the message has ${capacity}`);
        return handled;
      }
      this.cells[Cell.REQUESTS]!++;
      let result: unknown;
      try {
        result = msgProcess?.call(handlers, this, t.requestView(size));
      } catch (error) {
        this.owner.handlerFailed(error, this, 'msgProcess');
        return handled;
      }
      // Disconnected inside the handler: its transport is stopped, nothing to reclaim.
      if (this.stateValue !== ConnectionState.ESTABLISHED) return handled;
      if (t.reclaim() < 0) {
        this.protocolError('a request chunk changed while it was processed');
        return handled;
      }
      handled++;
      if (typeof result === 'number') {
        if (result < 0) break; // back off: the rest waits for the next round
      } else if (typeof result === 'object' && result !== null) this.watchPromise(result, 'msgProcess');
      if (this.flowControl !== 0) break;
    }
    this.mappingsFaulted();
    return handled;
  }

  /** An async handler's promise: a rejection is a handler failure. */
  private watchPromise(result: object, handler: HandlerName): void {
    const then = (result as { then?: unknown }).then;
    if (typeof then !== 'function') return;
    then.call(result, undefined, (error: unknown) => this.owner.handlerFailed(error, this, handler));
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

  // ---- flow control, back-pressure and priority ----

  /** @internal qb_ipcs_flowcontrol_set: the rate limit's flow-control value (0, 1 or 2), counted in the stats as libqb counts it. */
  setFlowControl(value: number): void {
    if (value === this.rateFlowControl) return;
    this.rateFlowControl = value;
    this.cells[Cell.FLOW_CONTROL_STATE] = value;
    this.cells[Cell.FLOW_CONTROL_COUNT]!++;
    this.applyFlowControl();
  }

  private applyFlowControl(): void {
    const value = this.paused ? 1 : this.rateFlowControl;
    if (value === this.flowControl) return;
    this.flowControl = value;
    this.transport?.flowControlSet(value);
    this.mappingsFaulted();
  }

  /**
   * Stops reading this client's requests — for instance while its responses
   * cannot be sent — until resume(). As the rate limit's OFF does, it writes
   * flow control 1 into the request channel (a libqb client's sends then fail
   * with EAGAIN) and stops watching for requests; those already queued wait.
   * Inside msgProcess, the round ends after it. Not counted in the
   * flow-control stats, which follow requestRateLimit() as in libqb.
   */
  pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.applyFlowControl();
  }

  /** Reads this client's requests again (the rate limit's flow control, if any, stays). */
  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.applyFlowControl();
  }

  /** Whether pause() is in force. */
  get isPaused(): boolean {
    return this.paused;
  }

  /**
   * Calls `callback` once, from a later turn of the loop, when the channels
   * whose sends returned -EAGAIN since the last drain have room again: SHM, when
   * the client has taken everything in that ring (checked on the next turn, then
   * at intervals doubling from 1 to 16 ms); SOCKET, when the socket is writable (POLLOUT).
   * With no channel blocked, on the next turn. Dropped if the connection ends
   * first. A callback that throws is a handler failure ('onDrain').
   */
  onDrain(callback: () => void): void {
    if (typeof callback !== 'function') throw invalidArgType('onDrain(callback)', 'a function', callback);
    const s = this.stateValue;
    if (s !== ConnectionState.ESTABLISHED && s !== ConnectionState.ACTIVE) return;
    (this.drainCallbacks ??= []).push(callback);
    if (this.drainCallbacks.length === 1) this.awaitRoom();
  }

  private awaitRoom(): void {
    this.awaitedChannels = this.blockedChannels;
    this.transport?.awaitRoom(this.awaitedChannels, this.roomAvailable);
  }

  private readonly roomAvailable = (): void => {
    if (this.blockedChannels & ~this.awaitedChannels) return this.awaitRoom(); // another channel filled meanwhile
    this.blockedChannels = 0;
    const callbacks = this.drainCallbacks;
    this.drainCallbacks = undefined;
    for (const callback of callbacks ?? []) {
      try {
        callback();
      } catch (error) {
        this.owner.handlerFailed(error, this, 'onDrain');
        return;
      }
    }
  };

  /** @internal the rate limit changed the loop priority: register the fds again. */
  reprioritise(): void {
    this.transport?.watch();
  }

  get poll(): PollHandlers {
    return this.owner.poll;
  }

  get priority(): LoopPriority {
    return this.owner.priority;
  }

  get yieldToClients(): boolean {
    return this.owner.yieldToClients;
  }

  // ---- lifecycle ----

  /**
   * @internal the serving half of the handshake (docs/wire.md §4.4 steps 9–11):
   * open the transport, answer the client in one write, connectionCreated,
   * ESTABLISHED. Returns 0, or the -errno to refuse the client with (nothing
   * was sent, the caller answers and releases the connection).
   */
  open(files: TransportFiles, bufferSize: number): number {
    let transport: Transport;
    try {
      transport = openTransport(this, this.setupFd, files);
    } catch (error) {
      const errno = (error as { errno?: unknown }).errno;
      const rc = typeof errno === 'number' && errno < 0 ? errno : -ENOMEM;
      this.logRefusal(rc, `cannot open its transport: ${(error as Error).message}`);
      return rc;
    }
    const rc = transport.watch();
    if (rc < 0) {
      transport.close();
      this.logRefusal(rc, 'the poll handlers refused its fds');
      return rc;
    }
    this.transport = transport;
    this.bufferSizeValue = bufferSize;
    this.stateValue = ConnectionState.ACTIVE;
    this.owner.connectionActivated(this);
    const response = buildConnectionResponse({
      error: 0,
      type: transport.type,
      maxMsgSize: bufferSize,
      connectionId: this.id,
      ...transport.responsePaths,
    });
    // One write: a libqb 2.0.6 client fails its connect if the response arrives split.
    const sent = native.send(this.setupFd, response);
    if (sent !== CONNECTION_RESPONSE_SIZE) {
      this.hangUp(`handshake response not sent whole (${sent})`);
      return 0;
    }
    this.log('debug', 'accept', `accepted the client with pid ${this.pid} (${TransportType[transport.type]}, buffer ${bufferSize} bytes)`, {
      bufferSize,
    });
    // As libqb: a reference held across connectionCreated, so a disconnect inside it destroys after it.
    this.ref();
    try {
      const created = this.owner.handlers.connectionCreated?.(this);
      if (typeof created === 'object' && created !== null) this.watchPromise(created, 'connectionCreated');
    } catch (error) {
      this.owner.handlerFailed(error, this, 'connectionCreated');
    }
    if (this.stateValue === ConnectionState.ACTIVE) this.stateValue = ConnectionState.ESTABLISHED;
    this.unref();
    return 0;
  }

  /** @internal TransportHost: the peer is gone or the socket failed. */
  hangUp(reason: string): void {
    this.disconnectReason ??= reason;
    this.disconnect();
  }

  private protocolError(reason: string): void {
    this.log('warn', 'fault', `the client with pid ${this.pid} broke the protocol: ${reason}`, { reason });
    this.hangUp(reason);
  }

  private logRefusal(negErrno: number, why: string): void {
    this.log('warn', 'reject', `refused the client with pid ${this.pid} (${errnoName(negErrno)}): ${why}`, {
      errno: negErrno,
      code: errnoName(negErrno),
      reason: why,
    });
  }

  /** @internal TransportHost: a log point about this connection, with its identity in the fields. */
  log(level: LogLevel, event: LogEvent, message: string, extra?: object): void {
    this.owner.log(level, message, { event, pid: this.pid, uid: this.uid, gid: this.gid, connection: this.id, ...extra });
  }

  private logDisconnect(): void {
    const reason = this.disconnectReason ?? 'disconnect() was called';
    this.log('debug', 'disconnect', `disconnected the client with pid ${this.pid}: ${reason}`, { reason });
  }

  /**
   * qb_ipcs_disconnect. The client sees EOF/ENOTCONN; connectionClosed runs
   * (again later while it returns non-zero), then connectionDestroyed once the
   * last reference is dropped. A connection not yet ESTABLISHED (disconnected
   * inside connectionCreated) loses its files at once, as in libqb: its client's
   * connect fails.
   */
  disconnect(): void {
    switch (this.stateValue) {
      case ConnectionState.ACTIVE:
        this.logDisconnect();
        this.drainCallbacks = undefined;
        this.transport?.close();
        this.closeSetupSocket();
        this.directoryValue?.remove();
        this.stateValue = ConnectionState.INACTIVE;
        this.owner.connectionClosing(this, false);
        this.unref();
        return;
      case ConnectionState.ESTABLISHED:
        this.logDisconnect();
        this.drainCallbacks = undefined;
        this.transport?.stop();
        this.closeSetupSocket();
        this.stateValue = ConnectionState.SHUTTING_DOWN;
        this.owner.connectionClosing(this, true);
        this.runClosed();
        return;
      default:
        return;
    }
  }

  private readonly runClosed = (): void => {
    let rc: unknown = 0;
    try {
      rc = this.owner.handlers.connectionClosed?.(this);
    } catch (error) {
      this.owner.handlerFailed(error, this, 'connectionClosed');
    }
    if (typeof rc === 'object' && rc !== null && typeof (rc as { then?: unknown }).then === 'function') {
      (rc as Promise<unknown>).then(
        (value) => this.closedResult(value),
        (error: unknown) => {
          this.owner.handlerFailed(error, this, 'connectionClosed');
          this.unref();
        },
      );
      return;
    }
    this.closedResult(rc);
  };

  /** connectionClosed's answer: non-zero asks to be called again later (a LOW job); a job that cannot be queued ends it now. */
  private closedResult(rc: unknown): void {
    if (typeof rc === 'number' && rc !== 0 && this.owner.poll.jobAdd(LoopPriority.LOW, this.runClosed) === 0) return;
    this.unref();
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
    this.owner.connectionGone(this);
    try {
      const destroyed = this.owner.handlers.connectionDestroyed?.(this);
      if (typeof destroyed === 'object' && destroyed !== null) this.watchPromise(destroyed, 'connectionDestroyed');
    } catch (error) {
      this.owner.handlerFailed(error, this, 'connectionDestroyed');
    }
    this.transport?.close();
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
