// The main thread's side of worker mode: a piscina pool whose every worker runs
// one long-lived shard task. Places accepted connections on shards, routes
// disconnect/eventSend to them, and cleans up after a shard that died.
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { Cell } from './connection-cells.js';
import { ConnectionState } from './constants.js';
import { ENOTCONN } from './errno.js';
import { native } from './native.js';
import type { RemoteConnection, RemoteOwner } from './remote-connection.js';
import type { MappedProbe } from './shm/probe.js';
import { discardTransportFiles, eventQueueProbe, responseWaker, type TransportFiles } from './transport/files.js';
import { ServiceCounter, type FromShard, type RateSettings, type ShardInit, type ToShard } from './worker-protocol.js';

export type Placement = 'least-loaded' | 'round-robin';

/** What the pool needs from its service. */
export interface PoolHost {
  readonly serviceId: number;
  readonly context: unknown;
  readonly rate: RateSettings;
  readonly yieldToClients: boolean;
  connectionGone(conn: RemoteConnection): void;
  poolError(error: Error): void;
}

interface Shard {
  index: number;
  isReady: boolean;
  port: MessagePort;
  connections: Map<number, RemoteConnection>;
  /** Replies awaited from the shard, by sequence number. */
  pending: Map<number, (rc: number) => void>;
  ready: Promise<void>;
  ended: Promise<void>;
}

const SHUTDOWN_GRACE_MS = 5000;

export class WorkerPool implements RemoteOwner {
  private readonly piscina: Piscina;
  private readonly shards: Shard[] = [];
  /** Shared with every shard: [activeConnections, closedConnections]. */
  readonly counters = new Int32Array(new SharedArrayBuffer(8));
  private nextSeq = 1;
  private nextShard = 0;
  private destroying = false;

  constructor(
    private readonly host: PoolHost,
    private readonly size: number,
    private readonly workerModule: string,
    private readonly workerData: unknown,
    private readonly placement: Placement,
  ) {
    this.piscina = new Piscina({
      filename: new URL('../workers/shard.js', import.meta.url).href,
      minThreads: size,
      maxThreads: size,
      concurrentTasksPerWorker: 1,
      idleTimeout: Number.MAX_SAFE_INTEGER,
      atomics: 'disabled', // a shard's worker must keep its event loop: timers, promises, its port
    });
  }

  get serviceId(): number {
    return this.host.serviceId;
  }

  get context(): unknown {
    return this.host.context;
  }

  /** Starts every shard; rejects if one cannot load the worker module. */
  async start(): Promise<void> {
    for (let i = 0; i < this.size; i++) this.shards.push(this.startShard(i));
    await Promise.all(this.shards.map((s) => Promise.race([s.ready, s.ended.then(() => {
      throw new Error(`shard ${s.index} ended before it was ready`);
    })])));
  }

  private startShard(index: number): Shard {
    const { port1, port2 } = new MessageChannel();
    let markReady!: () => void;
    const shard: Shard = {
      index,
      isReady: false,
      port: port1,
      connections: new Map(),
      pending: new Map(),
      ready: new Promise((resolve) => (markReady = resolve)),
      ended: Promise.resolve(),
    };
    port1.on('message', (message: FromShard) => {
      if (message.type === 'ready') {
        shard.isReady = true;
        markReady();
      }
      else this.receive(shard, message);
    });
    const init: ShardInit = {
      index,
      port: port2,
      workerModule: this.workerModule,
      workerData: this.workerData,
      serviceId: this.host.serviceId,
      serviceCounters: this.counters.buffer as SharedArrayBuffer,
      rate: this.host.rate,
      yieldToClients: this.host.yieldToClients,
    };
    const task = this.piscina.run(init, { transferList: [port2] }) as Promise<void>;
    shard.ended = task.then(() => this.shardEnded(shard, undefined), (error: Error) => this.shardEnded(shard, error));
    return shard;
  }

  private receive(shard: Shard, message: FromShard): void {
    switch (message.type) {
      case 'gone': {
        const conn = shard.connections.get(message.id);
        if (conn === undefined) return;
        shard.connections.delete(message.id); // the shard removed its files already
        conn.releaseProbes();
        this.host.connectionGone(conn);
        return;
      }
      case 'event-result':
      case 'rate-applied':
        shard.pending.get(message.seq)?.(message.type === 'event-result' ? message.rc : 0);
        shard.pending.delete(message.seq);
        return;
      case 'handler-error': {
        const error = Object.assign(new Error(`qbipc: ${message.handler} threw in shard ${shard.index} for the client with pid ${message.pid}; that connection was closed: ${message.message}`), { stack: message.stack });
        this.host.poolError(error);
        return;
      }
      default:
        return;
    }
  }

