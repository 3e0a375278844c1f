// The qbipc command line: bad flags fail fast with a clear message and exit
// code 2; a machine without libqb-dev is told how to install it; `qbipc serve`
// is an echo service a stock libqb C client can use; `qbipc ping` round-trips
// against it and against libqb's own C server; a tiny `qbipc bench` prints the
// qbipc and libqb rows and writes its results file.
// Every wait is on a process's output or exit, bounded by a timer that kills
// the process by pid.
import test from 'ava';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { calibrationLine, calibrationSummary, type CalibrationSample } from '../bench/drivers/calibration.js';
import { FULL } from '../bench/drivers/workloads.js';
import { medianInterval } from '../bench/report/confidence.js';
import { aggregate, type Measurement } from '../bench/report/stats.js';
import { buildCPrograms, QbClient, runProgram } from './helpers/c-programs.js';
import { shmEntries, uniqueName } from './helpers/echo-service.js';
import { fails, ok } from './helpers/expect.js';
import { connectionDirs, startCServer } from './helpers/peers.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
// Generous: on a loaded 2-vCPU machine a Node start alone can take seconds.
const run = (...args: string[]) => runProgram(process.execPath, [CLI, ...args], { timeoutMs: 60_000 });

test.before(async () => {
  await buildCPrograms();
});

const usageErrors: Array<[string[], RegExp]> = [
  [[], /usage: qbipc <command>/],
  [['frob'], /unknown command "frob"/],
  [['serve'], /serve needs a service NAME/],
  [['serve', 'a', 'b'], /serve takes one NAME/],
  [['serve', 'x', '--workers', 'abc'], /--workers must be an integer from 0 to \d+, got "abc"/],
  [['serve', 'x', '--workers'], /--workers needs a value/],
  [['serve', 'x', '--type', 'mq'], /--type must be one of shm, socket, got "mq"/],
  [['serve', 'x', '--bogus'], /unknown flag --bogus/],
  [['serve', 'a/b'], /must not contain '\/'/],
  [['bench', '--servers', 'nope'], /--servers: unknown "nope"; choose from libqb, qbipc/],
  [['bench', '--rounds', '0'], /--rounds must be an integer from 1/],
  [['bench', '--seconds=-1'], /--seconds must be a number > 0, got "-1"/],
  [['bench', '--seconds', '-1'], /--seconds needs a value \(one that starts with "-" is written --seconds=VALUE\)/],
  [['bench', '--settle=-0.5'], /--settle must be a number ≥ 0, got "-0.5"/],
  [['bench', '--settle', 'abc'], /--settle must be a number ≥ 0, got "abc"/],
  [['bench', 'extra'], /unexpected argument "extra"/],
  [['bench', '--quick', '--docs'], /--docs: this run is a --quick run; docs\/benchmark.md shows full runs only/],
  [['serve', 'x', '--max-connections', '0'], /--max-connections must be an integer from 1 to 2147483647, got "0"/],
  [['serve', 'x', '--max-connections-per-uid', '1.5'], /--max-connections-per-uid must be an integer from 1 to 2147483647, got "1.5"/],
  [['ping'], /ping needs a service NAME/],
  [['ping', 'x', '--count', '0'], /--count must be an integer from 1 to \d+, got "0"/],
  [['ping', 'x', '--size', 'big'], /--size must be an integer from 0 to \d+, got "big"/],
  [['ping', 'x', '--bogus'], /unknown flag --bogus/],
];

for (const [args, message] of usageErrors) {
  // serial: a score of Node processes started at once would only measure the scheduler
  test.serial(`qbipc ${args.join(' ') || '(nothing)'}: exit 2 and "${message.source}"`, async (t) => {
    const r = await run(...args);
    t.false(r.timedOut);
    t.is(r.code, 2, r.stderr);
    t.regex(r.stderr, message);
    t.regex(r.stderr, /usage: qbipc/, 'the usage follows the error');
    t.is(r.stdout, '');
  });
}

