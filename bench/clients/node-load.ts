// The node load client: bench/c/qbload.c's flags, method and JSON line, for
// the node `net` server (which no libqb client can drive) and for qbipc's own
// client (src/client) against any libqb server. Each client is a worker
// thread with its own event loop (qbload forks a process per client; a thread
// starts in a fraction of a Node process's time); each connects and warms up,
// all start together at a barrier, each verifies every response and records
// every latency in qbload's histogram.
//
// Usage: node node-load.js [--transport net|qbipc] -n ADDRESS -c CLIENTS -s BYTES
//          -T SECONDS [-d DEPTH] [-m MAXMSG] [--churn | --events [-b BATCH]]
// stdout: ONE JSON line, the fields of qbload's. Exit 0 only if every client
// succeeded with no errors; 2 if a client could not connect; 1 otherwise.
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { ID_ECHO, ID_EVENT, ID_EVENTS, REQ_HDR, RES_HDR } from '../servers/net-framing.js';
import { Histogram } from './histogram.js';
import { connectNet } from './net-session.js';
import { connectQbipc } from './qbipc-session.js';

/** A connection as the workloads see it: frames out, frames (responses and events, in order) in. */
export interface Session {
  send(frame: Buffer): void;
  close(): void;
  onClose(fn: () => void): void;
}

type Connect = (address: string, maxFrame: number, onFrame: (frame: Buffer) => void) => Promise<Session>;
const TRANSPORTS: Record<string, Connect> = { net: connectNet, qbipc: connectQbipc };

interface Options {
  transport: string;
  address: string;
  clients: number;
  size: number;
  seconds: number;
  depth: number;
  batch: number;
  mode: 'echo' | 'churn' | 'events';
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      transport: { type: 'string', default: 'net' },
      name: { type: 'string', short: 'n' },
      clients: { type: 'string', short: 'c', default: '1' },
      size: { type: 'string', short: 's', default: '64' },
      seconds: { type: 'string', short: 'T', default: '5' },
      depth: { type: 'string', short: 'd', default: '1' },
      maxmsg: { type: 'string', short: 'm', default: '0' },
      batch: { type: 'string', short: 'b', default: '64' },
      churn: { type: 'boolean' },
      events: { type: 'boolean' },
    },
    strict: true,
  });
  const opts: Options = {
    transport: values.transport,
    address: values.name ?? '',
    clients: Number(values.clients),
    size: values.churn ? 64 : Number(values.size),
    seconds: Number(values.seconds),
    depth: values.churn || values.events ? 1 : Number(values.depth),
    batch: Number(values.batch),
    mode: values.churn ? 'churn' : values.events ? 'events' : 'echo',
  };
  if (
    opts.address === '' ||
    TRANSPORTS[opts.transport] === undefined ||
    !(opts.clients >= 1) ||
    !(opts.size >= 0) ||
    !(opts.seconds > 0) ||
    !(opts.depth >= 1) ||
    !(opts.batch >= 1)
  ) {
    console.error(
      'usage: node-load [--transport net|qbipc] -n ADDRESS -c CLIENTS -s BYTES -T SECONDS [-d DEPTH] [--churn | --events [-b BATCH]]',
    );
    process.exit(2);
  }
  return opts;
}

const o: Options = isMainThread ? parseOptions() : (workerData as Options);
const connect = TRANSPORTS[o.transport]!;
const maxFrame = RES_HDR + Math.max(o.size, 64) + 64;

// ------------------------------------------------------------------ child

interface Counters {
  messages: number;
  errors: number;
  connects: number;
  hist: Histogram;
}

interface ChildResult {
  type: 'result';
  ok: boolean;
  message?: string;
  messages: number;
  errors: number;
  connects: number;
  /** hrtime (ns, as a string) when this client started and stopped measuring. */
  startNs: string;
  endNs: string;
  sparse: Array<[number, number]>;
  n: number;
  max: number;
}

