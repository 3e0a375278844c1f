// Service: qb_ipcs_service_t. Listens, authenticates, negotiates, creates each
// connection's transport, and owns the list of connections and the rate limit.
import { EventEmitter } from 'node:events';
import { statSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Acceptor, type Handshake } from './acceptor.js';
import { ConnectionState, IpcType, LoopPriority, RateLimit } from './constants.js';
import { Connection, type ConnectionHandlers, type ConnectionOwner } from './connection.js';
import { Cell } from './connection-cells.js';
import { ConnectionDirectory } from './connection-dir.js';
import { EACCES, EINVAL, ENOMEM, ENOTSUP, ESHUTDOWN, QbError, errnoName } from './errno.js';
import { native } from './native.js';
import { resolveOptions, validateServiceName, type ResolvedOptions, type ServiceOptions } from './options.js';
import { NativeLoop, type PollHandlers } from './poll.js';
import type { ServiceStats } from './stats.js';
import { createTransportFiles, type TransportFiles } from './transport/files.js';
import { buildRejection, TransportType } from './handshake.js';
import { RemoteConnection } from './remote-connection.js';
import { WorkerPool, type PoolHost } from './worker-pool.js';
import { ServiceCounter, type RateSettings } from './worker-protocol.js';
import { sweepStaleDirectories } from './stale-directories.js';

/** qb_ipcs_service_handlers. Return values follow libqb: 0 or a negative errno. */
export interface ServiceHandlers extends ConnectionHandlers {
  /**
   * Decide whether a client may connect: 0 (or nothing) accepts; a negative
   * errno rejects, and the client's qb_ipcc_connect fails with that errno.
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

type Lifecycle = 'created' | 'running' | 'destroyed';

const RATE = {
  [RateLimit.FAST]: { priority: LoopPriority.HIGH, budget: 50, flowControl: 0 },
  [RateLimit.NORMAL]: { priority: LoopPriority.MED, budget: 5, flowControl: 0 },
  [RateLimit.SLOW]: { priority: LoopPriority.LOW, budget: 1, flowControl: 0 },
  [RateLimit.OFF]: { priority: LoopPriority.LOW, budget: 1, flowControl: 1 },
  [RateLimit.OFF_2]: { priority: LoopPriority.LOW, budget: 1, flowControl: 2 },
} as const;

export class Service extends EventEmitter implements ConnectionOwner, PoolHost {
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
  private acceptor: Acceptor | undefined;
  private socketPath: string | undefined;
  private readonly list = new Set<ServiceConnection>();
  private enforcedSize = 0;
  private rateValue: RateSettings = RATE[RateLimit.NORMAL];
  private nextConnectionId = 1;
  private readonly serverPid = process.pid;
  /** [activeConnections, closedConnections]; in worker mode shared with the shards. */
  private counters: Int32Array<ArrayBufferLike> = new Int32Array(2);
  private pool: WorkerPool | undefined;

  /** @internal use createService(). */
  constructor(name: string, serviceId: number, type: IpcType, handlers: ServiceHandlers, options?: ServiceOptions) {
    super();
    this.name = validateServiceName(name);
    if (!Number.isInteger(serviceId)) throw new TypeError(`serviceId must be an integer, got ${serviceId}`);
    if (!(type in IpcType) || typeof type !== 'number') throw new TypeError(`type must be an IpcType, got ${String(type)}`);
    if (typeof handlers !== 'object' || handlers === null) throw new TypeError('handlers must be an object');
    this.options = resolveOptions(options);
    if (this.options.workers === 0 && typeof handlers.msgProcess !== 'function') {
      throw new TypeError('handlers.msgProcess must be a function (it serves every request when workers is 0)');
    }
    this.serviceId = serviceId;
    this.type = type;
    this.handlers = handlers;
  }

  // ---- ConnectionOwner ----

  get poll(): PollHandlers {
    if (this.pollHandlers === undefined) throw new Error('the service is not running');
    return this.pollHandlers;
  }

  get priority(): LoopPriority {
    return this.rateValue.priority;
  }

  get budget(): number {
    return this.rateValue.budget;
  }

  /** @internal ConnectionOwner and PoolHost. */
  get yieldToClients(): boolean {
    return this.options.yieldToClients;
  }

  /** @internal PoolHost: the settings new shards start with. */
  get rate(): RateSettings {
    return this.rateValue;
  }

