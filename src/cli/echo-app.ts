// The echo application `qbipc serve` runs and the benchmark measures: the
// protocol of bench/c/qb-echo-server.c, so any libqb client written for one
// works with the other.
//
//   request  = 16-byte request header {id, size} + payload
//   id 1 ECHO   → id 1, error 0, the payload (ring to ring, no copy between)
//   id 2 EVENTS → payload {u32 count, u32 len}: a bare response (id 2), then
//                 `count` events: id 3, error k, size 24 + len, payload byte
//                 j = (k + j) & 0xff. A new EVENTS request replaces the
//                 events still pending on that connection.
//   other ids   → same id, size 24, error -EINVAL
//
// As the C server, nothing is lost when a channel is full: a response that does
// not fit is copied to the connection's backlog (sent, in order, before any
// later response) and events wait. Unlike it, the memory this takes is bounded
// whatever the clients do: a connection whose response did not fit is paused
// (conn.pause(): flow control, its requests are no longer read) until the
// client has made room (conn.onDrain), so each one holds at most the response
// being answered; and all of them together at most QUEUE_LIMIT bytes per
// serving thread — a client whose response would pass it is disconnected.
//
// The default export is the worker-module form (a function of workerData
// returning the handlers), so the same code serves in-thread and in workers.
import { EAGAIN, EINVAL, EMSGSIZE } from '../errno.js';
import { REQUEST_HEADER_SIZE, RESPONSE_HEADER_SIZE, makeResponse, requestId, writeResponseHeader } from '../headers.js';
import type { Connection, ConnectionHandlers } from '../connection.js';

export const ID_ECHO = 1;
export const ID_EVENTS = 2;
export const ID_EVENT = 3;

/** What the responses queued on one thread may take, all connections together. */
export const QUEUE_LIMIT = 32 * 1024 * 1024;

interface Pending {
  /** Responses that did not fit, oldest first (copies: the request view dies with msgProcess). */
  backlog: Uint8Array[];
  backlogBytes: number;
  eventNext: number;
  eventTotal: number;
  eventLength: number;
  /** An onDrain callback is registered. */
  waiting: boolean;
}

/** Bytes queued by every connection this thread serves. */
let queuedBytes = 0;