/** The echo request of message `seq`: qbload's tags in the first and last payload byte. */
function tag(buf: Buffer, seq: number): void {
  if (o.size === 0) return;
  buf[REQ_HDR + o.size - 1] = (Math.floor(seq / 256) ^ 0x5a) & 0xff;
  buf[REQ_HDR] = seq & 0xff;
}

function echoRequest(): Buffer {
  const b = Buffer.allocUnsafe(REQ_HDR + o.size).fill(0, 0, REQ_HDR);
  b.writeInt32LE(ID_ECHO, 0);
  b.writeInt32LE(REQ_HDR + o.size, 8);
  for (let j = 0; j < o.size; j++) b[REQ_HDR + j] = (j * 31 + 7) & 0xff;
  return b;
}

function echoOk(frame: Buffer, seq: number): boolean {
  if (frame.length !== RES_HDR + o.size || frame.readInt32LE(0) !== ID_ECHO || frame.readInt32LE(16) !== 0) return false;
  if (o.size === 0) return true;
  const last = o.size === 1 ? seq & 0xff : (Math.floor(seq / 256) ^ 0x5a) & 0xff;
  return frame[RES_HDR] === (seq & 0xff) && frame[RES_HDR + o.size - 1] === last;
}

/** The connection of one client, its frame handler swapped per phase (warm-up, run). */
interface Conn {
  session: Session;
  handle: (frame: Buffer) => void;
  closed: boolean;
}

async function open(): Promise<Conn> {
  const conn: Conn = { session: undefined as unknown as Session, handle: () => undefined, closed: false };
  conn.session = await connect(o.address, maxFrame, (frame) => conn.handle(frame));
  conn.session.onClose(() => {
    conn.closed = true;
    conn.handle = () => undefined;
  });
  return conn;
}

/** Churn: { connect, one 64-byte round trip, close } while `more()` holds. */
async function runChurn(c: Counters, more: () => boolean, record: boolean): Promise<void> {
  const request = echoRequest();
  tag(request, 0);
  while (more()) {
    const t0 = performance.now();
    let conn: Conn;
    try {
      conn = await open();
    } catch (error) {
      c.errors++;
      if (!record) throw new Error(`connect: ${(error as Error).message}`, { cause: error });
      await new Promise((r) => setTimeout(r, 1)); // don't spin on a dead server
      continue;
    }
    const frame = await new Promise<Buffer | undefined>((resolve) => {
      conn.handle = resolve;
      conn.session.onClose(() => resolve(undefined));
      conn.session.send(request);
    });
    conn.session.close();
    if (frame === undefined || !echoOk(frame, 0)) {
      c.errors++;
      continue;
    }
    c.connects++;
    c.messages++;
    if (record) c.hist.record((performance.now() - t0) * 1e6);
  }
}

/**
 * Runs the workload on `conn` while `more()` holds (checked before each
 * message or batch); resolves when the last one is answered.
 */
