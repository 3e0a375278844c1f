// A shard: the connections one worker thread serves. It runs as a piscina task
// that lasts until the service is destroyed. Requests are handled here, start to
// end — the main thread is not on the data path. The shard's fds are watched by
// the same native epoll loop as in-thread mode, driven by this worker's libuv
// loop, so handlers may use timers and promises like any Node code.
import { pathToFileURL } from 'node:url';
import type { MessagePort } from 'node:worker_threads';
import { Connection, type ConnectionHandlers, type ConnectionOwner } from '../src/connection.js';
import { ConnectionDirectory } from '../src/connection-dir.js';
import { EINVAL, ENOTCONN } from '../src/errno.js';
import { NativeLoop } from '../src/poll.js';
import { ServiceCounter, type FromShard, type RateSettings, type ShardInit, type ToShard } from '../src/worker-protocol.js';
import type { LoopPriority } from '../src/constants.js';

class Shard implements ConnectionOwner {
  readonly poll = new NativeLoop();
  readonly context = undefined;
  readonly yieldToClients: boolean;
  private rate: RateSettings;
  private readonly connections = new Map<number, Connection>();
  private readonly counters: Int32Array;
  private stopped!: () => void;
  readonly finished = new Promise<void>((resolve) => (this.stopped = resolve));

  constructor(
    private readonly port: MessagePort,
    readonly handlers: ConnectionHandlers,
    readonly serviceId: number,
    init: ShardInit,
  ) {
    this.rate = init.rate;
    this.yieldToClients = init.yieldToClients;
    this.counters = new Int32Array(init.serviceCounters);
    port.on('message', (message: ToShard) => this.receive(message));
  }

  get priority(): LoopPriority {
    return this.rate.priority;
  }

  get budget(): number {
    return this.rate.budget;
  }

  private send(message: FromShard): void {
    this.port.postMessage(message);
  }

  private receive(message: ToShard): void {
    switch (message.type) {
      case 'adopt': {
        const conn = new Connection(this, message.setupFd, message.id, message, message.cells);
        conn.attach(ConnectionDirectory.restore(message.directory));
        this.connections.set(message.id, conn);
        conn.open(message.files, message.bufferSize);
        if (this.rate.flowControl !== 0) conn.setFlowControl(this.rate.flowControl);
        return;
      }
      case 'rejected': {
        // Never served: no socket, no transport. Dropping the only reference runs
        // connectionDestroyed and removes the directory, as Connection.reject in-thread.
        const conn = new Connection(this, -1, message.id, message, message.cells);
        if (message.directory !== undefined) conn.attach(ConnectionDirectory.restore(message.directory));
        conn.unref();
        return;
      }
      case 'disconnect':
        this.connections.get(message.id)?.disconnect();
        return;
      case 'event': {
        const conn = this.connections.get(message.id);
        const rc = conn === undefined ? -ENOTCONN : conn.eventSendv(message.parts);
        this.send({ type: 'event-result', seq: message.seq, rc });
        return;
      }
      case 'rate': {
        const moved = message.rate.priority !== this.rate.priority;
        this.rate = message.rate;
        for (const conn of this.connections.values()) {
          conn.setFlowControl(message.rate.flowControl);
          if (moved) conn.reprioritise();
        }
        this.send({ type: 'rate-applied', seq: message.seq });
        return;
      }
      case 'shutdown':
        for (const conn of [...this.connections.values()]) conn.disconnect();
        this.poll.close();
        this.port.close();
        this.stopped();
        return;
      default:
        return;
    }
  }

  connectionActivated(): void {
    Atomics.add(this.counters, ServiceCounter.ACTIVE, 1);
  }

  connectionClosing(): void {
    Atomics.sub(this.counters, ServiceCounter.ACTIVE, 1);
    Atomics.add(this.counters, ServiceCounter.CLOSED, 1);
  }

  connectionGone(conn: Connection): void {
    this.connections.delete(conn.id);
    this.send({ type: 'gone', id: conn.id });
  }

  handlerFailed(error: unknown, conn: Connection, handler: string): void {
    conn.disconnect();
    const e = error instanceof Error ? error : new Error(String(error));
    this.send({ type: 'handler-error', id: conn.id, pid: conn.pid, handler, message: e.message, stack: e.stack });
  }
}

async function loadHandlers(workerModule: string, workerData: unknown): Promise<ConnectionHandlers> {
  const url = workerModule.startsWith('file:') ? workerModule : pathToFileURL(workerModule).href;
  const exported = ((await import(url)) as { default?: unknown }).default;
  const handlers = typeof exported === 'function' ? await (exported as (data: unknown) => unknown)(workerData) : exported;
  if (typeof handlers !== 'object' || handlers === null || typeof (handlers as ConnectionHandlers).msgProcess !== 'function') {
    throw Object.assign(new Error(`${workerModule} must export default the worker handlers ({ msgProcess, … }) or a function returning them`), { errno: -EINVAL });
  }
  return handlers as ConnectionHandlers;
}

/** The piscina task: serve connections until the main thread says shutdown. */
export default async function runShard(init: ShardInit): Promise<void> {
  const handlers = await loadHandlers(init.workerModule, init.workerData);
  const shard = new Shard(init.port, handlers, init.serviceId, init);
  init.port.postMessage({ type: 'ready' } satisfies FromShard);
  await shard.finished;
}
