// `qbipc ping NAME [--count N] [--size B] [--timeout MS] [--quiet] [--sync]`: round trips against
// any libqb service that echoes id 1 (bench/c/qb-echo-server.c, qbipc's own),
// each one checked, with latency figures. Exit 0 when every reply matched, 1 when
// one did not (or timed out), 2 on bad usage or when the connection failed (as
// ping(8): 2 = no exchange at all).
// --sync uses the blocking sendRecvSync (this process has nothing else to do).
import { connect, type Client } from '../client/client.js';
import { IpcType } from '../constants.js';
import { readResponseHeader, REQUEST_HEADER_SIZE, RESPONSE_HEADER_SIZE, writeRequestHeader } from '../headers.js';
import { intFlag, parseFlags, UsageError } from './args.js';

const ID_ECHO = 1;
export const PING_USAGE = `usage: qbipc ping NAME [--count N] [--size BYTES] [--timeout MS] [--quiet] [--sync]
  NAME          the service name (as given to qb_ipcs_create())
  --count N     round trips (default 10)
  --size BYTES  payload bytes per request (default 64)
  --timeout MS  connect and per-round-trip timeout (default 5000)
  --quiet       only the summary
  --sync        blocking round trips (sendRecvSync)`;

/** Every flag checked here, before anything connects. */
function parse(argv: string[]) {
  const { values, positionals } = parseFlags(
    argv,
    {
      count: { type: 'string', short: 'c' },
      size: { type: 'string', short: 's' },
      timeout: { type: 'string', short: 't' },
      quiet: { type: 'boolean', short: 'q' },
      sync: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    PING_USAGE,
  );
  if (values.help === true) return { help: true } as const;
  if (positionals.length !== 1) {
    throw new UsageError(
      positionals.length === 0
        ? 'ping needs a service NAME'
        : `ping takes one NAME, got ${positionals.length} words: ${positionals.join(' ')}`,
      PING_USAGE,
    );
  }
  return {
    help: false,
    name: positionals[0]!,
    count: intFlag(values.count, '--count', 1, 1e9, 10, PING_USAGE),
    size: intFlag(values.size, '--size', 0, 64 * 1024 * 1024, 64, PING_USAGE),
    timeout: intFlag(values.timeout, '--timeout', 1, 3_600_000, 5000, PING_USAGE),
    quiet: values.quiet === true,
    sync: values.sync === true,
  } as const;
}

export interface PingOptions {
  /** Where lines go (default: process.stdout / process.stderr). */
  out?: (line: string) => void;
  err?: (line: string) => void;
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
  let opts: ReturnType<typeof parse>;
  try {
    opts = parse(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    // handled here, not by main: ping() is also called with its own out/err
    err(`qbipc ping: ${error.message}`);
    err(error.usage);
    return 2;
  }
  if (opts.help) {
    out(PING_USAGE);
    return 0;
  }
  const { name, count, size, timeout, quiet, sync } = opts;

  let client: Client;
  try {
    client = await connect(name, size + REQUEST_HEADER_SIZE + 64, { timeoutMs: timeout });
  } catch (error) {
    err(`qbipc ping: ${(error as Error).message}`);
    return 2;
  }
  const server = client.authGet();
  out(
    `PING ${name} (${IpcType[client.type]}${sync ? ', sync' : ''}, buffer ${client.bufferSize} bytes, server pid ${server.pid}): ${size} payload bytes`,
  );
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
    out(
      `latency us: min ${sorted[0]!.toFixed(1)} avg ${avg.toFixed(1)} p50 ${percentile(sorted, 50).toFixed(1)} ` +
        `p99 ${percentile(sorted, 99).toFixed(1)} max ${sorted[sorted.length - 1]!.toFixed(1)}`,
    );
  }
  return failures === 0 && times.length === count ? 0 : 1;
}
