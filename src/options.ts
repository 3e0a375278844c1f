// Every option of createService, validated in one place.
import { existsSync } from 'node:fs';
import { defaultPlacement, type Placement } from './cpu-placement.js';
import { describe } from './errors.js';
import { validateLogger, type Logger } from './logger.js';

export interface ServiceOptions {
  /** Worker threads serving connections; 0 (the default) serves them on this thread. */
  workers?: number;
  /**
   * With workers > 0: the module (path or URL) whose default export holds the
   * handlers that run in the workers (msgProcess, connectionCreated,
   * connectionClosed, connectionDestroyed) — or a function of workerData
   * returning them. connectionAccept stays on the main thread.
   */
  workerModule?: string | URL;
  /** Passed to a workerModule that exports a function (structured-cloned). */
  workerData?: unknown;
  /**
   * How new connections are spread over workers: 'least-loaded' (fewest connections),
   * 'round-robin', or 'client-cpu' (each worker keeps to one CPU; a connection goes to
   * the worker of the CPU its client runs on, else to the least loaded). Default:
   * 'client-cpu' when workers >= the CPUs the process may use and realtimePriority
   * is 0, else 'least-loaded'.
   */
  placement?: Placement;
  /**
   * Upper bound of the negotiated buffer size. libqb has none, so a client could
   * make it allocate three rings of any size; larger requests are clamped to this.
   * Default 64 MiB.
   */
  maxBufferSize?: number;
  /** A client that has not completed its 24-byte handshake by then is dropped. Default 5000 ms. */
  handshakeTimeoutMs?: number;
  /**
   * Listen on a filesystem socket SOCKETDIR/<name> instead of the abstract
   * namespace. Default: as libqb, whether /etc/libqb/force-filesystem-sockets exists.
   */
  filesystemSockets?: boolean;
  /** libqb's SOCKETDIR for filesystem sockets; Debian's build uses /tmp. */
  socketDir?: string;
  /**
   * After answering a client whose ring then runs dry, yield the CPU (sched_yield)
   * so that a client woken on this CPU sends its next request before the round
   * ends. Each connection stops yielding while that finds nothing. Default true;
   * false never yields (docs/threading.md, "Handing the CPU to the client").
   */
  yieldToClients?: boolean;
  /**
   * After each batch of requests, the serving thread keeps looking at its SHM
   * connections' request rings for up to this many microseconds before it
   * sleeps: a request seen in the ring is answered before its client sleeps, so
   * neither side pays a wake-up. A thread whose spins keep finding nothing stops
   * spinning and tries again now and then. Default 50; 0 never spins
   * (docs/threading.md, "Spinning on the rings").
   */
  spinMicros?: number;
  /**
   * 1–99: the serving threads (this thread in-thread, each worker's thread with
   * workers) run at SCHED_RR with this priority while the service runs, as
   * corosync runs its loop. No client then preempts a spinning serving thread,
   * and the kernel moves clients to other CPUs. At most CPUs − 1 serving
   * threads do (the first workers; none on 1 CPU), so that one CPU's worth is
   * left to the clients. Needs CAP_SYS_NICE or an RLIMIT_RTPRIO of at least
   * this; without, the service logs a warning and serves at normal priority.
   * Default 0: the threads' scheduling is left alone (docs/threading.md,
   * "Real-time serving threads").
   */
  realtimePriority?: number;
  /**
   * At most this many connections at once, counted from admission until each is
   * gone; a client beyond it is refused with EAGAIN (it may try again later).
   * Default: no limit, as libqb.
   */
  maxConnections?: number;
  /** At most this many connections at once per client uid, refused as maxConnections. Default: no limit. */
  maxConnectionsPerUid?: number;
  /**
   * Where the service logs what libqb logs: clients accepted, refused (errno and
   * why), disconnected (reason), protocol faults, workers that died. Console-like
   * (`console` fits); levels it lacks are not logged. Default: util.debuglog('qbipc'),
   * printed with NODE_DEBUG=qbipc.
   */
  logger?: Logger;
}

export interface ResolvedOptions {
  workers: number;
  workerModule: string | URL | undefined;
  workerData: unknown;
  placement: Placement;
  maxBufferSize: number;
  handshakeTimeoutMs: number;
  filesystemSockets: boolean;
  socketDir: string;
  yieldToClients: boolean;
  spinMicros: number;
  realtimePriority: number;
  maxConnections: number | undefined;
  maxConnectionsPerUid: number | undefined;
  logger: Logger | undefined;
}