  /** A shard's task ended: normal at destroy; otherwise its worker died, so clean up and replace it. */
  private shardEnded(shard: Shard, error: Error | undefined): void {
    shard.port.close();
    for (const resolve of shard.pending.values()) resolve(-ENOTCONN);
    shard.pending.clear();
    for (const conn of shard.connections.values()) this.orphaned(conn);
    shard.connections.clear();
    // A shard that never got ready failed to start: start() reports it; no retry loop.
    if (this.destroying || !shard.isReady) return;
    this.shards[shard.index] = this.startShard(shard.index);
    const reason = error?.message ?? 'its task returned';
    process.nextTick(() => this.host.poolError(new Error(
      `qbipc: worker shard ${shard.index} ended (${reason}); its connections were closed and a new worker takes its place`, { cause: error })));
  }

  /** The shard that served `conn` is gone: close its socket, remove its files. */
  private orphaned(conn: RemoteConnection): void {
    // Wakes are held during a round: a shard that died inside one leaves posted responses unannounced.
    conn.wakeResponseWaiters();
    conn.releaseProbes();
    if (conn.cells[Cell.SETUP_OPEN] === 1) {
      conn.cells[Cell.SETUP_OPEN] = 0;
      native.shutdown(conn.setupFd);
      native.close(conn.setupFd);
    }
    const state = conn.cells[Cell.STATE];
    if (state === ConnectionState.ACTIVE || state === ConnectionState.ESTABLISHED) {
      Atomics.sub(this.counters, ServiceCounter.ACTIVE, 1);
      Atomics.add(this.counters, ServiceCounter.CLOSED, 1);
    }
    conn.cells[Cell.STATE] = ConnectionState.INACTIVE;
    conn.directory?.remove();
    this.host.connectionGone(conn);
  }

  /** Hands an accepted connection to a shard, which answers the client and serves it. */
  place(conn: RemoteConnection, files: TransportFiles, bufferSize: number): void {
    const shard = this.pick();
    let eventQueue: MappedProbe<number> | undefined;
    let wakeResponses: MappedProbe<void> | undefined;
    try {
      eventQueue = eventQueueProbe(files);
      wakeResponses = responseWaker(files);
    } catch {
      // eventQLength then reads 0, and a dying shard's held wakes are left to the client's own timeout
    }
    conn.placed(shard.index, bufferSize, eventQueue, wakeResponses);
    shard.connections.set(conn.id, conn);
    const adopt: ToShard = {
      type: 'adopt', id: conn.id, setupFd: conn.setupFd, pid: conn.pid, uid: conn.uid, gid: conn.gid,
      bufferSize, files, directory: conn.directory!.state, cells: conn.cells,
    };
    shard.port.postMessage(adopt);
  }

  /**
   * A client refused on the main thread: a shard runs connectionDestroyed for
   * it (libqb calls it for rejected connections too) and removes its directory.
   * False when no shard can (the pool is shutting down): the caller cleans up.
   */
  rejected(conn: RemoteConnection): boolean {
    if (this.destroying) return false;
    const shard = this.pick();
    if (shard === undefined || !shard.isReady) return false;
    conn.directory?.seal();
    shard.port.postMessage({
      type: 'rejected', id: conn.id, pid: conn.pid, uid: conn.uid, gid: conn.gid,
      directory: conn.directory?.state, cells: conn.cells,
    } satisfies ToShard);
    return true;
  }

  private pick(): Shard {
    if (this.placement === 'round-robin') return this.shards[this.nextShard++ % this.shards.length]!;
    let best = this.shards[0]!;
    for (const s of this.shards) if (s.connections.size < best.connections.size) best = s;
    return best;
  }

  /** Connections a shard has not opened yet still hold their ring fds. */
  discard(files: TransportFiles): void {
    discardTransportFiles(files);
  }

  disconnect(conn: RemoteConnection): void {
    this.shards[conn.shard]?.port.postMessage({ type: 'disconnect', id: conn.id } satisfies ToShard);
  }

  eventSend(conn: RemoteConnection, parts: Uint8Array[]): Promise<number> {
    const shard = this.shards[conn.shard];
    if (shard === undefined || !shard.connections.has(conn.id)) return Promise.resolve(-ENOTCONN);
    const seq = this.nextSeq++;
    return new Promise((resolve) => {
      shard.pending.set(seq, resolve);
      shard.port.postMessage({ type: 'event', id: conn.id, seq, parts } satisfies ToShard);
    });
  }

  /** Resolves when every shard has applied the new rate to its connections. */
  async broadcastRate(rate: RateSettings): Promise<void> {
    await Promise.all(this.shards.map((shard) => new Promise((resolve) => {
      const seq = this.nextSeq++;
      shard.pending.set(seq, resolve);
      shard.port.postMessage({ type: 'rate', rate, seq } satisfies ToShard);
    })));
  }

  /** Every shard disconnects its clients and returns; then the threads stop. */
  async destroy(): Promise<void> {
    this.destroying = true;
    for (const shard of this.shards) shard.port.postMessage({ type: 'shutdown' } satisfies ToShard);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(this.shards.map((s) => s.ended)),
      new Promise((resolve) => (timer = setTimeout(resolve, SHUTDOWN_GRACE_MS))),
    ]);
    clearTimeout(timer);
    await this.piscina.destroy();
    await Promise.all(this.shards.map((s) => s.ended));
  }
}
