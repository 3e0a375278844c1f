// The worker side of worker mode: a piscina task that lasts until the service
// is destroyed, running one Shard (src/shard.ts) on this thread's own event
// loop, so handlers may use timers and promises like any Node code. Requests
// are handled here, start to end; the main thread is not on the data path.
// This file only turns messages into Shard calls and Shard reports into messages.
import { pathToFileURL } from 'node:url';
import type { MessagePort } from 'node:worker_threads';
import type { Connection, ConnectionHandlers } from '../src/connection.js';
import { ConnectionDirectory, type DirectoryState } from '../src/connection-dir.js';
import { cpuRefused, keepToCpu } from '../src/cpu-placement.js';
import { EINVAL } from '../src/errno.js';
import type { HandlerName } from '../src/errors.js';
import type { LogSink } from '../src/logger.js';
import { NativeLoop } from '../src/poll.js';
import { enterRealtime, realtimeRefused } from '../src/realtime.js';
import { ServiceCounters } from '../src/service-counters.js';
import { Shard, type ShardHost } from '../src/shard.js';
import { errorRecord, type ConnectionTicket, type FromShard, type ShardInit, type ToShard } from '../src/worker-protocol.js';

class PortHost implements ShardHost {
  constructor(private readonly port: MessagePort) {}

  /** A directory this thread could not remove: the main thread's DeferredRemovals retries it. */
  readonly directoryLeft = (directory: DirectoryState): void => this.send({ type: 'directory-left', directory });

  connectionGone(conn: Connection): void {
    this.send({ type: 'gone', id: conn.id });
  }

  handlerFailed(conn: Connection, handler: HandlerName, error: unknown): void {
    this.send({ type: 'handler-error', id: conn.id, handler, error: errorRecord(error) });
  }

  send(message: FromShard): void {
    this.port.postMessage(message);
  }
}

/** Log points go to the main thread's logger, only at the levels it has. */
function portLog(host: PortHost, levels: readonly string[]): LogSink {
  const wanted = new Set(levels);
  return (level, message, fields) => {
    if (wanted.has(level)) host.send({ type: 'log', level, message, fields });
  };
}

function connectionOf(shard: Shard, host: PortHost, ticket: ConnectionTicket): Connection {
  const conn = shard.connection(ticket.setupFd, ticket.id, ticket, ticket.cells);
  if (ticket.directory !== undefined) conn.attach(ConnectionDirectory.restore(ticket.directory, host.directoryLeft));
  return conn;
}

async function loadHandlers(workerModule: string, workerData: unknown): Promise<ConnectionHandlers> {
  const url = workerModule.startsWith('file:') ? workerModule : pathToFileURL(workerModule).href;
  const exported = ((await import(url)) as { default?: unknown }).default;
  const handlers = typeof exported === 'function' ? await (exported as (data: unknown) => unknown)(workerData) : exported;
  if (typeof handlers !== 'object' || handlers === null || typeof (handlers as ConnectionHandlers).msgProcess !== 'function') {
    throw Object.assign(
      new Error(`${workerModule} must export default the worker handlers ({ msgProcess, … }) or a function returning them`),
      { errno: -EINVAL },
    );
  }
  return handlers;
}

/** The piscina task: serve connections until the main thread says shutdown. */
export default async function runShard(init: ShardInit): Promise<void> {
  const handlers = await loadHandlers(init.workerModule, init.workerData);
  const host = new PortHost(init.port);
  const poll = new NativeLoop(true, init.spinMicros);
  const log = portLog(host, init.logLevels);
  // piscina may run another task on this thread after this one: it gets the thread's scheduling back.
  let leaveRealtime: (() => void) | undefined;
  if (init.realtimePriority > 0) {
    const entered = enterRealtime(init.realtimePriority);
    if (typeof entered === 'number')
      log('warn', realtimeRefused(init.realtimePriority, entered), { event: 'scheduling', errno: entered, shard: init.index });
    else leaveRealtime = entered;
  }
  let leaveCpu: (() => void) | undefined;
  if (init.cpu >= 0) {
    const kept = keepToCpu(init.cpu);
    if (typeof kept === 'number')
      log('warn', cpuRefused(init.index, init.cpu, kept), { event: 'scheduling', errno: kept, shard: init.index });
    else leaveCpu = kept;
  }
  const shard = new Shard(
    host,
    handlers,
    { serviceId: init.serviceId, context: undefined },
    {
      poll,
      counters: new ServiceCounters(init.serviceCounters),
      rate: init.rate,
      yieldToClients: init.yieldToClients,
      log,
    },
  );
  let stopped!: () => void;
  const finished = new Promise<void>((resolve) => (stopped = resolve));
  init.port.on('message', (message: ToShard) => {
    switch (message.type) {
      case 'adopt':
        return shard.adopt(connectionOf(shard, host, message), message.files, message.bufferSize);
      case 'rejected':
        return shard.refuse(connectionOf(shard, host, message), 0);
      case 'disconnect':
        return shard.disconnect(message.id);
      case 'event':
        return host.send({ type: 'event-result', seq: message.seq, rc: shard.eventSendv(message.id, message.parts) });
      case 'rate':
        shard.setRate(message.rate);
        return host.send({ type: 'rate-applied', seq: message.seq });
      case 'shutdown':
        shard.disconnectAll();
        poll.close();
        init.port.close();
        return stopped();
      default:
        return undefined;
    }
  });
  host.send({ type: 'ready' });
  try {
    await finished;
  } finally {
    leaveRealtime?.();
    leaveCpu?.();
  }
}