function runOn(conn: Conn, c: Counters, more: () => boolean, record: boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (error?: Error) => {
      if (done) return;
      done = true;
      conn.handle = () => undefined;
      if (error) reject(error);
      else resolve();
    };
    conn.session.onClose(() => finish(new Error('the server closed the connection')));
    if (conn.closed) return finish(new Error('the server closed the connection'));
    if (o.mode === 'events') {
      const request = Buffer.alloc(REQ_HDR + 8);
      request.writeInt32LE(ID_EVENTS, 0);
      request.writeInt32LE(REQ_HDR + 8, 8);
      request.writeUInt32LE(o.batch, REQ_HDR);
      request.writeUInt32LE(o.size, REQ_HDR + 4);
      let k = -1; // -1: waiting for the bare response
      let t0 = 0;
      const next = () => {
        if (!more()) return finish();
        k = -1;
        t0 = performance.now();
        conn.session.send(request);
      };
      conn.handle = (frame) => {
        if (k < 0) {
          if (frame.length !== RES_HDR || frame.readInt32LE(0) !== ID_EVENTS || frame.readInt32LE(16) !== 0) {
            return finish(new Error(`bad answer to the events request (id ${frame.readInt32LE(0)}, error ${frame.readInt32LE(16)})`));
          }
          k = 0;
          return;
        }
        const len = o.size;
        if (
          frame.length !== RES_HDR + len ||
          frame.readInt32LE(0) !== ID_EVENT ||
          frame.readInt32LE(16) !== k ||
          (len > 0 && (frame[RES_HDR] !== (k & 0xff) || frame[RES_HDR + len - 1] !== ((k + len - 1) & 0xff)))
        )
          c.errors++;
        c.messages++;
        if (++k === o.batch) {
          if (record) c.hist.record((performance.now() - t0) * 1e6);
          next();
        }
      };
      return next();
    }
    // ping-pong (depth 1) and pipelined (depth > 1): one request buffer per
    // slot; slot i is reused only after message i - depth was answered, so its
    // write has completed.
    const slots = Array.from({ length: o.depth }, echoRequest);
    const sentAt = new Float64Array(o.depth);
    let nextSend = 0;
    let nextRecv = 0;
    let sending = true;
    const sendOne = () => {
      if (!more()) {
        sending = false;
        return;
      }
      const slot = nextSend % o.depth;
      tag(slots[slot]!, seqBase + nextSend);
      sentAt[slot] = performance.now();
      conn.session.send(slots[slot]!);
      nextSend++;
    };
    conn.handle = (frame) => {
      const t = performance.now();
      if (!echoOk(frame, seqBase + nextRecv)) c.errors++;
      if (record) c.hist.record((t - sentAt[nextRecv % o.depth]!) * 1e6);
      c.messages++;
      nextRecv++;
      if (sending) sendOne();
      if (!sending && nextRecv === nextSend) {
        seqBase += nextSend;
        finish();
      }
    };
    while (sending && nextSend - nextRecv < o.depth) sendOne();
    if (nextSend === nextRecv) finish();
  });
}
let seqBase = 0;

async function child(): Promise<void> {
  const send = (m: object) => parentPort!.postMessage(m);
  const c: Counters = { messages: 0, errors: 0, connects: 0, hist: new Histogram() };
  // Warm-up: one verified message, batch or cycle; the connection is kept for the run.
  let conn: Conn | undefined;
  let warm = 0;
  try {
    if (o.mode === 'churn') {
      await runChurn(c, () => warm++ < 1, false);
    } else {
      conn = await open().catch((error: Error) => {
        throw new Error(`connect: ${error.message}`);
      });
      await runOn(conn, c, () => warm++ < 1, false);
    }
  } catch (error) {
    const message = (error as Error).message;
    send({ type: 'ready', ok: false, noconn: message.startsWith('connect'), message });
    return;
  }
  if (c.errors > 0) {
    send({ type: 'ready', ok: false, message: 'the warm-up response did not verify' });
    return;
  }
  Object.assign(c, { messages: 0, errors: 0, connects: 0 });
  await new Promise<void>((resolve) => {
    parentPort!.once('message', () => resolve());
    send({ type: 'ready', ok: true });
  });
  const startNs = process.hrtime.bigint().toString();
  const deadline = performance.now() + o.seconds * 1000;
  const more = () => performance.now() < deadline;
  let ok = true;
  let message: string | undefined;
  try {
    await (conn === undefined ? runChurn(c, more, true) : runOn(conn, c, more, true));
  } catch (error) {
    ok = false;
    message = (error as Error).message;
    c.errors++;
  }
  const endNs = process.hrtime.bigint().toString();
  conn?.session.close();
  const result: ChildResult = {
    type: 'result',
    ok,
    message,
    messages: c.messages,
    errors: c.errors,
    connects: c.connects,
    startNs,
    endNs,
    sparse: c.hist.toSparse(),
    n: c.hist.n,
    max: c.hist.max,
  };
  send(result);
}

// ----------------------------------------------------------- coordinator

