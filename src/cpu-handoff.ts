// Whether to give the CPU to a client just woken, once its ring has run dry.
//
// A client blocked on its response, woken on our CPU, usually answers within a
// few microseconds — but only once it runs. Yielding (sched_yield) lets it run
// now, and its next request is in the ring when we look again: the round goes
// on instead of ending in a trip through the event loop (epoll, libuv, a call
// into JS: ~1.4 us per turn here). A yield that finds nothing (the client is on
// another CPU, or is busy) costs a syscall and may hand a CPU-bound neighbour
// the rest of our slice, so each connection stops yielding after a few misses
// and only tries again now and then.
//
// The transport asks only when no other connection of the thread is active
// (RingSpinner.othersActive): serving those beats handing the CPU away, and
// under EEVDF a yielding thread waits behind every runnable client of its CPU.
//
// Hits are capped per round: a client that always answers within the yield
// would otherwise keep the thread for the whole round budget while the other
// connections' requests wait (and their clients' CPU idles).
import { native } from './native.js';
import { TrialCredit } from './trial-credit.js';

/** Misses in a row before a connection stops yielding (a hit refills them). */
export const MISSES_ALLOWED = 8;
/** While stopped: one trial yield per this many dry rounds. */
export const RETRY_EVERY = 64;
/** Yields per round, at most: then the round ends and the thread's other ready connections get their turn. */
export const YIELDS_PER_ROUND = 4;

export class CpuHandoff {
  private readonly credit = new TrialCredit(MISSES_ALLOWED, RETRY_EVERY);
  private yieldsThisRound = 0;

  constructor(private readonly yieldCpu: () => void = native.yieldCpu) {}

  /** A round begins. */
  startRound(): void {
    this.yieldsThisRound = 0;
  }

  /** The ring ran dry after a wake: yields (true: look at the ring again) or not. */
  yieldToClient(): boolean {
    if (this.yieldsThisRound === YIELDS_PER_ROUND) return false;
    this.yieldsThisRound++;
    if (!this.credit.shouldTry()) return false;
    this.yieldCpu();
    return true;
  }

  /** What the look after the yield found. */
  found(request: boolean): void {
    this.credit.result(request);
  }
}
