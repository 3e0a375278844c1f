// Real-time scheduling for a serving thread (options.realtimePriority).
//
// A thread that spins on its rings answers a client on another CPU before that
// client sleeps. Under the normal policy the kernel also puts woken clients on
// the serving thread's CPU: there they preempt it, cannot be answered while they
// run, and sleep. At SCHED_RR no client preempts the serving thread, and the
// load balancer moves clients to the other CPUs. corosync runs its own loop at
// SCHED_RR for the same reason. The price: while the thread spins, normal
// threads of its CPU wait (docs/threading.md, "Real-time serving threads").
import { errnoName } from './errno.js';
import { native } from './native.js';

const ROUND_ROBIN = 2;

/**
 * Puts the calling thread at SCHED_RR `priority`: returns the function that
 * gives it back its scheduling as it was, or a negative errno.
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
