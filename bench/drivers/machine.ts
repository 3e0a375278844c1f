// What a run was measured on and of: the machine, the toolchain, and the
// build (git commit) — recorded in every results file and printed above the table.
import { execFileSync } from 'node:child_process';
import { availableParallelism, cpus, loadavg, release, totalmem } from 'node:os';
import { libqbVersion, ROOT } from './build-c.js';

export interface Machine {
  cpu: string;
  cpus: number;
  memoryGiB: number;
  kernel: string;
  node: string;
  libqb: string;
  /** `git describe`-style id of the measured tree ("abc1234", "abc1234+dirty"), or "unknown" outside a clone. */
  commit?: string;
  loadavgAtStart: number[];
}

function git(args: string[]): string | undefined {
  try {
    return execFileSync('git', ['-C', ROOT, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
}

/** The measured build: its commit, marked +dirty when tracked files differ from it. */
function commit(): string {
  const head = git(['rev-parse', '--short', 'HEAD']);
  if (head === undefined) return 'unknown';
  return git(['status', '--porcelain', '--untracked-files=no']) === '' ? head : `${head}+dirty`;
}

export function machine(): Machine {
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cpus: availableParallelism(),
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    libqb: libqbVersion() ?? 'not found',
    commit: commit(),
    loadavgAtStart: loadavg().map((l) => Number(l.toFixed(2))),
  };
}

/** One line for the top of the table. */
export function machineLine(m: Machine): string {
  return (
    `${m.cpus} × ${m.cpu}, ${m.memoryGiB} GiB, Linux ${m.kernel}, Node ${m.node}, libqb ${m.libqb}` +
    `${m.commit === undefined ? '' : `, qbipc ${m.commit}`} · load average at start ${m.loadavgAtStart.join(' ')}`
  );
}
