// The benchmark: every server of the driver table under the same libqb C load
// client, rounds alternating servers, each qbipc row as a ratio to libqb C
// measured in the same run. `npm run bench -- --quick` for a short run.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './drivers/build-c.js';
import { cpuSeconds, rssKb } from './drivers/cpu.js';
import { ALL_CPUS, pin, runLoad, type LoadResult, type Workload } from './drivers/load.js';
import { SERVERS } from './drivers/servers.js';

interface Cell {
  server: string;
  workload: string;
  rounds: Array<LoadResult & { cpuUsPerMsg: number; rssKb: number }>;
}

function parseArgs(argv: string[]) {
  const quick = argv.includes('--quick');
  const value = (flag: string) => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  for (const arg of argv) {
    if (arg.startsWith('--') && !['--quick', '--seconds', '--rounds', '--servers'].includes(arg)) {
      throw new Error(`unknown flag ${arg}; flags: --quick, --seconds N, --rounds N, --servers a,b`);
    }
  }
  const seconds = Number(value('--seconds') ?? (quick ? 1 : 3));
  const rounds = Number(value('--rounds') ?? (quick ? 1 : 3));
  if (!(seconds > 0) || !Number.isInteger(rounds) || rounds < 1) throw new Error('--seconds must be > 0 and --rounds a positive integer');
  const only = value('--servers')?.split(',');
  return { quick, seconds, rounds, only };
}

const WORKLOADS: Workload[] = [
  { name: 'ping-pong 64 B, 1 client, same CPU', clients: 1, size: 64, depth: 1, cpus: '0' },
  { name: 'ping-pong 64 B, 1 client', clients: 1, size: 64, depth: 1 },
  { name: 'ping-pong 64 B, 8 clients', clients: 8, size: 64, depth: 1 },
  { name: 'pipelined 64 B ×16, 8 clients', clients: 8, size: 64, depth: 16 },
];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

async function main() {
  const { seconds, rounds, only } = parseArgs(process.argv.slice(2));
  const servers = SERVERS.filter((s) => s.baseline || !only || only.some((o) => s.name.includes(o)));
  const cells = new Map<string, Cell>();
  const total = rounds * servers.length * WORKLOADS.length;
  let done = 0;
  for (let round = 0; round < rounds; round++) {
    // Alternate the order each round, so drift on this noisy machine hits every server alike.
    const order = round % 2 === 0 ? servers : [...servers].reverse();
    for (const driver of order) {
      const service = `qbbench-${process.pid}-${round}`;
      const server = await driver.start(service);
      try {
        for (const w of WORKLOADS) {
          process.stderr.write(`\r[${'#'.repeat(done)}${'.'.repeat(total - done)}] ${driver.name}: ${w.name}      `);
          pin(server.pid, w.cpus ?? ALL_CPUS);
          const cpuBefore = cpuSeconds(server.pid);
          const result = await runLoad(service, w, seconds);
          const cpu = cpuSeconds(server.pid) - cpuBefore;
          const key = `${driver.name}|${w.name}`;
          const cell = cells.get(key) ?? { server: driver.name, workload: w.name, rounds: [] };
          cell.rounds.push({ ...result, cpuUsPerMsg: (cpu * 1e6) / result.messages, rssKb: rssKb(server.pid) });
          cells.set(key, cell);
          done++;
        }
      } finally {
        await server.stop();
      }
    }
  }
  process.stderr.write('\n');

  const rows = [...cells.values()].map((cell) => {
    const rates = cell.rounds.map((r) => r.msgs_per_sec);
    return {
      server: cell.server,
      workload: cell.workload,
      rate: median(rates),
      spread: rates.length > 1 ? (Math.max(...rates) - Math.min(...rates)) / median(rates) : 0,
      p50: median(cell.rounds.map((r) => r.p50_us)),
      p99: median(cell.rounds.map((r) => r.p99_us)),
      cpu: median(cell.rounds.map((r) => r.cpuUsPerMsg)),
      rss: Math.max(...cell.rounds.map((r) => r.rssKb)),
      errors: cell.rounds.reduce((n, r) => n + r.errors, 0),
    };
  });
  const baseline = servers.find((s) => s.baseline)!.name;
  const table = rows.map((r) => {
    const base = rows.find((b) => b.server === baseline && b.workload === r.workload)!;
    return { ...r, ratio: r.rate / base.rate, cpuRatio: r.cpu / base.cpu };
  });

  const header = ['workload', 'server', 'msgs/s', '±', 'vs libqb', 'p50 µs', 'p99 µs', 'CPU µs/msg', 'RSS MiB', 'errors'];
  const lines = table.map((r) => [r.workload, r.server, Math.round(r.rate).toLocaleString('en-US'), `${(r.spread * 100).toFixed(0)}%`,
    `${r.ratio.toFixed(2)}×`, r.p50.toFixed(1), r.p99.toFixed(1), r.cpu.toFixed(2), (r.rss / 1024).toFixed(0), String(r.errors)]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cols: string[]) => cols.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(`\n${rounds} round(s) × ${seconds} s per cell, median; ± = spread (max − min) / median; libqb C client load\n`);
  console.log(fmt(header));
  console.log(widths.map((w) => '─'.repeat(w)).join('  '));
  for (const l of lines) console.log(fmt(l));

  const dir = path.join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify({ when: new Date().toISOString(), seconds, rounds, node: process.version, table, cells: [...cells.values()] }, null, 2));
  console.log(`\nresults: ${path.relative(process.cwd(), file)}`);
  if (table.some((r) => r.errors > 0)) process.exitCode = 1;
}

main().catch((error: Error) => {
  console.error(`\nbench: ${error.message}`);
  process.exit(1);
});
