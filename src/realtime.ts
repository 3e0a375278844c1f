// Real-time scheduling for a serving thread (options.realtimePriority).
//
// A thread that spins on its rings answers a client on another CPU before that
// client sleeps. Under the normal policy the kernel also puts woken clients on
// the serving thread's CPU: there they preempt it, cannot be answered while they
// run, and sleep. At SCHED_RR no client preempts the serving thread, and the
// load balancer moves clients to the other CPUs (corosync runs its own loop at
// SCHED_RR too). The price: while the thread spins, normal
// threads of its CPU wait (docs/threading.md, "Real-time serving threads"), so
// at most all CPUs but one get a real-time serving thread.
import { availableParallelism } from 'node:os';
import { errnoName } from './errno.js';
import { native } from './native.js';

const ROUND_ROBIN = 2;

/**
 * The SCHED_RR priority of serving thread `index` (0 in-thread; the shard's
 * index with workers): `priority` for the first CPUs − 1 threads, 0 (normal
 * scheduling) for the rest, so that one CPU's worth is left to the clients and
 * to every other thread.
 */
export function realtimePriorityOf(index: number, priority: number, cpus = availableParallelism()): number {
  return index < cpus - 1 ? priority : 0;
}

/**
 * Puts the calling thread at SCHED_RR `priority`: returns the function that
 * gives it back its scheduling as it was (a SCHED_BATCH or SCHED_IDLE thread
 * comes back as SCHED_OTHER), or a negative errno.
 */
export function enterRealtime(priority: number): (() => void) | number {
  const [policy, before] = native.scheduling();
  const rc = native.setScheduling(ROUND_ROBIN, priority);
  if (rc < 0) return rc;
  return () => {
    native.setScheduling(policy, before);
  };
}

/** What the service logs when the thread stays at its normal priority. */
export function realtimeRefused(priority: number, errno: number): string {
  return (
    `the serving thread could not run at SCHED_RR priority ${priority} (${errnoName(errno)}): ` +
    `that needs CAP_SYS_NICE or an RLIMIT_RTPRIO of at least ${priority} (systemd: LimitRTPRIO=${priority}); ` +
    `it serves at its normal priority`
  );
}

/** What the service logs when no serving thread may be real-time. */
export function realtimeWithOneCpu(priority: number): string {
  return `realtimePriority ${priority} is not applied on a machine with 1 CPU: a real-time serving thread would leave its clients no CPU`;
}
