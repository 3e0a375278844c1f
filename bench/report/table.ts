// The result table, once as cells, rendered for the terminal and as Markdown
// (docs/benchmark.md): one block per workload, one line per (server, client).
import { PIN_CPU } from '../drivers/load.js';
import type { Workload } from '../drivers/workloads.js';
import type { MedianInterval } from './confidence.js';
import type { Row } from './stats.js';

export interface Names {
  server(key: string): string;
  client(key: string): string;
  /** A mark after a client name that a note explains (the node client). */
  clientMark(key: string): string;
}

const HEADER = [
  'server',
  'client',
  'rate/s',
  '±',
  'vs libqb C',
  'won',
  'MB/s',
  'p50 µs',
  'p99 µs',
  'p99.9 µs',
  'stalled',
  'unstalled vs libqb',
  'CPU s/M',
  'RSS MiB',
];
const LEFT = 2; // the first two columns are text

const UNIT = { msgs: 'messages/s', events: 'events/s', connects: 'connects/s' } as const;

function sig(x: number): string {
  if (!Number.isFinite(x)) return '–';
  if (x >= 100) return Math.round(x).toLocaleString('en-US');
  return x >= 10 ? x.toFixed(1) : x.toFixed(2);
}

function cells(r: Row, names: Names): string[] {
  const who = [names.server(r.server), `${names.client(r.client)}${names.clientMark(r.client)}`];
  if (r.rounds === 0) return [...who, 'failed', ...HEADER.slice(LEFT + 1).map(() => '')];
  const times = (x: number, ci: MedianInterval | undefined) =>
    `${x.toFixed(2)}×${ci ? ` (${ci.low.toFixed(2)}–${ci.high.toFixed(2)})` : ''}`;
  const ratio = r.ratio === undefined ? (r.server === 'libqb' ? 'baseline' : '–') : times(r.ratio, r.ratioInterval);
  const won = r.roundsWon === undefined ? '–' : `${r.roundsWon}/${r.ratioRounds}`;
  const unstalled = r.unstalledRatio === undefined ? '–' : times(r.unstalledRatio, r.unstalledRatioInterval);
  return [
    ...who,
    Math.round(r.rate).toLocaleString('en-US') + (r.errors > 0 ? ' !' : ''),
    r.spread === undefined ? '–' : `${(r.spread * 100).toFixed(0)}%`,
    ratio,
    won,
    sig(r.mbPerSec),
    sig(r.p50),
    sig(r.p99),
    sig(r.p999),
    r.stalled === undefined ? '–' : `${(r.stalled * 100).toFixed(0)}%`,
    unstalled,
    sig(r.cpuPerMillion),
    Number.isFinite(r.rssMiB) ? r.rssMiB.toFixed(0) : '–',
  ];
}

function groups(rows: Row[], workloads: Workload[]): Array<{ w: Workload; rows: Row[] }> {
  return workloads.map((w) => ({ w, rows: rows.filter((r) => r.workload === w.key) })).filter((g) => g.rows.length > 0);
}

const heading = (w: Workload) => `${w.title} — rate in ${UNIT[w.unit]}; latency: ${w.latency}`;

export function terminalTable(rows: Row[], workloads: Workload[], names: Names): string {
  const all = groups(rows, workloads).map((g) => ({ ...g, lines: g.rows.map((r) => cells(r, names)) }));
  const widths = HEADER.map((h, i) => Math.max(h.length, ...all.flatMap((g) => g.lines.map((l) => l[i]!.length))));
  const fmt = (cols: string[]) =>
    `  ${cols.map((c, i) => (i < LEFT ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')}`.trimEnd();
  const out: string[] = [];
  for (const g of all) {
    out.push('', heading(g.w), fmt(HEADER), `  ${widths.map((n) => '─'.repeat(n)).join('  ')}`);
    for (const l of g.lines) out.push(fmt(l));
  }
  return out.join('\n');
}

export function markdownTable(rows: Row[], workloads: Workload[], names: Names): string {
  const out: string[] = [];
  const line = (cols: string[]) => `| ${cols.map((c) => c.replace(/\|/g, '\\|')).join(' | ')} |`;
  for (const g of groups(rows, workloads)) {
    out.push('', `**${heading(g.w)}**`, '', line(HEADER), line(HEADER.map((_, i) => (i < LEFT ? '---' : '---:'))));
    for (const r of g.rows) out.push(line(cells(r, names)));
  }
  return out.join('\n').trimStart();
}

/** What the columns mean; printed under both tables. */
export const LEGEND = [
  'rate/s: median over rounds of the whole run\'s rate (all clients together); a "!" marks a row with verification errors.',
  '±: spread of that rate over the rounds, (max − min) / median ("–": a single round).',
  "vs libqb C: median over rounds of (this row's rate / the libqb C server's rate in the same round, same workload); in parentheses, with 2 rounds or more, where that median lies with 95% confidence (from the order statistics of the rounds' ratios, no assumption about their distribution; under 6 rounds no such interval exists and the range is shown: 75% confidence with 3 rounds).",
  "won: rounds in which this row's rate was at least the libqb C server's, out of the rounds compared. A ratio whose interval holds 1.00 is parity on this machine, whatever its median.",
  'MB/s: payload bytes one way. p50/p99/p99.9: latency percentiles over every message of the round (median over rounds).',
  "stalled: share of the clients' time spent in round trips of 1 ms or more (synchronous workloads, median over rounds): stalls, not work — on this VM mostly the host not running a vCPU, but also a pause of the client or the server (GC), and with more clients than CPUs partly waiting for a CPU. Where clients do not outnumber CPUs a rate is roughly (1 − stalled) × the unstalled rate: compare ratios with this column in view.",
  'unstalled vs libqb: as "vs libqb C", each rate first divided by (1 − stalled) — what the two would have done without stalls; only where clients do not outnumber CPUs. The rate ratio is the measure; this says how much of it the stalls explain.',
  'CPU s/M: server CPU seconds (user + system, every thread, from /proc) per million messages — equally µs per message.',
  "RSS MiB: the server's resident set after the cell (median over rounds).",
  `machine check: before each round's cells, the same arithmetic loop (no memory traffic, no syscalls) runs on CPU ${PIN_CPU} in C and in Node, and the stalled share of each (time in stretches of 1 ms or more) is measured as above. Equal shares: the machine treats both alike. A lower Node factor, (1 − Node's) / (1 − C's): this machine takes the CPU from a thread running V8 code more than from one running C, and every qbipc row pays that before its own cost per message.`,
];
