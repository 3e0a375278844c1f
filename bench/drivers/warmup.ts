// A fresh Node server runs its first thousands of messages in V8's interpreter
// and baseline tiers; whichever cell came first in a round would pay for that
// (and the libqb C server never does). So each round, once its servers are up,
// every server gets a short unrecorded load — all at once: it only has to run
// the hot path, not to be measured.
import type { ClientDriver } from './clients.js';
import { ALL_CPUS, runLoad } from './load.js';
import type { RunningServer } from './servers.js';
import { loadArgs, type Workload } from './workloads.js';

const WARMUP: Workload = {
  key: 'warm-up', title: 'warm-up', kind: 'pipelined', clients: 2, size: 64, depth: 8, batch: 0,
  sameCpu: false, unit: 'msgs', latency: 'send to its response',
};
const WARMUP_SECONDS = 0.3;

/** Warms every server with its client; resolves with the failures (the cells will show them too). */
export async function warmUp(targets: Array<{ name: string; server: RunningServer; client: ClientDriver }>): Promise<string[]> {
  const outcomes = await Promise.allSettled(targets.map(({ server, client }) => {
    const [command, pre] = client.command();
    return runLoad(command, [...pre, ...loadArgs(server.address, WARMUP, WARMUP_SECONDS)], ALL_CPUS, 30_000);
  }));
  return outcomes.flatMap((o, i) => (o.status === 'rejected' ? [`warm-up of ${targets[i]!.name} failed: ${(o.reason as Error).message}`] : []));
}
