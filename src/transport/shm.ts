// The SHM transport: three rings in the connection directory, one-byte
// doorbells on the setup socket (client → server per request, server → client
// per event), EOF/HUP as disconnect (docs/wire.md §6, §8).
import { PollEvent } from '../constants.js';
import type { ConnectionDirectory, FileOwner } from '../connection-dir.js';
import { EAGAIN, ENOTCONN, errnoName } from '../errno.js';
import { TransportType } from '../handshake.js';
import { native } from '../native.js';
import { HEADER_FILE_SIZE } from '../shm/layout.js';
import { closeRingFiles, closeRings, createRingFiles, openRings, type RingFiles } from '../shm/ring-files.js';
import { mappedProbe, type MappedProbe } from '../shm/probe.js';
import { semAddress, semValue, semWake } from '../shm/semaphore.js';
import type { ShmRing } from '../shm/ring.js';
import { CpuHandoff } from '../cpu-handoff.js';
import { DoorbellDeferral } from './doorbell-deferral.js';
import { RoomPoll } from './room-poll.js';
import { ACTIVE_TURNS, type RingSource } from '../ring-spin.js';
import { Channel, ChannelBit, type Transport, type TransportHost } from './transport.js';

const WATCH = PollEvent.IN | PollEvent.PRI | PollEvent.NVAL;
const WATCH_FLOW_CONTROLLED = PollEvent.PRI | PollEvent.NVAL; // HUP/ERR still arrive
const DEAD = PollEvent.HUP | PollEvent.ERR | PollEvent.NVAL;

/** Doorbell bytes are meaningless; one buffer per thread reads them, one sends them. */
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
  dir.setOwner(owner.uid, owner.gid); // SHM only, as libqb: authSet's owner gets the directory too
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
    responsePaths: {
      request: `${dir.path}/${base('request')}`,
      response: `${dir.path}/${base('response')}`,
      event: `${dir.path}/${base('event')}`,
    },
  };
}

/**
 * What worker mode's main thread reads and does in a connection it does not
 * serve, through its own mapping of two ring headers (one range, released in
 * one call): event_q_length from the event ring, and waking whoever waits on the
 * response ring's semaphore — a worker that dies inside a round leaves responses
 * posted but not yet woken (wakes are held until the round ends); its clients
 * must still get them.
 */
export function shmMainThreadProbes(files: ShmFiles): { eventQueue: MappedProbe<number>; responseWaker: MappedProbe<void> } {
  const [eventBuffer, responseBuffer] = native.mapFiles(
    Int32Array.of(files.event.headerFd, files.response.headerFd),
    Int32Array.of(HEADER_FILE_SIZE, HEADER_FILE_SIZE),
    0,
  ) as [SharedArrayBuffer, SharedArrayBuffer];
  const eventHeader = new Int32Array(eventBuffer);
  const responseHeader = new Int32Array(responseBuffer);
  const address = semAddress(responseHeader);
  return {
    eventQueue: mappedProbe(eventBuffer, () => semValue(eventHeader)),
    responseWaker: mappedProbe(responseBuffer, () => semWake(responseHeader, address, 0x7fffffff)),
  };
}

/** For a connection that ends before its transport was opened. */
export function discardShmFiles(files: ShmFiles): void {
  for (const ring of [files.request, files.response, files.event]) closeRingFiles(ring);
}

export class ShmTransport implements Transport, RingSource {
  readonly type = TransportType.SHM;
  readonly responsePaths: { request: string; response: string; event: string };
  private readonly requests: ShmRing;
  private readonly responses: ShmRing;
  private readonly events: ShmRing;
  private readonly requestWords: Int32Array;
  /** Doorbells of requests already handled that we have not read yet (§8.2: one per request). */
  private owedDoorbells = 0;
  /** Event doorbells not yet sent (held in a round, or refused by a full socket). */
  private pendingDoorbells = 0;
  /** Whether POLLOUT is in the watched events (event doorbells the socket refused). */
  private watchingOut = false;
  /** Inside a round: response wakes and event doorbells wait for its wake points. */
  private inRound = false;
  private flowControl = 0;
  private watching = false;
  /** Stopped: no more watching, sends or doorbells; closed: the rings too. */
  private stopped = false;
  private closed = false;
  private readonly handoff: CpuHandoff | undefined;
  private readonly deferral = new DoorbellDeferral();
  /** Waits for the client to drain the rings in `roomWanted` (awaitRoom): created at the first wait. */
  private roomPoll: RoomPoll | undefined;
  private roomWanted = 0;
  lastServedTurn = -ACTIVE_TURNS - 1;
  requestId = 0;
  requestSize = 0;
  requestCapacity = 0;

