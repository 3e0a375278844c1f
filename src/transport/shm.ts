// The SHM transport: three rings in the connection directory, one-byte
// doorbells on the setup socket (client → server per request, server → client
// per event), EOF/HUP as disconnect (docs/wire.md §6, §8).
import { PollEvent } from '../constants.js';
import type { ConnectionDirectory, FileOwner } from '../connection-dir.js';
import { EAGAIN, ENOTCONN, errnoName } from '../errno.js';
import { TransportType } from '../handshake.js';
import { native } from '../native.js';
import { HEADER_FILE_SIZE } from '../shm/layout.js';
import { closeRingFiles, createRingFiles, openRing, type RingFiles } from '../shm/ring-files.js';
import { mappedProbe, type MappedProbe } from '../shm/probe.js';
import { semAddress, semValue, semWake } from '../shm/semaphore.js';
import type { ShmRing } from '../shm/ring.js';
import type { Transport, TransportHost } from './transport.js';

const WATCH = PollEvent.IN | PollEvent.PRI | PollEvent.NVAL;
const WATCH_FLOW_CONTROLLED = PollEvent.PRI | PollEvent.NVAL; // HUP/ERR still arrive
const DEAD = PollEvent.HUP | PollEvent.ERR | PollEvent.NVAL;

/** Doorbell bytes are meaningless; one buffer per thread drains them all. */
const drain = new Uint8Array(4096);
const doorbells = new Uint8Array(4096);

/** The three rings' files of one connection, created where it was accepted. */
export interface ShmFiles {
  kind: 'shm';
  request: RingFiles;
  response: RingFiles;
  event: RingFiles;
  responsePaths: { request: string; response: string; event: string };
}

/** Creates the files of the three rings (request, response, event, in libqb's order). */
export function createShmFiles(dir: ConnectionDirectory, serviceName: string, maxMsgSize: number, owner: FileOwner): ShmFiles {
  const base = (kind: string) => `qb-${kind}-${serviceName}`;
  const made: RingFiles[] = [];
  try {
    for (const kind of ['request', 'response', 'event']) made.push(createRingFiles(dir, base(kind), maxMsgSize, owner));
  } catch (error) {
    made.forEach(closeRingFiles);
    throw error;
  }
  const [request, response, event] = made as [RingFiles, RingFiles, RingFiles];
  return {
    kind: 'shm',
    request,
    response,
    event,
    responsePaths: { request: `${dir.path}/${base('request')}`, response: `${dir.path}/${base('response')}`, event: `${dir.path}/${base('event')}` },
  };
}

/** event_q_length read from another thread (worker mode's main thread): its own mapping of the event ring's header. */
export function shmEventQueueProbe(files: ShmFiles): MappedProbe<number> {
  const buffer = native.mapShared(files.event.headerFd, HEADER_FILE_SIZE);
  const header = new Int32Array(buffer);
  return mappedProbe(buffer, () => semValue(header));
}

/**
 * For the main thread in worker mode: wakes whoever waits on the response ring's
 * semaphore. A worker that dies inside a round leaves responses posted but not
 * yet woken (wakes are held until the round ends); its clients must still get them.
 */
export function shmResponseWaker(files: ShmFiles): MappedProbe<void> {
  const buffer = native.mapShared(files.response.headerFd, HEADER_FILE_SIZE);
  const header = new Int32Array(buffer);
  const address = semAddress(header);
  return mappedProbe(buffer, () => semWake(header, address, 0x7fffffff));
}

/** For a connection that ends before its transport was opened. */
export function discardShmFiles(files: ShmFiles): void {
  for (const ring of [files.request, files.response, files.event]) closeRingFiles(ring);
}

export class ShmTransport implements Transport {
  readonly type = TransportType.SHM;
  readonly responsePaths: { request: string; response: string; event: string };
  private readonly requests: ShmRing;
  private readonly responses: ShmRing;
  private readonly events: ShmRing;
  private readonly requestWords: Int32Array;
  private pendingDoorbells = 0;
  /** Whether POLLOUT is in the watched events (owed doorbells). */
  private watchingOut = false;
  /** Inside a round: event doorbells wait for the round's wake points, and go out in one send. */
  private holdingDoorbells = false;
  private flowControl = 0;
  private watching = false;
  requestId = 0;
  requestSize = 0;
  requestCapacity = 0;

  constructor(
    private readonly host: TransportHost,
    private readonly fd: number,
    files: ShmFiles,
  ) {
    const rings = [files.request, files.response, files.event];
    const opened: ShmRing[] = [];
    try {
      for (const ring of rings) opened.push(openRing(ring));
    } catch (error) {
      // Nothing was served from them: their memory goes back now; the rings not reached close their fds.
      for (const ring of opened) ring.close();
      rings.slice(opened.length + 1).forEach(closeRingFiles);
      throw error;
    }
    [this.requests, this.responses, this.events] = opened as [ShmRing, ShmRing, ShmRing];
    this.requestWords = new Int32Array(this.requests.bytes.buffer, 0, this.requests.bytes.byteLength / 4);
    this.responsePaths = files.responsePaths;
  }

