// One descriptor held back for the moment the process has none left. Freeing it
// lets the acceptor take a waiting client off the listening queue and refuse it
// cleanly; without it the listening socket stays readable and the loop spins.
import { closeSync, openSync } from 'node:fs';

export class ReserveFd {
  private fd = -1;

  get held(): boolean {
    return this.fd >= 0;
  }

  /** Holds a descriptor (of /dev/null) unless one is held already; false when none can be had. */
  acquire(): boolean {
    if (this.fd >= 0) return true;
    try {
      this.fd = openSync('/dev/null', 'r');
    } catch {
      return false;
    }
    return true;
  }

  /** Gives the descriptor back to the process; false when none was held. */
  release(): boolean {
    if (this.fd < 0) return false;
    closeSync(this.fd);
    this.fd = -1;
    return true;
  }
}
