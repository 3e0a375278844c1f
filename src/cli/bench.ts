// qbipc bench …: runs the benchmark harness (bench/run.ts, built to
// dist/bench/), which needs the C programs' sources (bench/c/) and libqb-dev.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export async function bench(argv: string[]): Promise<number> {
  const harness = new URL('../../bench/run.js', import.meta.url);
  if (!existsSync(fileURLToPath(harness))) {
    throw new Error(`the benchmark harness is not in this installation (${fileURLToPath(harness)} is missing); `
      + 'run it from a clone of the repository: npm install && npm run bench');
  }
  const { runBench } = (await import(harness.href)) as { runBench: (argv: string[]) => Promise<number> };
  return runBench(argv);
}
