// From measurements (one per round and cell) to rows: medians over rounds,
// the spread, and each row's ratio to the libqb C server measured in the same
// round (the ratio is taken per round, then its median: drift between rounds
// cancels out).
import type { LoadResult } from '../drivers/load.js';
import { medianInterval, type MedianInterval } from './confidence.js';

export interface Measurement {
  round: number;
  workload: string;
  server: string;
  client: string;
  result?: LoadResult;
  error?: string;
  /** Server CPU seconds (user + system, all threads) during the cell. */
  cpuSeconds?: number;
  rssKb?: number;
  /** Messages (connects, for churn) of the unrecorded load that ran just before the cell (--settle). */
  settledMessages?: number;
}

export interface Row {
  workload: string;
  server: string;
  client: string;
  /** Rounds that produced a result. */
  rounds: number;
  /** Messages (events, connects) per second: median over rounds, and its extremes. */
  rate: number;
  rateMin: number;
  rateMax: number;
  /** (max − min) / median of the rates; undefined with fewer than 2 rounds (no spread to speak of). */
  spread?: number;
  /** Median of rate / (libqb C server's rate in the same round), and that median's confidence interval (2+ rounds). */
  ratio?: number;
  ratioInterval?: MedianInterval;
  /** Rounds whose ratio is at least 1, out of `ratioRounds`: a sign count that no single wild round sways. */
  roundsWon?: number;
  ratioRounds?: number;
  /** The pair the ratio divides by ("libqb|qbload"). */
  ratioBase?: string;
  mbPerSec: number;
  p50: number;
  p99: number;
  p999: number;
  /** Median share of the clients' time lost to round trips of 1 ms or more (synchronous workloads). */
  stalled?: number;
  /**
   * As ratio, with each rate first divided by (1 − stalled): what the two servers
   * would have done without stalls. Only where clients do not outnumber CPUs
   * (beyond that, slow round trips are partly waiting for a CPU, which is work).
   */
  unstalledRatio?: number;
  unstalledRatioInterval?: MedianInterval;
  /** Server CPU seconds per million messages (= µs per message). */
  cpuPerMillion: number;
  rssMiB: number;
  errors: number;
  failures: string[];
}

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** The rate a workload is judged by: connects/s for churn, else messages (events)/s. */
export function rateOf(r: LoadResult): number {
  return r.mode === 'churn' ? (r.connects_per_sec ?? r.msgs_per_sec) : r.msgs_per_sec;
}

const cellKey = (workload: string, server: string, client: string) => `${workload}|${server}|${client}`;

/** A result's rate without its stalls, where that means something (see Row.unstalledRatio). */
function unstalledRate(r: LoadResult, cpus: number): number | undefined {
  const stalled = r.stalled_share;
  if (stalled === undefined || stalled >= 0.99 || r.clients > cpus) return undefined;
  return rateOf(r) / (1 - stalled);
}

/**
 * Rows in the order cells were first measured. `baseFor(server, client)` names
 * the pair a row is compared with (undefined: no ratio, e.g. the baseline itself).
 */
export function aggregate(
  ms: Measurement[],
  baseFor: (server: string, client: string) => { server: string; client: string } | undefined,
  cpus: number,
): Row[] {
  const groups = new Map<string, Measurement[]>();
  for (const m of ms) {
    const k = cellKey(m.workload, m.server, m.client);
    groups.set(k, [...(groups.get(k) ?? []), m]);
  }
  const resultIn = (workload: string, server: string, client: string, round: number) =>
    groups.get(cellKey(workload, server, client))?.find((m) => m.round === round)?.result;
  const rateIn = (workload: string, server: string, client: string, round: number) => {
    const r = resultIn(workload, server, client, round);
    return r === undefined ? undefined : rateOf(r);
  };
  return [...groups.values()].map((cell) => {
    const { workload, server, client } = cell[0]!;
    const ok = cell.filter((m) => m.result !== undefined);
    const results = ok.map((m) => m.result!);
    const rates = results.map(rateOf);
    const rate = median(rates);
    const base = baseFor(server, client);
    const ratios =
      base === undefined
        ? []
        : ok.flatMap((m) => {
            const b = rateIn(workload, base.server, base.client, m.round);
            return b === undefined || b <= 0 ? [] : [rateOf(m.result!) / b];
          });
    const unstalledRatios =
      base === undefined
        ? []
        : ok.flatMap((m) => {
            const b = resultIn(workload, base.server, base.client, m.round);
            const mine = unstalledRate(m.result!, cpus);
            const theirs = b === undefined ? undefined : unstalledRate(b, cpus);
            return mine === undefined || theirs === undefined || theirs <= 0 ? [] : [mine / theirs];
          });
    const perMillion = ok.map((m) => ((m.cpuSeconds ?? NaN) * 1e6) / Math.max(1, m.result!.messages));
    return {
      workload,
      server,
      client,
      rounds: ok.length,
      rate,
      rateMin: Math.min(...rates),
      rateMax: Math.max(...rates),
      ...(rates.length > 1 ? { spread: (Math.max(...rates) - Math.min(...rates)) / rate } : {}),
      ...(ratios.length > 0
        ? {
            ratio: median(ratios),
            ratioInterval: medianInterval(ratios),
            roundsWon: ratios.filter((x) => x >= 1).length,
            ratioRounds: ratios.length,
            ratioBase: `${base!.server}|${base!.client}`,
          }
        : {}),
      ...(unstalledRatios.length > 0
        ? {
            unstalledRatio: median(unstalledRatios),
            unstalledRatioInterval: medianInterval(unstalledRatios),
          }
        : {}),
      mbPerSec: median(results.map((r) => r.mb_per_sec)),
      p50: median(results.map((r) => r.p50_us)),
      p99: median(results.map((r) => r.p99_us)),
      p999: median(results.map((r) => r.p999_us)),
      ...(results.some((r) => r.stalled_share !== undefined)
        ? { stalled: median(results.flatMap((r) => (r.stalled_share === undefined ? [] : [r.stalled_share]))) }
        : {}),
      cpuPerMillion: median(perMillion),
      rssMiB: median(ok.map((m) => (m.rssKb ?? NaN) / 1024)),
      errors: results.reduce((n, r) => n + r.errors, 0),
      failures: cell.filter((m) => m.error !== undefined).map((m) => `round ${m.round + 1}: ${m.error}`),
    };
  });
}
