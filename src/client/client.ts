// qbipcc.h for Node: a client of any libqb service, over SHM or SOCKET, as the
// server decides. Calls that wait return Promises and never block the event
// loop: SOCKET waits are fd readiness in the thread's epoll loop; SHM response
// waits run on a native thread that registers as a glibc semaphore waiter
// (native/semwait.cc); event doorbells and the server's hang-up arrive on the
// setup socket, so a dead server fails every pending call with ENOTCONN at once.
import { IpcType, LoopPriority, PollEvent } from '../constants.js';
import { EAGAIN, EINVAL, EMSGSIZE, ENOTCONN, ENOTSUP, ETIMEDOUT, isDisconnectError } from '../errno.js';
import { abortError, asByteParts, asBytes, QbError, validateSignal, type AbortError } from '../errors.js';
import { CONNECTION_RESPONSE_SIZE, TransportType } from '../handshake.js';
import { native, type NativeSemWaiter } from '../native.js';
import { validateServiceName } from '../options.js';
import type { Channel } from './channel.js';
import { handshake, type ConnectOptions } from './handshake.js';
import { clientLoop, hold, release } from './loop.js';
import { ShmChannel } from './shm.js';
import { SocketChannel } from './socket.js';
import { processAlive } from '../process-alive.js';

export type { ConnectOptions } from './handshake.js';

/** qb_ipcc_auth_get: who the server is, from SCM_CREDENTIALS of its handshake response. */
export interface ServerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

/** Options of recv(), eventRecv() and events(). */
export interface ReceiveOptions {
  /** Aborting it rejects the waiting call with an AbortError; the message it would have had goes to the next call. */
  signal?: AbortSignal;
}

interface Waiter {
  resolve(message: Uint8Array): void;
  reject(error: QbError | AbortError): void;
  timer: NodeJS.Timeout | undefined;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

const DEAD = PollEvent.HUP | PollEvent.ERR | PollEvent.NVAL;
/** Synchronous waits check the server's liveness at least this often. */
const SYNC_SLICE_MS = 500;
const peekByte = new Uint8Array(1);

function totalLength(iov: readonly Uint8Array[]): number {
  let n = 0;
  for (let i = 0; i < iov.length; i++) n += iov[i]!.byteLength;
  return n;
}

export class Client {
  /** qb_ipcc_context_set/get: application data. */
  context: unknown = undefined;
  /** qb_ipcc_get_buffer_size: the negotiated size of each channel. */
  readonly bufferSize: number;
  /** The transport the server chose: IpcType.SHM or IpcType.SOCKET. */
  readonly type: IpcType.SHM | IpcType.SOCKET;
  private readonly server: ServerCredentials;
  private readonly channel: Channel;
  private setupFd: number;
  private connected = true;
  private closed = false;
  private fcEnableMax = 1;
  private readonly responses: Waiter[] = [];
  private readonly eventWaiters: Waiter[] = [];
  private waiter: NativeSemWaiter | undefined;
  private semWaiting = false;
  /** Event masks currently registered, per fd. */
  private readonly masks = new Map<number, number>();
  private readonly one: Uint8Array[] = [new Uint8Array(0)];

  /** @internal use connect(). */
  constructor(setupFd: number, channel: Channel, bufferSize: number, server: ServerCredentials) {
    this.setupFd = setupFd;
    this.channel = channel;
    this.type = channel.type;
    this.bufferSize = bufferSize;
    this.server = server;
    if (channel.responseSemaphore !== undefined) this.waiter = new native.SemWaiter(this.onSemaphore);
    this.watch();
  }

  /** qb_ipcc_fd_get: poll it for events (SHM: the setup socket, SOCKET: the event socket). */
  get fd(): number {
    return this.channel.pollFd;
  }

  /** qb_ipcc_is_connected: also notices a server that went away since the last call. */
  get isConnected(): boolean {
    if (!this.connected) return false;
    const n = native.recvPeek(this.setupFd, peekByte);
    if (n === 0 || (n < 0 && n !== -EAGAIN)) this.serverGone();
    return this.connected;
  }

  /** qb_ipcc_auth_get. */
  authGet(): ServerCredentials {
    return { ...this.server };
  }

