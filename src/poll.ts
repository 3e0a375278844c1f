// How a service watches file descriptors and schedules deferred work: the
// qb_ipcs_poll_handlers contract, and the default implementation on the native
// poller (one uv_poll_t per fd in libuv's own epoll set, one JS call per batch of
// ready fds; native/poller.cc).
import { LoopPriority } from './constants.js';
import { native, type NativePoller } from './native.js';
import { RingSpinner, type RingSource } from './ring-spin.js';

/** qb_ipcs_dispatch_fn_t: called with the fd and the poll(2) events that fired. */
export type DispatchFn = (fd: number, revents: number) => number | void;
export type JobFn = () => void;

/** qb_ipcs_poll_handlers. Each call returns 0 or a negative errno. */
export interface PollHandlers {
  jobAdd(priority: LoopPriority, fn: JobFn): number;
  dispatchAdd(priority: LoopPriority, fd: number, events: number, fn: DispatchFn): number;
  dispatchMod(priority: LoopPriority, fd: number, events: number, fn: DispatchFn): number;
  dispatchDel(fd: number): number;
  /**
   * @internal Not part of qb_ipcs_poll_handlers: handlers that can spin on
   * request rings (src/ring-spin.ts) take SHM connections' rings here.
   */
  watchRing?(source: RingSource): void;
  /** @internal */
  unwatchRing?(source: RingSource): void;
  /** @internal `source` had requests served. */
  ringServed?(source: RingSource): void;
  /** @internal Whether a watched ring other than `source` holds requests, or had some served lately. */
  othersActive?(source: RingSource): boolean;
}

/** Ready fds handed over per call, at most. */
const BATCH = 128;
/** What onReady leaves in the batch's length word to be called again at once (native/poller.cc). */
const CALL_AGAIN = -1;

/** The default poll handlers: level-triggered uv_poll handles on this thread's libuv loop. */
export class NativeLoop implements PollHandlers {
  /** The batch, written by the poller before each onReady: [n, fd, revents, fd, revents, …]. */
  private readonly ready = new Int32Array(1 + 2 * BATCH);
  private readonly dispatchers = new Map<number, DispatchFn>();
  private readonly poller: NativePoller;
  private readonly spinner: RingSpinner | undefined;

  /**
   * keepThread: while traffic flows, the poller looks for the next batch itself
   * instead of returning to the loop first (a serving thread; see native/poller.cc).
   * spinMicros (> 0, with keepThread): after each batch, look at the request
   * rings for up to this long before sleeping (src/ring-spin.ts). A serving
   * thread has a spinner even at 0: it also tells which rings are active.
   */
  constructor(keepThread = false, spinMicros = 0) {
    this.poller = new native.Poller(this.ready, () => this.onReady(), keepThread);
    this.spinner = keepThread ? new RingSpinner(spinMicros) : undefined;
  }

  private onReady(): void {
    const ready = this.ready;
    const n = ready[0]!;
    this.spinner?.nextTurn();
    for (let i = 1; i < 2 * n; i += 2) {
      // A handler earlier in the batch may have removed this fd: its event is dropped.
      const fd = ready[i]!;
      const fn = this.dispatchers.get(fd);
      if (fn !== undefined) fn(fd, ready[i + 1]!);
    }
    if (this.spinner?.spin() === true) ready[0] = CALL_AGAIN;
  }

  watchRing(source: RingSource): void {
    this.spinner?.add(source);
  }

  unwatchRing(source: RingSource): void {
    this.spinner?.remove(source);
  }

  ringServed(source: RingSource): void {
    this.spinner?.markServed(source);
  }

  othersActive(source: RingSource): boolean {
    return this.spinner?.othersActive(source) === true;
  }

  jobAdd(priority: LoopPriority, fn: JobFn): number {
    // LOW jobs (e.g. a connection_closed retry) must not spin the thread.
    if (priority === LoopPriority.LOW) setTimeout(fn, 1);
    else setImmediate(fn);
    return 0;
  }

  dispatchAdd(_priority: LoopPriority, fd: number, events: number, fn: DispatchFn): number {
    const rc = this.poller.add(fd, events, fd);
    if (rc === 0) this.dispatchers.set(fd, fn);
    return rc;
  }

  dispatchMod(_priority: LoopPriority, fd: number, events: number, fn: DispatchFn): number {
    const rc = this.poller.modify(fd, events, fd);
    if (rc === 0) this.dispatchers.set(fd, fn);
    return rc;
  }

  dispatchDel(fd: number): number {
    this.dispatchers.delete(fd);
    return this.poller.remove(fd);
  }

  /** Whether the watched fds keep the Node event loop alive. */
  setKeepAlive(keepAlive: boolean): void {
    if (keepAlive) this.poller.ref();
    else this.poller.unref();
  }

  close(): void {
    this.dispatchers.clear();
    this.poller.close();
  }
}
