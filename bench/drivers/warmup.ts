// Unrecorded load, for servers that get faster as they run. A fresh Node server
// runs its first thousands of messages in V8's interpreter and baseline tiers;
// whichever cell came first in a round would pay for that (and the libqb C
// server never does). So each round, once its servers are up, every server gets
// a short unrecorded load — all at once: it only has to run the hot path, not
// to be measured. That is not yet the steady state of every workload: code
// first optimised for one load shape deoptimises when another brings new
// paths (8 clients ping-pong after the pipelined warm-up: processRound and
// requestsPending deoptimised in its first second, in one --trace-deopt trace),
// and the first second of such a cell runs measurably slower. So each
// cell is also settled: the same load runs unrecorded just before it (--settle).
import type { ClientDriver } from './clients.js';
import { ALL_CPUS, runLoad, type LoadResult } from './load.js';
import type { RunningServer } from './servers.js';
import { loadArgs, type Workload } from './workloads.js';

const WARMUP: Workload = {
  key: 'warm-up',
  title: 'warm-up',
  kind: 'pipelined',
  clients: 2,
  size: 64,
  depth: 8,
  batch: 0,
  sameCpu: false,
  unit: 'msgs',
  latency: 'send to its response',
};
const WARMUP_SECONDS = 0.3;

/** Warms every server with its client; resolves with the failures (the cells will show them too). */
export async function warmUp(targets: Array<{ name: string; server: RunningServer; client: ClientDriver }>): Promise<string[]> {
  const outcomes = await Promise.allSettled(
    targets.map(({ server, client }) => {
      const [command, pre] = client.command();
      return runLoad(command, [...pre, ...loadArgs(server.address, WARMUP, WARMUP_SECONDS)], ALL_CPUS, 30_000);
    }),
  );
  return outcomes.flatMap((o, i) =>
    o.status === 'rejected' ? [`warm-up of ${targets[i]!.name} failed: ${(o.reason as Error).message}`] : [],
  );
}

/**
 * Runs a cell's own load for `seconds`, unrecorded; resolves with its messages
 * (connects, for churn). Responses that fail verification fail the cell: unrecorded
 * is not unchecked.
 */
export async function settleCell(command: string, args: string[], cpus: string, seconds: number): Promise<number> {
  const result = await runLoad<LoadResult>(command, args, cpus, (seconds + 60) * 1000);
  if (result.errors > 0) throw new Error(`${result.errors} response(s) failed verification`);
  return result.mode === 'churn' ? (result.connects ?? 0) : result.messages;
}