export const FORCE_FILESYSTEM_SOCKETS = '/etc/libqb/force-filesystem-sockets';
const DEFAULT_MAX_BUFFER = 64 * 1024 * 1024;
/** The largest size the client's u32 field and our ring arithmetic handle. */
const MAX_BUFFER_LIMIT = 1024 * 1024 * 1024;
export const DEFAULT_SPIN_MICROS = 50;
/** A spin longer than this is a busy thread, not a wait for the next request. */
const MAX_SPIN_MICROS = 100_000;
/** SCHED_RR's highest priority on Linux. */
const MAX_REALTIME_PRIORITY = 99;

export function resolveOptions(options: ServiceOptions = {}): ResolvedOptions {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  const workers = options.workers ?? 0;
  if (!Number.isInteger(workers) || workers < 0) throw new RangeError(`options.workers must be a non-negative integer, got ${workers}`);
  if (workers > 0 && options.workerModule === undefined) {
    throw new TypeError('options.workerModule is required when options.workers > 0: the module whose default export holds msgProcess');
  }
  const maxBufferSize = options.maxBufferSize ?? DEFAULT_MAX_BUFFER;
  if (!Number.isInteger(maxBufferSize) || maxBufferSize < 1 || maxBufferSize > MAX_BUFFER_LIMIT) {
    throw new RangeError(`options.maxBufferSize must be an integer from 1 to ${MAX_BUFFER_LIMIT}, got ${maxBufferSize}`);
  }
  const handshakeTimeoutMs = options.handshakeTimeoutMs ?? 5000;
  if (!(handshakeTimeoutMs > 0)) throw new RangeError(`options.handshakeTimeoutMs must be positive, got ${handshakeTimeoutMs}`);
  const socketDir = options.socketDir ?? '/tmp';
  if (typeof socketDir !== 'string' || !socketDir.startsWith('/'))
    throw new TypeError(`options.socketDir must be an absolute path, got ${socketDir}`);
  const placement = options.placement ?? defaultPlacement(workers, options.realtimePriority ?? 0);
  if (placement !== 'least-loaded' && placement !== 'round-robin' && placement !== 'client-cpu') {
    throw new TypeError(`options.placement must be 'least-loaded', 'round-robin' or 'client-cpu', got ${String(placement)}`);
  }
  const yieldToClients = options.yieldToClients ?? true;
  if (typeof yieldToClients !== 'boolean') throw new TypeError(`options.yieldToClients must be a boolean, got ${String(yieldToClients)}`);
  const spinMicros = options.spinMicros ?? DEFAULT_SPIN_MICROS;
  if (typeof spinMicros !== 'number' || !Number.isInteger(spinMicros) || spinMicros < 0 || spinMicros > MAX_SPIN_MICROS) {
    throw new RangeError(`options.spinMicros must be an integer from 0 (never spin) to ${MAX_SPIN_MICROS}, got ${describe(spinMicros)}`);
  }
  const realtimePriority = options.realtimePriority ?? 0;
  if (
    typeof realtimePriority !== 'number' ||
    !Number.isInteger(realtimePriority) ||
    realtimePriority < 0 ||
    realtimePriority > MAX_REALTIME_PRIORITY
  ) {
    throw new RangeError(
      `options.realtimePriority must be an integer from 0 (normal scheduling) to ${MAX_REALTIME_PRIORITY} (SCHED_RR priority), got ${describe(realtimePriority)}`,
    );
  }
  const maxConnections = connectionLimit(options.maxConnections, 'maxConnections');
  const maxConnectionsPerUid = connectionLimit(options.maxConnectionsPerUid, 'maxConnectionsPerUid');
  return {
    workers,
    workerModule: options.workerModule,
    workerData: options.workerData,
    placement,
    maxBufferSize,
    handshakeTimeoutMs,
    filesystemSockets: options.filesystemSockets ?? existsSync(FORCE_FILESYSTEM_SOCKETS),
    socketDir,
    yieldToClients,
    spinMicros,
    realtimePriority,
    maxConnections,
    maxConnectionsPerUid,
    logger: validateLogger(options.logger),
  };
}

/** undefined (no limit) or a positive integer. */
function connectionLimit(value: unknown, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new RangeError(`options.${name} must be a positive integer (or left out for no limit), got ${describe(value)}`);
  }
  return value;
}

const MAX_NAME_BYTES = 106; // the abstract address holds 106 bytes of name

/** Service names become socket addresses and file names: no '/', no NUL, ≤ 106 bytes. */
export function validateServiceName(name: unknown): string {
  if (typeof name !== 'string' || name.length === 0) throw new TypeError('the service name must be a non-empty string');
  if (name.includes('/') || name.includes('\0'))
    throw new TypeError(`the service name must not contain '/' or NUL: ${JSON.stringify(name)}`);
  if (Buffer.byteLength(name) > MAX_NAME_BYTES) {
    throw new RangeError(`the service name is ${Buffer.byteLength(name)} bytes; socket addresses hold ${MAX_NAME_BYTES}`);
  }
  return name;
}