  /** qb_ipcc_fc_enable_max_set: sends fail with EAGAIN while 0 < fc ≤ max (0 ignores flow control). 0 or -EINVAL. */
  fcEnableMaxSet(max: number): number {
    if (!Number.isInteger(max) || max < 0 || max > 2) return -EINVAL;
    this.fcEnableMax = max;
    return 0;
  }

  // ---- sending ----

  /** qb_ipcc_send: the whole message (its 16-byte request header included); bytes sent or -errno. */
  send(data: Uint8Array): number {
    const bytes = asBytes(data, 'send(data)');
    this.one[0] = bytes;
    return this.transmit(this.one, bytes.byteLength, bytes[0] ?? 0);
  }

  /** qb_ipcc_sendv: the parts go out as one message. */
  sendv(iov: readonly Uint8Array[]): number {
    const parts = asByteParts(iov, 'sendv(iov)');
    const length = totalLength(parts);
    return this.transmit(parts, length, length & 0xff);
  }

  private transmit(parts: readonly Uint8Array[], length: number, doorbell: number): number {
    if (!this.connected) return -ENOTCONN;
    if (length > this.bufferSize) return -EMSGSIZE;
    const fc = this.channel.flowControl();
    if (fc < 0) return this.failed(fc);
    if (fc > 0 && fc <= this.fcEnableMax) return -EAGAIN;
    const rc = this.channel.send(parts, length, doorbell);
    if (rc < 0) return this.failed(rc);
    this.watch(); // a refused doorbell waits for POLLOUT
    return rc;
  }

  private failed(rc: number): number {
    if (isDisconnectError(rc)) this.serverGone();
    return rc;
  }

  // ---- receiving ----

  /**
   * qb_ipcc_recv: the next response, whole. timeoutMs < 0 waits until one
   * arrives or the server goes; 0 only looks. Rejects with errno ETIMEDOUT,
   * EAGAIN (timeout 0), ENOTCONN (server gone or disconnect()).
   */
  recv(timeoutMs = -1, options?: ReceiveOptions): Promise<Uint8Array> {
    return this.enqueue(this.responses, timeoutMs, 'response', options?.signal);
  }

  /** qb_ipcc_sendv_recv with one part. */
  sendRecv(data: Uint8Array, timeoutMs = -1): Promise<Uint8Array> {
    this.one[0] = asBytes(data, 'sendRecv(data)');
    return this.sendvRecv(this.one, timeoutMs);
  }

  /** qb_ipcc_sendv_recv: send (EAGAIN under flow control, as libqb), then recv(timeoutMs). */
  sendvRecv(iov: readonly Uint8Array[], timeoutMs = -1): Promise<Uint8Array> {
    const rc = this.sendv(iov);
    if (rc < 0) return Promise.reject(new QbError(rc, 'send failed'));
    return this.recv(timeoutMs);
  }

  // ---- synchronous variants (they block the calling thread: for worker threads) ----

  /**
   * recv() that blocks the calling thread instead of returning a Promise: the
   * wait is a futex (SHM) or poll(2) (SOCKET) on this thread, with no hop to a
   * helper thread. Liveness is checked between slices of at most 500 ms.
   * Throws the QbError recv() would reject with. Not while recv() calls wait.
   */
  recvSync(timeoutMs = -1): Uint8Array {
    if (this.responses.length > 0) throw new Error('recvSync() while recv() calls are waiting');
    const deadline = timeoutMs < 0 ? Infinity : Date.now() + timeoutMs;
    for (;;) {
      if (!this.connected) throw new QbError(-ENOTCONN, 'no response: not connected');
      const message = this.channel.takeResponse();
      if (typeof message !== 'number') return message;
      if (message !== -EAGAIN) throw new QbError(this.failed(message), 'response receive failed');
      const left = deadline - Date.now();
      if (left <= 0) {
        const gone = !this.isConnected;
        throw new QbError(
          gone ? -ENOTCONN : timeoutMs === 0 ? -EAGAIN : -ETIMEDOUT,
          gone ? 'the server went away' : `no response within ${timeoutMs} ms`,
        );
      }
      const rc = this.channel.waitResponseSync(Math.min(left, SYNC_SLICE_MS));
      if (rc === -ENOTCONN || (rc === -ETIMEDOUT && !this.isConnected)) {
        this.serverGone();
        const last = this.channel.takeResponse();
        if (typeof last !== 'number') return last;
        throw new QbError(-ENOTCONN, 'the server went away while waiting for a response');
      }
    }
  }

