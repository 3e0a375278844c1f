// Spinning on the request rings: after a batch, the serving thread keeps looking
// at its connections' request rings for a short while before it lets the thread
// sleep.
//
// A libqb client posts its request ring's semaphore, then sends the doorbell
// byte, then waits on its response semaphore. A thread that sees the post in
// the ring answers before the client has finished its send: the client then
// finds its response without sleeping, and the server needs no FUTEX_WAKE. Each
// request then costs neither side a sleep, a wake-up nor a context switch — on
// this machine that is most of what a request costs (docs/benchmark.md). A
// sleeping thread sees the request only once the doorbell has woken it.
//
// Looking costs one load per ring and never blocks: the spinner serves the
// rings that hold requests (one round each, as a batch from the poller would),
// then returns so that the microtasks of those handlers run, asking the poller
// to call it again. A look that finds nothing for `windowMicros` ends the spin
// and the thread sleeps in libuv as before. Spins that end that way are CPU
// spent for nothing, so after a few in a row the spinner stops spinning and
// tries once every so many batches. While it spins it yields the CPU now and
// then: a client that shares this CPU must run to send its next request.
//
// The spinner also knows which of the thread's rings are active (served in the
// last few turns, or holding requests): a round whose own ring runs dry hands
// the CPU to its client only when none of the others is (src/cpu-handoff.ts).
import { native } from './native.js';
import { TrialCredit } from './trial-credit.js';

/** A ring the spinner looks at: an SHM connection's request ring. */
export interface RingSource {
  /** True when requests are committed and the connection may be served now. */
  hasRequests(): boolean;
  /** One round now, as for a doorbell: the requests handled. */
  serveNow(): number;
  /** The thread's turn (RingSpinner.nextTurn) in which this ring last had requests served. */
  lastServedTurn: number;
}

/** A ring served within this many turns counts as active. */
export const ACTIVE_TURNS = 16;

/** Spins in a row that found nothing before the spinner stops spinning. */
export const MISSES_ALLOWED = 4;
/** While stopped: one trial spin per this many batches. */
export const RETRY_EVERY = 64;
/** Empty looks between two checks of the clock (and two yields of the CPU). */
export const LOOKS_PER_CHECK = 16;

export class RingSpinner {
  private readonly sources: RingSource[] = [];
  private readonly credit = new TrialCredit(MISSES_ALLOWED, RETRY_EVERY);
  private readonly windowMs: number;
  /** While spinning: when a request was last found (the clock's ms); -1 between spins. */
  private lastFound = -1;
  /** Whether this spin served anything (a spin that did not was a miss). */
  private served = false;
  /** Rings that held requests this spin but whose round handled none (the handler backs off, say): not served again this spin. */
  private readonly declined = new Set<RingSource>();

  constructor(
    windowMicros: number,
    private readonly clock: () => number = () => performance.now(),
    private readonly yieldCpu: () => void = native.yieldCpu,
  ) {
    this.windowMs = windowMicros / 1000;
  }

  add(source: RingSource): void {
    if (!this.sources.includes(source)) this.sources.push(source);
  }

  remove(source: RingSource): void {
    const i = this.sources.indexOf(source);
    if (i >= 0) this.sources.splice(i, 1);
    this.declined.delete(source);
  }

  /**
   * After a batch (or when called again): looks at the rings until some hold
   * requests — serves them and returns true, to be called again once their
   * microtasks ran — or until nothing was found for the window (false).
   */
  spin(): boolean {
    const sources = this.sources;
    if (this.lastFound < 0) {
      if (this.windowMs === 0 || sources.length === 0 || !this.credit.shouldTry()) return false;
      this.lastFound = this.clock();
    }
    for (let looks = 1; ; looks++) {
      let handled = 0;
      // Backwards: a round may end its connection, which takes it out of the list (a handler
      // may even end others: then an index can pass the end, and a ring wait for the next pass).
      for (let i = sources.length - 1; i >= 0; i--) {
        const source = sources[i];
        if (source === undefined || !source.hasRequests() || this.declined.has(source)) continue;
        const n = source.serveNow();
        if (n > 0) handled += n;
        else this.declined.add(source);
      }
      if (handled > 0) {
        this.served = true;
        this.lastFound = this.clock();
        return true;
      }
      if (looks % LOOKS_PER_CHECK !== 0) continue;
      if (sources.length === 0 || this.clock() - this.lastFound >= this.windowMs) return this.end();
      this.yieldCpu();
    }
  }

  private turn = 0;

  /** A batch (or a spin pass) is handed to JS. */
  nextTurn(): void {
    this.turn++;
  }

  /** `source` had requests served in this turn. */
  markServed(source: RingSource): void {
    source.lastServedTurn = this.turn;
  }

  /** Whether a ring other than `source` holds requests now, or had some served lately. */
  othersActive(source: RingSource): boolean {
    const sources = this.sources;
    const recent = this.turn - ACTIVE_TURNS;
    for (let i = 0; i < sources.length; i++) {
      const other = sources[i]!;
      if (other !== source && (other.lastServedTurn >= recent || other.hasRequests())) return true;
    }
    return false;
  }

  private end(): false {
    this.credit.result(this.served);
    this.served = false;
    this.lastFound = -1;
    this.declined.clear();
    return false;
  }
}
