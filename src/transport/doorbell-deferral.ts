// Whether to leave a round's doorbells unread for now.
//
// Each SHM request comes with a one-byte doorbell on the setup socket, and a
// recv costs about a microsecond here. Left unread, the level-triggered socket
// brings the connection back on the next look at the epoll set; if its client
// has sent its next request by then, that round serves it and one recv later
// reads both doorbells. If not, the look was wasted (a dispatch that finds the
// ring dry, and then reads them). Clients that answer within the time the
// thread spends on its other connections make deferring pay; a lone client
// that sleeps between requests does not, so a connection whose deferrals keep
// missing reads at once, and only tries again now and then.

import { TrialCredit } from '../trial-credit.js';

/** Doorbells owed before they are read whatever happens: the client's socket buffer stays small. */
export const UNREAD_MAX = 32;
/** Deferrals in a row that found no request before a connection stops deferring. */
export const MISSES_ALLOWED = 4;
/** While stopped: one trial deferral per this many rounds. */
export const RETRY_EVERY = 64;

export class DoorbellDeferral {
  private readonly credit = new TrialCredit(MISSES_ALLOWED, RETRY_EVERY);
  private pending = false;

  /** A round that served requests ended with `owed` doorbells unread: true to leave them. */
  defer(owed: number): boolean {
    if (owed >= UNREAD_MAX || !this.credit.shouldTry()) return false;
    this.pending = true;
    return true;
  }

  /** The round after a deferral served `handled` requests (0: the ring was dry). */
  roundAfter(handled: number): void {
    if (!this.pending) return;
    this.pending = false;
    this.credit.result(handled > 0);
  }
}