test("--help: the commands list, and each command's usage, on stdout, exit 0", async (t) => {
  const top = await run('--help');
  t.is(top.code, 0, top.stderr);
  t.regex(top.stdout, /serve NAME[\s\S]*bench[\s\S]*ping NAME/);
  for (const cmd of ['serve', 'bench', 'ping']) {
    const r = await run(cmd, '--help');
    t.is(r.code, 0, r.stderr);
    t.regex(r.stdout, new RegExp(`usage: qbipc ${cmd}`));
  }
});

/** `qbipc …` with `env` instead of this process's environment; bounded. */
function runWithEnv(env: NodeJS.ProcessEnv, ...args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env, timeout: 60_000 }, (error, _stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : null, stderr });
    });
  });
}

test('qbipc bench without pkg-config (PATH without it): exit 1, says how to install libqb-dev', async (t) => {
  const r = await runWithEnv({ PATH: '/nonexistent' }, 'bench', '--quick');
  t.is(r.code, 1, r.stderr);
  t.regex(r.stderr, /pkg-config is missing \(needed to find libqb-dev\); install it with: sudo apt-get install -y libqb-dev/);
});

test('qbipc bench without libqb-dev (pkg-config finds no libqb): exit 1, says how to install it', async (t) => {
  // PKG_CONFIG_LIBDIR replaces pkg-config's default search path: libqb.pc is not found
  const r = await runWithEnv({ ...process.env, PKG_CONFIG_LIBDIR: '/nonexistent', PKG_CONFIG_PATH: '' }, 'bench', '--quick');
  t.is(r.code, 1, r.stderr);
  t.regex(r.stderr, /libqb-dev is missing \(pkg-config cannot find libqb\); install it with: sudo apt-get install -y libqb-dev/);
});

/** Starts `qbipc serve NAME …`; resolves with its pid once it printed "ready". */
function startServe(args: string[]): Promise<{ pid: number; exited: Promise<number | null>; stderr: () => string }> {
  const child = spawn(process.execPath, [CLI, 'serve', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      process.kill(child.pid!, 'SIGKILL');
      reject(new Error(`qbipc serve was not ready within 60 s: ${err}`));
    }, 60_000);
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      out += s;
      const m = /^ready pid=(\d+) /m.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ pid: Number(m[1]), exited, stderr: () => err });
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`qbipc serve exited (${code}) before it was ready: ${err}`));
    });
  });
}

for (const workers of [0, 1]) {
  test(`qbipc serve --workers ${workers}: a libqb C client echoes and receives events; SIGTERM stops it cleanly`, async (t) => {
    const name = uniqueName('cli');
    const serve = await startServe([name, '--workers', String(workers)]);
    const client = await QbClient.start();
    try {
      await ok(t, client, `connect ${name} 12328`);
      const { n } = await ok(t, client, 'echo 1000');
      t.is(Number(n), 24 + 1000);
      await ok(t, client, 'rounds 500 64');
      const { count } = await ok(t, client, 'events 1000 32');
      t.is(Number(count), 1000);
      await ok(t, client, 'disconnect');
    } finally {
      await client.close();
      const kill = setTimeout(() => process.kill(serve.pid, 'SIGKILL'), 10_000);
      process.kill(serve.pid, 'SIGTERM');
      const code = await serve.exited;
      clearTimeout(kill);
      t.is(code, 0, serve.stderr());
    }
    t.deepEqual(shmEntries(serve.pid), [], 'no connection directories left behind');
  });
}

