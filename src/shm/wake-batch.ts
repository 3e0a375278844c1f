// The wakes of a serving thread's clients, gathered over one batch of ready
// connections and issued together.
//
// A client that sleeps on its response and shares our CPU preempts us as soon
// as a FUTEX_WAKE returns. Woken one at a time, four clients on our CPU cost four
// preemptions, and each time we come back to one new request: the thread and
// its clients then take turns one message at a time. Held to a dry point where
// no other ring of the thread holds requests — or to the end of the batch — and
// issued in one system call (native.futexWakeMany: io_uring), they wake
// together: they run one after another, and we come back to all their requests.
//
// One per thread (module state is per thread). A batch is open while the
// poller's callback runs (src/poll.ts); outside one — a round run from a timer,
// custom poll handlers — every wake goes out at once, as before.
import { native } from '../native.js';

/** A response ring as the batch sees it (ShmRing): the posts whose wakes it holds. */
export interface HeldWakes {
  readonly hasHeldWakes: boolean;
  /** The count to wake at wakeAddress (0: none owed, or nobody waits); the ring holds none after. */
  takeHeldWakes(): number;
  readonly wakeAddress: number;
  /** Wakes what it holds, now. */
  wakeHeld(): boolean;
}

/** The system calls (native by default; tests count them). */
export interface Waker {
  /** Whether wakeMany is one system call here (io_uring); asked once, at the first batch. */
  batches(): boolean;
  wakeOne(address: number, count: number): void;
  wakeMany(addresses: Float64Array, counts: Int32Array, n: number): void;
}

const nativeWaker: Waker = {
  batches: () => native.futexWakeManyBatches(),
  wakeOne: (address, count) => void native.futexWakeAt(address, count),
  wakeMany: (addresses, counts, n) => void native.futexWakeMany(addresses, counts, n),
};

/** Whether any ring of the thread other than `except`'s holds requests now. */
export type OthersReady = (except: unknown) => boolean;

export class WakeBatch {
  private open = false;
  /** Whether wakes are held at all: only where many go out in one call (undefined: prepare() not called). */
  private batches: boolean | undefined;
  /** Rings whose wakes are held for the flush: rings[0 .. held). */
  private readonly rings: (HeldWakes | undefined)[] = [];
  private held = 0;
  private addresses = new Float64Array(16);
  private counts = new Int32Array(16);
  private othersReady: OthersReady = () => false;

  constructor(private readonly waker: Waker = nativeWaker) {}

  /** The thread's check for requests waiting in other rings (the ring spinner's). */
  setOthersReady(check: OthersReady): void {
    this.othersReady = check;
  }

  /**
   * A serving thread of an SHM service starts: sets up the one-call wake (the
   * thread's io_uring) now rather than at its first client. Where there is none,
   * each wake would still preempt us as it goes out: nothing is held then, and
   * every wake goes out where it did before. Threads that never call this hold nothing.
   */
  prepare(): void {
    this.batches ??= this.waker.batches();
  }

  /** The poller's callback begins: wakes may be held until end(). */
  begin(): void {
    this.open = this.batches === true;
  }

  /** The callback ends: every held wake goes out. */
  end(): void {
    this.flush();
    this.open = false;
  }

  /**
   * A ring ran dry in a round of `source`'s connection. While other rings hold
   * requests, its wake waits for them (true: the round ends, nothing woken).
   * Otherwise it goes out now with every wake held so far (false).
   */
  holdAtDryPoint(ring: HeldWakes, source: unknown): boolean {
    if (this.open && this.othersReady(source)) {
      this.hold(ring);
      return true;
    }
    this.hold(ring);
    this.flush();
    return false;
  }

  /** A round ended: its wakes wait for the batch's end, or go out now outside a batch. */
  holdOrWake(ring: HeldWakes): void {
    if (this.open) this.hold(ring);
    else ring.wakeHeld();
  }

  /** Issues every held wake: one system call for all of them. */
  flush(): void {
    const rings = this.rings;
    let n = 0;
    for (let i = 0; i < this.held; i++) {
      const ring = rings[i]!;
      rings[i] = undefined; // a connection that ends is not kept alive by this list
      const count = ring.takeHeldWakes();
      if (count === 0) continue;
      if (n === this.addresses.length) this.grow();
      this.addresses[n] = ring.wakeAddress;
      this.counts[n] = count;
      n++;
    }
    this.held = 0;
    if (n === 1) this.waker.wakeOne(this.addresses[0]!, this.counts[0]!);
    else if (n > 1) this.waker.wakeMany(this.addresses, this.counts, n);
  }

  private hold(ring: HeldWakes): void {
    if (!ring.hasHeldWakes) return;
    // Slots are overwritten, never truncated: writing an array's length calls into V8's runtime.
    if (this.held === this.rings.length) this.rings.push(ring);
    else this.rings[this.held] = ring;
    this.held++;
  }

  private grow(): void {
    const addresses = new Float64Array(this.addresses.length * 2);
    const counts = new Int32Array(this.counts.length * 2);
    addresses.set(this.addresses);
    counts.set(this.counts);
    this.addresses = addresses;
    this.counts = counts;
  }
}

/** This thread's batch. */
export const wakeBatch = new WakeBatch();