  /** sendRecv() that blocks the calling thread (see recvSync). */
  sendRecvSync(data: Uint8Array, timeoutMs = -1): Uint8Array {
    this.one[0] = asBytes(data, 'sendRecvSync(data)');
    return this.sendvRecvSync(this.one, timeoutMs);
  }

  /** sendvRecv() that blocks the calling thread (see recvSync). */
  sendvRecvSync(iov: readonly Uint8Array[], timeoutMs = -1): Uint8Array {
    const rc = this.sendv(iov);
    if (rc < 0) throw new QbError(rc, 'send failed');
    return this.recvSync(timeoutMs);
  }

  /** qb_ipcc_event_recv: the next event. Same timeouts, errors and options as recv(). */
  eventRecv(timeoutMs = -1, options?: ReceiveOptions): Promise<Uint8Array> {
    return this.enqueue(this.eventWaiters, timeoutMs, 'event', options?.signal);
  }

  /**
   * The events as an async iterator: `for await (const event of client.events({ signal }))`.
   * Ends when the client is disconnected (disconnect(), or the server went away:
   * check isConnected); an aborted signal makes it throw an AbortError.
   */
  async *events(options?: ReceiveOptions): AsyncGenerator<Uint8Array, void, undefined> {
    const signal = validateSignal(options?.signal, 'options.signal');
    for (;;) {
      let event: Uint8Array;
      try {
        event = await this.enqueue(this.eventWaiters, -1, 'event', signal);
      } catch (error) {
        if (error instanceof QbError && error.errno === -ENOTCONN) return;
        throw error;
      }
      yield event;
    }
  }