test('qbipc serve --max-connections 1: the second client is refused with EAGAIN, as the option does', async (t) => {
  const name = uniqueName('cli-limit');
  const serve = await startServe([name, '--max-connections', '1']);
  const clients = [await QbClient.start(), await QbClient.start()];
  try {
    await ok(t, clients[0]!, `connect ${name} 12328`);
    await ok(t, clients[0]!, 'echo 100');
    await fails(t, clients[1]!, `connect ${name} 12328`, 11);
    await ok(t, clients[0]!, 'echo 100');
  } finally {
    for (const client of clients) await client.close();
    const kill = setTimeout(() => process.kill(serve.pid, 'SIGKILL'), 10_000);
    process.kill(serve.pid, 'SIGTERM');
    t.is(await serve.exited, 0, serve.stderr());
    clearTimeout(kill);
  }
  t.deepEqual(shmEntries(serve.pid), [], 'no connection directories left behind');
});

test('qbipc serve on a name already served: exit 1 and says so', async (t) => {
  const name = uniqueName('cli-dup');
  const first = await startServe([name]);
  try {
    const r = await run('serve', name);
    t.is(r.code, 1, r.stderr);
    t.regex(r.stderr, /another server already serves this name/);
  } finally {
    process.kill(first.pid, 'SIGTERM');
    await first.exited;
  }
});

/** `qbipc ping NAME` as a user runs it; checks the summary of `count` good round trips. */
async function pingOk(t: import('ava').ExecutionContext, name: string, count: number, size: number, serverPid: number): Promise<void> {
  const r = await run('ping', name, '--count', String(count), '--size', String(size), '--quiet');
  t.false(r.timedOut);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, new RegExp(`^PING ${name} \\(\\w+, buffer \\d+ bytes, server pid ${serverPid}\\): ${size} payload bytes`, 'm'));
  t.regex(r.stdout, new RegExp(`^${count} sent, ${count} ok, 0 failed, \\d+ round trips/s$`, 'm'));
  t.regex(r.stdout, /^latency us: min [\d.]+ avg [\d.]+ p50 [\d.]+ p99 [\d.]+ max [\d.]+$/m);
}

for (const type of ['shm', 'socket'] as const) {
  test(`qbipc ping against qbipc serve --type ${type}: every round trip checked, latency summary, exit 0`, async (t) => {
    const name = uniqueName(`cli-ping-${type}`);
    const serve = await startServe([name, '--type', type]);
    try {
      await pingOk(t, name, 50, 1000, serve.pid);
    } finally {
      const kill = setTimeout(() => process.kill(serve.pid, 'SIGKILL'), 10_000);
      process.kill(serve.pid, 'SIGTERM');
      await serve.exited;
      clearTimeout(kill);
    }
    t.deepEqual(shmEntries(serve.pid), [], 'no connection directories left behind');
  });
}

test("qbipc ping against libqb's own C echo server (bench/c/qb-echo-server.c): exit 0", async (t) => {
  const name = uniqueName('cli-ping-c');
  const server = await startCServer(name, 'shm');
  try {
    await pingOk(t, name, 50, 1000, server.pid);
  } finally {
    await server.stop();
  }
  t.deepEqual(connectionDirs(server.pid), [], 'the C server removed its connection directories');
});

test('qbipc ping NAME nobody serves: exit 2, says it cannot connect', async (t) => {
  const r = await run('ping', uniqueName('cli-nobody'), '--timeout', '2000');
  t.is(r.code, 2, r.stderr);
  t.regex(r.stderr, /qbipc ping: cannot connect/);
});

