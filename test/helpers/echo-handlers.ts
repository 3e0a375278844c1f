// The test application: the C echo servers' protocol (id 1 echo, id 2
// events, anything else -EINVAL), reporting every callback. The same handlers
// run in-thread and, through echo-worker.ts, inside worker threads.
import {
  makeResponse,
  readRequestHeader,
  writeResponseHeader,
  EAGAIN,
  EINVAL,
  type Connection,
  type ConnectionHandlers,
} from '../../src/index.js';

export const ID_ECHO = 1;
export const ID_EVENTS = 2;
export const ID_EVENT = 3;

export type CallbackName = 'accept' | 'created' | 'closed' | 'destroyed' | 'request';

/** What a test may ask of the handlers, as data, so it reaches worker threads too. */
export interface Behaviour {
  /** connectionClosed returns 1 this many times before it returns 0. */
  closedRetries?: number;
  /** A request with this id ends the worker thread that serves it (a crash, for tests). */
  exitOnId?: number;
  /** A request with this id makes msgProcess throw. */
  throwOnId?: number;
  /** connectionCreated takes a reference (in-thread tests drop it themselves). */
  refInCreated?: boolean;
  /**
   * Report every request (tests that count or order them), or only each
   * connection's first ('first': a stream of millions would flood the test's
   * thread with reports); off, a worker sends no message per request.
   */
  reportRequests?: boolean | 'first';
  /** Echo responses are sent from a timer after msgProcess returned (outside the dispatch round). */
  deferEcho?: boolean;
  /**
   * A request with this id is answered, then the worker thread serving it exits
   * inside the same round (worker modes only). With `gate`, it waits until the
   * gate's first Int32 is non-zero before answering.
   */
  respondThenExitOnId?: number;
  gate?: SharedArrayBuffer;
}

export type Report = (callback: CallbackName, pid: number) => void;

interface EventPump {
  next: number;
  total: number;
  length: number;
  timer?: NodeJS.Timeout;
}

export function echoHandlers(
  report: Report,
  behaviour: Behaviour = {},
): Required<Pick<ConnectionHandlers, 'msgProcess'>> & ConnectionHandlers {
  const pumps = new Map<Connection, EventPump>();
  const closedCalls = new Map<Connection, number>();

  const reported = new WeakSet<Connection>();
  const pump = (conn: Connection) => {
    const p = pumps.get(conn);
    if (p === undefined) return;
    p.timer = undefined;
    while (p.next < p.total) {
      const payload = new Uint8Array(p.length);
      for (let j = 0; j < p.length; j++) payload[j] = (p.next + j) & 0xff;
      const rc = conn.eventSend(makeResponse(ID_EVENT, p.next, payload));
      if (rc === -EAGAIN) {
        p.timer = setTimeout(() => pump(conn), 1); // ring full: the client is still reading
        return;
      }
      if (rc < 0) return;
      p.next++;
    }
  };

  return {
    connectionCreated(conn) {
      report('created', conn.pid);
      if (behaviour.refInCreated) conn.ref();
    },
    msgProcess(conn, data) {
      if (behaviour.reportRequests === true) report('request', conn.pid);
      else if (behaviour.reportRequests === 'first' && !reported.has(conn)) {
        reported.add(conn);
        report('request', conn.pid);
      }
      const header = readRequestHeader(data);
      if (header.id === behaviour.exitOnId) process.exit(1);
      if (header.id === behaviour.respondThenExitOnId) {
        if (behaviour.gate) Atomics.wait(new Int32Array(behaviour.gate), 0, 0, 20_000);
        conn.responseSend(makeResponse(header.id, 0));
        process.exit(1);
      }
      if (header.id === behaviour.throwOnId) throw new Error(`request id ${header.id} makes this handler throw`);
      if (header.id === ID_ECHO) {
        const payload = data.subarray(16);
        const head = writeResponseHeader(new Uint8Array(24), { id: ID_ECHO, size: 24 + payload.byteLength, error: 0 });
        if (behaviour.deferEcho) {
          const copy = payload.slice(); // the view dies when msgProcess returns
          // 10 ms: long enough that the client is nearly always asleep in sem_wait by then.
          setTimeout(() => conn.responseSendv([head, copy]), 10);
          return 0;
        }
        conn.responseSendv([head, payload]); // the payload goes from ring to ring, no copy in between
        return 0;
      }
      if (header.id === ID_EVENTS) {
        const args = new DataView(data.buffer, data.byteOffset + 16, Math.min(8, data.byteLength - 16));
        const total = args.byteLength >= 4 ? args.getUint32(0, true) : 0;
        const length = args.byteLength >= 8 ? args.getUint32(4, true) : 0;
        conn.responseSend(makeResponse(ID_EVENTS, 0));
        const old = pumps.get(conn);
        if (old?.timer) clearTimeout(old.timer);
        pumps.set(conn, { next: 0, total, length });
        pump(conn);
        return 0;
      }
      conn.responseSend(makeResponse(header.id, -EINVAL));
      return 0;
    },
    connectionClosed(conn) {
      report('closed', conn.pid);
      const p = pumps.get(conn);
      if (p?.timer) clearTimeout(p.timer);
      pumps.delete(conn);
      const calls = (closedCalls.get(conn) ?? 0) + 1;
      closedCalls.set(conn, calls);
      return calls <= (behaviour.closedRetries ?? 0) ? 1 : 0;
    },
    connectionDestroyed(conn) {
      closedCalls.delete(conn);
      report('destroyed', conn.pid);
    },
  };
}
