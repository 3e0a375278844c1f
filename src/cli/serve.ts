// qbipc serve NAME [--type shm|socket] [--workers N] [--max-buffer BYTES] [--no-yield]
//                  [--max-connections N] [--max-connections-per-uid N]
//
// An echo service any libqb client can use (the protocol of
// bench/c/qb-echo-server.c: id 1 echo, id 2 events; see echo-app.ts). Prints
// "ready pid=P name=NAME type=T workers=N" on stdout once it listens; stops on
// SIGTERM or SIGINT. The benchmark runs exactly this as its qbipc server.
//
// Exit status: 0 stopped by a signal; 2 bad flags; 69 (EX_UNAVAILABLE) the
// service cannot run in this configuration (run() rejected ENOTSUP, e.g. a
// transport or mode that has not landed); 1 any other failure.
import { availableParallelism } from 'node:os';
import { IpcType } from '../constants.js';
import { QbError } from '../errors.js';
import type { LogFields, Logger } from '../logger.js';
import { DEFAULT_SPIN_MICROS } from '../options.js';
import { createService } from '../service.js';
import { choiceFlag, intFlag, parseFlags, UsageError } from './args.js';
import { echoHandlers } from './echo-app.js';

export const SERVE_USAGE = `usage: qbipc serve NAME [--type shm|socket] [--workers N] [--max-buffer BYTES] [--no-yield]
                   [--spin-us N] [--rt-priority N] [--placement P] [--max-connections N]
                   [--max-connections-per-uid N]
  NAME          the service name libqb clients pass to qb_ipcc_connect()
  --type        transport: shm (default) or socket
  --workers N   worker threads serving the connections (default 0: the main thread)
  --max-buffer  largest buffer size a client may negotiate, bytes (default 64 MiB)
  --no-yield    never yield the CPU to a woken client (options.yieldToClients: false)
  --spin-us N   look at the request rings this long after each batch before sleeping
                (options.spinMicros; default 50, 0: never)
  --rt-priority N  serving threads at SCHED_RR priority N, 1-99, as corosync runs
                (options.realtimePriority; default 0: normal scheduling)
  --placement P how connections are spread over the workers: least-loaded, round-robin,
                or client-cpu (options.placement; default client-cpu when there is a
                worker per CPU and no --rt-priority, else least-loaded)
  --max-connections N          connections at once, at most; clients beyond are refused
                               with EAGAIN (options.maxConnections; default: no limit)
  --max-connections-per-uid N  the same per client uid (options.maxConnectionsPerUid)`;

export const EXIT_UNAVAILABLE = 69;

const TYPES = { shm: IpcType.SHM, socket: IpcType.SOCKET } as const;
const WORKER_MODULE = new URL('./echo-app.js', import.meta.url);

/** Says when --rt-priority was refused; the other log points stay with NODE_DEBUG=qbipc. */
const schedulingWarnings: Logger = {
  warn(message, fields) {
    if ((fields as LogFields | undefined)?.event === 'scheduling') console.error(`qbipc serve: ${message}`);
  },
};

export async function serve(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags(
    argv,
    {
      type: { type: 'string' },
      workers: { type: 'string' },
      'max-buffer': { type: 'string' },
      'no-yield': { type: 'boolean' },
      'spin-us': { type: 'string' },
      'rt-priority': { type: 'string' },
      placement: { type: 'string' },
      'max-connections': { type: 'string' },
      'max-connections-per-uid': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    SERVE_USAGE,
  );
  if (values.help) {
    console.log(SERVE_USAGE);
    return 0;
  }
  if (positionals.length !== 1) {
    throw new UsageError(
      positionals.length === 0
        ? 'serve needs a service NAME'
        : `serve takes one NAME, got ${positionals.length} words: ${positionals.join(' ')}`,
      SERVE_USAGE,
    );
  }
  const name = positionals[0]!;
  const type = choiceFlag(values.type, '--type', ['shm', 'socket'] as const, 'shm', SERVE_USAGE);
  const workers = intFlag(values.workers, '--workers', 0, Math.max(64, 4 * availableParallelism()), 0, SERVE_USAGE);
  const spinMicros = intFlag(values['spin-us'], '--spin-us', 0, 100_000, DEFAULT_SPIN_MICROS, SERVE_USAGE);
  const realtimePriority = intFlag(values['rt-priority'], '--rt-priority', 0, 99, 0, SERVE_USAGE);
  const placement =
    values.placement === undefined
      ? undefined // the service's default, which depends on the workers and the CPUs
      : choiceFlag(values.placement, '--placement', ['least-loaded', 'round-robin', 'client-cpu'] as const, 'least-loaded', SERVE_USAGE);
  const maxBufferSize = intFlag(values['max-buffer'], '--max-buffer', 1, 1024 * 1024 * 1024, 64 * 1024 * 1024, SERVE_USAGE);
  // Absent: no limit (the option left out, not 0).
  const limit = (flag: 'max-connections' | 'max-connections-per-uid') => {
    const value = values[flag];
    return value === undefined ? undefined : intFlag(value, `--${flag}`, 1, 2 ** 31 - 1, 0, SERVE_USAGE);
  };
  const maxConnections = limit('max-connections');
  const maxConnectionsPerUid = limit('max-connections-per-uid');

  let service;
  try {
    service = createService(name, 0, TYPES[type], workers > 0 ? {} : echoHandlers(), {
      workers,
      maxBufferSize,
      yieldToClients: values['no-yield'] !== true,
      spinMicros,
      realtimePriority,
      ...(placement === undefined ? {} : { placement }),
      maxConnections,
      maxConnectionsPerUid,
      logger: schedulingWarnings,
      ...(workers > 0 ? { workerModule: WORKER_MODULE } : {}),
    });
  } catch (error) {
    throw new UsageError((error as Error).message, SERVE_USAGE); // createService validates the name
  }
  service.on('error', (error: Error) => console.error(`qbipc serve: ${error.message}`));
  try {
    await service.run();
  } catch (error) {
    const e = error as QbError;
    console.error(`qbipc serve: cannot serve "${name}" (--type ${type}, --workers ${workers}): ${e.message}`);
    return e instanceof QbError && e.code === 'ENOTSUP' ? EXIT_UNAVAILABLE : 1;
  }
  let signals = 0;
  const stopped = new Promise<void>((resolve) => {
    // A second signal stops waiting for clients; exiting still removes their directories (src/deferred-removals.ts).
    const onSignal = () => (++signals === 1 ? resolve() : process.exit(1));
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  console.log(`ready pid=${process.pid} name=${name} type=${type} workers=${workers}`);
  await stopped;
  await service.destroy();
  return 0;
}
