// The qbipc transport of the node load client: qbipc's own Node client
// (src/client), talking libqb's protocol to any libqb server. Each request
// is followed, in order, by its response — and, for an EVENTS request (id 2),
// by the events it asked for, read from the event channel — all handed to
// onFrame as the net session does. The client module is loaded when used, so
// the harness builds and runs (without this client) where src/client is absent.
import { EAGAIN } from '../../src/errno.js';
import { ID_EVENTS, REQ_HDR } from '../servers/net-framing.js';
import type { Session } from './node-load.js';

/** What this session uses of src/client/client.ts (qbipcc.h for Node). */
interface Client {
  send(data: Uint8Array): number;
  recv(timeoutMs?: number): Promise<Uint8Array>;
  eventRecv(timeoutMs?: number): Promise<Uint8Array>;
  disconnect(): void;
}
type ClientModule = { connect(name: string, maxMsgSize: number): Promise<Client> };

const CLIENT_MODULE = new URL('../../src/client/client.js', import.meta.url);
const TIMEOUT_MS = 10_000;

const asBuffer = (m: Uint8Array) => Buffer.from(m.buffer, m.byteOffset, m.byteLength);

export async function connectQbipc(address: string, maxFrame: number, onFrame: (frame: Buffer) => void): Promise<Session> {
  const { connect } = (await import(CLIENT_MODULE.href)) as ClientModule;
  const client = await connect(address, maxFrame);
  const closers: Array<() => void> = [];
  let closed = false;
  const gone = () => {
    if (closed) return;
    closed = true;
    for (const fn of closers) fn();
  };
  /** Requests refused with EAGAIN (ring full, or flow control), sent in order as soon as possible. */
  const backlog: Buffer[] = [];
  let retrying = false;

  const receive = (request: Buffer) => {
    const events = request.readInt32LE(0) === ID_EVENTS ? request.readUInt32LE(REQ_HDR) : 0;
    client
      .recv(TIMEOUT_MS)
      .then(async (response) => {
        onFrame(asBuffer(response));
        for (let k = 0; k < events && !closed; k++) onFrame(asBuffer(await client.eventRecv(TIMEOUT_MS)));
      })
      .catch(gone);
  };
  const flush = () => {
    retrying = false;
    while (backlog.length > 0 && !closed) {
      const rc = client.send(backlog[0]!);
      if (rc === -EAGAIN) {
        retrying = true;
        setImmediate(flush);
        return;
      }
      const request = backlog.shift()!;
      if (rc < 0) return gone();
      receive(request);
    }
  };
  return {
    send(frame) {
      backlog.push(frame);
      if (!retrying) flush();
    },
    close() {
      closed = true;
      client.disconnect();
    },
    onClose: (fn) => void closers.push(fn),
  };
}
