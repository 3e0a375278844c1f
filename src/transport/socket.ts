// The SOCKET transport (docs/wire.md §11): one datagram per message
// on AF_UNIX datagram sockets with abstract names, a 24-byte control file for
// the sent counters and the flow-control word, and the setup socket kept only
// as the liveness channel (EOF/HUP = the client is gone).
//
// Hostile-client rules: every datagram is checked (sender credentials, length,
// truncation, hdr.size = length); the control words the client can write are
// never trusted (the queue length is not read; the event count is clamped).
import { PollEvent } from '../constants.js';
import type { ConnectionDirectory, FileOwner } from '../connection-dir.js';
import { constants } from 'node:os';
import { EAGAIN, EBADMSG, ECONNREFUSED, EMSGSIZE, ENOTCONN } from '../errno.js';
import { QbError } from '../errors.js';
import { TransportType } from '../handshake.js';
import { REQUEST_HEADER_SIZE } from '../headers.js';
import { native } from '../native.js';
import { mappedProbe, type MappedProbe } from '../shm/probe.js';
import { RoomPoll } from './room-poll.js';
import { Channel, ChannelBit, type Transport, type TransportHost } from './transport.js';

const ENAMETOOLONG = constants.errno.ENAMETOOLONG;

/** The control file: six i32 words. */
export const CONTROL_FILE_SIZE = 24;

/** Word indexes into the control file (byte offsets 0, 4, 8, 16). */
export const ControlWord = {
  /** Client +1 per request sent, server −1 per request received. */
  REQUEST_SENT: 0,
  /** The flow-control value the client obeys (§9). */
  FLOW_CONTROL: 1,
  /** Server +1 per response, client −1 per response received. */
  RESPONSE_SENT: 2,
  /** Server +1 per event, client −1 per event received: event_q_length. */
  EVENT_SENT: 4,
} as const;

/** Abstract socket names hold 106 bytes (libqb cuts longer ones). */
export const ABSTRACT_NAME_MAX = 106;

/** The four datagram socket names of one connection, from the handshake's base name. */
export function socketNames(base: string): { request: string; response: string; event: string; eventTx: string } {
  return { request: `${base}-request`, response: `${base}-response`, event: `${base}-event`, eventTx: `${base}-event-tx` };
}

/** The name as the kernel sees it: cut at 106 bytes, as both libqb ends do. */
function abstractKey(name: string): string {
  const bytes = Buffer.from(name);
  return bytes.byteLength > ABSTRACT_NAME_MAX ? bytes.subarray(0, ABSTRACT_NAME_MAX).toString('latin1') : bytes.toString('latin1');
}

/** True when the four names stay distinct after the 106-byte cut (else the binds would collide). */
export function socketNamesDistinct(base: string): boolean {
  return new Set(Object.values(socketNames(base)).map(abstractKey)).size === 4;
}

/** The control file and the two server sockets, made where the client was accepted. Numbers and strings only. */
export interface SocketFiles {
  kind: 'socket';
  controlFd: number;
  /** Bound to <base>-request: receives requests, sends responses. */
  requestFd: number;
  /** Bound to <base>-event-tx: sends events. */
  eventFd: number;
  base: string;
  bufferSize: number;
  responsePaths: { request: string; response: string; event: string };
}

/** §11.2 steps 1–4: control file (zeroed when opened), then the request and event sockets. */
export function createSocketFiles(dir: ConnectionDirectory, serviceName: string, maxMsgSize: number, owner: FileOwner): SocketFiles {
  const base = `${dir.path}/qb-${serviceName}`;
  if (!socketNamesDistinct(base)) {
    throw new QbError(
      -ENAMETOOLONG,
      `the socket names of ${base} collide once cut to ${ABSTRACT_NAME_MAX} bytes; use a shorter service name`,
    );
  }
  const names = socketNames(base);
  const controlName = `qb-control-${serviceName}`;
  const controlFd = dir.createFile(controlName, CONTROL_FILE_SIZE, owner);
  const opened: number[] = [controlFd];
  try {
    // SO_PASSCRED on the request socket: every request carries its sender's credentials.
    const requestFd = native.dgramOpen(names.request, maxMsgSize, true);
    opened.push(requestFd);
    const eventFd = native.dgramOpen(names.eventTx, maxMsgSize, false);
    const controlPath = `${dir.path}/${controlName}`;
    return {
      kind: 'socket',
      controlFd,
      requestFd,
      eventFd,
      base,
      bufferSize: maxMsgSize,
      responsePaths: { request: controlPath, response: base, event: '' },
    };
  } catch (error) {
    for (const fd of opened) native.close(fd);
    throw error;
  }
}

