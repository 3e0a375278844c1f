// Service: qb_ipcs_service_t. Listens, authenticates, negotiates, creates each
// connection's files and places it on a shard (src/shard.ts), which serves it.
// It keeps the list of connections, the counters and the rate limit it hands
// the shards, and reports what they report: no serving logic lives here.
import { EventEmitter } from 'node:events';
import { statSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Acceptor, type Handshake } from './acceptor.js';
import { IpcType, LoopPriority, RateLimit } from './constants.js';
import type { Connection, ConnectionHandlers } from './connection.js';
import { ConnectionDirectory } from './connection-dir.js';
import { ConnectionLimits } from './connection-limits.js';
import { ConnectionList } from './connection-list.js';
import { deferredRemovals } from './deferred-removals.js';
import { EACCES, EAGAIN, EINVAL, ENOMEM, ENOTSUP, ESHUTDOWN, errnoName } from './errno.js';
import { describe, HandlerError, QbError, type HandlerName } from './errors.js';
import { LocalShards } from './local-shards.js';
import { loggedLevels, loggerSink, type LogLevel, type LogSink } from './logger.js';
import { native } from './native.js';
import { resolveOptions, validateServiceName, type ResolvedOptions, type ServiceOptions } from './options.js';
import { NativeLoop, type PollHandlers } from './poll.js';
import { enterRealtime, realtimePriorityOf, realtimeRefused, realtimeWithOneCpu } from './realtime.js';
import { ServiceCounters } from './service-counters.js';
import type { ServiceEvents, ServiceListener as Listener } from './service-events.js';
import type { RateSettings } from './shard.js';
import type { Shards, ShardsHost } from './shards.js';
import type { ServiceStats } from './stats.js';
import { createTransportFiles, type TransportFiles } from './transport/files.js';
import { TransportType } from './handshake.js';
import type { RemoteConnection } from './remote-connection.js';
import { sweepStaleDirectories } from './stale-directories.js';
import { WorkerPool } from './worker-pool.js';

/** qb_ipcs_service_handlers. Return values follow libqb: 0 or a negative errno. */
export interface ServiceHandlers extends ConnectionHandlers {
  /**
   * Decide whether a client may connect: 0 (or nothing) accepts; a negative
   * errno rejects, and the client's qb_ipcc_connect fails with that errno.
   * Anything else is a handler failure (the client is refused with EACCES).
   * May call conn.authSet(). May return a Promise.
   */
  connectionAccept?(conn: ServiceConnection, uid: number, gid: number): number | void | Promise<number | void>;
}

/**
 * A connection as the main thread sees it: the Connection itself in in-thread
 * mode; in worker mode a RemoteConnection (stats, disconnect, events routed to
 * the worker that serves it).
 */
export type ServiceConnection = Connection | RemoteConnection;

type Lifecycle = 'created' | 'running' | 'closing' | 'destroyed';

/** How long close() lets established clients go on by default, and Symbol.asyncDispose always. */
export const DEFAULT_CLOSE_GRACE_MS = 5000;

/** service.close() options. */
export interface CloseOptions {
  /** How long established clients may go on before the rest are disconnected. Default 5000 ms. */
  graceMs?: number;
}

// EventEmitter's methods, typed by ServiceEvents (EventEmitter implements them), so
// a misspelled event name or a wrong listener does not compile.
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export interface Service {
  on<E extends keyof ServiceEvents>(event: E, listener: Listener<E>): this;
  once<E extends keyof ServiceEvents>(event: E, listener: Listener<E>): this;
  off<E extends keyof ServiceEvents>(event: E, listener: Listener<E>): this;
  addListener<E extends keyof ServiceEvents>(event: E, listener: Listener<E>): this;
  removeListener<E extends keyof ServiceEvents>(event: E, listener: Listener<E>): this;
  prependListener<E extends keyof ServiceEvents>(event: E, listener: Listener<E>): this;
  prependOnceListener<E extends keyof ServiceEvents>(event: E, listener: Listener<E>): this;
  emit<E extends keyof ServiceEvents>(event: E, ...args: ServiceEvents[E]): boolean;
}

const RATE = {
  [RateLimit.FAST]: { priority: LoopPriority.HIGH, budget: 50, flowControl: 0 },
  [RateLimit.NORMAL]: { priority: LoopPriority.MED, budget: 5, flowControl: 0 },
  [RateLimit.SLOW]: { priority: LoopPriority.LOW, budget: 1, flowControl: 0 },
  [RateLimit.OFF]: { priority: LoopPriority.LOW, budget: 1, flowControl: 1 },
  [RateLimit.OFF_2]: { priority: LoopPriority.LOW, budget: 1, flowControl: 2 },
} as const;

// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export class Service extends EventEmitter {
  readonly name: string;
  readonly serviceId: number;
  readonly type: IpcType;
  /** Application data of the service (qb_ipcs_service_context_set/get). */
  context: unknown = undefined;
  readonly handlers: ServiceHandlers;
  private readonly options: ResolvedOptions;
  private lifecycle: Lifecycle = 'created';
  private refs = 1;
  private pollHandlers: PollHandlers | undefined;
  private ownLoop: NativeLoop | undefined;
  /** In-thread with options.realtimePriority: gives the serving thread back its scheduling. */
  private leaveRealtime: (() => void) | undefined;
  private acceptor: Acceptor | undefined;
  private socketPath: string | undefined;
  private readonly list = new ConnectionList<ServiceConnection>();
  private enforcedSize = 0;
  private rate: RateSettings = RATE[RateLimit.NORMAL];
  private nextConnectionId = 1;
  private readonly serverPid = process.pid;
  private readonly counters = new ServiceCounters();
  private shards: Shards<ServiceConnection> | undefined;
  private readonly limits: ConnectionLimits<ServiceConnection>;
  /** options.logger (or NODE_DEBUG=qbipc), for every log point of this service. */
  private readonly log: LogSink;
  private closing: Promise<void> | undefined;
  private destroying: Promise<void> | undefined;
  /** Ends close()'s grace: when the last client has gone, at graceMs, or by destroy(). */
  private endGrace: (() => void) | undefined;

  /** @internal use createService(). */
  constructor(name: string, serviceId: number, type: IpcType, handlers: ServiceHandlers, options?: ServiceOptions) {
    super();
    this.name = validateServiceName(name);
    if (!Number.isInteger(serviceId)) throw new TypeError(`serviceId must be an integer, got ${serviceId}`);
    if (!(type in IpcType) || typeof type !== 'number') throw new TypeError(`type must be an IpcType, got ${String(type)}`);
    if (typeof handlers !== 'object' || handlers === null) throw new TypeError('handlers must be an object');
    this.options = resolveOptions(options);
    this.limits = new ConnectionLimits(this.options.maxConnections, this.options.maxConnectionsPerUid);
    if (this.options.workers === 0 && typeof handlers.msgProcess !== 'function') {
      throw new TypeError('handlers.msgProcess must be a function (it serves every request when workers is 0)');
    }
    this.serviceId = serviceId;
    this.type = type;
    this.handlers = handlers;
    this.log = loggerSink(this.options.logger, (cause) => this.emitLater('error', new Error('qbipc: options.logger threw', { cause })));
  }

  /** What the shards report: a connection gone, a handler failed, a worker died. */
  private readonly shardsHost: ShardsHost<ServiceConnection> = {
    connectionGone: (conn) => {
      this.list.delete(conn);
      this.limits.release(conn);
      if (this.list.size === 0) this.endGrace?.();
    },
    handlerFailed: (conn, handler, cause, where) =>
      this.handlerFailed(handler, conn, cause, `that connection was closed${where === undefined ? '' : ` (${where})`}`),
    workerFailed: (error) => {
      this.log('error', error.message, {
        event: 'worker-exit',
        reason: (error.cause as Error | undefined)?.message ?? 'its task returned',
      });
      this.emitLater('error', error);
    },
    log: (level, message, fields) => this.log(level, message, fields),
  };

  /**
   * An event from a later turn of the loop: a listener must not run inside a
   * round, and what it throws must reach Node as an uncaught exception — a
   * nextTick queued inside a poll callback runs where a throw is lost.
   */
  private emitLater<E extends keyof ServiceEvents>(event: E, ...args: ServiceEvents[E]): void {
    setImmediate(() => this.emit(event, ...args));
  }

  /** A HandlerError as 'error', after the current call returns. */
  private handlerFailed(handler: HandlerName, conn: ServiceConnection, cause: unknown, outcome: string): void {
    const reason = cause instanceof Error ? cause.message : String(cause);
    const error = new HandlerError(
      handler,
      conn,
      `qbipc: ${handler} failed for the client with pid ${conn.pid}; ${outcome}: ${reason}`,
      cause,
    );
    this.emitLater('error', error);
  }

  // ---- qbipcs.h ----

  /** qb_ipcs_poll_handlers_set: watch fds and run jobs through your own loop. Before run(). */
  pollHandlersSet(handlers: PollHandlers): void {
    if (this.lifecycle !== 'created') throw new Error('pollHandlersSet() must be called before run()');
    for (const fn of ['jobAdd', 'dispatchAdd', 'dispatchMod', 'dispatchDel'] as const) {
      if (typeof handlers?.[fn] !== 'function') throw new TypeError(`poll handlers need a ${fn} function`);
    }
    this.pollHandlers = handlers;
  }

  /** qb_ipcs_run: starts listening. Rejects with a QbError (errno, code) as libqb returns -errno. */
  async run(): Promise<void> {
    if (this.lifecycle !== 'created') throw new QbError(-EINVAL, `service "${this.name}" was already started or destroyed`);
    const unsupported = this.unsupportedReason();
    if (unsupported !== undefined) {
      this.lifecycle = 'destroyed'; // as libqb, a service whose run failed this way is finished
      throw new QbError(-ENOTSUP, unsupported);
    }
    const { filesystemSockets, socketDir } = this.options;
    let address = this.name;
    if (filesystemSockets) {
      if (!isDirectory(socketDir))
        throw new QbError(-ENOTSUP, `filesystem sockets need the directory ${socketDir}; create it or set options.socketDir`);
      address = `${socketDir}/${this.name}`;
    }
    let listenFd: number;
    try {
      listenFd = native.listenStream(address, !filesystemSockets);
    } catch (cause) {
      const errno = (cause as { errno?: number }).errno ?? -EINVAL;
      const where = filesystemSockets ? address : `@${address}`;
      throw new QbError(
        errno,
        `cannot listen on ${where}${errnoName(errno) === 'EADDRINUSE' ? ': another server already serves this name' : ''}`,
        { cause },
      );
    }
    sweepStaleDirectories(this.name); // the name is ours now: what dead servers of it left in /dev/shm goes
    if (this.pollHandlers === undefined) this.pollHandlers = this.ownLoop = new NativeLoop(true, this.options.spinMicros);
    const { workers } = this.options;
    if (workers > 0) {
      const pool = new WorkerPool(this.shardsHost, workers, {
        service: this,
        rate: this.rate,
        yieldToClients: this.options.yieldToClients,
        spinMicros: this.options.spinMicros,
        realtimePriority: this.options.realtimePriority,
        counters: this.counters,
        workerModule: workerModuleUrl(this.options.workerModule!),
        workerData: this.options.workerData,
        placement: this.options.placement,
        logLevels: loggedLevels(this.options.logger),
      });
      try {
        await pool.start();
      } catch (cause) {
        native.close(listenFd);
        await pool.close();
        this.ownLoop?.close();
        throw new QbError(-EINVAL, `the worker module could not be started: ${(cause as Error).message}`, { cause });
      }
      this.shards = pool;
    } else {
      this.shards = new LocalShards(this.shardsHost, this.handlers, this, {
        poll: this.pollHandlers,
        counters: this.counters,
        rate: this.rate,
        yieldToClients: this.options.yieldToClients,
        log: this.log,
      });
    }
    this.socketPath = filesystemSockets ? address : undefined;
    this.acceptor = new Acceptor(this.pollHandlers, listenFd, this.options.handshakeTimeoutMs, (h) => this.admitSafely(h), this.log);
    const rc = this.acceptor.start();
    if (rc < 0) {
      this.acceptor.close();
      throw new QbError(rc, `the poll handlers refused the listening socket`);
    }
    deferredRemovals.hold();
    if (workers === 0 && this.options.realtimePriority > 0) this.becomeRealtime(this.options.realtimePriority);
    this.lifecycle = 'running';
    this.emitLater('listening');
  }

  /** In-thread, this thread serves: SCHED_RR until the service ends (src/realtime.ts). */
  private becomeRealtime(priority: number): void {
    if (realtimePriorityOf(0, priority) === 0) {
      this.log('warn', realtimeWithOneCpu(priority), { event: 'scheduling' });
      return;
    }
    const entered = enterRealtime(priority);
    if (typeof entered === 'number') this.log('warn', realtimeRefused(priority, entered), { event: 'scheduling', errno: entered });
    else this.leaveRealtime = entered;
  }

  /** What the handshake response announces: NATIVE resolves to SHM, as in libqb on Linux. */
  private get transportType(): TransportType {
    return this.type === IpcType.SOCKET ? TransportType.SOCKET : TransportType.SHM;
  }

  private unsupportedReason(): string | undefined {
    switch (this.type) {
      case IpcType.POSIX_MQ:
      case IpcType.SYSV_MQ:
        return `libqb (and qbipc) do not implement the ${IpcType[this.type]} transport`;
      default:
        return undefined;
    }
  }

  private admitSafely(h: Handshake): void {
    this.admit(h).catch((error: unknown) => {
      this.emitLater('error', new Error(`qbipc: could not admit the client with pid ${h.pid}`, { cause: error }));
    });
  }

  /** A finished handshake: accept or refuse, then files, then a shard serves it (docs/wire.md §4.4). */
  private async admit(h: Handshake): Promise<void> {
    const shards = this.shards!;
    const conn = shards.create(this.nextConnectionId++, h);
    const overLimit = this.limits.take(conn, h.uid);
    if (overLimit !== undefined) return this.refuse(conn, -EAGAIN, overLimit);
    let directory: ConnectionDirectory;
    try {
      directory = ConnectionDirectory.create(this.serverPid, h.pid, h.fd);
    } catch (error) {
      return this.refuse(conn, errnoOf(error, -ENOMEM), `cannot create its directory: ${(error as Error).message}`);
    }
    conn.attach(directory);
    directory.setOwner(h.uid, h.gid);
    const verdict = await this.accept(conn, h);
    if (this.lifecycle !== 'running') return this.refuse(conn, -ESHUTDOWN, 'the service is shutting down', 'info');
    if (verdict !== 0) return this.refuse(conn, verdict, 'connectionAccept said no', 'info');
    const size = this.negotiate(h.request.maxMsgSize);
    let files: TransportFiles;
    try {
      files = createTransportFiles(this.transportType, directory, this.name, size, conn.fileOwner);
    } catch (error) {
      return this.refuse(conn, errnoOf(error, -ENOMEM), `cannot create its files: ${(error as Error).message}`);
    }
    directory.seal();
    this.list.add(conn);
    shards.place(conn, files, size);
  }

  /** connectionAccept's verdict: 0, or the negative errno to refuse with. */
  private async accept(conn: ServiceConnection, h: Handshake): Promise<number> {
    const accept = this.handlers.connectionAccept;
    if (accept === undefined) return 0;
    let verdict: unknown;
    try {
      verdict = await accept.call(this.handlers, conn, h.uid, h.gid);
    } catch (error) {
      this.handlerFailed('connectionAccept', conn, error, 'the client was refused with EACCES');
      return -EACCES;
    }
    if (verdict === undefined || verdict === 0) return 0;
    if (typeof verdict === 'number' && Number.isInteger(verdict) && verdict < 0) return verdict;
    const cause = new TypeError(
      `connectionAccept must return 0 (or nothing) to accept or a negative errno to refuse; it returned ${describe(verdict)}`,
    );
    this.handlerFailed('connectionAccept', conn, cause, 'the client was refused with EACCES');
    return -EACCES;
  }

  /** Answers a refused client here; its shard then runs connectionDestroyed and removes its directory. */
  private refuse(conn: ServiceConnection, negErrno: number, why: string, level: LogLevel = 'warn'): void {
    const code = errnoName(negErrno);
    this.log(level, `refused the client with pid ${conn.pid} (${code}): ${why}`, {
      event: 'reject',
      pid: conn.pid,
      uid: conn.uid,
      gid: conn.gid,
      connection: conn.id,
      errno: negErrno,
      code,
      reason: why,
    });
    this.limits.release(conn);
    conn.refuse(negErrno);
    this.shards!.rejected(conn);
  }

  /** max(requested, enforced), clamped to options.maxBufferSize. */
  private negotiate(requested: number): number {
    return Math.min(Math.max(requested, this.enforcedSize), this.options.maxBufferSize);
  }

  /**
   * qb_ipcs_destroy: disconnects every client (newest first), stops listening.
   * Emits 'close' when done. During a close(), ends the grace at once.
   */
  destroy(): Promise<void> {
    this.destroying ??= this.teardown();
    return this.destroying;
  }

  private async teardown(): Promise<void> {
    const wasServing = this.lifecycle === 'running' || this.lifecycle === 'closing';
    this.lifecycle = 'destroyed';
    this.endGrace?.();
    if (wasServing) {
      this.stopListening();
      await this.shards?.close();
      await deferredRemovals.settle(); // directories whose removal waited for a descriptor
      deferredRemovals.release();
      this.ownLoop?.close();
      this.ownLoop = undefined;
      this.leaveRealtime?.();
      this.leaveRealtime = undefined;
    }
    this.unref();
    this.emitLater('close');
  }

  /**
   * A graceful destroy(): stops accepting at once (new clients get
   * ECONNREFUSED; handshakes under way are dropped, clients awaiting
   * connectionAccept are refused with ESHUTDOWN), serves the established
   * clients on for up to `graceMs`, then disconnects the ones still there as
   * destroy() does. Resolves (and emits 'close') when every client is gone.
   */
  close(options: CloseOptions = {}): Promise<void> {
    const graceMs = options.graceMs ?? DEFAULT_CLOSE_GRACE_MS;
    if (!(graceMs >= 0)) throw new RangeError(`close() needs graceMs >= 0, got ${String(graceMs)}`);
    if (this.closing !== undefined) return this.closing;
    if (this.lifecycle !== 'running') return (this.closing = this.destroy());
    this.lifecycle = 'closing';
    this.stopListening();
    this.closing = new Promise<void>((resolve) => {
      const timer = setTimeout(() => this.endGrace?.(), graceMs);
      this.endGrace = () => {
        this.endGrace = undefined;
        clearTimeout(timer);
        resolve();
      };
      if (this.list.size === 0) this.endGrace();
    }).then(() => this.destroy());
    return this.closing;
  }

  /** `await using service = …`: close() with the default grace (DEFAULT_CLOSE_GRACE_MS). */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** No new clients: the listening socket (and its filesystem name) goes, handshakes under way are dropped. */
  private stopListening(): void {
    this.acceptor?.close();
    this.acceptor = undefined;
    if (this.socketPath !== undefined) native.unlinkAt(-100, this.socketPath, false);
    this.socketPath = undefined;
  }

  /** qb_ipcs_ref: a lifetime reference (not the Node event loop's). */
  ref(): void {
    this.refs++;
  }

  /**
   * qb_ipcs_unref. As in libqb, dropping the last reference only gives up the
   * object: it never stops a running service (destroy() does), whose clients,
   * old and new, go on being served.
   */
  unref(): void {
    if (this.refs > 0) this.refs--;
  }

  /** Whether the running service keeps the Node process alive (default true). */
  keepAlive(keep: boolean): void {
    this.ownLoop?.setKeepAlive(keep);
  }

  /**
   * qb_ipcs_request_rate_limit: applied to every current connection (new ones
   * start without flow control, as in libqb). Applied at once in-thread; in
   * worker mode the Promise resolves when every worker has applied it.
   */
  requestRateLimit(limit: RateLimit): Promise<void> {
    const rate = RATE[limit];
    if (rate === undefined) throw new TypeError(`requestRateLimit needs a RateLimit, got ${String(limit)}`);
    this.rate = rate;
    return this.shards?.setRate(rate) ?? Promise.resolve();
  }

  /** qb_ipcs_enforce_buffer_size: the minimum negotiated size of new connections. */
  enforceBufferSize(bytes: number): void {
    if (!Number.isInteger(bytes) || bytes < 0 || bytes > this.options.maxBufferSize) {
      throw new RangeError(`enforceBufferSize needs an integer from 0 to maxBufferSize (${this.options.maxBufferSize}), got ${bytes}`);
    }
    this.enforcedSize = bytes;
  }

  /** qb_ipcs_stats_get. */
  stats(clearAfterRead = false): ServiceStats {
    return this.counters.read(clearAfterRead);
  }

  /** qb_ipcs_connection_first_get: the newest connection. No reference is taken: JS keeps the object alive. */
  connectionFirstGet(): ServiceConnection | undefined {
    return this.list.first();
  }

  /** qb_ipcs_connection_next_get: the next older one. */
  connectionNextGet(current: ServiceConnection): ServiceConnection | undefined {
    return this.list.next(current);
  }

  /** Every connection from ACTIVE until it is destroyed, newest first (libqb's list order). */
  connections(): IterableIterator<ServiceConnection> {
    return this.list.toArray().values();
  }
}

/** qb_ipcs_create. Nothing is listened on until run(). */
export function createService(
  name: string,
  serviceId: number,
  type: IpcType,
  handlers: ServiceHandlers,
  options?: ServiceOptions,
): Service {
  return new Service(name, serviceId, type, handlers, options);
}

function errnoOf(error: unknown, fallback: number): number {
  const errno = (error as { errno?: unknown } | undefined)?.errno;
  return typeof errno === 'number' && errno < 0 ? errno : fallback;
}

function workerModuleUrl(module: string | URL): string {
  if (module instanceof URL) return module.href;
  return module.startsWith('file:') ? module : pathToFileURL(path.resolve(module)).href;
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
