// An async msgProcess that answers each echo request (id 1) after a timer: a
// client is "mid-request" for that long. Each request is reported when it
// arrives (to the test directly, or from a worker over a BroadcastChannel).
// In-thread: slowEchoHandlers(); as a workerModule: the default export.
import { BroadcastChannel } from 'node:worker_threads';
import { makeResponse, readRequestHeader, type ConnectionHandlers } from '../../src/index.js';

export function slowEchoHandlers(delayMs: number, report: (pid: number) => void): ConnectionHandlers {
  return {
    async msgProcess(conn, data) {
      const { id } = readRequestHeader(data);
      const payload = data.slice(16); // the view is only valid during the call
      report(conn.pid);
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      conn.responseSend(makeResponse(id, 0, payload));
    },
  };
}

export default function slowEchoWorker(data: { channel: string; delayMs: number }): ConnectionHandlers {
  const channel = new BroadcastChannel(data.channel);
  channel.unref();
  return slowEchoHandlers(data.delayMs, (pid) => channel.postMessage(pid));
}