/**
 * event_q_length read from another thread (worker mode's main thread): its own
 * mapping of the control file, clamped as the transport's (the client writes it).
 */
export function socketEventQueueProbe(files: SocketFiles): MappedProbe<number> {
  const buffer = native.mapShared(files.controlFd, CONTROL_FILE_SIZE);
  const control = new Int32Array(buffer);
  return mappedProbe(buffer, () => Math.max(0, Atomics.load(control, ControlWord.EVENT_SENT)));
}

/** For a connection that ends before its transport was opened. */
export function discardSocketFiles(files: SocketFiles): void {
  for (const fd of [files.controlFd, files.requestFd, files.eventFd]) native.close(fd);
}

const DEAD = PollEvent.HUP | PollEvent.ERR | PollEvent.NVAL;
/** Datagrams from strangers dropped per call before the rest waits for the next round. */
const FOREIGN_PER_CALL = 64;

/** One receive buffer per thread, grown to the largest buffer size served: requests are handled one at a time. */
let receiveBuffer = new Uint8Array(0);
let receiveWords = new Int32Array(0);
const credentials = new Int32Array(4);
const drain = new Uint8Array(256);

function bufferFor(size: number): Uint8Array {
  if (receiveBuffer.byteLength < size) {
    receiveBuffer = new Uint8Array(Math.ceil(size / 8) * 8);
    receiveWords = new Int32Array(receiveBuffer.buffer);
  }
  return receiveBuffer;
}

export class SocketTransport implements Transport {
  readonly type = TransportType.SOCKET;
  readonly responsePaths: { request: string; response: string; event: string };
  private readonly control: Int32Array;
  private readonly names: ReturnType<typeof socketNames>;
  private readonly bufferSize: number;
  private requestFd: number;
  private eventFd: number;
  /** pid, uid, gid of the client (SO_PEERCRED of the setup socket). */
  private readonly client = new Int32Array(3);
  private responseConnected = false;
  private eventConnected = false;
  private watching = false;
  private closed = false;
  private released = false;
  private flowControl = 0;
  /** The next receive is the first of a round (libqb counts a retry only when that one finds nothing). */
  private firstOfRound = false;
  private buffer: Uint8Array;
  private words: Int32Array;
  /** awaitRoom: the channels still waited for, those watched for POLLOUT, and whom to tell. */
  private roomWanted = 0;
  private watchingOut = 0;
  private roomReady: (() => void) | undefined;
  /** For channels whose client socket is not bound yet (nothing to poll for POLLOUT), and empty waits. */
  private roomPoll: RoomPoll | undefined;
  requestId = 0;
  requestSize = 0;
  requestCapacity = 0;

  constructor(
    private readonly host: TransportHost,
    private readonly setupFd: number,
    files: SocketFiles,
  ) {
    this.requestFd = files.requestFd;
    this.eventFd = files.eventFd;
    let control: SharedArrayBuffer | undefined;
    try {
      control = native.mapShared(files.controlFd, CONTROL_FILE_SIZE);
      this.control = new Int32Array(control);
      const rc = native.peerCredentials(setupFd, this.client);
      if (rc < 0) throw new QbError(rc, 'cannot read the credentials of the setup socket');
    } catch (error) {
      if (control !== undefined) native.releaseMapping(control);
      native.close(files.requestFd);
      native.close(files.eventFd);
      throw error;
    } finally {
      native.close(files.controlFd);
    }
    for (let i = 0; i < CONTROL_FILE_SIZE / 4; i++) Atomics.store(this.control, i, 0);
    this.names = socketNames(files.base);
    this.bufferSize = files.bufferSize;
    this.responsePaths = files.responsePaths;
    this.buffer = bufferFor(files.bufferSize);
    this.words = receiveWords;
  }

  private get requestEvents(): number {
    const out = this.watchingOut & ChannelBit.RESPONSE ? PollEvent.OUT : 0;
    return this.flowControl !== 0 ? out : PollEvent.IN | out;
  }

  /** Level-triggered: datagrams a round leaves (budget, back-off) bring us back. */
  private readonly onRequests = (_fd: number, revents: number): number => {
    if (revents & (PollEvent.ERR | PollEvent.NVAL)) {
      this.host.hangUp('request socket error');
      return 0;
    }
    if (revents & PollEvent.OUT) this.gotRoom(ChannelBit.RESPONSE);
    if (revents & PollEvent.IN && !this.closed) {
      // Any datagram, a stranger's too, is a chance to connect to the client once it has bound its sockets:
      // from then on the kernel refuses strangers and no longer holds the client to max_dgram_qlen.
      if (!this.responseConnected) this.connect('response');
      if (!this.eventConnected) this.connect('event');
      if (this.flowControl !== 0) return 0;
      this.firstOfRound = true;
      this.host.serveRound();
    }
    return 0;
  };

