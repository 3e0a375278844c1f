// The machine check: before the cells of each round, one arithmetic loop runs on
// the pinned CPU as C (bench/c/compute-loop.c) and as JavaScript in Node
// (bench/calibration/compute-loop.ts), and each reports the share of its time
// lost in stretches of 1 ms or more. Equal shares: the machine treats both
// alike. On this project's VM the host takes the CPU away often, and, measured
// so, more from a Node thread than from a C thread running the same loop: a
// qbipc server starts that much behind libqb's C server before its own cost per
// message counts.
import path from 'node:path';
import { median } from '../report/stats.js';
import { buildC, ROOT } from './build-c.js';
import { PIN_CPU, runLoad } from './load.js';

export type Runtime = 'c' | 'node';

/** One loop run: what its JSON line says, and the round it belongs to. */
export interface CalibrationSample {
  round: number;
  runtime: Runtime;
  seconds: number;
  chunks: number;
  stalled_share: number;
}

const NODE_LOOP = path.join(ROOT, 'dist', 'bench', 'calibration', 'compute-loop.js');

/** Both loops on PIN_CPU for `seconds` each; the order alternates from round to round. */
export async function calibrate(round: number, seconds: number): Promise<CalibrationSample[]> {
  const commands: Record<Runtime, [string, string[]]> = {
    c: [buildC('compute-loop'), [String(seconds)]],
    node: [process.execPath, [NODE_LOOP, String(seconds)]],
  };
  const order: Runtime[] = round % 2 === 0 ? ['c', 'node'] : ['node', 'c'];
  const samples: CalibrationSample[] = [];
  for (const runtime of order) {
    const [command, args] = commands[runtime];
    const r = await runLoad<Omit<CalibrationSample, 'round'>>(command, args, PIN_CPU, (seconds + 30) * 1000);
    samples.push({ round, runtime, seconds: r.seconds, chunks: r.chunks, stalled_share: r.stalled_share });
  }
  return samples;
}

/**
 * The medians and the factor they imply: the unstalled share a Node thread keeps
 * per share a C thread keeps, (1 − Node's) / (1 − C's). Undefined without both loops.
 */
export function calibrationSummary(
  samples: readonly CalibrationSample[],
): { c: number; node: number; factor: number | undefined } | undefined {
  const of = (runtime: Runtime) => samples.filter((s) => s.runtime === runtime).map((s) => s.stalled_share);
  const c = of('c');
  const node = of('node');
  if (c.length === 0 || node.length === 0) return undefined;
  const mc = median(c);
  const mn = median(node);
  return { c: mc, node: mn, factor: mc < 0.99 ? (1 - mn) / (1 - mc) : undefined };
}

/** The line under the table; undefined when the run has no machine check (an older results file). */
export function calibrationLine(samples: readonly CalibrationSample[] | undefined): string | undefined {
  const s = samples === undefined ? undefined : calibrationSummary(samples);
  if (s === undefined) return undefined;
  const pct = (x: number) => `${Math.round(x * 100)}%`;
  const factor = s.factor === undefined ? '' : ` → a Node thread keeps ${s.factor.toFixed(2)}× the unstalled time a C thread keeps`;
  const rounds = new Set(samples!.map((x) => x.round)).size;
  return `machine check (one arithmetic loop on CPU ${PIN_CPU}, ${rounds} round(s), median): stalled C ${pct(s.c)} · Node ${pct(s.node)}${factor}`;
}
