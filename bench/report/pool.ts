// Pooling runs: the rounds of several runs of the same cells read as one run
// with more rounds (`qbipc bench --from A.json,B.json`). On this noisy machine a
// ratio's interval narrows only with rounds; runs made at different times add
// them without one very long run. Only runs that measured the same thing pool.
import type { CalibrationSample } from '../drivers/calibration.js';
import type { Machine } from '../drivers/machine.js';
import type { Measurement } from './stats.js';

/** The part of a results file that pooling reads and rewrites (run.ts's Results extends it). */
export interface PoolableRun {
  when: string;
  quick: boolean;
  rounds: number;
  seconds: number;
  /** Unrecorded seconds of each cell's load before it (absent in older files: none). */
  settle?: number;
  machine: Machine;
  servers: Array<{ key: string }>;
  clients: string[];
  workloads: Array<{ key: string }>;
  measurements: Measurement[];
  /** The machine check of each round (drivers/calibration.ts); absent in older files. */
  calibration?: CalibrationSample[];
  /** Rounds finished, when the run was interrupted. */
  partial?: number;
  /** A pooled run (--from A,B): each source run's start, commit and rounds. */
  pooled?: Array<{ when: string; commit?: string | undefined; rounds: number }>;
}

/** What must match for two runs' rounds to count as rounds of one run. */
function design(run: PoolableRun): string {
  return JSON.stringify({
    quick: run.quick,
    seconds: run.seconds,
    settle: run.settle ?? 0,
    servers: run.servers.map((s) => s.key),
    clients: run.clients,
    workloads: run.workloads.map((w) => w.key),
  });
}

/**
 * One run made of `runs` (named by `files` in errors): rounds renumbered one
 * after another, the first run's header kept, each source listed in `pooled`.
 * Throws when the runs did not measure the same cells the same way.
 */
export function poolRuns<R extends PoolableRun>(runs: readonly R[], files: readonly string[]): R {
  const first = runs[0];
  if (first === undefined) throw new Error('no run to pool');
  const measurements: Measurement[] = [];
  const calibration: CalibrationSample[] = [];
  const pooled: NonNullable<PoolableRun['pooled']> = [];
  let offset = 0;
  runs.forEach((run, i) => {
    if (design(run) !== design(first)) {
      throw new Error(
        `${files[i]} cannot be pooled with ${files[0]}: the servers, clients, workloads, --seconds and --settle must be the same`,
      );
    }
    const rounds = run.partial ?? run.rounds; // an interrupted run saved whole rounds only
    measurements.push(...run.measurements.map((m) => ({ ...m, round: m.round + offset })));
    calibration.push(...(run.calibration ?? []).map((c) => ({ ...c, round: c.round + offset })));
    pooled.push(...(run.pooled ?? [{ when: run.when, commit: run.machine.commit, rounds }]));
    offset += rounds;
  });
  const { partial: _partial, ...header } = first;
  // R with partial dropped and the pooled fields replaced: still an R.
  return { ...header, rounds: offset, measurements, calibration, pooled } as unknown as R;
}