test('a tiny qbipc bench: qbipc and libqb C rows with a ratio, a results file, each cell settled first', async (t) => {
  const r = await runProgram(
    process.execPath,
    [
      CLI,
      'bench',
      '--quick',
      '--servers',
      'qbipc',
      '--clients',
      'qbload',
      '--workloads',
      'pp-64-c1',
      '--seconds',
      '0.2',
      '--settle',
      '0.2',
    ],
    { timeoutMs: 60_000 },
  );
  t.false(r.timedOut);
  const file = /^results: (\S+\.json)/m.exec(r.stdout)?.[1];
  t.truthy(file, r.stdout);
  const json = path.resolve(file!); // printed relative to the cwd the child inherited
  try {
    t.is(r.code, 0, `${r.stdout}\n${r.stderr}`);
    t.regex(r.stdout, /^ {2}libqb C \(qb_loop\) +libqb C \(qbload\) +[\d,]+ +– +baseline /m);
    t.regex(r.stdout, /^ {2}qbipc in-thread +libqb C \(qbload\) +[\d,]+ +– +[\d.]+× /m);
    t.true(existsSync(json), json);
    t.regex(r.stdout, / stalled +unstalled vs libqb /, 'the table has the stalled and unstalled-ratio columns');
    const results = JSON.parse(readFileSync(json, 'utf8')) as {
      settle?: number;
      measurements: Array<{
        server: string;
        cpuSeconds?: number;
        rssKb?: number;
        settledMessages?: number;
        result?: { stalled_share?: number };
      }>;
      calibration?: CalibrationSample[];
    };
    // The machine check ran once (one round): the loop in C and in Node, each with its stalled share.
    t.regex(r.stdout, /^machine check \(one arithmetic loop on CPU 0, 1 round\(s\), median\): stalled C \d+% · Node \d+%/m);
    t.deepEqual((results.calibration ?? []).map((s) => s.runtime).sort(), ['c', 'node']);
    for (const s of results.calibration ?? []) {
      t.true(s.chunks > 0 && s.seconds > 0 && s.stalled_share >= 0 && s.stalled_share <= 1, JSON.stringify(s));
    }
    // A cell a host freeze covers whole (stalled ≥ 99 %) has no unstalled rate, by design; this
    // 0.2 s cell can be one on a busy machine.
    const wholeStalls = results.measurements.filter((m) => (m.result?.stalled_share ?? 0) >= 0.99).length;
    if (wholeStalls === 0) {
      t.regex(
        r.stdout,
        /^ {2}qbipc in-thread +libqb C \(qbload\) .* [\d.]+× .* \d+% +[\d.]+× /m,
        'one client on this machine: an unstalled ratio too',
      );
    } else {
      t.regex(
        r.stdout,
        /^ {2}qbipc in-thread +libqb C \(qbload\) .* [\d.]+× .* \d+% +– /m,
        'no unstalled ratio from a cell that was all stall',
      );
    }
    t.deepEqual(results.measurements.map((m) => m.server).sort(), ['libqb', 'qbipc']);
    // --settle: the same load ran unrecorded before each cell, and the table says so.
    t.is(results.settle, 0.2);
    t.regex(r.stdout, /1 round\(s\) × 0\.2 s per cell after 0\.2 s settling · /);
    // Present only when the settling load ran (its count may be 0 if a host freeze covered it).
    for (const m of results.measurements) t.not(m.settledMessages, undefined, `the cell was settled: ${JSON.stringify(m)}`);
    for (const m of results.measurements) {
      t.true((m.cpuSeconds ?? -1) >= 0 && (m.rssKb ?? 0) > 0, JSON.stringify(m));
      const stalled = m.result?.stalled_share;
      t.true(
        typeof stalled === 'number' && stalled >= 0 && stalled <= 1,
        `a synchronous cell carries stalled_share: ${JSON.stringify(m.result)}`,
      );
    }
  } finally {
    for (const ext of ['json', 'md', 'svg']) rmSync(json.replace(/\.json$/, `.${ext}`), { force: true });
  }
});

/** Processes whose command line names this bench run's servers (qbbench-<pid>-…). */
function benchServers(benchPid: number): number[] {
  return readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .flatMap((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(`qbbench-${benchPid}-`) ? [Number(pid)] : [];
      } catch {
        return []; // gone meanwhile
      }
    });
}

