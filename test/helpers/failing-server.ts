// A qbipc service whose handlers fail on purpose, in a child process (a
// rejection nobody handles must not take the test's process with it):
//   node failing-server.js --name SERVICE --handler H --how throw|reject [--workers N]
// Prints {"ev":"ready"}, the callbacks, and for each 'error' event of the
// service what it carries: {"ev":"error", code, handler, message, cause…,
// connectionPid, sameConnection (the object connectionAccept was given)}.
// Commands on stdin: ping → {"ev":"ping"}; stats → {"ev":"stats",...}.
import { createInterface } from 'node:readline';
import { BroadcastChannel } from 'node:worker_threads';
import { createService, IpcType, type ServiceConnection, type ServiceOptions } from '../../src/index.js';
import { FAILING, failingHandlers, type FailSpec } from './failing-handlers.js';
import type { Observation } from './scenario-handlers.js';

const args = new Map<string, string>();
for (let i = 2; i + 1 < process.argv.length; i += 2) args.set(process.argv[i]!, process.argv[i + 1]!);
const name = args.get('--name')!;
const workers = Number(args.get('--workers') ?? 0);
const spec: FailSpec = { handler: args.get('--handler') as FailSpec['handler'], how: args.get('--how') === 'reject' ? 'reject' : 'throw' };
if (name === undefined || !FAILING.includes(spec.handler)) {
  process.stderr.write('usage: failing-server.js --name SERVICE --handler H --how throw|reject [--workers N]\n');
  process.exit(2);
}

const emit = (observation: Observation): void => {
  process.stdout.write(`${JSON.stringify(observation)}\n`);
};

/** What connectionAccept was given, by client pid: the connection an 'error' must name. */
const accepted = new Map<number, ServiceConnection>();
let options: ServiceOptions = { workers };
let channel: BroadcastChannel | undefined;
let inThread = {};
if (workers > 0) {
  channel = new BroadcastChannel(`qbipc-failing-${name}`);
  channel.onmessage = (event) => emit((event as { data: Observation }).data);
  options = {
    workers,
    workerModule: new URL('./failing-worker.js', import.meta.url),
    workerData: { channel: `qbipc-failing-${name}`, spec },
  };
} else {
  inThread = failingHandlers(spec, emit);
}
const service = createService(
  name,
  0,
  IpcType.SHM,
  {
    connectionAccept(conn) {
      accepted.set(conn.pid, conn);
      emit({ ev: 'accept', pid: conn.pid });
      return 0;
    },
    ...inThread,
  },
  options,
);

service.on('error', (error: Error & { code?: unknown; handler?: unknown; connection?: ServiceConnection }) => {
  const cause = error.cause as { message?: unknown } | undefined;
  const conn = error.connection;
  emit({
    ev: 'error',
    isError: error instanceof Error,
    code: error.code,
    handler: error.handler,
    message: error.message,
    causeIsError: cause instanceof Error,
    causeMessage: typeof cause?.message === 'string' ? cause.message : JSON.stringify(cause),
    connectionPid: conn?.pid,
    sameConnection: conn !== undefined && accepted.get(conn.pid) === conn,
  });
});

await service.run();
createInterface({ input: process.stdin })
  .on('line', (line) => {
    if (line === 'ping') emit({ ev: 'ping' });
    else if (line === 'stats') emit({ ev: 'stats', ...service.stats() });
    else emit({ ev: 'unknown', command: line });
  })
  .on('close', () => void stop());
process.on('SIGTERM', () => void stop());
emit({ ev: 'ready', pid: process.pid });

async function stop(): Promise<void> {
  await service.destroy();
  channel?.close();
  process.exit(0);
}
