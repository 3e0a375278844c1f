// The servers the benchmark compares: one driver per row kind. Each starts a
// process, waits for its "ready" line, and on stop reports its CPU time.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { buildC, ROOT } from './build-c.js';

export interface ServerUsage {
  userUs: number;
  sysUs: number;
  maxRssKb: number;
}

export interface RunningServer {
  pid: number;
  stop(): Promise<ServerUsage>;
}

export interface ServerDriver {
  /** Row label. */
  name: string;
  /** The baseline every other row is divided by. */
  baseline?: boolean;
  start(service: string): Promise<RunningServer>;
}

async function startProcess(command: string, args: string[]): Promise<RunningServer> {
  const child: ChildProcess = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  const it = lines[Symbol.asyncIterator]();
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code) => reject(new Error(`${path.basename(command)} ${args.join(' ')} exited (${code}) before it was ready`))));
  exited.catch(() => undefined);
  for (;;) {
    const next = await Promise.race([it.next(), exited]);
    if (next.done) throw new Error(`${command} closed its output before it was ready`);
    if (next.value.startsWith('ready')) break;
  }
  return {
    pid: child.pid!,
    async stop() {
      child.kill('SIGTERM');
      for (;;) {
        const next = await it.next();
        if (next.done) throw new Error(`${command} did not report its rusage`);
        const m = /^rusage user_us=(\d+) sys_us=(\d+) maxrss_kb=(\d+)/.exec(next.value);
        if (m) {
          await new Promise((r) => (child.exitCode !== null ? r(undefined) : child.once('exit', r)));
          return { userUs: Number(m[1]), sysUs: Number(m[2]), maxRssKb: Number(m[3]) };
        }
      }
    },
  };
}

export const SERVERS: ServerDriver[] = [
  {
    name: 'libqb C (qb_loop, 1 thread)',
    baseline: true,
    start: (service) => startProcess(buildC('qb-echo-server'), ['-n', service, '-t', 'shm']),
  },
  {
    name: 'qbipc in-thread',
    start: (service) => startProcess(process.execPath, [path.join(ROOT, 'dist', 'bench', 'servers', 'qbipc-echo.js'), service, '0']),
  },
];