  /** Liveness (§11.6): EOF or HUP on the setup socket is the client going away; bytes are discarded. */
  private readonly onSetup = (_fd: number, revents: number): number => {
    if (revents & DEAD) {
      this.host.hangUp(revents & PollEvent.HUP ? 'client closed the connection' : 'setup socket error');
      return 0;
    }
    for (;;) {
      const n = native.recv(this.setupFd, drain);
      if (n > 0) continue;
      if (n === -EAGAIN) return 0;
      this.host.hangUp(n === 0 ? 'client closed the connection' : `setup socket recv failed (${n})`);
      return 0;
    }
  };

  watch(): number {
    if (this.closed) return 0;
    const poll = this.host.poll;
    if (this.watching) {
      const rc = poll.dispatchMod(this.host.priority, this.requestFd, this.requestEvents, this.onRequests);
      return rc < 0 ? rc : poll.dispatchMod(this.host.priority, this.setupFd, PollEvent.IN, this.onSetup);
    }
    let rc = poll.dispatchAdd(this.host.priority, this.requestFd, this.requestEvents, this.onRequests);
    if (rc === 0) {
      rc = poll.dispatchAdd(this.host.priority, this.setupFd, PollEvent.IN, this.onSetup);
      if (rc < 0) poll.dispatchDel(this.requestFd);
    }
    this.watching = rc === 0;
    return rc;
  }

  /** Connects a server socket to the client's (connect-on-first-send, or on the first verified request). */
  private connect(which: 'response' | 'event'): boolean {
    if (which === 'response') {
      this.responseConnected ||= native.dgramConnect(this.requestFd, this.names.response, this.bufferSize) === 0;
      return this.responseConnected;
    }
    this.eventConnected ||= native.dgramConnect(this.eventFd, this.names.event, this.bufferSize) === 0;
    return this.eventConnected;
  }

  private sendDatagram(fd: number, counter: number, parts: readonly Uint8Array[]): number {
    Atomics.add(this.control, counter, 1);
    const rc = native.sendv(fd, parts);
    if (rc < 0) Atomics.sub(this.control, counter, 1);
    // The client's socket is gone: that is a disconnect, not a message error.
    return rc === -ECONNREFUSED ? -ENOTCONN : rc;
  }

  /** A datagram wakes its reader by itself: nothing is held. */
  send(channel: Channel, parts: readonly Uint8Array[], _length: number): number {
    if (this.closed) return -ENOTCONN;
    const which = channel === Channel.RESPONSE ? 'response' : 'event';
    // Not bound yet (the client is still attaching): a transient condition, as a full channel.
    if (!this.connect(which)) return -EAGAIN;
    return channel === Channel.RESPONSE
      ? this.sendDatagram(this.requestFd, ControlWord.RESPONSE_SENT, parts)
      : this.sendDatagram(this.eventFd, ControlWord.EVENT_SENT, parts);
  }

  /**
   * Receives the next datagram from the client: 1 (requestId/requestSize/
   * requestCapacity set; capacity < 16 is left to the connection to refuse),
   * 0 when none is queued (-EAGAIN for the first receive of a round: readable,
   * yet nothing for us), or -errno for a datagram that breaks the protocol
   * (truncated: -EMSGSIZE; hdr.size ≠ length: -EBADMSG).
   */
  peek(): number {
    if (this.closed) return 0;
    const first = this.firstOfRound;
    this.firstOfRound = false;
    for (let dropped = 0; dropped < FOREIGN_PER_CALL; dropped++) {
      const n = native.dgramRecv(this.requestFd, this.buffer, credentials);
      if (n === -EAGAIN) return first && dropped === 0 ? -EAGAIN : 0;
      if (n < 0) return n;
      const c = this.client;
      if (credentials[3] !== 1 || credentials[0] !== c[0] || credentials[1] !== c[1] || credentials[2] !== c[2]) {
        this.host.log?.('debug', 'fault', `dropped a ${n}-byte datagram from pid ${credentials[0]}: not the client (pid ${c[0]})`, {
          sender: credentials[0],
        });
        continue;
      }
      // The client has attached both its sockets: from now on the kernel refuses other senders.
      if (!this.responseConnected) this.connect('response');
      if (!this.eventConnected) this.connect('event');
      Atomics.sub(this.control, ControlWord.REQUEST_SENT, 1);
      this.requestCapacity = n;
      if (n > this.bufferSize) return -EMSGSIZE;
      if (n >= REQUEST_HEADER_SIZE) {
        this.requestId = this.words[0]!;
        this.requestSize = this.words[2]!;
        if (this.requestSize !== n) return -EBADMSG;
      }
      return 1;
    }
    return 0; // the rest waits for the next round: the socket stays readable
  }

