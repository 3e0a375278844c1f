// The soak: `qbipc serve` (SHM and SOCKET, --workers 2 by default) under a
// mixed libqb load for minutes — ping-pong, pipelined requests on 1 MiB
// buffers, event batches, and connect/disconnect churn (bench/c/qbload.c, the
// clients restarted every interval, so connections come and go throughout).
// Every interval it prints each server's RSS, fd count and /dev/shm use (its
// connection directories, and the removed connection files it still maps); at
// the end the failed requests and the files left in /dev/shm. msgs counts the
// messages of finished qbload runs (each runs one interval).
//
//   npm run soak -- [--minutes 10] [--workers 2] [--interval 30]
//
// Exit status 0 when no request failed and nothing was left; 1 otherwise.
import { spawn } from 'node:child_process';
import { lstatSync, readdirSync, readFileSync, statfsSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { buildC, ROOT } from './drivers/build-c.js';
import { rssKb } from './drivers/cpu.js';

interface Load {
  label: string;
  args: string[];
}

/** One qbload parent per load and transport; -T and -n are added per run. */
const LOADS: Load[] = [
  { label: 'ping-pong', args: ['-c', '2', '-s', '64'] },
  { label: 'pipelined', args: ['-c', '1', '-s', '4000', '-d', '16', '-m', String(1 << 20)] },
  { label: 'events', args: ['--events', '-c', '1', '-s', '256', '-b', '64'] },
  { label: 'churn', args: ['--churn', '-c', '1'] },
];

interface Tally {
  runs: number;
  messages: number;
  errors: number;
  failedRuns: number;
  notes: string[];
}

interface Server {
  transport: 'shm' | 'socket';
  name: string;
  pid: number;
  exited: Promise<number | null>;
  stderr: string[];
}

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    workers: { type: 'string', default: '2' },
    interval: { type: 'string', default: '30' },
  },
});
const minutes = Number(values.minutes);
const workers = Number(values.workers);
const intervalS = Number(values.interval);
if (!(minutes > 0) || !Number.isInteger(workers) || workers < 0 || !(intervalS > 0)) {
  console.error('usage: npm run soak -- [--minutes N] [--workers N] [--interval SECONDS]');
  process.exit(2);
}

const CLI = path.join(ROOT, 'dist', 'src', 'cli', 'main.js');

/** The Node flags of the CLI's `#!/usr/bin/env -S node …` line: the server runs as the installed `qbipc` would. */
function cliNodeFlags(): string[] {
  const shebang = readFileSync(CLI, 'utf8').split('\n', 1)[0]!;
  const words = shebang.split(/\s+/);
  return words.slice(words.indexOf('node') + 1);
}

function startServer(transport: 'shm' | 'socket'): Promise<Server> {
  const name = `qbsoak-${process.pid}-${transport}`;
  const child = spawn(process.execPath, [...cliNodeFlags(), CLI, 'serve', name, '--type', transport, '--workers', String(workers)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stderr: string[] = [];
  createInterface({ input: child.stderr }).on('line', (line) => stderr.push(line));
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`qbipc serve ${name} was not ready within 30 s`));
    }, 30_000);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`qbipc serve ${name} exited (${code}) before it was ready: ${stderr.join(' ')}`));
    });
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (!line.startsWith('ready')) return;
      clearTimeout(timer);
      resolve({ transport, name, pid: child.pid!, exited, stderr });
    });
  });
}

