// An application that uses the back-pressure API as documented: each request
// (16-byte header + u32 size) is answered with a response of that size; a
// response the channel refuses (-EAGAIN) is kept, the connection paused, and
// sent from conn.onDrain, which resumes it. Reports each step with its time
// ('eagain', 'drain', 'sent-after-drain', 'paused-again'). In-thread: backpressureHandlers();
// as a workerModule: the default export, reporting over a BroadcastChannel.
import { BroadcastChannel } from 'node:worker_threads';
import { EAGAIN, makeResponse, readRequestHeader, type Connection, type ConnectionHandlers } from '../../src/index.js';

export type BackpressureReport = { ev: 'eagain' | 'drain' | 'sent-after-drain' | 'paused-again'; pid: number; at: number };

/** A request whose payload asks for a response of `size` bytes; id 9 asks for an onDrain callback that throws. */
export const ID_SIZED = 5;
export const ID_THROWING_DRAIN = 9;

export function backpressureHandlers(report: (r: BackpressureReport) => void): ConnectionHandlers {
  const kept = new Map<Connection, Uint8Array>();
  const drained = (conn: Connection) => {
    report({ ev: 'drain', pid: conn.pid, at: Date.now() });
    const response = kept.get(conn)!;
    if (conn.responseSend(response) === -EAGAIN) {
      report({ ev: 'paused-again', pid: conn.pid, at: Date.now() });
      conn.onDrain(() => drained(conn));
      return;
    }
    kept.delete(conn);
    conn.resume();
    report({ ev: 'sent-after-drain', pid: conn.pid, at: Date.now() });
  };
  return {
    msgProcess(conn, data) {
      const { id } = readRequestHeader(data);
      if (id === ID_THROWING_DRAIN) {
        conn.onDrain(() => {
          throw new Error('onDrain callback failed on purpose');
        });
        return 0;
      }
      const size = new DataView(data.buffer, data.byteOffset).getUint32(16, true);
      const response = makeResponse(ID_SIZED, 0, new Uint8Array(size - 24).fill(size & 0xff));
      if (conn.responseSend(response) !== -EAGAIN) return 0;
      kept.set(conn, response);
      conn.pause();
      report({ ev: 'eagain', pid: conn.pid, at: Date.now() });
      conn.onDrain(() => drained(conn));
      return 0;
    },
    connectionDestroyed(conn) {
      kept.delete(conn);
    },
  };
}

export default function backpressureWorker(data: { channel: string }): ConnectionHandlers {
  const channel = new BroadcastChannel(data.channel);
  channel.unref();
  return backpressureHandlers((r) => channel.postMessage(r));
}