export function echoHandlers(): Required<Pick<ConnectionHandlers, 'msgProcess' | 'connectionClosed'>> & ConnectionHandlers {
  // One array per shape, never resized: writing an array's length goes to V8's
  // runtime (a C++ call, ~7% of the server's samples when it was done per message).
  const header = new Uint8Array(RESPONSE_HEADER_SIZE);
  const headerOnly: Uint8Array[] = [header];
  const headerAndPayload: Uint8Array[] = [header, header];
  const eventHeader = new Uint8Array(RESPONSE_HEADER_SIZE);
  const eventHeaderOnly: Uint8Array[] = [eventHeader];
  const eventAndPayload: Uint8Array[] = [eventHeader, eventHeader];
  let pattern = new Uint8Array(0);

  const state = (conn: Connection): Pending => {
    let p = conn.context as Pending | undefined;
    if (p === undefined) {
      p = { backlog: [], backlogBytes: 0, eventNext: 0, eventTotal: 0, eventLength: 0, waiting: false };
      conn.context = p;
    }
    return p;
  };

  const release = (p: Pending): void => {
    queuedBytes -= p.backlogBytes;
    p.backlog.length = 0;
    p.backlogBytes = 0;
  };

  /** Calls flush once the client has made room; one callback per connection at a time. */
  const whenDrained = (conn: Connection, p: Pending): void => {
    if (p.waiting) return;
    p.waiting = true;
    conn.onDrain(() => {
      p.waiting = false;
      flush(conn, p);
    });
  };

  /** Sends what is pending; what still does not fit waits for the client to make room. */
  const flush = (conn: Connection, p: Pending): void => {
    while (p.backlog.length > 0) {
      const rc = conn.responseSend(p.backlog[0]!);
      if (rc === -EAGAIN) break;
      const sent = p.backlog.shift()!.byteLength; // sent, or the client is gone: done with it either way
      p.backlogBytes -= sent;
      queuedBytes -= sent;
    }
    if (p.backlog.length === 0) {
      conn.resume();
      if (p.eventNext < p.eventTotal) sendEvents(conn, p);
    }
    if (p.backlog.length > 0 || p.eventNext < p.eventTotal) whenDrained(conn, p);
  };

  const sendEvents = (conn: Connection, p: Pending): void => {
    const len = p.eventLength;
    writeResponseHeader(eventHeader, { id: ID_EVENT, size: RESPONSE_HEADER_SIZE + len, error: 0 });
    const eventParts = len > 0 ? eventAndPayload : eventHeaderOnly;
    while (p.eventNext < p.eventTotal) {
      const k = p.eventNext;
      // the error field carries k (little-endian i32 at offset 16)
      eventHeader[16] = k;
      eventHeader[17] = k >>> 8;
      eventHeader[18] = k >>> 16;
      eventHeader[19] = k >>> 24;
      if (len > 0) eventAndPayload[1] = pattern.subarray(k & 0xff, (k & 0xff) + len);
      const rc = conn.eventSendv(eventParts);
      if (rc === -EAGAIN) break;
      if (rc < 0) {
        p.eventTotal = p.eventNext; // the client is gone
        break;
      }
      p.eventNext++;
    }
  };

  /** Sends a response now, or queues a copy behind older ones and stops reading this client until it has room. */
  const respond = (conn: Connection, iov: Uint8Array[]): void => {
    const p = conn.context as Pending | undefined;
    if (p === undefined || p.backlog.length === 0) {
      if (conn.responseSendv(iov) !== -EAGAIN) return;
    }
    const total = iov.reduce((n, b) => n + b.byteLength, 0);
    const q = state(conn);
    if (queuedBytes + total > QUEUE_LIMIT) {
      conn.disconnect(); // its response would pass the thread's bound: as the C server drops a client that lets too much pile up
      return;
    }
    const copy = new Uint8Array(total);
    let at = 0;
    for (const b of iov) {
      copy.set(b, at);
      at += b.byteLength;
    }
    q.backlog.push(copy);
    q.backlogBytes += total;
    queuedBytes += total;
    conn.pause();
    whenDrained(conn, q);
  };

  const answer = (conn: Connection, id: number, error: number) => respond(conn, [makeResponse(id, error)]);

  return {
    msgProcess(conn, request) {
      if (request.byteLength < REQUEST_HEADER_SIZE) return void answer(conn, 0, -EINVAL);
      const id = requestId(request);
      if (id === ID_ECHO) {
        const payload = request.subarray(REQUEST_HEADER_SIZE);
        writeResponseHeader(header, { id: ID_ECHO, size: RESPONSE_HEADER_SIZE + payload.byteLength, error: 0 });
        if (payload.byteLength === 0) {
          respond(conn, headerOnly);
        } else {
          headerAndPayload[1] = payload;
          respond(conn, headerAndPayload);
        }
        return 0;
      }
      if (id !== ID_EVENTS) return void answer(conn, id, -EINVAL);
      if (request.byteLength < REQUEST_HEADER_SIZE + 8) return void answer(conn, id, -EINVAL);
      const args = new DataView(request.buffer, request.byteOffset + REQUEST_HEADER_SIZE, 8);
      const count = args.getUint32(0, true);
      const length = args.getUint32(4, true);
      if (RESPONSE_HEADER_SIZE + length > conn.bufferSize) return void answer(conn, id, -EMSGSIZE);
      if (pattern.byteLength < length + 256) {
        pattern = new Uint8Array(length + 256);
        for (let i = 0; i < pattern.byteLength; i++) pattern[i] = i & 0xff;
      }
      answer(conn, ID_EVENTS, 0);
      const p = state(conn);
      p.eventNext = 0;
      p.eventTotal = count;
      p.eventLength = length;
      if (p.backlog.length === 0) flush(conn, p);
      return 0;
    },
    connectionClosed(conn) {
      const p = conn.context as Pending | undefined;
      if (p !== undefined) release(p); // a pending onDrain callback is dropped with the connection
      conn.context = undefined;
      return 0;
    },
  };
}

/** Worker-module form: `createService(…, { workers, workerModule: <this file> })`. */
export default function echoWorker(): ConnectionHandlers {
  return echoHandlers();
}
