// Waiting for room where nothing signals it: an SHM ring (the client reclaims
// chunks without telling us) or a SOCKET channel whose client has not bound
// its socket yet. Checks on the next turn of the loop, then on a timer whose
// period doubles from 1 ms to ROOM_POLL_MAX_MS: a client that reads at once is
// noticed within a millisecond or two, one that never reads costs ~60 cheap
// checks a second, and nothing runs while no one waits.
export const ROOM_POLL_MAX_MS = 16;

export class RoomPoll {
  private immediate: NodeJS.Immediate | undefined;
  private timer: NodeJS.Timeout | undefined;
  private delayMs = 0;
  private ready: (() => void) | undefined;

  /** `hasRoom` is asked at each check; `ready` is called once it says yes. */
  constructor(private readonly hasRoom: () => boolean) {}

  start(ready: () => void): void {
    this.cancel();
    this.ready = ready;
    this.delayMs = 0;
    this.immediate = setImmediate(this.check); // (an unref'd immediate would wait for the next I/O)
  }

  private readonly check = (): void => {
    this.immediate = this.timer = undefined;
    const ready = this.ready;
    if (ready === undefined) return;
    if (this.hasRoom()) {
      this.ready = undefined;
      ready();
      return;
    }
    this.delayMs = Math.min(Math.max(this.delayMs * 2, 1), ROOM_POLL_MAX_MS);
    this.timer = setTimeout(this.check, this.delayMs).unref(); // the connection's fds, not this, keep the process alive
  };

  cancel(): void {
    if (this.immediate !== undefined) clearImmediate(this.immediate);
    clearTimeout(this.timer);
    this.immediate = this.timer = undefined;
    this.ready = undefined;
  }
}
