// `qbipc ping NAME [--count N] [--size B] [--timeout MS] [--quiet] [--sync]`: round trips against
// any libqb service that echoes id 1 (the reference echo servers, qbipc's own),
// each one checked, with latency figures. Exit 0 when every reply matched, 1 when
// one did not (or timed out), 2 when the connection failed, 64 on bad usage.
// --sync uses the blocking sendRecvSync (this process has nothing else to do).
import { parseArgs } from 'node:util';
import { connect, type Client } from '../client/client.js';
import { IpcType } from '../constants.js';
import { readResponseHeader, REQUEST_HEADER_SIZE, RESPONSE_HEADER_SIZE, writeRequestHeader } from '../headers.js';

const ID_ECHO = 1;
const USAGE = 'usage: qbipc ping NAME [--count N] [--size BYTES] [--timeout MS] [--quiet] [--sync]';

export interface PingOptions {
  /** Where lines go (default: process.stdout / process.stderr). */
  out?: (line: string) => void;
  err?: (line: string) => void;
}

function positive(value: string | undefined, fallback: number, name: string, min = 1): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer ≥ ${min}, got ${value}`);
  return n;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Checks a reply: id 1, error 0, size = length, the payload we sent. */
function check(reply: Uint8Array, request: Uint8Array): string | undefined {
  if (reply.byteLength < RESPONSE_HEADER_SIZE) return `a ${reply.byteLength}-byte reply has no header`;
  const h = readResponseHeader(reply);
  if (h.id !== ID_ECHO || h.error !== 0) return `reply id ${h.id} error ${h.error}`;
  const payload = request.byteLength - REQUEST_HEADER_SIZE;
  if (reply.byteLength !== RESPONSE_HEADER_SIZE + payload || h.size !== reply.byteLength) {
    return `reply of ${reply.byteLength} bytes (header says ${h.size}), expected ${RESPONSE_HEADER_SIZE + payload}`;
  }
  for (let i = 0; i < payload; i++) {
    if (reply[RESPONSE_HEADER_SIZE + i] !== request[REQUEST_HEADER_SIZE + i]) return `payload differs at byte ${i}`;
  }
  return undefined;
}

/** sendRecv, retrying EAGAIN (flow control, or a libqb server that has not reclaimed the last request yet) until the timeout. */
async function roundTrip(client: Client, request: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await client.sendRecv(request, timeoutMs);
    } catch (error) {
      if ((error as { code?: string }).code !== 'EAGAIN' || Date.now() >= deadline) throw error;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
}

export async function ping(argv: string[], options: PingOptions = {}): Promise<number> {
  const out = options.out ?? ((line: string) => void process.stdout.write(`${line}\n`));
  const err = options.err ?? ((line: string) => void process.stderr.write(`${line}\n`));
  let name: string;
  let count: number;
  let size: number;
  let timeout: number;
  let quiet: boolean;
  let sync: boolean;
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        count: { type: 'string', short: 'c' },
        size: { type: 'string', short: 's' },
        timeout: { type: 'string', short: 't' },
        quiet: { type: 'boolean', short: 'q' },
        sync: { type: 'boolean' },
      },
    });
    if (positionals.length !== 1) throw new Error('one service NAME is needed');
    name = positionals[0]!;
    count = positive(values.count, 10, 'count');
    size = positive(values.size, 64, 'size', 0);
    timeout = positive(values.timeout, 5000, 'timeout');
    quiet = values.quiet ?? false;
    sync = values.sync ?? false;
  } catch (error) {
    err(`qbipc ping: ${(error as Error).message}`);
    err(USAGE);
    return 64;
  }

  let client: Client;
  try {
    client = await connect(name, size + REQUEST_HEADER_SIZE + 64, { timeoutMs: timeout });
  } catch (error) {
    err(`qbipc ping: ${(error as Error).message}`);
    return 2;
  }
  const server = client.authGet();
  out(`PING ${name} (${IpcType[client.type]}${sync ? ', sync' : ''}, buffer ${client.bufferSize} bytes, server pid ${server.pid}): ${size} payload bytes`);
  const request = new Uint8Array(REQUEST_HEADER_SIZE + size);
  writeRequestHeader(request, { id: ID_ECHO, size: request.byteLength });
  const times: number[] = [];
  let failures = 0;
  const started = process.hrtime.bigint();
  try {
    for (let seq = 1; seq <= count; seq++) {
      for (let i = 0; i < size; i++) request[REQUEST_HEADER_SIZE + i] = (seq + i) & 0xff;
      const t0 = process.hrtime.bigint();
      let reply: Uint8Array;
      try {
        reply = sync ? client.sendRecvSync(request, timeout) : await roundTrip(client, request, timeout);
      } catch (error) {
        failures++;
        const code = (error as { code?: string }).code ?? '';
        err(`seq=${seq} failed: ${(error as Error).message}`);
        if (code === 'ENOTCONN') break;
        continue;
      }
      const us = Number(process.hrtime.bigint() - t0) / 1000;
      const problem = check(reply, request);
      if (problem !== undefined) {
        failures++;
        err(`seq=${seq} bad reply: ${problem}`);
        continue;
      }
      times.push(us);
      if (!quiet) out(`${reply.byteLength} bytes from ${name}: seq=${seq} time=${us.toFixed(1)} us`);
    }
  } finally {
    client.disconnect();
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  out(`--- ${name} ping statistics ---`);
  out(`${count} sent, ${times.length} ok, ${failures} failed, ${(times.length / seconds).toFixed(0)} round trips/s`);
  if (times.length > 0) {
    const sorted = [...times].sort((a, b) => a - b);
    const avg = times.reduce((a, b) => a + b, 0) / times.length;
    out(`latency us: min ${sorted[0]!.toFixed(1)} avg ${avg.toFixed(1)} p50 ${percentile(sorted, 50).toFixed(1)} ` +
      `p99 ${percentile(sorted, 99).toFixed(1)} max ${sorted[sorted.length - 1]!.toFixed(1)}`);
  }
  return failures === 0 && times.length === count ? 0 : 1;
}