  /** @internal */
  connectionActivated(conn: Connection): void {
    this.list.add(conn);
    this.counters[ServiceCounter.ACTIVE]!++;
  }

  /** @internal */
  connectionClosing(_conn: Connection, _wasEstablished: boolean): void {
    this.counters[ServiceCounter.ACTIVE]!--;
    this.counters[ServiceCounter.CLOSED]!++;
  }

  /** @internal */
  connectionGone(conn: ServiceConnection): void {
    this.list.delete(conn);
  }

  /** @internal PoolHost: a worker-side handler threw, or a worker died. */
  poolError(error: Error): void {
    this.emit('error', error);
  }

  /** @internal a handler threw: that connection is dropped, the service goes on. */
  handlerFailed(error: unknown, conn: Connection, handler: string): void {
    conn.disconnectReason ??= `${handler} threw`;
    conn.disconnect();
    process.nextTick(() => this.emit('error', Object.assign(
      new Error(`qbipc: ${handler} threw for the client with pid ${conn.pid}; that connection was closed`, { cause: error }),
      { connection: conn },
    )));
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
      if (!isDirectory(socketDir)) throw new QbError(-ENOTSUP, `filesystem sockets need the directory ${socketDir}; create it or set options.socketDir`);
      address = `${socketDir}/${this.name}`;
    }
    let listenFd: number;
    try {
      listenFd = native.listenStream(address, !filesystemSockets);
    } catch (cause) {
      const errno = (cause as { errno?: number }).errno ?? -EINVAL;
      const where = filesystemSockets ? address : `@${address}`;
      throw new QbError(errno, `cannot listen on ${where}${errnoName(errno) === 'EADDRINUSE' ? ': another server already serves this name' : ''}`, { cause });
    }
    sweepStaleDirectories(this.name); // the name is ours now: what dead servers of it left in /dev/shm goes
    if (this.options.workers > 0) {
      const pool = new WorkerPool(this, this.options.workers, workerModuleUrl(this.options.workerModule!), this.options.workerData, this.options.placement);
      try {
        await pool.start();
      } catch (cause) {
        native.close(listenFd);
        await pool.destroy();
        throw new QbError(-EINVAL, `the worker module could not be started: ${(cause as Error).message}`, { cause });
      }
      this.pool = pool;
      this.counters = pool.counters;
    }
    if (this.pollHandlers === undefined) this.pollHandlers = this.ownLoop = new NativeLoop();
    this.socketPath = filesystemSockets ? address : undefined;
    this.acceptor = new Acceptor(this.pollHandlers, listenFd, this.options.handshakeTimeoutMs, (h) => this.admitSafely(h));
    const rc = this.acceptor.start();
    if (rc < 0) {
      this.acceptor.close();
      throw new QbError(rc, `the poll handlers refused the listening socket`);
    }
    this.lifecycle = 'running';
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
      this.emit('error', new Error(`qbipc: could not admit the client with pid ${h.pid}`, { cause: error }));
    });
  }

  /** A finished handshake: accept or reject, then set up the transport (docs/wire.md §4.4). */
  private async admit(h: Handshake): Promise<void> {
    const id = this.nextConnectionId++;
    const conn = this.pool !== undefined ? new RemoteConnection(this.pool, id, h, h.fd) : new Connection(this, h.fd, id, h);
    const reject = (negErrno: number, why: string) => (conn instanceof Connection ? conn.reject(negErrno, why) : this.refuse(conn, negErrno));
    let directory: ConnectionDirectory;
    try {
      directory = ConnectionDirectory.create(this.serverPid, h.pid, h.fd);
    } catch (error) {
      return reject(errnoOf(error, -ENOMEM), `cannot create its directory: ${(error as Error).message}`);
    }
    conn.attach(directory);
    directory.setOwner(h.uid, h.gid);
    let verdict: number | void = 0;
    if (this.handlers.connectionAccept !== undefined) {
      try {
        verdict = await this.handlers.connectionAccept(conn, h.uid, h.gid);
      } catch (error) {
        verdict = -EACCES;
        process.nextTick(() => this.emit('error', new Error('qbipc: connectionAccept threw; the client was rejected with EACCES', { cause: error })));
      }
    }
    if (this.lifecycle !== 'running') return reject(-ESHUTDOWN, 'the service is shutting down');
    if (typeof verdict === 'number' && verdict !== 0) return reject(-Math.abs(verdict), 'connectionAccept said no');
    const size = this.negotiate(h.request.maxMsgSize);
    let files: TransportFiles;
    try {
      files = createTransportFiles(this.transportType, directory, this.name, size, conn.fileOwner);
    } catch (error) {
      return reject(errnoOf(error, -ENOMEM), `cannot create its files: ${(error as Error).message}`);
    }
    directory.seal();
    if (conn instanceof Connection) return conn.open(files, size);
    this.list.add(conn);
    this.pool!.place(conn, files, size);
  }

  /** Worker mode's rejection: answered here; connectionDestroyed then runs in a shard, as in-thread. */
  private refuse(conn: RemoteConnection, negErrno: number): void {
    native.send(conn.setupFd, buildRejection(negErrno));
    native.shutdown(conn.setupFd);
    native.close(conn.setupFd);
    conn.cells[Cell.SETUP_OPEN] = 0;
    if (!this.pool!.rejected(conn)) conn.directory?.remove();
  }

  /** max(requested, enforced), clamped to options.maxBufferSize. */
  private negotiate(requested: number): number {
    return Math.min(Math.max(requested, this.enforcedSize), this.options.maxBufferSize);
  }

  /** qb_ipcs_destroy: disconnects every client, stops listening. */
  async destroy(): Promise<void> {
    if (this.lifecycle === 'destroyed') return;
    const wasRunning = this.lifecycle === 'running';
    this.lifecycle = 'destroyed';
    if (wasRunning) {
      this.acceptor?.close();
      this.acceptor = undefined;
      if (this.pool !== undefined) await this.pool.destroy();
      for (const conn of [...this.list]) conn.disconnect();
      if (this.socketPath !== undefined) native.unlinkAt(-100, this.socketPath, false);
      this.ownLoop?.close();
      this.ownLoop = undefined;
    }
    this.unref();
  }

  /** qb_ipcs_ref: a lifetime reference (not the Node event loop's). */
  ref(): void {
    this.refs++;
  }

  /** qb_ipcs_unref: dropping the last reference destroys the service. */
  unref(): void {
    if (this.refs <= 0) return;
    if (--this.refs === 0 && this.lifecycle !== 'destroyed') void this.destroy();
  }

  /** Whether the running service keeps the Node process alive (default true). */
  keepAlive(keep: boolean): void {
    this.ownLoop?.setKeepAlive(keep);
  }

  /**
   * qb_ipcs_request_rate_limit. Applied at once in-thread; in worker mode the
   * Promise resolves when every worker has applied it.
   */
  requestRateLimit(limit: RateLimit): Promise<void> {
    const rate = RATE[limit];
    if (rate === undefined) throw new TypeError(`requestRateLimit needs a RateLimit, got ${String(limit)}`);
    const moved = rate.priority !== this.rateValue.priority;
    this.rateValue = rate;
    if (this.pool !== undefined) return this.pool.broadcastRate(rate);
    for (const conn of this.list) {
      if (!(conn instanceof Connection)) continue;
      if (conn.state !== ConnectionState.ACTIVE && conn.state !== ConnectionState.ESTABLISHED) continue;
      conn.setFlowControl(rate.flowControl);
      if (moved) conn.reprioritise();
    }
    return Promise.resolve();
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
    const copy = {
      activeConnections: Atomics.load(this.counters, ServiceCounter.ACTIVE),
      closedConnections: Atomics.load(this.counters, ServiceCounter.CLOSED),
    };
    if (clearAfterRead) {
      Atomics.store(this.counters, ServiceCounter.ACTIVE, 0);
      Atomics.store(this.counters, ServiceCounter.CLOSED, 0);
    }
    return copy;
  }

  /** qb_ipcs_connection_first_get. No reference is taken: JS keeps the object alive. */
  connectionFirstGet(): ServiceConnection | undefined {
    return this.list.values().next().value;
  }

  /** qb_ipcs_connection_next_get. */
  connectionNextGet(current: ServiceConnection): ServiceConnection | undefined {
    let found = false;
    for (const conn of this.list) {
      if (found) return conn;
      if (conn === current) found = true;
    }
    return undefined;
  }

  /** Every connection from ACTIVE until it is destroyed, in the order they came. */
  connections(): IterableIterator<ServiceConnection> {
    return [...this.list].values();
  }
}

/** qb_ipcs_create. Nothing is listened on until run(). */
export function createService(
  name: string, serviceId: number, type: IpcType, handlers: ServiceHandlers, options?: ServiceOptions,
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
