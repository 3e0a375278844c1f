// Running a load program (qbload or the node load client) and reading its
// JSON line; CPU placement with taskset.
import { execFile, execFileSync, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

/** qbload's JSON line (bench/c/qbload.c); node-load prints the same fields. */
export interface LoadResult {
  mode?: 'churn' | 'events';
  clients: number;
  size: number;
  depth: number;
  batch?: number;
  messages: number;
  errors: number;
  seconds: number;
  msgs_per_sec: number;
  mb_per_sec: number;
  connects?: number;
  connects_per_sec?: number;
  /** Synchronous round trips only: share of the clients' time in round trips of 1 ms or more (stalls). */
  stalled_share?: number;
  p50_us: number;
  p99_us: number;
  p999_us: number;
  max_us: number;
}

/** Every CPU this process may use, as a taskset list. */
export const ALL_CPUS = `0-${availableParallelism() - 1}`;
/** The CPU of the same-CPU cells and of the machine check. */
export const PIN_CPU = '0';

/**
 * Confines every thread of process `pid` to `cpus`; returns what gives each thread back the CPUs
 * it had, since a server may keep its own threads to CPUs (qbipc's client-cpu placement does).
 */
export function pin(pid: number, cpus: string): () => void {
  const before = new Map<string, string>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    const allowed = /^Cpus_allowed_list:\s*(\S+)/m.exec(readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8'));
    if (allowed !== null) before.set(tid, allowed[1]!);
  }
  execFileSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore' });
  return () => {
    for (const [tid, allowed] of before) {
      try {
        execFileSync('taskset', ['-p', '-c', allowed, tid], { stdio: 'ignore' });
      } catch {
        // the thread ended meanwhile
      }
    }
  };
}

/** Load programs running now (the warm-up runs several): an interrupted run stops them. */
const running = new Set<ChildProcess>();
let interrupted = false;

/** SIGTERM to every running load program, by pid (taskset execs it: same pid). */
export function stopLoad(): void {
  interrupted = true;
  for (const child of running) child.kill('SIGTERM');
}

/** Runs `command args` on `cpus` (killed after `timeoutMs`); resolves with its JSON line. */
export function runLoad<T extends object = LoadResult>(command: string, args: string[], cpus: string, timeoutMs: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      'taskset',
      ['-c', cpus, command, ...args],
      { timeout: timeoutMs, killSignal: 'SIGTERM' },
      (error, stdout, stderr) => {
        running.delete(child);
        const line = stdout.trim().split('\n').pop() ?? '';
        let result: T | undefined;
        try {
          result = JSON.parse(line) as T;
        } catch {
          // reported below
        }
        if (error && (result === undefined || ((result as { errors?: number }).errors ?? 0) === 0)) {
          const why = interrupted
            ? 'stopped: the run was interrupted'
            : error.killed
              ? `timed out after ${timeoutMs / 1000} s`
              : `exit ${error.code ?? error.signal}`;
          return reject(new Error(`${why}: ${stderr.trim().split('\n').slice(-3).join(' | ') || error.message.trim()}`));
        }
        if (result === undefined) return reject(new Error(`printed no JSON: ${stdout.slice(0, 200)}`));
        resolve(result); // errors > 0 is recorded with the result, not thrown
      },
    );
    running.add(child);
  });
}
