// The qbipc twin of test/c/scenario-server.c, run as a child process:
//   node scenario-server.js --scenario NAME --name SERVICE [--transport shm|socket] [--workers N]
// Same callbacks, same commands on stdin, same JSON lines on stdout (the C
// file's header comment is the reference). Only the public API, except the
// built-in loop that the custom poll handlers of 'jobfail'/'backoff' wrap.
import { readSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { BroadcastChannel } from 'node:worker_threads';
import { createService, IpcType, type PollHandlers, type ServiceHandlers, type ServiceOptions } from '../../src/index.js';
import { NativeLoop } from '../../src/poll.js';
import { AUTHSET, SCENARIOS, scenarioHandlers, type Observation, type Scenario } from './scenario-handlers.js';

/** The test's gate pipe: 'pause' blocks the whole server reading one byte from it. */
const GATE_FD = 3;

function parseArgs(argv: string[]): { scenario: Scenario; name: string; type: IpcType; workers: number } {
  const args = new Map<string, string>();
  for (let i = 0; i + 1 < argv.length; i += 2) args.set(argv[i]!, argv[i + 1]!);
  const scenario = args.get('--scenario') ?? 'plain';
  const name = args.get('--name');
  if (!(SCENARIOS as readonly string[]).includes(scenario) || name === undefined) {
    process.stderr.write('usage: scenario-server.js --scenario NAME --name SERVICE [--transport shm|socket] [--workers N]\n');
    process.exit(2);
  }
  return {
    scenario: scenario as Scenario,
    name,
    type: args.get('--transport') === 'socket' ? IpcType.SOCKET : IpcType.SHM,
    workers: Number(args.get('--workers') ?? 0),
  };
}

const { scenario, name, type, workers } = parseArgs(process.argv.slice(2));
const emit = (observation: Observation): void => {
  process.stdout.write(`${JSON.stringify(observation)}\n`);
};

const handlers: ServiceHandlers = {
  connectionAccept(conn) {
    emit({ ev: 'accept', pid: conn.pid });
    if (scenario === 'authset') conn.authSet(AUTHSET.uid, AUTHSET.gid, AUTHSET.mode);
    return 0;
  },
};
let options: ServiceOptions = { workers };
let channel: BroadcastChannel | undefined;
if (workers > 0) {
  channel = new BroadcastChannel(`qbipc-scenario-${name}`);
  channel.onmessage = (event) => emit((event as { data: Observation }).data);
  options = {
    workers,
    workerModule: new URL('./scenario-worker.js', import.meta.url),
    workerData: { channel: `qbipc-scenario-${name}`, scenario },
  };
} else {
  Object.assign(handlers, scenarioHandlers(scenario, emit));
}

const service = createService(name, 0, type, handlers, options);
service.on('error', (error: Error) => process.stderr.write(`service error: ${error.message}\n`));

// The C server's poll handlers count job_add calls (and fail them in 'jobfail'); in-thread, these do the same.
let jobCalls = 0;
let loop: NativeLoop | undefined;
if (workers === 0 && (scenario === 'jobfail' || scenario === 'backoff')) {
  const inner = (loop = new NativeLoop());
  const poll: PollHandlers = {
    jobAdd(priority, fn) {
      jobCalls++;
      return scenario === 'jobfail' ? -1 : inner.jobAdd(priority, fn);
    },
    dispatchAdd: (priority, fd, events, fn) => inner.dispatchAdd(priority, fd, events, fn),
    dispatchMod: (priority, fd, events, fn) => inner.dispatchMod(priority, fd, events, fn),
    dispatchDel: (fd) => inner.dispatchDel(fd),
  };
  service.pollHandlersSet(poll);
}

let destroyed = false;
let unrefs = 0;

async function run(command: string): Promise<void> {
  if (destroyed && command !== 'jobs') return emit({ ev: command, gone: 1 });
  switch (command) {
    case 'walk': {
      const pids: number[] = [];
      for (let c = service.connectionFirstGet(); c !== undefined; c = service.connectionNextGet(c)) pids.push(c.pid);
      return emit({ ev: 'walk', pids });
    }
    case 'stats': {
      const s = service.stats();
      return emit({ ev: 'stats', active: s.activeConnections, closed: s.closedConnections });
    }
    case 'connstats': {
      const conns = [];
      for (let c = service.connectionFirstGet(); c !== undefined; c = service.connectionNextGet(c)) {
        const { clientPid, ...rest } = c.stats();
        conns.push({ pid: clientPid, ...rest });
      }
      return emit({ ev: 'connstats', conns });
    }
    case 'jobs':
      return emit({ ev: 'jobs', count: jobCalls });
    case 'unref':
      unrefs++;
      service.unref();
      return emit({ ev: 'unref' });
    case 'destroy':
      await service.destroy();
      destroyed = true;
      return emit({ ev: 'destroy' });
    case 'pause': {
      emit({ ev: 'paused' });
      const byte = Buffer.alloc(1);
      let n = 0;
      try {
        n = readSync(GATE_FD, byte);
      } catch (error) {
        process.stderr.write(`gate: ${(error as Error).message}\n`);
      }
      return emit({ ev: 'resumed', gate: n === 1 ? 1 : 0 });
    }
    default:
      return emit({ ev: 'unknown', command });
  }
}

let finishing: Promise<void> | undefined;
function finish(): Promise<void> {
  finishing ??= (async () => {
    if (!destroyed) {
      for (; unrefs > 0; unrefs--) service.ref(); // give back what the test dropped: destroy's unref is the last
      await service.destroy();
    }
    loop?.close();
    channel?.close();
    process.exit(0);
  })();
  return finishing;
}

await service.run();
let queue = Promise.resolve();
createInterface({ input: process.stdin })
  .on('line', (line) => {
    queue = queue.then(() => run(line.trim()));
  })
  .on('close', () => {
    queue = queue.then(finish);
  });
process.on('SIGTERM', () => void finish());
emit({ ev: 'ready', pid: process.pid });
