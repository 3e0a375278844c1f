// The load client: bench/c/qbload.c, a libqb C client that forks N processes.
import { execFile } from 'node:child_process';
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
}

export function runLoad(service: string, w: Workload, seconds: number): Promise<LoadResult> {
  const args = ['-n', service, '-c', String(w.clients), '-s', String(w.size), '-T', String(seconds), '-d', String(w.depth),
    '-m', String(Math.max(12328, w.size + 64))];
  return new Promise((resolve, reject) => {
    execFile(buildC('qbload'), args, { timeout: (seconds + 30) * 1000 }, (error, stdout, stderr) => {
      if (error) return reject(new Error(`qbload ${args.join(' ')} failed: ${stderr || error.message}`));
      try {
        resolve(JSON.parse(stdout.trim().split('\n').pop()!) as LoadResult);
      } catch {
        reject(new Error(`qbload printed no JSON: ${stdout}`));
      }
    });
  });
}