/** Runs qbload once for `seconds`; its JSON line and exit status go into the tally. */
function runLoad(qbload: string, server: Server, load: Load, seconds: number, tally: Tally): Promise<void> {
  return new Promise((resolve) => {
    const child = spawn(qbload, ['-n', server.name, '-T', seconds.toFixed(1), ...load.args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => void (out += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => void (err = (err + c).slice(-500)));
    // A load that cannot even start (its binary gone) is a failed run, not the end of the soak.
    child.once('error', (error) => {
      tally.runs++;
      tally.failedRuns++;
      if (tally.notes.length < 5) tally.notes.push(`${server.transport} ${load.label}: ${error.message}`);
      resolve();
    });
    child.once('close', (code) => {
      tally.runs++;
      let report: { messages?: number; errors?: number } = {};
      try {
        report = JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as typeof report;
      } catch {
        // no JSON: counted as a failed run below
      }
      tally.messages += report.messages ?? 0;
      tally.errors += report.errors ?? 0;
      if (code !== 0 || report.messages === undefined) {
        tally.failedRuns++;
        if (tally.notes.length < 5) tally.notes.push(`${server.transport} ${load.label}: exit ${code}: ${err.trim() || out.trim()}`);
      }
      resolve();
    });
  });
}

/** Bytes allocated under the server's connection directories, and how many there are. */
function shmUse(pid: number): { dirs: number; bytes: number } {
  let bytes = 0;
  const dirs = readdirSync('/dev/shm').filter((e) => e.startsWith(`qb-${pid}-`));
  for (const dir of dirs) {
    try {
      for (const file of readdirSync(`/dev/shm/${dir}`)) bytes += lstatSync(`/dev/shm/${dir}/${file}`).blocks * 512;
    } catch {
      // removed meanwhile
    }
  }
  return { dirs: dirs.length, bytes };
}

/**
 * Mappings the server still holds of connection files already removed from
 * /dev/shm (their memory is not returned until they are unmapped): bytes of
 * address space, and the shared memory resident in the process (RssShmem).
 */
function heldShm(pid: number): { deletedMapped: number; rssShmem: number } {
  let deletedMapped = 0;
  try {
    for (const line of readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n')) {
      if (!line.includes('/dev/shm/') || !line.endsWith('(deleted)')) continue;
      const [start, end] = line
        .slice(0, line.indexOf(' '))
        .split('-')
        .map((x) => parseInt(x, 16));
      deletedMapped += end! - start!;
    }
    const rssShmem = Number(/RssShmem:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
    return { deletedMapped, rssShmem };
  } catch {
    return { deletedMapped: -1, rssShmem: -1 };
  }
}

function fdCount(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return -1;
  }
}

const mb = (bytes: number) => (bytes / 1e6).toFixed(1);

function sample(elapsedS: number, servers: Server[], tallies: Map<Server, Tally>): void {
  const fs = statfsSync('/dev/shm');
  const parts = servers.map((s) => {
    const use = shmUse(s.pid);
    const held = heldShm(s.pid);
    const t = tallies.get(s)!;
    return (
      `${s.transport}: rss=${(rssKb(s.pid) / 1000).toFixed(1)}MB (shmem ${mb(held.rssShmem)}) fds=${fdCount(s.pid)}` +
      ` shm=${mb(use.bytes)}MB/${use.dirs}dirs removed-but-mapped=${mb(held.deletedMapped)}MB msgs=${t.messages} errors=${t.errors + t.failedRuns}`
    );
  });
  const used = (fs.blocks - fs.bfree) * fs.bsize;
  console.log(`t=${String(Math.round(elapsedS)).padStart(4)}s  ${parts.join('  |  ')}  |  /dev/shm used=${mb(used)}MB`);
}

async function main(): Promise<number> {
  const qbload = buildC('qbload');
  const servers = [await startServer('shm'), await startServer('socket')];
  const tallies = new Map(servers.map((s): [typeof s, Tally] => [s, { runs: 0, messages: 0, errors: 0, failedRuns: 0, notes: [] }]));
  const started = Date.now();
  const deadline = started + minutes * 60_000;
  console.log(
    `soak: ${minutes} min, workers=${workers}, servers ${servers.map((s) => `${s.transport} pid ${s.pid}`).join(', ')}; loads: ${LOADS.map((l) => l.label).join(', ')}`,
  );
  sample(0, servers, tallies);

  const sampler = setInterval(() => sample((Date.now() - started) / 1000, servers, tallies), intervalS * 1000);
  await Promise.all(
    servers.flatMap((server) =>
      LOADS.map(async (load) => {
        for (;;) {
          const left = (deadline - Date.now()) / 1000;
          if (left < 1) return;
          await runLoad(qbload, server, load, Math.min(intervalS, left), tallies.get(server)!);
        }
      }),
    ),
  );
  clearInterval(sampler);
  if ((Date.now() - started) % (intervalS * 1000) > 1000) sample((Date.now() - started) / 1000, servers, tallies);

  // The clients are gone: every connection's files must be gone too, before and after the servers stop.
  let failed = false;
  for (const server of servers) {
    const t = tallies.get(server)!;
    // Hang-ups are noticed asynchronously: give the server up to 5 s to remove the last directories.
    const settleBy = Date.now() + 5000;
    while (shmUse(server.pid).dirs > 0 && Date.now() < settleBy) await new Promise((resolve) => setTimeout(resolve, 100));
    const whileRunning = shmUse(server.pid);
    process.kill(server.pid, 'SIGTERM');
    const code = await server.exited;
    const afterStop = shmUse(server.pid);
    console.log(
      `${server.transport}: qbload runs=${t.runs} messages=${t.messages} failed requests=${t.errors} failed runs=${t.failedRuns}` +
        ` | left in /dev/shm with the clients gone: ${whileRunning.dirs} dirs ${mb(whileRunning.bytes)}MB; after the server stopped: ${afterStop.dirs}` +
        ` | server exit ${code}, stderr lines ${server.stderr.length}`,
    );
    for (const note of t.notes) console.log(`  ${note}`);
    for (const line of server.stderr.slice(0, 5)) console.log(`  server: ${line}`);
    failed ||= t.errors > 0 || t.failedRuns > 0 || whileRunning.dirs > 0 || afterStop.dirs > 0 || code !== 0;
  }
  const fs = statfsSync('/dev/shm');
  console.log(
    `/dev/shm used after the servers stopped: ${mb((fs.blocks - fs.bfree) * fs.bsize)}MB (the whole filesystem, other users' files included)`,
  );
  console.log(failed ? 'soak: FAILED' : 'soak: ok');
  return failed ? 1 : 0;
}

process.exitCode = await main();
