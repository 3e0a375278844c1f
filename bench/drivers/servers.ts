// The server table: one driver per row. Each starts a process, waits for its
// "ready" line and stops it by pid. A server that cannot run in this build
// (qbipc serve exits 69: run() rejected ENOTSUP) rejects with ServerUnavailable,
// and the harness skips its rows with a note.
import { spawn, type ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { buildC, ROOT } from './build-c.js';

/** What a client must speak to load a server. */
export type Protocol = 'libqb' | 'net';

export interface RunningServer {
  pid: number;
  /** What the load program's -n gets. */
  address: string;
  alive(): boolean;
  /** The last lines the server wrote to stderr. */
  stderrTail(): string;
  stop(): Promise<void>;
}

export interface ServerDriver {
  /** --servers key. */
  key: string;
  /** Row label. */
  name: string;
  speaks: Protocol;
  /** The row every other row is divided by. */
  baseline?: boolean;
  /** Measured only when named in --servers (variants that explain a default, not rows of the table). */
  onRequest?: boolean;
  start(tag: string): Promise<RunningServer>;
}

export class ServerUnavailable extends Error {
  readonly code = 'ENOTSUP';
}

/** `qbipc serve` exits with this when run() rejects ENOTSUP (src/cli/serve.ts). */
const EXIT_UNAVAILABLE = 69;
const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 5_000;

/**
 * Every server process spawned and not yet exited, ready or not: an
 * interrupted run stops these, including one still starting up.
 */
const live = new Set<ChildProcess>();

/** SIGTERM to every live server (by pid), SIGKILL after a grace period; resolves once all have exited. */
export async function stopEveryServer(): Promise<void> {
  await Promise.all(
    [...live].map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('close', () => resolve());
          child.kill('SIGTERM');
          setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS).unref();
        }),
    ),
  );
}

function startProcess(command: string, args: string[], address: string): Promise<RunningServer> {
  const label = `${path.basename(command)} ${args.map((a) => path.basename(a)).join(' ')}`;
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  child.once('close', () => live.delete(child));
  let tail = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    tail = (tail + chunk).slice(-2000);
  });
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const kill = (signal: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal); // by pid: ChildProcess.kill
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      kill('SIGKILL');
      reject(new Error(`${label} was not ready within ${READY_TIMEOUT_MS / 1000} s`));
    }, READY_TIMEOUT_MS);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`cannot start ${label}: ${error.message}`));
    });
    child.once('close', (code, signal) => {
      // after 'exit', once stderr is read to its end
      clearTimeout(timer);
      const why = tail.trim() || `exit ${code ?? signal}`;
      reject(code === EXIT_UNAVAILABLE ? new ServerUnavailable(why) : new Error(`${label} exited before it was ready: ${why}`));
    });
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (!line.startsWith('ready')) return;
      clearTimeout(timer);
      resolve({
        pid: child.pid!,
        address,
        alive: () => child.exitCode === null && child.signalCode === null,
        stderrTail: () => tail.trim(),
        async stop() {
          kill('SIGTERM');
          const timer = setTimeout(() => kill('SIGKILL'), STOP_TIMEOUT_MS);
          await exited;
          clearTimeout(timer);
        },
      });
    });
  });
}

const cli = () => path.join(ROOT, 'dist', 'src', 'cli', 'main.js');

/** The SCHED_RR priority of the -rt variants (both servers): the lowest, enough to outrank every normal thread. */
const RT_PRIORITY = '1';

/**
 * `qbipc serve` with `workers`. Variants, measured only when named: 'nospin' never spins on the rings
 * (--spin-us 0); 'rt' runs the serving threads at SCHED_RR (--rt-priority); 'least' places connections
 * on the worker with the fewest, on any CPU (--placement least-loaded; with a worker per CPU the default
 * is client-cpu).
 */
type Variant = 'nospin' | 'rt' | 'least';
const VARIANT_FLAGS: Record<Variant, string[]> = {
  nospin: ['--spin-us', '0'],
  rt: ['--rt-priority', RT_PRIORITY],
  least: ['--placement', 'least-loaded'],
};
const VARIANT_NAMES: Record<Variant, string> = { nospin: 'no spinning', rt: 'SCHED_RR', least: 'least-loaded placement' };

function qbipc(workers: number, variant?: Variant): ServerDriver {
  const key = workers === 0 ? 'qbipc' : `qbipc-w${workers}`;
  const name = workers === 0 ? 'qbipc in-thread' : `qbipc workers=${workers}`;
  const flags = variant === undefined ? [] : VARIANT_FLAGS[variant];
  const args = [cli(), 'serve', '', '--workers', String(workers), ...flags];
  return {
    key: variant === undefined ? key : `${key}-${variant}`,
    name: variant === undefined ? name : `${name}, ${VARIANT_NAMES[variant]}`,
    speaks: 'libqb',
    ...(variant === undefined ? {} : { onRequest: true }),
    start: (tag) =>
      startProcess(
        process.execPath,
        args.map((a, i) => (i === 2 ? tag : a)),
        tag,
      ),
  };
}

/** Worker counts measured: 1 … the CPUs of this machine. */
export const WORKER_COUNTS = Array.from({ length: Math.max(1, availableParallelism()) }, (_, i) => i + 1);

export const SERVERS: ServerDriver[] = [
  {
    key: 'libqb',
    name: 'libqb C (qb_loop)',
    speaks: 'libqb',
    baseline: true,
    start: (tag) => startProcess(buildC('qb-echo-server'), ['-n', tag, '-t', 'shm'], tag),
  },
  qbipc(0),
  ...WORKER_COUNTS.map((workers) => qbipc(workers)),
  qbipc(0, 'nospin'),
  ...WORKER_COUNTS.map((workers) => qbipc(workers, 'nospin')),
  {
    key: 'libqb-rt',
    name: 'libqb C (qb_loop), SCHED_RR',
    speaks: 'libqb',
    onRequest: true,
    start: (tag) => startProcess(buildC('qb-echo-server'), ['-n', tag, '-t', 'shm', '-p', RT_PRIORITY], tag),
  },
  qbipc(0, 'rt'),
  ...WORKER_COUNTS.map((workers) => qbipc(workers, 'rt')),
  ...WORKER_COUNTS.map((workers) => qbipc(workers, 'least')),
  {
    key: 'net',
    name: 'node net (unix socket)',
    speaks: 'net',
    start: (tag) => startProcess(process.execPath, [path.join(ROOT, 'dist', 'bench', 'servers', 'net-echo.js'), `@${tag}`], `@${tag}`),
  },
];