  private enqueue(queue: Waiter[], timeoutMs: number, what: 'response' | 'event', signal: AbortSignal | undefined): Promise<Uint8Array> {
    if (signal !== undefined) {
      validateSignal(signal, 'options.signal');
      if (signal.aborted) return Promise.reject(abortError(signal, `${what === 'response' ? 'recv' : 'eventRecv'}()`));
    }
    if (!this.connected) return Promise.reject(new QbError(-ENOTCONN, `no ${what}: not connected`));
    if (queue.length === 0) {
      // The fast path: it is already there.
      const message = what === 'response' ? this.channel.takeResponse() : this.channel.takeEvent();
      if (typeof message !== 'number') return Promise.resolve(message);
      if (message !== -EAGAIN) {
        this.failed(message);
        return Promise.reject(new QbError(message, `${what} receive failed`));
      }
      if (timeoutMs === 0) {
        return Promise.reject(new QbError(this.isConnected ? -EAGAIN : -ENOTCONN, `no ${what} waiting`));
      }
    }
    return new Promise<Uint8Array>((resolve, reject) => {
      const waiter: Waiter = { resolve, reject, timer: undefined, signal, onAbort: undefined };
      if (timeoutMs >= 0) {
        waiter.timer = setTimeout(() => {
          const gone = !this.isConnected;
          this.abandon(
            queue,
            waiter,
            new QbError(
              gone ? -ENOTCONN : timeoutMs === 0 ? -EAGAIN : -ETIMEDOUT,
              gone ? `the server went away while waiting for a ${what}` : `no ${what} within ${timeoutMs} ms`,
            ),
          );
        }, timeoutMs);
      }
      if (signal !== undefined) {
        waiter.onAbort = () => this.abandon(queue, waiter, abortError(signal, `${what === 'response' ? 'recv' : 'eventRecv'}()`));
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      hold();
      queue.push(waiter);
      if (what === 'response') this.pumpResponses();
      else this.pumpEvents();
    });
  }

  /** A waiting call gives up (timeout, abort): it leaves the queue, and the loop stops waiting for it if it was the last. */
  private abandon(queue: Waiter[], waiter: Waiter, error: QbError | AbortError): void {
    const index = queue.indexOf(waiter);
    if (index < 0) return;
    queue.splice(index, 1);
    clearTimeout(waiter.timer);
    if (waiter.onAbort !== undefined) waiter.signal!.removeEventListener('abort', waiter.onAbort);
    release();
    waiter.reject(error);
    this.watch();
  }

  private settle(queue: Waiter[], result: Uint8Array | QbError): void {
    const waiter = queue.shift()!;
    clearTimeout(waiter.timer);
    if (waiter.onAbort !== undefined) waiter.signal!.removeEventListener('abort', waiter.onAbort);
    release();
    if (result instanceof Uint8Array) waiter.resolve(result);
    else waiter.reject(result);
  }

  /** Hands out what is there, in order; then waits for more if anyone still waits. */
  private pump(queue: Waiter[], take: () => Uint8Array | number, what: string): void {
    while (queue.length > 0) {
      const message = take();
      if (typeof message !== 'number') {
        this.settle(queue, message);
        continue;
      }
      if (message === -EAGAIN) {
        if (this.connected) break;
        this.settle(queue, new QbError(-ENOTCONN, `the server went away while waiting for a ${what}`));
        continue;
      }
      this.failed(message);
      this.settle(queue, new QbError(message, `${what} receive failed`));
    }
    this.watch();
  }

  private pumpResponses(): void {
    this.pump(this.responses, () => this.channel.takeResponse(), 'response');
  }

  private pumpEvents(): void {
    this.pump(this.eventWaiters, () => this.channel.takeEvent(), 'event');
  }

  private readonly onSemaphore = (_result: number): void => {
    this.semWaiting = false;
    this.pumpResponses();
  };

  // ---- waiting ----

  /**
   * Keeps the fds registered with the thread's level-triggered loop: POLLIN on
   * an fd once a call waits for what it announces, POLLOUT on the setup socket
   * while SHM doorbells are owed; hang-ups are reported whatever the mask.
   * POLLIN is dropped lazily, only when it fires with nobody waiting (or an
   * unread message would wake the loop on every turn): a ping-pong never
   * changes a mask. SHM responses: the native semaphore wait runs while a
   * recv() waits.
   */
  private watch(): void {
    if (!this.connected) return;
    const c = this.channel;
    const wantEvents = this.eventWaiters.length > 0 ? PollEvent.IN : 0;
    const wantResponses = this.responses.length > 0;
    if (c.type === IpcType.SHM) {
      this.setMask(this.setupFd, (this.currentMask(this.setupFd) & PollEvent.IN) | wantEvents | c.setupInterest);
    } else {
      this.setMask(this.setupFd, 0);
      this.setMask(c.eventFd, this.currentMask(c.eventFd) | wantEvents);
    }
    if (c.responseFd !== undefined) {
      this.setMask(c.responseFd, this.currentMask(c.responseFd) | (wantResponses ? PollEvent.IN : 0));
      return;
    }
    if (wantResponses && !this.semWaiting) {
      this.semWaiting = this.waiter!.wait(c.responseSemaphore!, c.responseSemaphoreIndex, -1) === 0;
    } else if (!wantResponses && this.semWaiting) this.waiter!.cancel();
  }

  /** After a readiness report: POLLIN stays only where a call still waits. */
  private quiet(fd: number): void {
    const c = this.channel;
    const waiting = (fd === c.eventFd && this.eventWaiters.length > 0) || (fd === c.responseFd && this.responses.length > 0);
    const mask = this.currentMask(fd);
    if (!waiting && mask & PollEvent.IN) this.setMask(fd, mask & ~PollEvent.IN);
  }

  private currentMask(fd: number): number {
    return this.masks.get(fd) ?? 0;
  }

  private setMask(fd: number, events: number): void {
    const current = this.masks.get(fd);
    if (current === events) return;
    const loop = clientLoop();
    const rc =
      current === undefined
        ? loop.dispatchAdd(LoopPriority.MED, fd, events, this.onReady)
        : loop.dispatchMod(LoopPriority.MED, fd, events, this.onReady);
    if (rc === 0) this.masks.set(fd, events);
  }

  private readonly onReady = (fd: number, revents: number): number => {
    if (fd === this.setupFd) {
      if (this.channel.setupReady(revents) < 0 || revents & DEAD) {
        this.serverGone();
        return 0;
      }
    } else if (revents & (PollEvent.ERR | PollEvent.NVAL)) {
      this.serverGone();
      return 0;
    }
    if (this.eventWaiters.length > 0 && fd === this.channel.eventFd) this.pumpEvents();
    if (this.responses.length > 0 && fd === this.channel.responseFd) this.pumpResponses();
    if (!this.connected) return 0;
    if (revents & PollEvent.IN) this.quiet(fd);
    this.watch();
    return 0;
  };

  private unwatch(): void {
    const loop = clientLoop();
    for (const fd of this.masks.keys()) loop.dispatchDel(fd);
    this.masks.clear();
  }

  /**
   * The server hung up (or a disconnect-class error): what already arrived is
   * still handed out, then every pending call fails with ENOTCONN.
   */
  private serverGone(): void {
    if (!this.connected) return;
    this.connected = false;
    this.unwatch();
    if (this.semWaiting) this.waiter!.cancel();
    this.pumpResponses();
    this.pumpEvents();
  }

  /**
   * qb_ipcc_disconnect. Pending calls fail with ENOTCONN. SHM: the rings are
   * released (ref_count 0); if the server died, its files are removed as
   * libqb's client does. SOCKET: the control file and directory are removed.
   */
  disconnect(): void {
    if (this.closed) return;
    this.closed = true;
    const wasConnected = this.isConnected;
    this.serverGone();
    this.waiter?.close();
    const gone = !wasConnected && this.server.pid > 0 && !processAlive(this.server.pid);
    this.channel.close(gone);
    native.shutdown(this.setupFd);
    native.close(this.setupFd);
    this.setupFd = -1;
  }

  /** `using client = …`: disconnect(). */
  [Symbol.dispose](): void {
    this.disconnect();
  }

  /** `await using client = await connect(…)`: disconnect(). */
  [Symbol.asyncDispose](): Promise<void> {
    this.disconnect();
    return Promise.resolve();
  }
}

/**
 * qb_ipcc_connect: connects to the libqb service `name` (any libqb 2.x server)
 * and attaches to the transport the server chose. `maxMsgSize` is raised to
 * 12328 as libqb's client does; the server may raise it further (bufferSize).
 * Rejects with a QbError whose errno is what qb_ipcc_connect sets: ECONNREFUSED
 * (nobody serves the name), the server's rejection (EACCES, …), ENOTSUP/EINVAL.
 */
export async function connect(name: string, maxMsgSize: number, options: ConnectOptions = {}): Promise<Client> {
  validateServiceName(name);
  if (!Number.isInteger(maxMsgSize) || maxMsgSize < 0 || maxMsgSize > 0xffffffff) {
    throw new RangeError(`maxMsgSize must be a 32-bit unsigned integer, got ${maxMsgSize}`);
  }
  const h = await handshake(name, Math.max(maxMsgSize, CONNECTION_RESPONSE_SIZE), options);
  let channel: Channel;
  try {
    if (h.type === TransportType.SHM) channel = new ShmChannel(h.setupFd, h, h.bufferSize);
    else if (h.type === TransportType.SOCKET) channel = new SocketChannel(h.setupFd, h.request, h.response, h.bufferSize);
    else
      throw new QbError(
        h.type === IpcType.POSIX_MQ || h.type === IpcType.SYSV_MQ ? -ENOTSUP : -EINVAL,
        `the server chose transport type ${h.type}`,
      );
  } catch (error) {
    native.close(h.setupFd);
    const errno = (error as { errno?: unknown }).errno;
    if (error instanceof QbError || typeof errno !== 'number') throw error;
    throw new QbError(
      errno,
      `cannot attach to the ${h.type === TransportType.SHM ? 'SHM' : 'SOCKET'} transport of ${name}: ${(error as Error).message}`,
      { cause: error },
    );
  }
  return new Client(h.setupFd, channel, h.bufferSize, h.server);
}