test("the machine check's summary: medians per runtime, the Node factor, nothing for an older results file", (t) => {
  const sample = (round: number, runtime: 'c' | 'node', stalled: number): CalibrationSample => ({
    round,
    runtime,
    seconds: 2,
    chunks: 1000,
    stalled_share: stalled,
  });
  const samples = [
    sample(0, 'c', 0.5),
    sample(0, 'node', 0.8),
    sample(1, 'node', 0.7),
    sample(1, 'c', 0.6),
    sample(2, 'c', 0.4),
    sample(2, 'node', 0.75),
  ];
  const s = calibrationSummary(samples)!;
  t.is(s.c, 0.5);
  t.is(s.node, 0.75);
  t.is(s.factor!.toFixed(3), '0.500'); // (1 − 0.75) / (1 − 0.5)
  t.is(
    calibrationLine(samples),
    'machine check (one arithmetic loop on CPU 0, 3 round(s), median): stalled C 50% · Node 75% → a Node thread keeps 0.50× the unstalled time a C thread keeps',
  );
  t.is(
    calibrationSummary([sample(0, 'c', 0.999), sample(0, 'node', 0.5)])!.factor,
    undefined,
    'no factor from a C loop that was all stall',
  );
  t.is(calibrationLine(undefined), undefined);
  t.is(calibrationSummary(samples.filter((x) => x.runtime === 'c')), undefined, 'both loops or nothing');
});

/** A synthetic 8-client cell: `rate` messages in one second. */
const cell = (round: number, server: string, rate: number): Measurement => ({
  round,
  workload: 'pp-64-c8',
  server,
  client: 'qbload',
  cpuSeconds: 1,
  rssKb: 1024,
  result: {
    clients: 8,
    size: 64,
    depth: 1,
    messages: rate,
    errors: 0,
    seconds: 1,
    msgs_per_sec: rate,
    mb_per_sec: 1,
    p50_us: 1,
    p99_us: 2,
    p999_us: 3,
    max_us: 4,
  },
});

test("the ratio's confidence interval and rounds won: order statistics, the range below 6 rounds", (t) => {
  t.is(medianInterval([1.2]), undefined, 'one round: no interval');
  t.deepEqual(medianInterval([0.9, 1.3, 1.1]), { low: 0.9, high: 1.3, confidence: 0.75 }, '3 rounds: the range, worth 75%');
  // 30 rounds: [x(10), x(21)] is the narrowest pair at >= 95% (95.7%); [x(11), x(20)] would be 90.1%.
  const thirty = Array.from({ length: 30 }, (_, i) => (i + 1) / 10);
  const ci = medianInterval([...thirty].reverse())!;
  t.is(ci.low, 1.0);
  t.is(ci.high, 2.1);
  t.is(ci.confidence.toFixed(3), '0.957');

  const rates: Array<[number, number]> = [
    [100, 90],
    [100, 130],
    [100, 100],
    [100, 80],
    [100, 120],
    [100, 95],
  ];
  const rows = aggregate(
    rates.flatMap(([libqb, qbipc], round) => [cell(round, 'libqb', libqb), cell(round, 'qbipc-w2', qbipc)]),
    (server) => (server === 'libqb' ? undefined : { server: 'libqb', client: 'qbload' }),
    2,
  );
  const w2 = rows.find((r) => r.server === 'qbipc-w2')!;
  t.is(w2.ratio, 0.975);
  t.is(w2.roundsWon, 3, 'a tie counts as won');
  t.is(w2.ratioRounds, 6);
  t.deepEqual(w2.ratioInterval, { low: 0.8, high: 1.3, confidence: 1 - 2 / 64 }, '6 rounds: the range reaches 96.9%');
  t.is(rows.find((r) => r.server === 'libqb')!.ratioInterval, undefined, 'the baseline has no ratio');
});

