// Connection callbacks that fail on purpose, for test/86-handlers: synchronous
// ones that throw, or async ones whose promise rejects. The same handlers run
// in-thread and, through failing-worker.ts, in worker threads.
import { makeResponse, readRequestHeader, type Connection, type ConnectionHandlers } from '../../src/index.js';
import type { Emit } from './scenario-handlers.js';

export const FAILING = ['msgProcess', 'connectionCreated', 'connectionClosed'] as const;
export type FailingHandler = (typeof FAILING)[number];
export type FailHow = 'throw' | 'reject';

/** msgProcess fails on a request with this id (echo: id 1, any other: a bare response). */
export const FAIL_REQUEST_ID = 66;
/** connectionCreated/connectionClosed fail for a client that connected asking for this buffer size. */
export const FAIL_BUFFER_SIZE = 20_000;
/** Every failure's message contains this. */
export const FAILURE_MARK = 'failed on purpose';

export interface FailSpec {
  handler: FailingHandler;
  how: FailHow;
}

function failure(handler: FailingHandler, conn: Connection): Error {
  return new Error(`${handler} ${FAILURE_MARK} for pid ${conn.pid}`);
}

/** The response to a request: an echo of its payload (id 1) or a bare response. */
function answer(conn: Connection, request: Uint8Array): void {
  const { id } = readRequestHeader(request);
  conn.responseSend(makeResponse(id, 0, id === 1 ? request.subarray(16) : undefined));
}

export function failingHandlers(spec: FailSpec, emit: Emit): ConnectionHandlers {
  const fails = (handler: FailingHandler, conn: Connection, requestId?: number) =>
    spec.handler === handler && (handler === 'msgProcess' ? requestId === FAIL_REQUEST_ID : conn.bufferSize === FAIL_BUFFER_SIZE);
  const lifecycle = {
    connectionDestroyed(conn: Connection) {
      // Reported once the connection is fully gone: its files go right after this callback, as in libqb.
      queueMicrotask(() => emit({ ev: 'destroyed', pid: conn.pid }));
    },
  };
  if (spec.how === 'throw') {
    return {
      ...lifecycle,
      connectionCreated(conn) {
        emit({ ev: 'created', pid: conn.pid });
        if (fails('connectionCreated', conn)) throw failure('connectionCreated', conn);
      },
      msgProcess(conn, data) {
        if (fails('msgProcess', conn, readRequestHeader(data).id)) throw failure('msgProcess', conn);
        answer(conn, data);
        return 0;
      },
      connectionClosed(conn) {
        emit({ ev: 'closed', pid: conn.pid });
        if (fails('connectionClosed', conn)) throw failure('connectionClosed', conn);
        return 0;
      },
    };
  }
  // Async: each handler awaits before it answers or fails, so a failure is a rejected promise.
  const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
  const handlers: ConnectionHandlers = {
    ...lifecycle,
    async connectionCreated(conn: Connection) {
      emit({ ev: 'created', pid: conn.pid });
      await turn();
      if (fails('connectionCreated', conn)) throw failure('connectionCreated', conn);
    },
    async msgProcess(conn: Connection, data: Uint8Array) {
      const request = data.slice(); // the view is only valid until the first await
      await turn();
      if (fails('msgProcess', conn, readRequestHeader(request).id)) throw failure('msgProcess', conn);
      answer(conn, request);
      return 0;
    },
    async connectionClosed(conn: Connection) {
      emit({ ev: 'closed', pid: conn.pid });
      await turn();
      if (fails('connectionClosed', conn)) throw failure('connectionClosed', conn);
      return 0;
    },
  };
  return handlers;
}
