// The listening socket and handshakes in progress: accepts clients, collects
// each one's 24-byte connection request (split arrivals allowed) and the
// credentials the kernel attached, then hands the finished handshake on.
//
// Out of descriptors (EMFILE/ENFILE), a waiting client is taken off the queue
// with a reserve descriptor and refused with that errno; when even that fails
// the listening socket is unwatched for a growing pause. Either way the loop
// never spins on a socket it cannot accept from, and serving resumes by itself.
import { constants } from 'node:os';
import { LoopPriority, PollEvent } from './constants.js';
import { EAGAIN, EINTR, errnoName } from './errno.js';
import type { LogSink } from './logger.js';
import { buildRejection, CONNECTION_REQUEST_SIZE, parseConnectionRequest, type ConnectionRequest } from './handshake.js';
import { MessageId } from './headers.js';
import { native } from './native.js';
import type { PollHandlers } from './poll.js';
import { ReserveFd } from './reserve-fd.js';

export interface Handshake {
  fd: number;
  pid: number;
  uid: number;
  gid: number;
  request: ConnectionRequest;
}

interface Pending {
  fd: number;
  bytes: Uint8Array;
  received: number;
  credentials: Int32Array;
  timer: NodeJS.Timeout;
}

/** Accepts per dispatch at most this many, so a connect storm cannot starve clients. */
const ACCEPTS_PER_DISPATCH = 64;
const DEAD = PollEvent.HUP | PollEvent.ERR | PollEvent.NVAL;
const { EMFILE, ENFILE, ECONNABORTED } = constants.errno;
/** Unwatching the listening socket: the first pause, doubled each time up to the last. */
const PAUSE_FIRST_MS = 10;
const PAUSE_MAX_MS = 1000;

export class Acceptor {
  private readonly pending = new Map<number, Pending>();
  private listening = false;
  private closed = false;
  private readonly reserve = new ReserveFd();
  private pauseMs = 0;
  private resumeTimer: NodeJS.Timeout | undefined;
  private readonly rejections = new Map<number, Uint8Array>();

  constructor(
    private readonly poll: PollHandlers,
    private readonly listenFd: number,
    private readonly timeoutMs: number,
    private readonly onHandshake: (handshake: Handshake) => void,
    private readonly log: LogSink,
  ) {}

  start(): number {
    this.reserve.acquire();
    return this.watch();
  }

  private watch(): number {
    const rc = this.poll.dispatchAdd(LoopPriority.HIGH, this.listenFd, PollEvent.IN, this.onListenReady);
    this.listening = rc === 0;
    return rc;
  }

  private readonly onListenReady = (): number => {
    for (let i = 0; i < ACCEPTS_PER_DISPATCH; i++) {
      const fd = native.acceptStream(this.listenFd);
      if (fd >= 0) {
        this.pauseMs = 0;
        this.begin(fd);
        continue;
      }
      if (fd === -EAGAIN) break;
      if (fd === -ECONNABORTED || fd === -EINTR) continue;
      if ((fd === -EMFILE || fd === -ENFILE) && this.refuseOne(-fd)) continue;
      this.pause(fd);
      break;
    }
    return 0;
  };

  /**
   * Out of descriptors: frees the reserve to accept the first waiting client,
   * answers it with a rejection carrying `errno` and closes it. True when the
   * reserve is held again (the caller may go on), false when it is not.
   */
  private refuseOne(errno: number): boolean {
    if (!this.reserve.release()) return false;
    const fd = native.acceptStream(this.listenFd);
    if (fd >= 0) {
      native.send(fd, this.rejection(errno));
      native.close(fd);
      const code = errnoName(-errno);
      this.log('warn', `refused a client: the process is out of file descriptors (${code})`, {
        event: 'reject',
        errno: -errno,
        code,
        reason: 'out of file descriptors',
      });
    }
    return this.reserve.acquire() && fd !== -EMFILE && fd !== -ENFILE;
  }