async function coordinator(): Promise<number> {
  const workers: Worker[] = [];
  const stopAll = () => Promise.all(workers.map((w) => w.terminate()));
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => void stopAll().then(() => process.exit(1)));
  }
  const readies: Array<Promise<{ ok: boolean; noconn?: boolean; message?: string }>> = [];
  const results: Array<Promise<ChildResult>> = [];
  for (let i = 0; i < o.clients; i++) {
    const w = new Worker(new URL(import.meta.url), { workerData: o });
    workers.push(w);
    const gone = new Promise<never>((_, reject) => {
      w.once('error', (error) => reject(new Error(`client ${i} failed: ${error.message}`)));
      w.once('exit', (code) => reject(new Error(`client ${i} exited (${code})`)));
    });
    gone.catch(() => undefined);
    const next = <T>() => Promise.race([new Promise<T>((resolve) => w.once('message', (m) => resolve(m as T))), gone]);
    readies.push(next());
    results.push(readies[i]!.then(() => next<ChildResult>()));
    results[i]!.catch(() => undefined);
  }
  let bad: { ok: boolean; noconn?: boolean; message?: string } | undefined;
  for (const [i, r] of readies.entries()) {
    const ready = await r.catch((error: Error) => ({ ok: false, message: error.message }));
    if (!ready.ok) {
      bad = ready;
      console.error(`node-load: client ${i}: ${ready.message}`);
      break;
    }
  }
  if (bad !== undefined) {
    await stopAll();
    return bad.noconn ? 2 : 1;
  }
  const release = process.hrtime.bigint();
  for (const w of workers) w.postMessage('go');
  const hist = new Histogram();
  let messages = 0;
  let errors = 0;
  let connects = 0;
  let last = release;
  /** Sum of each client's own measuring time: the stalled share's denominator (as qbload). */
  let clientNs = 0;
  let failed = false;
  for (const [i, r] of results.entries()) {
    try {
      const res = await r;
      if (!res.ok) {
        failed = true;
        console.error(`node-load: client ${i}: ${res.message}`);
      }
      messages += res.messages;
      errors += res.errors;
      connects += res.connects;
      hist.add(res.sparse, res.n, res.max);
      if (BigInt(res.endNs) > last) last = BigInt(res.endNs);
      clientNs += Number(BigInt(res.endNs) - BigInt(res.startNs));
    } catch (error) {
      failed = true;
      console.error(`node-load: ${(error as Error).message}`);
    }
  }
  await stopAll();
  const secs = Math.max(Number(last - release) / 1e9, 1e-9);
  const json: Record<string, number | string> = {};
  if (o.mode !== 'echo') json.mode = o.mode;
  if (o.mode === 'events') json.batch = o.batch;
  Object.assign(json, {
    clients: o.clients,
    size: o.size,
    depth: o.depth,
    messages,
    errors,
    seconds: Number(secs.toFixed(6)),
    msgs_per_sec: Number((messages / secs).toFixed(1)),
    mb_per_sec: Number(((messages * o.size) / secs / 1e6).toFixed(3)),
  });
  if (o.mode === 'churn') Object.assign(json, { connects, connects_per_sec: Number((connects / secs).toFixed(1)) });
  if (o.mode === 'echo' && o.depth <= 1) {
    // As qbload: the share of the clients' time in round trips of 1 ms or more (stalls).
    json.stalled_share = clientNs > 0 ? Number(Math.min(1, hist.timeAtOrAbove(1e6) / clientNs).toFixed(4)) : 0;
  }
  const us = (pct: number) => Number((hist.percentile(pct) / 1e3).toFixed(3));
  Object.assign(json, { p50_us: us(50), p99_us: us(99), p999_us: us(99.9), max_us: Number((hist.max / 1e3).toFixed(3)) });
  console.log(JSON.stringify(json));
  return failed || errors > 0 ? 1 : 0;
}

if (!isMainThread) {
  await child();
} else {
  process.exitCode = await coordinator();
}