test('qbipc bench --from A,B pools runs of the same cells: rounds renumbered, one interval over all, files of its own', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'qbipc-pool-'));
  const workload = FULL.find((w) => w.key === 'pp-64-c8')!;
  const runFile = (name: string, commit: string, rates: Array<[number, number]>, workloads = [workload]) => {
    const file = path.join(dir, name);
    writeFileSync(
      file,
      JSON.stringify({
        version: 1,
        when: '2026-11-27T19:10:00.000Z',
        quick: false,
        rounds: rates.length,
        seconds: 3,
        settle: 1,
        machine: { cpu: 'test', cpus: 2, memoryGiB: 1, kernel: 'k', node: 'n', libqb: 'l', commit, loadavgAtStart: [0, 0, 0] },
        servers: [{ key: 'libqb' }, { key: 'qbipc-w2' }],
        clients: ['qbload'],
        workloads,
        measurements: rates.flatMap(([libqb, w2], round) => [cell(round, 'libqb', libqb), cell(round, 'qbipc-w2', w2)]),
      }),
    );
    return file;
  };
  // Alone, A wins 1 of 3 and B 2 of 3; pooled: 3 of 6, the interval from 6 ratios (0.80–1.30).
  const a = runFile('a.json', 'aaa1111', [
    [100, 90],
    [100, 130],
    [100, 95],
  ]);
  const b = runFile('b.json', 'bbb2222', [
    [100, 80],
    [100, 120],
    [100, 100],
  ]);
  const other = runFile('c.json', 'ccc3333', [[100, 100]], [FULL.find((w) => w.key === 'pp-64-c16')!]);
  let pooledJson: string | undefined;
  try {
    const r = await run('bench', '--from', `${a},${b}`);
    pooledJson = /^results: (\S+\.json)/m.exec(r.stdout)?.[1];
    t.is(r.code, 0, `${r.stdout}\n${r.stderr}`);
    t.regex(r.stdout, /6 round\(s\) \(2 runs pooled\) × 3 s per cell after 1 s settling/);
    t.regex(r.stdout, /^ {2}qbipc workers=2 .* 0\.9[78]× \(0\.80–1\.30\) +3\/6 /m);
    t.regex(
      r.stdout,
      /pooled from 2 runs: 2026-11-27 19:10 UTC, qbipc aaa1111, 3 round\(s\); 2026-11-27 19:10 UTC, qbipc bbb2222, 3 round\(s\)/,
    );
    t.truthy(pooledJson, r.stdout);
    t.regex(pooledJson!, /-pooled-2\.json$/, 'a file of its own: the sources are not overwritten');
    const pooled = JSON.parse(readFileSync(path.resolve(pooledJson!), 'utf8')) as { rounds: number; measurements: Measurement[] };
    t.is(pooled.rounds, 6);
    t.deepEqual([...new Set(pooled.measurements.map((m) => m.round))], [0, 1, 2, 3, 4, 5]);

    const refused = await run('bench', '--from', `${a},${other}`);
    t.is(refused.code, 2, refused.stderr);
    t.regex(
      refused.stderr,
      /--from: .*c\.json cannot be pooled with .*a\.json: the servers, clients, workloads, --seconds and --settle must be the same/,
    );
  } finally {
    if (pooledJson !== undefined)
      for (const ext of ['json', 'md', 'svg']) rmSync(path.resolve(pooledJson).replace(/\.json$/, `.${ext}`), { force: true });
    rmSync(dir, { recursive: true, force: true });
  }
});

test('qbipc bench interrupted while its servers start: exit 130, no server left running', async (t) => {
  const child = spawn(
    process.execPath,
    [CLI, 'bench', '--servers', 'qbipc', '--clients', 'qbload', '--workloads', 'pp-64-c1', '--rounds', '3', '--seconds', '0.3'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  const kill = setTimeout(() => child.kill('SIGKILL'), 60_000);
  child.stderr.setEncoding('utf8').on('data', (s: string) => {
    stderr += s;
    if (/starting/.test(stderr) && !child.killed) child.kill('SIGINT'); // the servers are being spawned right now
  });
  const code = await exited;
  clearTimeout(kill);
  const partial = /what was measured is in (\S+)/.exec(stderr)?.[1];
  if (partial !== undefined) rmSync(partial, { force: true });
  t.is(code, 130, stderr);
  t.regex(stderr, /interrupted: stopping the servers/);
  t.deepEqual(benchServers(child.pid!), [], 'every server of the run was stopped');
});