  constructor(
    private readonly host: TransportHost,
    private readonly fd: number,
    files: ShmFiles,
  ) {
    // One mapping for the three (or none: openRings closes every fd either way).
    [this.requests, this.responses, this.events] = openRings([files.request, files.response, files.event]) as [ShmRing, ShmRing, ShmRing];
    this.requestWords = new Int32Array(this.requests.bytes.buffer, 0, this.requests.bytes.byteLength / 4);
    this.responsePaths = files.responsePaths;
    this.handoff = host.yieldToClients ? new CpuHandoff() : undefined;
  }

  /**
   * The setup socket is level-triggered: a doorbell left unread brings us back.
   * So a round reads only the doorbells of the requests it handled; requests left
   * for later (budget, back-off) keep theirs, and no job has to be queued for them.
   * Even those may stay unread a while (doorbell-deferral.ts); a round that finds
   * the ring dry reads every one owed, so the thread never sleeps on a stale byte.
   */
  private readonly dispatch = (_fd: number, revents: number): number => {
    if (revents & DEAD) {
      // POLLHUP wins over pending data, as in libqb: unprocessed requests are dropped.
      this.host.hangUp(revents & PollEvent.HUP ? 'client closed the connection' : 'setup socket error');
      return 0;
    }
    if (revents & PollEvent.OUT) this.flushDoorbells();
    if ((revents & PollEvent.IN) !== 0) this.serve(true);
    return 0;
  };

  // ---- RingSource (src/ring-spin.ts) ----

  hasRequests(): boolean {
    return this.watching && this.flowControl === 0 && this.requests.hasWork;
  }

  /** A round for requests found in the ring, not announced by a doorbell: the requests handled. */
  serveNow(): number {
    return this.serve(false);
  }

  /** A round, with its doorbells read or left (see dispatch): the requests handled. */
  private serve(rung: boolean): number {
    if (this.flowControl !== 0) return 0;
    this.inRound = true;
    this.handoff?.startRound();
    let handled: number;
    try {
      handled = this.host.serveRound();
    } finally {
      this.inRound = false;
      this.ringHeldDoorbells();
      this.responses.wakeHeld();
    }
    if (!this.watching || handled < 0) return 0;
    if (handled > 0) this.host.poll.ringServed?.(this);
    this.deferral.roundAfter(handled);
    if (handled > 0 && this.deferral.defer(this.owedDoorbells)) return handled;
    // Nothing owed after a round a doorbell started: the byte announced no request (libqb reads one such byte).
    this.readDoorbells(rung && this.owedDoorbells === 0 ? 1 : 0);
    return handled;
  }

  /** Reads the doorbells owed, and `extra` more. */
  private readDoorbells(extra: number): void {
    let owed = this.owedDoorbells + extra;
    while (owed > 0) {
      const n = native.recv(this.fd, owed >= drain.byteLength ? drain : drain.subarray(0, owed));
      if (n > 0) {
        owed -= n;
        continue;
      }
      if (n !== -EAGAIN) this.host.hangUp(n === 0 ? 'client closed the connection' : `doorbell recv failed (${n})`);
      break;
    }
    this.owedDoorbells = owed;
  }

  private get watchedEvents(): number {
    const base = this.flowControl !== 0 ? WATCH_FLOW_CONTROLLED : WATCH;
    return this.watchingOut ? base | PollEvent.OUT : base;
  }

