// The service's two counters (qb_ipcs_stats), in shared memory: every thread
// that serves connections counts into the same pair, the main thread reads it.
import type { ServiceStats } from './stats.js';

const ACTIVE = 0;
const CLOSED = 1;

export class ServiceCounters {
  readonly buffer: SharedArrayBuffer;
  private readonly cells: Int32Array;

  constructor(buffer = new SharedArrayBuffer(2 * Int32Array.BYTES_PER_ELEMENT)) {
    this.buffer = buffer;
    this.cells = new Int32Array(buffer);
  }

  /** The handshake response is going out: libqb counts the connection active from here. */
  activated(): void {
    Atomics.add(this.cells, ACTIVE, 1);
  }

  /**
   * A connection is disconnected. As libqb 2.0.6: only an ESTABLISHED one stops
   * counting as active (one dropped while ACTIVE stays counted); each counts as closed.
   */
  closed(wasEstablished: boolean): void {
    if (wasEstablished) Atomics.sub(this.cells, ACTIVE, 1);
    Atomics.add(this.cells, CLOSED, 1);
  }

  /** qb_ipcs_stats_get: with `clear`, both start again from 0. */
  read(clear: boolean): ServiceStats {
    const stats = { activeConnections: Atomics.load(this.cells, ACTIVE), closedConnections: Atomics.load(this.cells, CLOSED) };
    if (clear) {
      Atomics.store(this.cells, ACTIVE, 0);
      Atomics.store(this.cells, CLOSED, 0);
    }
    return stats;
  }
}
