// The connection callbacks of the scenario server (the twin of
// test/c/scenario-server.c), shared by the in-thread service and the worker
// module: each observation is handed to `emit` as the C server prints it.
import {
  EINVAL,
  makeResponse,
  readRequestHeader,
  writeResponseHeader,
  RESPONSE_HEADER_SIZE,
  type Connection,
  type ConnectionHandlers,
} from '../../src/index.js';

export const SCENARIOS = ['plain', 'jobfail', 'backoff', 'authset', 'created-disconnect'] as const;
export type Scenario = (typeof SCENARIOS)[number];

/** One line of a scenario server's output, parsed. */
export type Observation = { ev: string } & Record<string, unknown>;
export type Emit = (observation: Observation) => void;

const MSG_ECHO = 1;
/** {u32 api, u32 size}: one send of `size` bytes through APIS[api]. */
const MSG_SEND = 10;
const APIS = ['responseSend', 'responseSendv', 'eventSend', 'eventSendv'] as const;
/** What connectionAccept gives the connection's files in the 'authset' scenario. */
export const AUTHSET = { uid: 4242, gid: 4343, mode: 0o640 } as const;

/** One send of `size` bytes (a response header {id 10, size, 0} and 0xab filler) through `api`. */
function sendThrough(conn: Connection, api: number, size: number, emit: Emit): void {
  const name = APIS[api];
  if (name === undefined || size < RESPONSE_HEADER_SIZE) {
    emit({ ev: 'send', bad: 1 });
    return;
  }
  const message = new Uint8Array(size).fill(0xab);
  writeResponseHeader(message, { id: MSG_SEND, size, error: 0 });
  const iov = [message.subarray(0, RESPONSE_HEADER_SIZE), message.subarray(RESPONSE_HEADER_SIZE)];
  let rc: number;
  switch (name) {
    case 'responseSend':
      rc = conn.responseSend(message);
      break;
    case 'responseSendv':
      rc = conn.responseSendv(iov);
      break;
    case 'eventSend':
      rc = conn.eventSend(message);
      break;
    default:
      rc = conn.eventSendv(iov);
      break;
  }
  const stats = conn.stats();
  emit({ ev: 'send', api: name, size, rc, responses: stats.responses, events: stats.events, sendRetries: stats.sendRetries });
}

export function scenarioHandlers(scenario: Scenario, emit: Emit): ConnectionHandlers {
  const closedCalls = new WeakMap<Connection, number>();
  return {
    connectionCreated(conn) {
      emit({ ev: 'created', pid: conn.pid });
      if (scenario === 'created-disconnect') conn.disconnect();
    },
    msgProcess(conn, data) {
      const { id } = readRequestHeader(data);
      if (id === MSG_ECHO) {
        const payload = data.subarray(16);
        const head = writeResponseHeader(new Uint8Array(RESPONSE_HEADER_SIZE), {
          id,
          size: RESPONSE_HEADER_SIZE + payload.byteLength,
          error: 0,
        });
        conn.responseSendv(payload.byteLength > 0 ? [head, payload] : [head]);
        return scenario === 'backoff' ? -1 : 0;
      }
      if (id === MSG_SEND && data.byteLength >= 24) {
        const args = new DataView(data.buffer, data.byteOffset + 16, 8);
        sendThrough(conn, args.getUint32(0, true), args.getUint32(4, true), emit);
        return 0;
      }
      conn.responseSend(makeResponse(id, -EINVAL));
      return 0;
    },
    connectionClosed(conn) {
      emit({ ev: 'closed', pid: conn.pid });
      if (scenario !== 'jobfail') return 0;
      const calls = closedCalls.get(conn) ?? 0;
      closedCalls.set(conn, calls + 1);
      return calls === 0 ? 1 : 0; // once: ask for the retry that goes through jobAdd
    },
    connectionDestroyed(conn) {
      emit({ ev: 'destroyed', pid: conn.pid });
    },
  };
}
