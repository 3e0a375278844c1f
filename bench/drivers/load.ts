// The load client: bench/c/qbload.c, a libqb C client that forks N processes.
import { execFile, execFileSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { buildC } from './build-c.js';

export interface LoadResult {
  clients: number;
  size: number;
  depth: number;
  messages: number;
  errors: number;
  seconds: number;
  msgs_per_sec: number;
  mb_per_sec: number;
  p50_us: number;
  p99_us: number;
  p999_us: number;
  max_us: number;
}

export interface Workload {
  name: string;
  clients: number;
  size: number;
  depth: number;
  /**
   * Pin server and clients to these CPUs (taskset list), or leave placement to
   * the scheduler. On this 2-vCPU machine a cross-CPU wake-up costs ~60 µs, so a
   * 1-client ping-pong measures placement luck unless both sides share a CPU.
   */
  cpus?: string;
}

/** Every CPU this process may use, as a taskset list. */
export const ALL_CPUS = `0-${availableParallelism() - 1}`;

/** Moves every thread of `pid` onto `cpus`. */
export function pin(pid: number, cpus: string): void {
  execFileSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore' });
}

export function runLoad(service: string, w: Workload, seconds: number): Promise<LoadResult> {
  const args = ['-n', service, '-c', String(w.clients), '-s', String(w.size), '-T', String(seconds), '-d', String(w.depth),
    '-m', String(Math.max(12328, w.size + 64))];
  return new Promise((resolve, reject) => {
    execFile('taskset', ['-c', w.cpus ?? ALL_CPUS, buildC('qbload'), ...args], { timeout: (seconds + 30) * 1000 }, (error, stdout, stderr) => {
      if (error) return reject(new Error(`qbload ${args.join(' ')} failed: ${stderr || error.message}`));
      try {
        resolve(JSON.parse(stdout.trim().split('\n').pop()!) as LoadResult);
      } catch {
        reject(new Error(`qbload printed no JSON: ${stdout}`));
      }
    });
  });
}