  private readonly dispatch = (_fd: number, revents: number): number => {
    if (revents & DEAD) {
      // POLLHUP wins over pending data, as in libqb: unprocessed requests are dropped.
      this.host.hangUp(revents & PollEvent.HUP ? 'client closed the connection' : 'setup socket error');
      return 0;
    }
    if (revents & PollEvent.OUT) this.flushDoorbells();
    if (revents & PollEvent.IN) {
      // Read the doorbells after the round, so that those of the
      // requests it handled do not wake us once more for nothing.
      this.host.requestsReady();
      if (!this.watching || !this.drainDoorbells()) return 0;
      // A doorbell just read may announce a request that came after the round.
      if (this.requests.hasWork) this.host.requestsPending();
    }
    return 0;
  };

  /** Reads every doorbell byte that has arrived; false when the client is gone. */
  private drainDoorbells(): boolean {
    for (;;) {
      const n = native.recv(this.fd, drain);
      if (n === drain.byteLength) continue;
      if (n > 0 || n === -EAGAIN) return true;
      this.host.hangUp(n === 0 ? 'client closed the connection' : `doorbell recv failed (${n})`);
      return false;
    }
  }

  private get watchedEvents(): number {
    const base = this.flowControl !== 0 ? WATCH_FLOW_CONTROLLED : WATCH;
    return this.watchingOut ? base | PollEvent.OUT : base;
  }

  start(): void {
    const rc = this.host.poll.dispatchAdd(this.host.priority, this.fd, this.watchedEvents, this.dispatch);
    this.watching = rc === 0;
    if (rc < 0) this.host.hangUp(`cannot watch the setup socket (${rc})`);
  }

  private rewatch(): void {
    if (this.watching) this.host.poll.dispatchMod(this.host.priority, this.fd, this.watchedEvents, this.dispatch);
  }

  reprioritise(): void {
    this.rewatch();
  }

  sendResponse(parts: readonly Uint8Array[], length: number): number {
    if (!this.watching) return -ENOTCONN;
    return this.responses.write(parts, length);
  }

  holdClientWakes(): void {
    this.responses.holdWakes();
    this.holdingDoorbells = true;
  }

  wakeClientSoFar(): boolean {
    const rang = this.ringHeldDoorbells();
    return this.responses.wakeHeldSoFar() || rang;
  }

  wakeClient(): void {
    this.holdingDoorbells = false;
    this.ringHeldDoorbells();
    this.responses.wakeHeld();
  }

  /** Sends the event doorbells owed so far (one send for a batch): true when any went out. */
  private ringHeldDoorbells(): boolean {
    const owed = this.pendingDoorbells;
    if (owed === 0 || !this.watching) return false;
    const rc = this.flushDoorbells();
    // No caller to return an error to: a socket that fails for good ends the connection.
    if (rc < 0) this.host.hangUp(`event doorbell send failed: ${errnoName(rc)}`);
    return this.pendingDoorbells < owed;
  }

  sendEvent(parts: readonly Uint8Array[], length: number): number {
    if (!this.watching) return -ENOTCONN;
    const rc = this.events.write(parts, length);
    if (rc < 0) {
      if (this.pendingDoorbells > 0) this.flushDoorbells();
      return rc;
    }
    this.pendingDoorbells++;
    // Inside a round the doorbell waits for the round's next wake point: a handler that
    // sends 64 events costs the client's socket one send instead of 64.
    if (this.holdingDoorbells) return rc;
    const flushed = this.flushDoorbells();
    return flushed < 0 ? flushed : rc;
  }

  /** Sends the owed event doorbells; what the socket refuses waits for POLLOUT. */
  private flushDoorbells(): number {
    while (this.pendingDoorbells > 0) {
      const want = Math.min(this.pendingDoorbells, doorbells.byteLength);
      const n = native.send(this.fd, want === doorbells.byteLength ? doorbells : doorbells.subarray(0, want));
      if (n === -EAGAIN) break;
      if (n < 0) return n;
      this.pendingDoorbells -= n;
    }
    if (this.watchingOut !== this.pendingDoorbells > 0) {
      this.watchingOut = this.pendingDoorbells > 0;
      this.rewatch();
    }
    return 0;
  }

  nextRequest(): number {
    const ring = this.requests;
    const rc = ring.nextChunk();
    if (rc !== 1) return rc;
    const capacity = ring.chunkLength;
    this.requestCapacity = capacity;
    if (capacity >= 16) {
      const word = ring.chunkOffset >>> 2;
      this.requestId = this.requestWords[word]!;
      this.requestSize = this.requestWords[word + 2]!;
    }
    return 1;
  }

  requestView(length: number): Uint8Array {
    return new Uint8Array(this.requests.data, this.requests.chunkOffset, length);
  }

  releaseRequest(): number {
    return this.requests.reclaim();
  }

  get hasPendingRequests(): boolean {
    return this.requests.hasWork;
  }

  setFlowControl(value: number): void {
    this.requests.setFlowControl(value);
    const wasOn = this.flowControl !== 0;
    this.flowControl = value;
    if (wasOn !== (value !== 0)) this.rewatch();
  }

  get eventQueueLength(): number {
    return this.events.pending;
  }

  get mappings(): readonly ArrayBufferView[] {
    return [this.requests, this.responses, this.events].flatMap((ring) => [ring.header, ring.bytes]);
  }

  stop(): void {
    if (this.watching) this.host.poll.dispatchDel(this.fd);
    this.watching = false;
  }

  /** Closes the rings; their memory goes back to the system now (ShmRing.close). */
  destroy(): void {
    for (const ring of [this.responses, this.events, this.requests]) ring.close();
  }
}