  requestView(length: number): Uint8Array {
    return this.buffer.subarray(0, length);
  }

  reclaim(): number {
    return 0;
  }

  flowControlSet(value: number): void {
    if (this.closed) return;
    Atomics.store(this.control, ControlWord.FLOW_CONTROL, value);
    const wasOn = this.flowControl !== 0;
    this.flowControl = value;
    if (wasOn !== (value !== 0) && this.watching) this.watch();
  }

  /**
   * A channel has room when the kernel says its socket is writable (POLLOUT on a
   * connected datagram socket: the client's receive queue has room). A channel
   * whose client socket is not bound yet is first polled until it connects.
   */
  awaitRoom(channels: number, ready: () => void): void {
    if (this.closed) return;
    this.cancelRoom();
    this.roomWanted = channels;
    this.roomReady = ready;
    const unbound = () =>
      ((channels & ChannelBit.RESPONSE) !== 0 && !this.connect('response')) ||
      ((channels & ChannelBit.EVENT) !== 0 && !this.connect('event'));
    if (channels === 0 || unbound()) {
      (this.roomPoll ??= new RoomPoll(() => !unbound())).start(() => (channels === 0 ? this.roomFound() : this.watchRoom()));
      return;
    }
    this.watchRoom();
  }

  private watchRoom(): void {
    this.watchingOut = this.roomWanted;
    if (
      this.watchingOut & ChannelBit.EVENT &&
      this.host.poll.dispatchAdd(this.host.priority, this.eventFd, PollEvent.OUT, this.onEventRoom) < 0
    ) {
      this.watchingOut &= ~ChannelBit.EVENT;
      this.gotRoom(ChannelBit.EVENT); // cannot watch it: let the application try (and learn EAGAIN again)
    }
    if (this.watchingOut & ChannelBit.RESPONSE && this.watching) this.watch();
  }

  private readonly onEventRoom = (_fd: number, revents: number): number => {
    if (revents & (PollEvent.ERR | PollEvent.NVAL)) this.host.hangUp('event socket error');
    else if (revents & PollEvent.OUT) this.gotRoom(ChannelBit.EVENT);
    return 0;
  };

  private gotRoom(bit: number): void {
    if (this.watchingOut & bit) {
      this.watchingOut &= ~bit;
      if (bit === ChannelBit.EVENT) this.host.poll.dispatchDel(this.eventFd);
      else if (this.watching) this.watch();
    }
    this.roomWanted &= ~bit;
    if (this.roomWanted === 0 && this.roomReady !== undefined) this.roomFound();
  }

  private roomFound(): void {
    const ready = this.roomReady;
    this.roomReady = undefined;
    ready?.();
  }

  private cancelRoom(): void {
    this.roomPoll?.cancel();
    this.roomReady = undefined;
    this.roomWanted = 0;
    if (this.watchingOut & ChannelBit.EVENT) this.host.poll.dispatchDel(this.eventFd);
    const wasResponse = this.watchingOut & ChannelBit.RESPONSE;
    this.watchingOut = 0;
    if (wasResponse && this.watching && !this.closed) this.watch();
  }

  get eventQueueLength(): number {
    return this.closed ? 0 : Math.max(0, Atomics.load(this.control, ControlWord.EVENT_SENT));
  }

  get mappings(): readonly ArrayBufferView[] {
    return [this.control];
  }

  /** §11.8: stop watching, close the request and event sockets (the connection closes the setup socket). */
  stop(): void {
    if (this.closed) return;
    this.closed = true;
    this.cancelRoom();
    if (this.watching) {
      this.host.poll.dispatchDel(this.requestFd);
      this.host.poll.dispatchDel(this.setupFd);
    }
    this.watching = false;
    native.close(this.requestFd);
    native.close(this.eventFd);
    this.requestFd = this.eventFd = -1;
  }

  /** The control file is unlinked with the connection directory; our mapping's memory goes back now (reads 0 after). */
  close(): void {
    this.stop();
    if (this.released) return;
    this.released = true;
    native.releaseMapping(this.control.buffer as SharedArrayBuffer);
  }
}
