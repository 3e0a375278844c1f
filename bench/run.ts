// The benchmark: every server of the driver table (drivers/servers.ts) under
// every client that speaks its protocol (drivers/clients.ts), for every
// workload (drivers/workloads.ts). Each round starts every server, then runs
// each workload on every pair back to back — the order alternating from one
// workload and round to the next — so a qbipc cell and its libqb C cell are
// measured moments apart and the noisy machine's drift hits both alike.
//
// `qbipc bench …` and `npm run bench -- …` run this; `node dist/bench/run.js …` too.
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { intFlag, numberFlag, parseFlags, UsageError } from '../src/cli/args.js';
import { buildC, libqbMissing, ROOT } from './drivers/build-c.js';
import { calibrate, calibrationLine, type CalibrationSample } from './drivers/calibration.js';
import { CLIENTS, type ClientDriver } from './drivers/clients.js';
import { cpuSeconds, rssKb } from './drivers/cpu.js';
import { ALL_CPUS, PIN_CPU, pin, runLoad, stopLoad } from './drivers/load.js';
import { machine, machineLine } from './drivers/machine.js';
import { settleCell, warmUp } from './drivers/warmup.js';
import { SERVERS, ServerUnavailable, stopEveryServer, type RunningServer, type ServerDriver } from './drivers/servers.js';
import { FULL, inSweep, loadArgs, QUICK, type Workload } from './drivers/workloads.js';
import { failureNotes } from './report/failures.js';
import { plotSvg, type Series } from './report/plot.js';
import { poolRuns, type PoolableRun } from './report/pool.js';
import { Progress } from './report/progress.js';
import { aggregate, type Measurement, type Row } from './report/stats.js';
import { LEGEND, markdownTable, terminalTable, type Names } from './report/table.js';

export const BENCH_USAGE = `usage: qbipc bench [--quick] [--servers KEYS] [--clients KEYS] [--workloads KEYS]
                   [--rounds N] [--seconds S] [--settle S] [--docs] [--from FILE.json[,FILE.json…]]
  --quick        under a minute: 5 workloads, 1 round of 0.4 s per cell (a smoke run, not numbers)
  --servers      comma-separated, default all but the -nospin, -rt and -least variants: ${SERVERS.map((s) => s.key).join(', ')}
                 (libqb runs whenever a qbipc server does: it is the ratio's base)
  --clients      comma-separated, default all (--quick: ${CLIENTS.filter((c) => c.quick)
    .map((c) => c.key)
    .join(', ')}): ${CLIENTS.map((c) => c.key).join(', ')}
  --workloads    comma-separated keys or prefixes (pp-, pipe-, events-, churn-), default all
  --rounds N     rounds, default 3 (--quick: 1); the tables show the median and the spread
  --seconds S    seconds per cell, default 2 (--quick: 0.4)
  --settle S     before each cell, S seconds of the same load, not recorded, so the cell
                 measures the steady state; default 1 (--quick: 0)
  --docs         also write the table and the plot into docs/benchmark.md
                 (a full run's only: not with --quick, nor fewer than 3 rounds)
  --from FILE    measure nothing: print and write the table and plot of an earlier run's JSON file
                 (also a .partial.json that an interrupted run left); several, comma-separated:
                 runs of the same cells pooled into one run of all their rounds`;

function pick<T extends { key: string }>(
  table: T[],
  list: string | undefined,
  flag: string,
  match: (item: T, word: string) => boolean,
): T[] {
  if (list === undefined) return table;
  const words = list
    .split(',')
    .map((w) => w.trim())
    .filter(Boolean);
  for (const w of words) {
    if (!table.some((item) => match(item, w))) {
      throw new UsageError(`${flag}: unknown "${w}"; choose from ${table.map((t) => t.key).join(', ')}`, BENCH_USAGE);
    }
  }
  return table.filter((item) => words.some((w) => match(item, w)));
}

