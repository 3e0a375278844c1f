// What a connection needs from its transport (SHM today; SOCKET later). The
// connection owns the protocol rules common to both: state, validation of
// request headers, callbacks, stats.
import type { LoopPriority } from '../constants.js';
import type { TransportType } from '../handshake.js';
import type { PollHandlers } from '../poll.js';

/** The connection side of a transport: where readiness and hang-ups go. */
export interface TransportHost {
  readonly poll: PollHandlers;
  readonly priority: LoopPriority;
  /** Requests may be waiting: process them now. */
  requestsReady(): void;
  /** Requests are waiting but their doorbells were read: schedule a round. */
  requestsPending(): void;
  /** The peer went away or broke the protocol. */
  hangUp(reason: string): void;
}

export interface Transport {
  readonly type: TransportType;
  /** The three strings of the handshake response. */
  readonly responsePaths: { request: string; response: string; event: string };
  /** Starts watching the transport's fds. */
  start(): void;
  /** Re-registers with the poll handlers after a priority change. */
  reprioritise(): void;
  sendResponse(parts: readonly Uint8Array[], length: number): number;
  /**
   * A round of requests begins: what would wake the client from now on (a response's
   * futex wake, an event's doorbell byte) is held, so that a batch wakes it once.
   */
  holdClientWakes(): void;
  /** Wakes the client for everything held so far, still holding: true when there was any. */
  wakeClientSoFar(): boolean;
  /** The round ended: the client is woken for everything held, and holding stops. */
  wakeClient(): void;
  sendEvent(parts: readonly Uint8Array[], length: number): number;
  /** 1 when a request is ready (request/requestId/requestSize set), 0 none, <0 corrupt. */
  nextRequest(): number;
  readonly requestId: number;
  readonly requestSize: number;
  /** Bytes of the chunk or datagram that holds the current request. */
  readonly requestCapacity: number;
  /** A view of `length` bytes of the current request, valid until releaseRequest(). */
  requestView(length: number): Uint8Array;
  releaseRequest(): number;
  readonly hasPendingRequests: boolean;
  setFlowControl(value: number): void;
  readonly eventQueueLength: number;
  /** Views over every file the client can truncate (ring headers and data, the control file). */
  readonly mappings: readonly ArrayBufferView[];
  /** Stops watching its fds and closes sockets of its own (not the setup socket). */
  stop(): void;
  /** Last reference gone: rings closed, files removed. */
  destroy(): void;
}
