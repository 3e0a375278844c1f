// The main thread's side of worker mode: a piscina pool whose every worker runs
// one long-lived shard task. Places accepted connections on shards, routes
// disconnect/eventSend to them, and cleans up after a shard that died.
import { MessageChannel, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { Piscina } from 'piscina';
import type { Handshake } from './acceptor.js';
import type { ServiceView } from './connection-base.js';
import { ConnectionState } from './constants.js';
import { Cell } from './connection-cells.js';
import { deferredRemovals } from './deferred-removals.js';
import { ENOTCONN } from './errno.js';
import { RemoteConnection, type RemoteOwner } from './remote-connection.js';
import type { ServiceCounters } from './service-counters.js';
import type { RateSettings } from './shard.js';
import type { Shards, ShardsHost } from './shards.js';
import type { MappedProbe } from './shm/probe.js';
import type { LogLevel } from './logger.js';
import { clientCpu, workerCpuOf, workerFor, type Placement } from './cpu-placement.js';
import { native } from './native.js';
import { realtimePriorityOf } from './realtime.js';
import { mainThreadProbes, type TransportFiles } from './transport/files.js';
import { errorFromRecord, type ConnectionTicket, type FromShard, type ShardInit, type ToShard } from './worker-protocol.js';

/** What the pool needs to start its shards. */
export interface PoolSettings {
  readonly service: ServiceView;
  readonly rate: RateSettings;
  readonly yieldToClients: boolean;
  readonly spinMicros: number;
  readonly realtimePriority: number;
  readonly counters: ServiceCounters;
  readonly workerModule: string;
  readonly workerData: unknown;
  readonly placement: Placement;
  readonly logLevels: LogLevel[];
}

interface Shard {
  index: number;
  /** The CPU its worker keeps to ('client-cpu' placement), or -1. */
  cpu: number;
  isReady: boolean;
  port: MessagePort;
  connections: Map<number, RemoteConnection>;
  /** Replies awaited from the shard, by sequence number. */
  pending: Map<number, (rc: number) => void>;
  ready: Promise<void>;
  ended: Promise<void>;
}

const SHUTDOWN_GRACE_MS = 5000;

export class WorkerPool implements Shards<RemoteConnection>, RemoteOwner {
  private readonly piscina: Piscina;
  private readonly shards: Shard[] = [];
  private rate: RateSettings;
  private nextSeq = 1;
  private nextShard = 0;
  private destroying = false;
  /** The CPUs the workers divide ('client-cpu' placement), read once at construction. */
  private readonly cpus: readonly number[];

  constructor(
    private readonly host: ShardsHost<RemoteConnection>,
    private readonly size: number,
    private readonly settings: PoolSettings,
  ) {
    this.rate = settings.rate;
    this.cpus = settings.placement === 'client-cpu' ? native.cpuAffinity() : [];
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
    return this.settings.service.serviceId;
  }

  get context(): unknown {
    return this.settings.service.context;
  }

  /** Starts every shard; rejects if one cannot load the worker module. */
  async start(): Promise<void> {
    for (let i = 0; i < this.size; i++) this.shards.push(this.startShard(i));
    await Promise.all(
      this.shards.map((s) =>
        Promise.race([
          s.ready,
          s.ended.then(() => {
            throw new Error(`shard ${s.index} ended before it was ready`);
          }),
        ]),
      ),
    );
  }

  private startShard(index: number): Shard {
    const { port1, port2 } = new MessageChannel();
    let markReady!: () => void;
    const shard: Shard = {
      index,
      cpu: workerCpuOf(index, this.cpus),
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
      } else this.receive(shard, message);
    });
    const init: ShardInit = {
      index,
      port: port2,
      workerModule: this.settings.workerModule,
      workerData: this.settings.workerData,
      serviceId: this.settings.service.serviceId,
      serviceCounters: this.settings.counters.buffer,
      rate: this.rate,
      yieldToClients: this.settings.yieldToClients,
      spinMicros: this.settings.spinMicros,
      realtimePriority: realtimePriorityOf(index, this.settings.realtimePriority),
      cpu: shard.cpu,
      logLevels: this.settings.logLevels,
    };
    const task = this.piscina.run(init, { transferList: [port2] }) as Promise<void>;
    shard.ended = task.then(
      () => this.shardEnded(shard, undefined),
      (error: Error) => this.shardEnded(shard, error),
    );
    return shard;
  }

  private receive(shard: Shard, message: FromShard): void {
    switch (message.type) {
      case 'gone': {
        const conn = shard.connections.get(message.id);
        if (conn === undefined) return;
        shard.connections.delete(message.id);
        conn.releaseProbes();
        conn.directory?.handedOver(); // the shard removes it, or sends it back as 'directory-left'
        this.host.connectionGone(conn);
        return;
      }
      case 'directory-left':
        deferredRemovals.add(message.directory);
        return;
      case 'event-result':
      case 'rate-applied':
        shard.pending.get(message.seq)?.(message.type === 'event-result' ? message.rc : 0);
        shard.pending.delete(message.seq);
        return;
      case 'handler-error': {
        const conn = shard.connections.get(message.id);
        if (conn !== undefined)
          this.host.handlerFailed(conn, message.handler, errorFromRecord(message.error), `worker shard ${shard.index}`);
        return;
      }
      case 'log':
        this.host.log(message.level, message.message, { ...message.fields, shard: shard.index });
        return;
      default:
        return;
    }
  }

  /** A shard's task ended: normal at destroy; otherwise its worker died, so clean up and replace it. */
  private shardEnded(shard: Shard, error: Error | undefined): void {
    // What the shard sent before it ended ('gone', 'directory-left') may still be queued behind the task's end.
    for (let m = receiveMessageOnPort(shard.port); m !== undefined; m = receiveMessageOnPort(shard.port)) {
      this.receive(shard, m.message as FromShard);
    }
    shard.port.close();
    for (const resolve of shard.pending.values()) resolve(-ENOTCONN);
    shard.pending.clear();
    for (const conn of shard.connections.values()) this.orphaned(conn);
    shard.connections.clear();
    // A shard that never got ready failed to start: start() reports it; no retry loop.
    if (this.destroying || !shard.isReady) return;
    this.shards[shard.index] = this.startShard(shard.index);
    const reason = error?.message ?? 'its task returned';
    process.nextTick(() =>
      this.host.workerFailed(
        new Error(`qbipc: worker shard ${shard.index} ended (${reason}); its connections were closed and a new worker takes its place`, {
          cause: error,
        }),
      ),
    );
  }

  /** The shard that served `conn` is gone: close its socket, remove its files. */
  private orphaned(conn: RemoteConnection): void {
    // Wakes are held during a round: a shard that died inside one leaves posted responses unannounced.
    conn.wakeResponseWaiters();
    conn.releaseProbes();
    conn.closeSetupSocket();
    const state = conn.cells[Cell.STATE];
    if (state === ConnectionState.ACTIVE || state === ConnectionState.ESTABLISHED)
      this.settings.counters.closed(state === ConnectionState.ESTABLISHED);
    conn.cells[Cell.STATE] = ConnectionState.INACTIVE;
    conn.directory?.remove();
    this.host.connectionGone(conn);
  }

  create(id: number, h: Handshake): RemoteConnection {
    return new RemoteConnection(this, id, h, h.fd);
  }

  /** Hands an accepted connection to a shard, which answers the client and serves it. */
  place(conn: RemoteConnection, files: TransportFiles, bufferSize: number): void {
    const shard = this.pick(conn.pid);
    let eventQueue: MappedProbe<number> | undefined;
    let wakeResponses: MappedProbe<void> | undefined;
    try {
      ({ eventQueue, responseWaker: wakeResponses } = mainThreadProbes(files));
    } catch {
      // eventQLength then reads 0, and a dying shard's held wakes are left to the client's own timeout
    }
    conn.placed(shard.index, bufferSize, eventQueue, wakeResponses);
    shard.connections.set(conn.id, conn);
    shard.port.postMessage({ type: 'adopt', bufferSize, files, ...ticket(conn) } satisfies ToShard);
  }

  /**
   * A client refused on the main thread: its directory is removed here, through
   * the descriptor creation still holds (a thread short of descriptors could not
   * open it again), then a shard runs connectionDestroyed for it (libqb calls it
   * for rejected connections too) unless the pool is shutting down.
   */
  rejected(conn: RemoteConnection): void {
    conn.directory?.remove();
    const shard = this.destroying ? undefined : this.pick();
    if (shard === undefined || !shard.isReady) return;
    shard.port.postMessage({ type: 'rejected', ...ticket(conn) } satisfies ToShard);
  }

  /** The shard for a new connection of process `pid` (0: not known). */
  private pick(pid = 0): Shard {
    if (this.settings.placement === 'round-robin') return this.shards[this.nextShard++ % this.shards.length]!;
    const cpu = this.settings.placement === 'client-cpu' ? clientCpu(pid) : -1;
    const index = workerFor(
      cpu,
      this.shards.map((s) => s.cpu),
      this.shards.map((s) => s.connections.size),
    );
    return this.shards[index]!;
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
  async setRate(rate: RateSettings): Promise<void> {
    this.rate = rate;
    await Promise.all(
      this.shards.map(
        (shard) =>
          new Promise((resolve) => {
            const seq = this.nextSeq++;
            shard.pending.set(seq, resolve);
            shard.port.postMessage({ type: 'rate', rate, seq } satisfies ToShard);
          }),
      ),
    );
  }

  /** Every shard disconnects its clients and returns; then the threads stop. */
  async close(): Promise<void> {
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

function ticket(conn: RemoteConnection): ConnectionTicket {
  return {
    id: conn.id,
    setupFd: conn.setupFd,
    pid: conn.pid,
    uid: conn.uid,
    gid: conn.gid,
    directory: conn.directory?.state,
    cells: conn.cells,
  };
}