function parse(argv: string[]) {
  const { values, positionals } = parseFlags(
    argv,
    {
      quick: { type: 'boolean' },
      servers: { type: 'string' },
      clients: { type: 'string' },
      workloads: { type: 'string' },
      rounds: { type: 'string' },
      seconds: { type: 'string' },
      settle: { type: 'string' },
      docs: { type: 'boolean' },
      from: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    BENCH_USAGE,
  );
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`, BENCH_USAGE);
  const quick = values.quick === true;
  const workloads = pick(
    quick ? QUICK : FULL,
    values.workloads,
    '--workloads',
    (w, word) => w.key === word || (word.endsWith('-') && w.key.startsWith(word)),
  );
  let servers = pick(SERVERS, values.servers, '--servers', (s, word) => s.key === word);
  if (values.servers === undefined) servers = servers.filter((s) => s.onRequest !== true);
  let clients = pick(
    CLIENTS.filter((c) => !quick || c.quick || values.clients !== undefined),
    values.clients,
    '--clients',
    (c, word) => c.key === word,
  );
  // A client this build lacks: an error when asked for by name, a note otherwise.
  const unavailable: Array<{ key: string; why: string }> = [];
  for (const c of clients) {
    const why = c.missing?.();
    if (why === undefined) continue;
    if (values.clients !== undefined) throw new Error(`--clients ${c.key}: ${why}`);
    unavailable.push({ key: c.key, why });
  }
  clients = clients.filter((c) => !unavailable.some((u) => u.key === c.key));
  if (servers.some((s) => s.speaks === 'libqb') && !servers.some((s) => s.baseline))
    servers = [SERVERS.find((s) => s.baseline)!, ...servers];
  const rounds = intFlag(values.rounds, '--rounds', 1, 100, quick ? 1 : 3, BENCH_USAGE);
  if (values.docs === true && values.from === undefined) docsWorthy({ quick, rounds });
  return {
    help: values.help === true,
    docs: values.docs === true,
    from: values.from,
    quick,
    workloads,
    servers,
    clients,
    unavailable,
    rounds,
    seconds: numberFlag(values.seconds, '--seconds', quick ? 0.4 : 2, BENCH_USAGE),
    settle: numberFlag(values.settle, '--settle', quick ? 0 : 1, BENCH_USAGE, true),
  };
}

/** The docs show medians with a spread: a smoke run or an interrupted one must not land there. */
function docsWorthy(run: { quick: boolean; rounds: number; partial?: number | undefined }, file?: string): void {
  const what = file === undefined ? 'this run' : file;
  const why = run.quick
    ? 'is a --quick run'
    : run.partial !== undefined
      ? 'was interrupted'
      : run.rounds < 3
        ? `has ${run.rounds} round(s), fewer than 3`
        : undefined;
  if (why !== undefined) throw new UsageError(`--docs: ${what} ${why}; docs/benchmark.md shows full runs only`, BENCH_USAGE);
}

interface Pair {
  server: ServerDriver;
  client: ClientDriver;
}

/** What a run measured: the JSON file under bench/results/, and all that --from needs. */
interface Results extends PoolableRun {
  version: 1;
  servers: Array<{ key: string; skipped?: string | undefined }>;
  /** Clients left out because this build lacks them. */
  unavailable?: Array<{ key: string; why: string }>;
  workloads: Workload[];
  /** Written for readers of the file; publish() recomputes them. */
  rows?: Row[];
  notes?: string[];
}

const RESULTS_DIR = path.join(ROOT, 'bench', 'results');
const resultsBase = (r: Pick<Results, 'when' | 'quick' | 'pooled'>) =>
  path.join(RESULTS_DIR, `bench-${r.when.replace(/[:.]/g, '-')}${r.quick ? '-quick' : ''}${r.pooled ? `-pooled-${r.pooled.length}` : ''}`);

export async function runBench(argv: string[]): Promise<number> {
  const opts = parse(argv);
  if (opts.help) {
    console.log(BENCH_USAGE);
    return 0;
  }
  if (opts.from !== undefined) {
    const files = opts.from
      .split(',')
      .map((f) => f.trim())
      .filter(Boolean);
    let earlier: Results;
    try {
      earlier = files.length === 1 ? readResults(files[0]!) : poolRuns(files.map(readResults), files);
    } catch (error) {
      if (error instanceof UsageError) throw error;
      throw new UsageError(`--from: ${(error as Error).message}`, BENCH_USAGE);
    }
    if (opts.docs) docsWorthy(earlier, opts.from);
    // A pooled run is new: it gets its own files, JSON included.
    return publish(earlier, { docs: opts.docs, ...(files.length === 1 ? { from: path.resolve(files[0]!) } : {}) });
  }
  // Fail early and clearly on a machine without libqb-dev.
  const withC = opts.servers.some((s) => s.speaks === 'libqb') || opts.clients.some((c) => c.speaks === 'libqb');
  if (withC) {
    const missing = libqbMissing();
    if (missing !== undefined)
      throw new Error(`${missing}\n(without it only the node net row can run: qbipc bench --servers net --clients node)`);
    buildC('qbload');
    buildC('qb-echo-server');
    buildC('compute-loop');
  }
  const pairs: Pair[] = opts.servers.flatMap((server) =>
    opts.clients.filter((c) => c.speaks === server.speaks).map((client) => ({ server, client })),
  );
  const skipped = new Map<string, string>(); // server key → why
  const measurements: Measurement[] = [];
  const calibration: CalibrationSample[] = [];
  const results = (): Results => ({
    version: 1,
    when,
    quick: opts.quick,
    rounds: opts.rounds,
    seconds: opts.seconds,
    settle: opts.settle,
    machine: info,
    servers: opts.servers.map((s) => ({ key: s.key, skipped: skipped.get(s.key) })),
    clients: opts.clients.map((c) => c.key),
    unavailable: opts.unavailable,
    workloads: opts.workloads,
    measurements,
    ...(withC ? { calibration } : {}),
  });
  // After every round the measurements so far go to a .partial.json (`--from` publishes it).
  const when = new Date().toISOString();
  const partialFile = `${resultsBase({ when, quick: opts.quick })}.partial.json`;
  const savePartial = (roundsDone: number) => {
    mkdirSync(RESULTS_DIR, { recursive: true });
    writeFileSync(partialFile, `${JSON.stringify({ ...results(), partial: roundsDone }, null, 2)}\n`);
  };
  const running = new Map<string, RunningServer>();
  const stopAll = () => Promise.all([...running.values()].map((r) => r.stop())).then(() => running.clear());
  const onSignal = () => {
    process.stderr.write(`\ninterrupted: stopping the servers; what was measured is in ${path.relative(process.cwd(), partialFile)}\n`);
    stopLoad(); // the cell's load program, by pid
    void stopEveryServer().then(() => process.exit(130)); // also those still starting
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const info = machine();
  const progress = new Progress(opts.rounds * opts.workloads.length * pairs.length);
  try {
    for (let round = 0; round < opts.rounds; round++) {
      const starting = opts.servers.filter((s) => !skipped.has(s.key) && pairs.some((p) => p.server === s));
      progress.step(`round ${round + 1}/${opts.rounds}: starting ${starting.map((s) => s.name).join(', ')}`);
      const started = await Promise.allSettled(starting.map((s) => s.start(`qbbench-${process.pid}-${s.key}-r${round}`)));
      let failed: Error | undefined;
      for (const [i, outcome] of started.entries()) {
        const s = starting[i]!;
        if (outcome.status === 'fulfilled') running.set(s.key, outcome.value);
        else if (outcome.reason instanceof ServerUnavailable) {
          skipped.set(s.key, outcome.reason.message);
          progress.note(`skipping ${s.name}: ${outcome.reason.message}`);
          progress.drop(pairs.filter((p) => p.server === s).length * opts.workloads.length * (opts.rounds - round));
        } else failed ??= outcome.reason;
      }
      if (failed !== undefined) throw failed;
      progress.step(`round ${round + 1}/${opts.rounds}: warming up the servers (not recorded)`);
      const warm = starting
        .filter((s) => running.has(s.key))
        .map((s) => ({
          name: s.name,
          server: running.get(s.key)!,
          client: pairs.find((p) => p.server === s)!.client, // the table's first client: qbload for libqb servers
        }));
      for (const why of await warmUp(warm)) progress.note(why);
      if (withC) {
        progress.step(`round ${round + 1}/${opts.rounds}: machine check (the same loop in C and in Node on CPU ${PIN_CPU})`);
        calibration.push(...(await calibrate(round, opts.seconds)));
      }
      for (const [wi, w] of opts.workloads.entries()) {
        const live = pairs.filter((p) => running.has(p.server.key));
        const order = (round + wi) % 2 === 0 ? live : [...live].reverse();
        for (const { server, client } of order) {
          progress.step(`round ${round + 1}/${opts.rounds} · ${w.title} · ${server.name} ← ${client.name}`);
          const m = await measure(running.get(server.key)!, client, w, opts.seconds, opts.settle);
          measurements.push({ round, workload: w.key, server: server.key, client: client.key, ...m });
          if (m.error !== undefined) progress.note(`FAILED ${w.title} · ${server.name} ← ${client.name}: ${m.error}`);
          progress.advance();
        }
      }
      await stopAll();
      if (round + 1 < opts.rounds) savePartial(round + 1);
    }
  } finally {
    await stopAll();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
  progress.finish();
  const code = publish(results(), { docs: opts.docs });
  rmSync(partialFile, { force: true });
  return code;
}

function readResults(file: string): Results {
  let raw: Omit<Results, 'clients'> & { clients: Array<string | { key: string }> };
  try {
    raw = JSON.parse(readFileSync(file, 'utf8')) as typeof raw;
  } catch (error) {
    throw new UsageError(`--from: cannot read ${file}: ${(error as Error).message}`, BENCH_USAGE);
  }
  if (raw.version !== 1 || !Array.isArray(raw.measurements))
    throw new UsageError(`--from: ${file} is not a results file of this harness`, BENCH_USAGE);
  return { ...raw, clients: raw.clients.map((c) => (typeof c === 'string' ? c : c.key)) };
}

const NAMES: Names = {
  server: (k) => SERVERS.find((s) => s.key === k)?.name ?? k,
  client: (k) => CLIENTS.find((c) => c.key === k)?.name ?? k,
  clientMark: (k) => (CLIENTS.find((c) => c.key === k)?.speaks === 'net' ? ' †' : ''),
};

/**
 * From measurements to rows, notes, the terminal table and the files (JSON,
 * Markdown, SVG; docs/benchmark.md with --docs). `from`: re-publishing a
 * results file, which is then not rewritten.
 */
function publish(results: Results, opts: { docs: boolean; from?: string }): number {
  const names = NAMES;
  const servers = results.servers.map((s) => SERVERS.find((d) => d.key === s.key)).filter((d): d is ServerDriver => d !== undefined);
  const clients = results.clients.map((k) => CLIENTS.find((c) => c.key === k)).filter((c): c is ClientDriver => c !== undefined);
  const pairs: Pair[] = servers.flatMap((server) =>
    clients.filter((c) => c.speaks === server.speaks).map((client) => ({ server, client })),
  );
  const { measurements } = results;
  const ran = new Set(measurements.map((m) => `${m.server}|${m.client}`));
  const rank = (r: Row) => pairs.findIndex((p) => p.server.key === r.server && p.client.key === r.client);
  const rows = aggregate(
    measurements,
    (server, client) => {
      if (server === 'libqb') return undefined;
      const c = ran.has(`libqb|${client}`) ? client : 'qbload';
      return ran.has(`libqb|${c}`) ? { server: 'libqb', client: c } : undefined;
    },
    results.machine.cpus,
  ).sort((a, b) => rank(a) - rank(b)); // the driver tables' order, whatever order they ran in

  const notes: string[] = [];
  if (results.partial !== undefined) notes.push(`interrupted: ${results.partial} of ${results.rounds} round(s) measured`);
  if (results.pooled !== undefined) {
    notes.push(
      `pooled from ${results.pooled.length} runs: ${results.pooled.map((p) => `${p.when.slice(0, 16).replace('T', ' ')} UTC, qbipc ${p.commit ?? '?'}, ${p.rounds} round(s)`).join('; ')}`,
    );
  }
  for (const s of servers) {
    if (!pairs.some((p) => p.server === s)) notes.push(`${s.name}: no selected client speaks its protocol — not measured`);
  }
  for (const s of results.servers) {
    if (s.skipped !== undefined)
      notes.push(`${names.server(s.key)}: skipped — the service cannot run in this build (run() rejected ENOTSUP: ${s.skipped})`);
  }
  if (pairs.some((p) => p.client.speaks === 'net')) {
    notes.push(
      '† the node net row uses a node client (bench/clients/node-load.ts: same framing, flags, checks and histogram as qbload): ' +
        'libqb clients cannot talk to a plain unix socket. Its "vs libqb C" compares with the libqb C server under the libqb C client; ' +
        'its events share the one stream with the responses.',
    );
  }
  for (const u of results.unavailable ?? []) notes.push(`${names.client(u.key)}: not measured — ${u.why}`);
  if (!results.clients.includes('qbipc') && !(results.unavailable ?? []).some((u) => u.key === 'qbipc')) {
    notes.push('the qbipc client (src/client) is measured in the full run, or with --clients qbipc');
  }
  if (results.rounds < 3) notes.push(`${results.rounds} round(s) only: no median to speak of — use the full run (3 rounds) for numbers.`);
  notes.push(...failureNotes(measurements, names));
  for (const r of rows)
    if (r.errors > 0) notes.push(`verification errors: ${r.workload} · ${names.server(r.server)} ← ${names.client(r.client)}: ${r.errors}`);

  const info = results.machine;
  const summary =
    `${results.when.slice(0, 16).replace('T', ' ')} UTC · ${results.quick ? 'quick, ' : ''}${results.rounds} round(s)` +
    `${results.pooled ? ` (${results.pooled.length} runs pooled)` : ''} × ${results.seconds} s per cell` +
    `${results.settle ? ` after ${results.settle} s settling` : ''} · ` +
    machineLine(info);
  const check = calibrationLine(results.calibration);
  console.log(`\n${summary}`);
  console.log(terminalTable(rows, results.workloads, names));
  if (check !== undefined) console.log(`\n${check}`);
  console.log(`\n${LEGEND.join('\n')}`);
  if (notes.length > 0) console.log(`\n${notes.map((n) => `note: ${n}`).join('\n')}`);

  mkdirSync(RESULTS_DIR, { recursive: true });
  const base = opts.from?.replace(/(\.partial)?\.json$/, '') ?? resultsBase(results);
  const file = (ext: string) => `${base}.${ext}`;
  const svg = plotSvg(
    `ping-pong 64 B: rate vs clients (${results.rounds} round(s), median; bars: range)`,
    sweepSeries(rows, results.workloads, names, pairs),
  );
  const markdown = [
    `${summary}`,
    '',
    markdownTable(rows, results.workloads, names),
    '',
    ...(check === undefined ? [] : [check, '']),
    ...LEGEND.map((l) => `- ${l}`),
    '',
    ...notes.map((n) => `- ${n}`),
  ].join('\n');
  if (opts.from === undefined) writeFileSync(file('json'), `${JSON.stringify({ ...results, rows, notes }, null, 2)}\n`);
  writeFileSync(file('svg'), svg);
  writeFileSync(file('md'), `${markdown}\n`);
  console.log(`\nresults: ${path.relative(process.cwd(), opts.from ?? file('json'))} (+ .md, and .svg: rate vs clients)`);
  if (opts.docs) {
    updateDocs(markdown, file('svg'));
    console.log('docs/benchmark.md: table and plot updated');
  }
  return rows.some((r) => r.failures.length > 0 || r.errors > 0) ? 1 : 0;
}

async function measure(
  server: RunningServer,
  client: ClientDriver,
  w: Workload,
  seconds: number,
  settle: number,
): Promise<Partial<Measurement>> {
  if (!server.alive()) return { error: `the server is gone: ${server.stderrTail() || 'no message'}` };
  const cpusList = w.sameCpu ? PIN_CPU : ALL_CPUS;
  let settling = false;
  let unpin: (() => void) | undefined;
  try {
    const [command, pre] = client.command();
    // Only a same-CPU cell confines the server; other cells leave its threads where it put them.
    if (w.sameCpu) unpin = pin(server.pid, cpusList);
    settling = settle > 0;
    const argsFor = (s: number) => [...pre, ...loadArgs(server.address, w, s)];
    const settled = settling ? await settleCell(command, argsFor(settle), cpusList, settle) : undefined;
    settling = false;
    const before = cpuSeconds(server.pid);
    const result = await runLoad(command, argsFor(seconds), cpusList, (seconds + 60) * 1000);
    return {
      result,
      cpuSeconds: cpuSeconds(server.pid) - before,
      rssKb: rssKb(server.pid),
      ...(settled === undefined ? {} : { settledMessages: settled }),
    };
  } catch (error) {
    const tail = server.alive() ? '' : ` (the server exited: ${server.stderrTail() || 'no message'})`;
    return { error: `${settling ? 'settling: ' : ''}${(error as Error).message}${tail}` };
  } finally {
    if (server.alive()) unpin?.();
  }
}

/** The plot's lines, in the order of the driver tables (pairs). */
function sweepSeries(rows: Row[], workloads: Workload[], names: Names, pairs: Pair[]): Series[] {
  const sweep = new Map(workloads.filter(inSweep).map((w) => [w.key, w.clients]));
  const series = new Map<string, Series>();
  for (const r of rows) {
    const clients = sweep.get(r.workload);
    if (clients === undefined || r.rounds === 0) continue;
    const key = `${r.server}|${r.client}`;
    const label =
      r.client === 'qbload' ? names.server(r.server) : `${names.server(r.server)} ← ${names.client(r.client)}${names.clientMark(r.client)}`;
    const s = series.get(key) ?? { label, colorKey: r.server, dashed: r.client !== 'qbload', points: [] };
    s.points.push({ clients, rate: r.rate, min: r.rateMin, max: r.rateMax });
    series.set(key, s);
  }
  const rank = (key: string) => pairs.findIndex((p) => `${p.server.key}|${p.client.key}` === key);
  return [...series.entries()].sort(([a], [b]) => rank(a) - rank(b)).map(([, v]) => v);
}

const DOCS = path.join(ROOT, 'docs', 'benchmark.md');
const BEGIN = '<!-- bench:results:begin -->';
const END = '<!-- bench:results:end -->';

function updateDocs(markdown: string, svgFile: string): void {
  const text = readFileSync(DOCS, 'utf8');
  const a = text.indexOf(BEGIN);
  const b = text.indexOf(END);
  if (a < 0 || b < a) throw new Error(`${DOCS} lacks the ${BEGIN} … ${END} markers`);
  copyFileSync(svgFile, path.join(ROOT, 'docs', 'benchmark-rate-vs-clients.svg'));
  const section = `${BEGIN}\n${markdown}\n\n![rate vs clients](benchmark-rate-vs-clients.svg)\n`;
  writeFileSync(DOCS, text.slice(0, a) + section + text.slice(b));
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  runBench(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: Error) => {
      console.error(`bench: ${error.message}${error instanceof UsageError ? `\n${error.usage}` : ''}`);
      process.exit(error instanceof UsageError ? 2 : 1);
    },
  );
}
