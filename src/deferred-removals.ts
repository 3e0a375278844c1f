// Connection directories whose removal had to wait for a descriptor. Removing
// one safely takes a descriptor (its files are unlinked through the directory,
// verified to be ours), and a process whose table is full has none, so the
// directory waits here: it is tried again at once with a descriptor kept in
// reserve for this, then after a growing pause, then when a service is
// destroyed, and last when the process exits.
//
// The thread that creates connection directories (the service's) owns this
// queue and every removal nobody else could do: a worker shard that cannot
// remove a directory sends it here.
import { debuglog } from 'node:util';
import { removeDirectory, removeLiveDirectories, type DirectoryState } from './connection-dir.js';
import { ReserveFd } from './reserve-fd.js';

const log = debuglog('qbipc');
const PAUSE_FIRST_MS = 10;
const PAUSE_MAX_MS = 1000;
/** How long destroy() goes on trying before it leaves the rest to the stale-directory sweep. */
const SETTLE_MS = 2000;

export class DeferredRemovals {
  private readonly waiting = new Map<string, DirectoryState>();
  private readonly reserve = new ReserveFd();
  private services = 0;
  private exitHooked = false;
  private pauseMs = 0;
  private timer: NodeJS.Timeout | undefined;

  /** Directories still waiting. */
  get size(): number {
    return this.waiting.size;
  }

  /** A service runs: a descriptor is kept in reserve, and an exiting process removes what is left. */
  hold(): void {
    if (this.services++ === 0) this.reserve.acquire();
    if (!this.exitHooked) {
      this.exitHooked = true;
      process.once('exit', this.atExit);
    }
  }

  /** A service was destroyed; with none left running the reserve goes back. */
  release(): void {
    if (this.services === 0 || --this.services > 0) return;
    this.reserve.release();
  }

  /** A directory that could not be removed: tried again at once, and later until it is. */
  readonly add = (state: DirectoryState): void => {
    this.waiting.set(state.path, state);
    this.retry();
  };

  /** Tries every waiting directory now; returns how many still wait. */
  retry(): number {
    for (const [path, state] of this.waiting) {
      if (!this.removeOne(state)) break; // no descriptor: the others would fail the same way
      this.waiting.delete(path);
    }
    this.schedule();
    return this.waiting.size;
  }

  /** Tries until none waits (a service is being destroyed); false when some are left after SETTLE_MS. */
  async settle(): Promise<boolean> {
    const until = Date.now() + SETTLE_MS;
    while (this.retry() > 0) {
      if (Date.now() >= until) {
        log('%d connection directories could not be removed (no descriptor); the next start of their service removes them', this.size);
        return false;
      }
      await new Promise((resolve) => setTimeout(resolve, PAUSE_FIRST_MS));
    }
    return true;
  }

  private removeOne(state: DirectoryState): boolean {
    let done = removeDirectory(state);
    // Out of descriptors: the reserve's is the one this thread can count on.
    if (!done && this.reserve.release()) done = removeDirectory(state);
    if (this.services > 0) this.reserve.acquire();
    return done;
  }

  private schedule(): void {
    if (this.waiting.size === 0) {
      clearTimeout(this.timer);
      this.timer = undefined;
      this.pauseMs = 0;
      return;
    }
    if (this.timer !== undefined) return;
    this.pauseMs = Math.min(Math.max(this.pauseMs * 2, PAUSE_FIRST_MS), PAUSE_MAX_MS);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.retry();
    }, this.pauseMs).unref();
  }

  /** The process exits: its connections end with it, and so do their directories. */
  private readonly atExit = (): void => {
    removeLiveDirectories();
    if (this.retry() > 0) log('exiting with %d connection directories left (no descriptor)', this.size);
  };
}

/** This thread's queue. */
export const deferredRemovals = new DeferredRemovals();