  private rejection(errno: number): Uint8Array {
    let bytes = this.rejections.get(errno);
    if (bytes === undefined) this.rejections.set(errno, (bytes = buildRejection(-errno)));
    return bytes;
  }

  /** Stops watching the listening socket for a while: the next accept could only fail again. */
  private pause(rc: number): void {
    this.pauseMs = Math.min(Math.max(this.pauseMs * 2, PAUSE_FIRST_MS), PAUSE_MAX_MS);
    this.log('warn', `accept failed (${errnoName(rc)}); not accepting for ${this.pauseMs} ms`, {
      event: 'fault',
      errno: rc,
      code: errnoName(rc),
      reason: 'accept failed',
    });
    if (this.listening) this.poll.dispatchDel(this.listenFd);
    this.listening = false;
    this.resumeTimer = setTimeout(this.resume, this.pauseMs);
  }

  private readonly resume = (): void => {
    this.resumeTimer = undefined;
    if (this.closed) return;
    this.reserve.acquire();
    const rc = this.watch();
    if (rc < 0) this.pause(rc);
  };

  private begin(fd: number): void {
    const entry: Pending = {
      fd,
      bytes: new Uint8Array(CONNECTION_REQUEST_SIZE),
      received: 0,
      credentials: new Int32Array(4),
      timer: setTimeout(() => this.drop(fd, 'handshake timed out'), this.timeoutMs).unref(),
    };
    this.pending.set(fd, entry);
    if (this.poll.dispatchAdd(LoopPriority.HIGH, fd, PollEvent.IN, this.onClientData) < 0) this.drop(fd, 'cannot watch');
  }

  private readonly onClientData = (fd: number, revents: number): number => {
    const entry = this.pending.get(fd);
    if (entry === undefined) return 0;
    if (revents & PollEvent.IN) {
      // Credentials come from the first message only; later ones are ignored.
      const credentials = entry.received === 0 ? entry.credentials : scratchCredentials;
      const n = native.recvCredentials(fd, entry.bytes.subarray(entry.received), credentials);
      if (n === -EAGAIN) return 0;
      if (n <= 0) return (this.drop(fd, n === 0 ? 'closed during handshake' : `recv failed (${n})`), 0);
      entry.received += n;
      if (entry.received === CONNECTION_REQUEST_SIZE) this.complete(entry);
      return 0;
    }
    if (revents & DEAD) this.drop(fd, 'hung up during handshake');
    return 0;
  };

  private complete(entry: Pending): void {
    this.forget(entry);
    native.setPassCred(entry.fd, false);
    const request = parseConnectionRequest(entry.bytes);
    const [pid, uid, gid, present] = entry.credentials;
    // Without credentials, or with any first message but a connection request, libqb closes silently.
    if (present !== 1) return this.closeClient(entry.fd, 'no credentials');
    if (request.id !== MessageId.AUTHENTICATE) return this.closeClient(entry.fd, `first message id ${request.id}`);
    this.onHandshake({ fd: entry.fd, pid: pid!, uid: uid! >>> 0, gid: gid! >>> 0, request });
  }

  private forget(entry: Pending): void {
    clearTimeout(entry.timer);
    this.pending.delete(entry.fd);
    this.poll.dispatchDel(entry.fd);
  }

  private drop(fd: number, reason: string): void {
    const entry = this.pending.get(fd);
    if (entry === undefined) return;
    this.forget(entry);
    this.closeClient(fd, reason);
  }

  private closeClient(fd: number, reason: string): void {
    this.log('debug', `dropped a client before its handshake completed: ${reason}`, { event: 'reject', reason });
    native.close(fd);
  }

  /** Stops listening and drops every unfinished handshake. */
  close(): void {
    this.closed = true;
    clearTimeout(this.resumeTimer);
    for (const fd of [...this.pending.keys()]) this.drop(fd, 'service destroyed');
    if (this.listening) this.poll.dispatchDel(this.listenFd);
    this.listening = false;
    native.close(this.listenFd);
    this.reserve.release();
  }
}

const scratchCredentials = new Int32Array(4);
