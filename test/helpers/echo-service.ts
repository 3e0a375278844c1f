// Starts the test application as a qbipc service in a given mode and records
// every callback, so tests wait on callbacks instead of sleeping.
import { readdirSync } from 'node:fs';
import { BroadcastChannel } from 'node:worker_threads';
import { createService, IpcType, type Service, type ServiceHandlers, type ServiceOptions } from '../../src/index.js';
import { echoHandlers, type Behaviour, type CallbackName } from './echo-handlers.js';

export { ID_ECHO, ID_EVENT, ID_EVENTS } from './echo-handlers.js';

let counter = 0;
/** A service name no other test (or test process) uses. */
export function uniqueName(tag: string): string {
  return `qbt-${process.pid}-${tag}-${counter++}`;
}

export interface EchoService {
  service: Service;
  name: string;
  /** Every callback, in order of arrival, with the client pid. */
  log: Array<{ callback: CallbackName; pid: number }>;
  /** Resolves when `callback` has been called `count` times in total. */
  when(callback: CallbackName, count?: number): Promise<void>;
  /** Resolves when `predicate` holds for the log. */
  until(predicate: (log: EchoService['log']) => boolean): Promise<void>;
  count(callback: CallbackName): number;
  stop(): Promise<void>;
}

export interface EchoOptions extends ServiceOptions {
  tag?: string;
  type?: IpcType;
  behaviour?: Behaviour;
  beforeRun?: (s: Service) => void;
}

const workerModule = new URL('./echo-worker.js', import.meta.url);

export async function startEchoService(
  main: Pick<ServiceHandlers, 'connectionAccept'> = {},
  options: EchoOptions = {},
): Promise<EchoService> {
  const name = uniqueName(options.tag ?? 'echo');
  const log: EchoService['log'] = [];
  const waiters: Array<{ predicate: (l: EchoService['log']) => boolean; resolve: () => void }> = [];
  // Kept per callback so that waiting on a count costs O(1) per report, not a scan of the log.
  const counts = new Map<CallbackName, number>();
  const count = (callback: CallbackName) => counts.get(callback) ?? 0;
  const record = (callback: CallbackName, pid: number) => {
    log.push({ callback, pid });
    counts.set(callback, count(callback) + 1);
    for (const w of waiters.filter((x) => x.predicate(log))) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
  };
  const until = (predicate: (l: EchoService['log']) => boolean) =>
    predicate(log) ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ predicate, resolve }));

  const connectionAccept: ServiceHandlers['connectionAccept'] = (conn, uid, gid) => {
    record('accept', conn.pid);
    return main.connectionAccept ? main.connectionAccept(conn, uid, gid) : 0;
  };
  const workers = options.workers ?? 0;
  let channel: BroadcastChannel | undefined;
  let handlers: ServiceHandlers;
  let serviceOptions: ServiceOptions = options;
  if (workers > 0) {
    channel = new BroadcastChannel(`qbipc-test-${name}`);
    channel.onmessage = (event) => {
      const { callback, pid } = (event as { data: { callback: CallbackName; pid: number } }).data;
      record(callback, pid);
    };
    handlers = { connectionAccept };
    serviceOptions = { ...options, workerModule, workerData: { channel: `qbipc-test-${name}`, behaviour: options.behaviour ?? {} } };
  } else {
    handlers = { connectionAccept, ...echoHandlers(record, options.behaviour) };
  }

  const service = createService(name, 0, options.type ?? IpcType.SHM, handlers, serviceOptions);
  service.on('error', () => undefined); // tests that provoke errors listen themselves
  options.beforeRun?.(service);
  await service.run();
  return {
    service,
    name,
    log,
    count,
    until,
    when: (callback, wanted = 1) => until(() => count(callback) >= wanted),
    async stop() {
      await service.destroy();
      channel?.close();
    },
  };
}

/** Entries under /dev/shm made by this process as a server (qb-<pid>-…). */
export function shmEntries(pid = process.pid): string[] {
  return readdirSync('/dev/shm').filter((e) => e.startsWith(`qb-${pid}-`));
}

/** Open file descriptors of this process. */
export function fdCount(): number {
  return readdirSync('/proc/self/fd').length;
}
