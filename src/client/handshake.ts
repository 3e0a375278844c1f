// The client half of the connection handshake (docs/wire.md §4.4,
// client steps 1–8): connect the setup socket, send the 24-byte request with
// credentials enabled, read the 12328-byte response and the server's
// credentials, without blocking the event loop.
import { existsSync } from 'node:fs';
import { LoopPriority, PollEvent } from '../constants.js';
import { EAGAIN, ENOTCONN, ETIMEDOUT } from '../errno.js';
import { abortError, QbError, validateSignal, type AbortError } from '../errors.js';
import {
  buildConnectionRequest,
  CONNECTION_REQUEST_SIZE,
  CONNECTION_RESPONSE_SIZE,
  parseConnectionResponse,
  TransportType,
} from '../handshake.js';
import { MessageId } from '../headers.js';
import { native } from '../native.js';
import { FORCE_FILESYSTEM_SOCKETS } from '../options.js';
import { clientLoop, hold, release } from './loop.js';

export interface ConnectOptions {
  /** Give up (ETIMEDOUT) when the server has not answered by then. Default: wait as long as it takes, as libqb. */
  timeoutMs?: number;
  /** Connect to SOCKETDIR/<name> instead of the abstract name. Default: as libqb, whether /etc/libqb/force-filesystem-sockets exists. */
  filesystemSockets?: boolean;
  /** libqb's SOCKETDIR (Debian: /tmp). */
  socketDir?: string;
  /** Aborting it gives up the connect: it rejects with an AbortError and nothing is left open. */
  signal?: AbortSignal;
}

/** What the server answered, and who it is. */
export interface HandshakeResult {
  setupFd: number;
  type: TransportType;
  bufferSize: number;
  /** SHM: the three ring base paths. SOCKET: control-file path, socket base name, ''. */
  request: string;
  response: string;
  event: string;
  server: { pid: number; uid: number; gid: number };
}

/** Steps 1–3: the setup socket, connected, with SO_PASSCRED, the request sent. */
function openSetupSocket(name: string, maxMsgSize: number, options: ConnectOptions): number {
  const filesystem = options.filesystemSockets ?? existsSync(FORCE_FILESYSTEM_SOCKETS);
  const address = filesystem ? `${options.socketDir ?? '/tmp'}/${name}` : name;
  const fd = native.connectStream(address, !filesystem);
  if (fd < 0) throw new QbError(fd, `cannot connect to the service ${filesystem ? address : `@${name}`}`);
  native.setPassCred(fd, true);
  const sent = native.send(fd, buildConnectionRequest(maxMsgSize));
  if (sent !== CONNECTION_REQUEST_SIZE) {
    native.close(fd);
    throw new QbError(sent < 0 ? sent : -EAGAIN, `cannot send the connection request to ${name}`);
  }
  return fd;
}

/** Steps 4–7: waits (in the loop) for the whole response; split arrivals are fine. */
function readResponse(
  fd: number,
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<{ bytes: Uint8Array; credentials: Int32Array }> {
  const bytes = new Uint8Array(CONNECTION_RESPONSE_SIZE);
  const credentials = new Int32Array(4);
  const scratch = new Int32Array(4);
  let received = 0;
  const loop = clientLoop();
  return new Promise((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const onAbort = () => finish(abortError(signal!, 'connect()'));
    const finish = (error?: QbError | AbortError) => {
      loop.dispatchDel(fd);
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      release();
      if (error) reject(error);
      else resolve({ bytes, credentials });
    };
    const onReady = (_fd: number, revents: number): number => {
      for (;;) {
        const n = native.recvCredentials(fd, bytes.subarray(received), received === 0 ? credentials : scratch);
        if (n === -EAGAIN) break;
        if (n <= 0) return (finish(new QbError(n === 0 ? -ENOTCONN : n, 'the server closed the connection during the handshake')), 0);
        received += n;
        if (received === CONNECTION_RESPONSE_SIZE) return (finish(), 0);
      }
      if (revents & (PollEvent.HUP | PollEvent.ERR))
        finish(new QbError(-ENOTCONN, 'the server closed the connection during the handshake'));
      return 0;
    };
    hold();
    const rc = loop.dispatchAdd(LoopPriority.HIGH, fd, PollEvent.IN, onReady);
    if (rc < 0) {
      release();
      return reject(new QbError(rc, 'cannot watch the setup socket'));
    }
    if (timeoutMs >= 0)
      timer = setTimeout(() => finish(new QbError(-ETIMEDOUT, `no connection response within ${timeoutMs} ms`)), timeoutMs);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** The whole handshake; rejects with the server's errno when it refuses (as qb_ipcc_connect's errno). */
export async function handshake(name: string, maxMsgSize: number, options: ConnectOptions): Promise<HandshakeResult> {
  const signal = validateSignal(options.signal, 'options.signal');
  if (signal?.aborted) throw abortError(signal, 'connect()');
  const fd = openSetupSocket(name, maxMsgSize, options);
  let response: { bytes: Uint8Array; credentials: Int32Array };
  try {
    response = await readResponse(fd, options.timeoutMs ?? -1, signal);
  } catch (error) {
    native.close(fd);
    throw error;
  }
  native.setPassCred(fd, false);
  const { credentials } = response;
  const r = parseConnectionResponse(response.bytes);
  if (r.error !== 0 || r.id !== MessageId.AUTHENTICATE) {
    native.shutdown(fd);
    native.close(fd);
    const errno = r.error < 0 ? r.error : -ENOTCONN;
    throw new QbError(errno, `the service ${name} refused the connection`);
  }
  return {
    setupFd: fd,
    type: r.type,
    bufferSize: r.maxMsgSize,
    request: r.request,
    response: r.response,
    event: r.event,
    server:
      credentials[3] === 1 ? { pid: credentials[0]!, uid: credentials[1]! >>> 0, gid: credentials[2]! >>> 0 } : { pid: 0, uid: 0, gid: 0 },
  };
}
