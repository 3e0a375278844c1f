// The client side of the SOCKET transport (docs/wire.md §11.2
// client attach, §11.3, §11.5): the control file, a socket bound to
// <base>-response connected to <base>-request, one bound to <base>-event
// connected to <base>-event-tx. One datagram per message.
import path from 'node:path';
import { IpcType, PollEvent } from '../constants.js';
import { EAGAIN, ECONNREFUSED, EINTR, EINVAL, EMSGSIZE, ENOTCONN, ETIMEDOUT } from '../errno.js';
import { QbError } from '../errors.js';
import { native } from '../native.js';
import { ringDataSize } from '../shm/layout.js';
import { CONTROL_FILE_SIZE, ControlWord, socketNames } from '../transport/socket.js';
import type { Channel } from './channel.js';
import { mapExisting } from './map.js';

const AT_FDCWD = -100;

export class SocketChannel implements Channel {
  readonly type = IpcType.SOCKET;
  readonly responseSemaphore = undefined;
  readonly responseSemaphoreIndex = 0;
  readonly setupInterest = 0;
  private readonly control: Int32Array;
  private readonly requestFd: number;
  readonly eventFd: number;
  /** Holds any message a libqb SHM ring could carry; a larger datagram is reported as EMSGSIZE. */
  private readonly buffer: Uint8Array;

  constructor(
    private readonly setupFd: number,
    private readonly controlPath: string,
    base: string,
    bufferSize: number,
  ) {
    // The control file must sit beside the sockets' base, in a qb- directory: we unlink it at disconnect.
    if (
      path.dirname(controlPath) !== path.dirname(base) ||
      !path.basename(controlPath).startsWith('qb-control-') ||
      !path.basename(path.dirname(base)).startsWith('qb-')
    ) {
      throw new QbError(-EINVAL, `unexpected SOCKET transport paths from the server: ${controlPath}, ${base}`);
    }
    const names = socketNames(base);
    this.control = new Int32Array(mapExisting(controlPath, CONTROL_FILE_SIZE));
    const opened: number[] = [];
    try {
      opened.push(native.dgramOpen(names.response, bufferSize, false));
      connectOrThrow(opened[0]!, names.request, bufferSize);
      opened.push(native.dgramOpen(names.event, bufferSize, false));
      connectOrThrow(opened[1]!, names.eventTx, bufferSize);
    } catch (error) {
      for (const fd of opened) native.close(fd);
      throw error;
    }
    [this.requestFd, this.eventFd] = opened as [number, number];
    this.buffer = new Uint8Array(ringDataSize(bufferSize));
  }

  get pollFd(): number {
    return this.eventFd;
  }

  get responseFd(): number {
    return this.requestFd;
  }

  flowControl(): number {
    return Atomics.load(this.control, ControlWord.FLOW_CONTROL);
  }

  send(parts: readonly Uint8Array[], _length: number): number {
    Atomics.add(this.control, ControlWord.REQUEST_SENT, 1);
    const rc = native.sendv(this.requestFd, parts);
    if (rc < 0) Atomics.sub(this.control, ControlWord.REQUEST_SENT, 1);
    return rc === -ECONNREFUSED ? -ENOTCONN : rc;
  }

  private take(fd: number, counter: number): Uint8Array | number {
    const n = native.dgramRecv(fd, this.buffer);
    if (n < 0) return n === -ECONNREFUSED ? -ENOTCONN : n;
    if (n === 0) return -ENOTCONN; // as libqb: an empty datagram reads as a disconnect
    Atomics.sub(this.control, counter, 1);
    if (n > this.buffer.byteLength) return -EMSGSIZE; // truncated: never read past our buffer
    return this.buffer.slice(0, n);
  }

  takeResponse(): Uint8Array | number {
    return this.take(this.requestFd, ControlWord.RESPONSE_SENT);
  }

  takeEvent(): Uint8Array | number {
    return this.take(this.eventFd, ControlWord.EVENT_SENT);
  }

  waitResponseSync(timeoutMs: number): number {
    const rc = native.pollTwo(this.requestFd, PollEvent.IN, this.setupFd, 0, timeoutMs);
    if (rc < 0) return rc === -EINTR ? 0 : rc;
    if ((rc >>> 16) & (PollEvent.HUP | PollEvent.ERR | PollEvent.NVAL)) return -ENOTCONN;
    return rc === 0 ? -ETIMEDOUT : 0;
  }

  setupReady(): number {
    return 0;
  }

  /** §10.5 step 4: the client removes the control file and the directory, then closes its sockets. */
  close(): void {
    native.unlinkAt(AT_FDCWD, this.controlPath, false);
    native.unlinkAt(AT_FDCWD, path.dirname(this.controlPath), true);
    native.close(this.eventFd);
    native.close(this.requestFd);
  }
}

function connectOrThrow(fd: number, name: string, bufferSize: number): void {
  const rc = native.dgramConnect(fd, name, bufferSize);
  if (rc < 0) throw new QbError(rc === -EAGAIN ? -ENOTCONN : rc, `cannot connect to @${name}`);
}
