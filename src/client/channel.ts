// What the client needs from a transport: non-blocking send and receive, and
// what to wait on when nothing is there. The Client owns the waiting, the
// queues and the libqb rules common to both transports.
import type { IpcType } from '../constants.js';

export interface Channel {
  readonly type: IpcType.SHM | IpcType.SOCKET;
  /** qb_ipcc_fd_get: SHM the setup socket (event doorbells), SOCKET the event socket. */
  readonly pollFd: number;
  /** The fd that becomes readable when a response may be there, or undefined: wait on `responseSemaphore`. */
  readonly responseFd: number | undefined;
  /** SHM: the response ring's header words; the semaphore's 64-bit word starts at `responseSemaphoreIndex`. */
  readonly responseSemaphore: Int32Array | undefined;
  readonly responseSemaphoreIndex: number;
  /** The fd that becomes readable when an event may be there. */
  readonly eventFd: number;
  /** Events the setup socket must be watched for beyond IN and HUP (SHM: POLLOUT while doorbells are owed). */
  readonly setupInterest: number;
  /** The flow-control value the server wrote, or -ENOTCONN when the server has closed the channel. */
  flowControl(): number;
  /** One message: bytes sent or -errno (-EAGAIN: full, retry). */
  send(parts: readonly Uint8Array[], length: number, doorbell: number): number;
  /** The next response, -EAGAIN when none is there, or -errno. */
  takeResponse(): Uint8Array | number;
  /** The next event, -EAGAIN when none is there, or -errno. */
  takeEvent(): Uint8Array | number;
  /**
   * Blocks the calling thread until a response may be there: 0, -ETIMEDOUT,
   * or -ENOTCONN when the setup socket shows the server gone (SOCKET only; SHM
   * callers check liveness between slices).
   */
  waitResponseSync(timeoutMs: number): number;
  /** The setup socket is readable/writable: pay owed doorbells. Returns -ENOTCONN at EOF. */
  setupReady(revents: number): number;
  /** Closes everything; `serverGone`: the server died, clean up its files as libqb's client does. */
  close(serverGone: boolean): void;
}