  watch(): number {
    if (this.stopped) return 0;
    const poll = this.host.poll;
    const rc = this.watching
      ? poll.dispatchMod(this.host.priority, this.fd, this.watchedEvents, this.dispatch)
      : poll.dispatchAdd(this.host.priority, this.fd, this.watchedEvents, this.dispatch);
    if (rc === 0 && !this.watching) {
      this.watching = true;
      poll.watchRing?.(this);
    }
    return rc;
  }

  /**
   * In a round, a dry ring first wakes the client for what we answered: on this
   * CPU it may send its next request before we look again (then yielding helps it
   * run first), which then costs no trip through the loop.
   */
  peek(): number {
    let rc = this.nextRequest();
    if (rc !== 0 || !this.inRound || !this.wakeHeldSoFar()) return rc;
    rc = this.nextRequest();
    if (rc === 0 && this.handoff !== undefined && !this.othersActive() && this.handoff.yieldToClient()) {
      rc = this.nextRequest();
      this.handoff.found(rc !== 0);
    }
    return rc;
  }

  /** Other connections of this thread hold requests or were served lately: serving them beats handing the CPU away. */
  private othersActive(): boolean {
    return this.host.poll.othersActive?.(this) === true;
  }

  private nextRequest(): number {
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

  reclaim(): number {
    const rc = this.requests.reclaim();
    if (rc === 0) this.owedDoorbells++;
    return rc;
  }

  send(channel: Channel, parts: readonly Uint8Array[], length: number): number {
    if (this.stopped) return -ENOTCONN;
    if (channel === Channel.RESPONSE) {
      const rc = this.responses.write(parts, length, this.inRound);
      // Full: the client must read to make room, so it must not sleep on wakes we hold.
      if (rc === -EAGAIN && this.inRound) this.wakeHeldSoFar();
      return rc;
    }
    const rc = this.events.write(parts, length, this.inRound);
    if (rc < 0) {
      if (this.pendingDoorbells > 0) this.flushDoorbells();
      return rc;
    }
    this.pendingDoorbells++;
    // Inside a round the doorbell waits for the round's next wake point: a handler that
    // sends 64 events costs the client's socket one send instead of 64.
    if (this.inRound) return rc;
    const flushed = this.flushDoorbells();
    return flushed < 0 ? flushed : rc;
  }

  /** Wakes the client for every response and event held so far: true when there were any. */
  private wakeHeldSoFar(): boolean {
    const rang = this.ringHeldDoorbells();
    return this.responses.wakeHeld() || rang;
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
      this.watch();
    }
    return 0;
  }

  flowControlSet(value: number): void {
    if (this.stopped) return;
    this.requests.setFlowControl(value);
    const wasOn = this.flowControl !== 0;
    this.flowControl = value;
    if (wasOn !== (value !== 0) && this.watching) this.watch();
  }

  /** SHM: a ring has room once the client has taken all we wrote (nothing tells us: polled, see room-poll.ts). */
  awaitRoom(channels: number, ready: () => void): void {
    if (this.stopped) return;
    this.roomWanted = channels;
    (this.roomPoll ??= new RoomPoll(() => this.hasRoom())).start(ready);
  }

  private hasRoom(): boolean {
    const wanted = this.roomWanted;
    return ((wanted & ChannelBit.RESPONSE) === 0 || this.responses.drained) && ((wanted & ChannelBit.EVENT) === 0 || this.events.drained);
  }

  get eventQueueLength(): number {
    return this.closed ? 0 : this.events.pending;
  }

  get mappings(): readonly ArrayBufferView[] {
    return [this.requests, this.responses, this.events].flatMap((ring) => [ring.header, ring.bytes]);
  }

  stop(): void {
    this.roomPoll?.cancel();
    if (this.watching) {
      this.host.poll.dispatchDel(this.fd);
      this.host.poll.unwatchRing?.(this);
    }
    this.watching = false;
    this.stopped = true;
  }

  close(): void {
    this.stop();
    if (this.closed) return;
    this.closed = true;
    closeRings([this.responses, this.events, this.requests]);
  }
}
