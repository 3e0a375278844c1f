// Placing a connection on the worker that runs on its client's CPU
// (options.placement 'client-cpu').
//
// Where the clients share the CPUs with the workers, a round trip whose client
// and worker run on one CPU costs no cross-CPU wake-up: the worker's FUTEX_WAKE
// and the client's doorbell stay on that CPU, and the kernel, which wakes a task
// where it last ran when the CPUs are equally loaded, keeps the client there. A
// client placed on a worker of another CPU stays on that other CPU the same way,
// and pays an inter-processor wake-up for each request it sleeps on. So each
// worker keeps to one CPU, and a connection goes to a worker of the CPU its
// client ran on last, read from /proc when it connects.
import { closeSync, openSync, readSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { errnoName } from './errno.js';
import { native } from './native.js';

export type Placement = 'least-loaded' | 'round-robin' | 'client-cpu';

/**
 * options.placement when left out: 'client-cpu' where every CPU this process may
 * use has a worker (the clients then share the workers' CPUs), unless the workers
 * run real-time — a real-time worker must not share its CPU with its clients
 * (src/realtime.ts); 'least-loaded' otherwise.
 */
export function defaultPlacement(workers: number, realtimePriority: number, cpus = availableParallelism()): Placement {
  return workers > 0 && workers >= cpus && realtimePriority === 0 ? 'client-cpu' : 'least-loaded';
}

/**
 * The worker for a client on `cpu` (-1: not known), given each worker's CPU and
 * connection count: the least loaded worker of that CPU, unless it already has 2
 * connections more than the least loaded worker of all — then that one. A client
 * placed away from its CPU stays away (the kernel keeps it where it runs), so the
 * client's CPU wins over small differences in counts; but clients that all
 * connect from one CPU would otherwise pile onto one worker (docs/threading.md,
 * "Placement").
 */
export function workerFor(cpu: number, workerCpus: readonly number[], counts: readonly number[]): number {
  let least = 0;
  for (let i = 1; i < counts.length; i++) if (counts[i]! < counts[least]!) least = i;
  let best = -1;
  if (cpu >= 0) for (let i = 0; i < counts.length; i++) if (workerCpus[i] === cpu && (best < 0 || counts[i]! < counts[best]!)) best = i;
  return best >= 0 && counts[best]! < counts[least]! + 2 ? best : least;
}

/** The CPU worker `index` keeps to: the process's allowed CPUs in turn. */
export function workerCpuOf(index: number, cpus: readonly number[]): number {
  return cpus.length === 0 ? -1 : cpus[index % cpus.length]!;
}

/** A stat line is 52 numbers and a name of at most 64 bytes: under 1.5 KiB. */
const statBuffer = Buffer.alloc(4096);

/**
 * The CPU process `pid` last ran on (field 39 of /proc/PID/stat), or -1 when it
 * cannot be read: no such process in our PID namespace, or no /proc. The pid is
 * the kernel's (SO_PEERCRED), not anything the client wrote.
 */
export function clientCpu(pid: number): number {
  if (!Number.isSafeInteger(pid) || pid <= 0) return -1;
  let fd: number;
  try {
    fd = openSync(`/proc/${pid}/stat`, 'r');
  } catch {
    return -1;
  }
  try {
    // One read into a reused buffer: half the cost of readFileSync, on the main thread's accept path.
    return processorField(statBuffer.toString('latin1', 0, readSync(fd, statBuffer, 0, statBuffer.length, 0)));
  } catch {
    return -1;
  } finally {
    closeSync(fd);
  }
}

/** Field 39 of a /proc/PID/stat line; the command name (field 2) may hold spaces and parentheses. */
export function processorField(stat: string): number {
  const afterName = stat.lastIndexOf(')');
  if (afterName < 0) return -1;
  const fields = stat.slice(afterName + 2).split(' '); // fields[0] is field 3
  const cpu = Number(fields[39 - 3]);
  return Number.isSafeInteger(cpu) && cpu >= 0 ? cpu : -1;
}

/**
 * Keeps the calling thread to `cpu`: returns the function that gives it back the
 * CPUs it had, or a negative errno.
 */
export function keepToCpu(cpu: number): (() => void) | number {
  const before = native.cpuAffinity();
  const rc = native.setCpuAffinity(Int32Array.of(cpu));
  if (rc < 0) return rc;
  return () => {
    if (before.length > 0) native.setCpuAffinity(Int32Array.from(before));
  };
}

/** What a worker logs when it cannot keep to its CPU. */
export function cpuRefused(shard: number, cpu: number, errno: number): string {
  return `worker shard ${shard} could not keep to CPU ${cpu} (${errnoName(errno)}); it runs where the kernel puts it`;
}
