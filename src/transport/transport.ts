// What a connection needs from its transport, modelled on libqb's qb_ipcs_funcs:
// peek and reclaim a request, send a response or an event, set flow control,
// read the event queue length — plus watching its fds and closing. The
// connection owns the protocol rules common to both transports (state,
// request-header checks, callbacks, stats); the transport owns how and when the
// client is woken, including the batching of wakes within a round.
import type { LoopPriority } from '../constants.js';
import type { TransportType } from '../handshake.js';
import type { LogEvent, LogLevel } from '../logger.js';
import type { PollHandlers } from '../poll.js';

/** The connection side of a transport: where readiness and hang-ups go. */
export interface TransportHost {
  readonly poll: PollHandlers;
  readonly priority: LoopPriority;
  /** options.yieldToClients (src/cpu-handoff.ts). */
  readonly yieldToClients: boolean;
  /**
   * Requests may be waiting: handle a round of them (peek … reclaim) and return
   * how many were handled, or -1 when it did not look (the connection is not
   * serving). The transport holds the client's wakes around it.
   */
  serveRound(): number;
  /** The peer went away or broke the protocol. */
  hangUp(reason: string): void;
  /** A log point about this connection (options.logger). */
  log?(level: LogLevel, event: LogEvent, message: string, extra?: object): void;
}

export const Channel = { RESPONSE: 0, EVENT: 1 } as const;
export type Channel = (typeof Channel)[keyof typeof Channel];

/** Channels as bits of a mask (awaitRoom). */
export const ChannelBit = { RESPONSE: 1, EVENT: 2 } as const;

export interface Transport {
  readonly type: TransportType;
  /** The three strings of the handshake response. */
  readonly responsePaths: { request: string; response: string; event: string };
  /** Views over every file the client can truncate (ring headers and data, the control file). */
  readonly mappings: readonly ArrayBufferView[];
  /** Set by peek(): the current request's header id and size, and the bytes of its chunk or datagram. */
  readonly requestId: number;
  readonly requestSize: number;
  readonly requestCapacity: number;

  /** (Re)registers its fds with the host's poll handlers, at the host's priority: at start and when it changes. */
  watch(): number;
  /**
   * The next request: 1 (requestId/requestSize/requestCapacity set), 0 when there
   * is none, -EAGAIN when a receive that should have found one did not (a recv
   * retry, as libqb counts it), or another -errno for a message that breaks the protocol.
   */
  peek(): number;
  /** A view of `length` bytes of the current request, valid until reclaim(). */
  requestView(length: number): Uint8Array;
  /** Releases the current request; <0 when the client changed it meanwhile. */
  reclaim(): number;
  /** One message of `length` bytes made of `parts`: `length`, or -errno (-EAGAIN: no room now). */
  send(channel: Channel, parts: readonly Uint8Array[], length: number): number;
  flowControlSet(value: number): void;
  /**
   * Calls `ready` once every channel in `channels` (ChannelBit mask) has room
   * again, from a later turn of the loop (at once, then, for an empty mask).
   * One wait at a time: a second call before `ready` replaces the first. Never
   * called after stop().
   */
  awaitRoom(channels: number, ready: () => void): void;
  /** Events posted and not yet taken by the client. */
  readonly eventQueueLength: number;
  /** Disconnect: stops watching and sending, closes its sockets (not the setup socket). Idempotent. */
  stop(): void;
  /** Destroy: stop(), and the rings or mappings are released. Idempotent. */
  close(): void;
}
