// qbipc bench …: runs the benchmark harness (bench/run.ts, built to
// dist/bench/), which needs the C programs' sources (bench/c/) and libqb-dev.
// The harness lives in the repository only: the published package is the library.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export async function bench(argv: string[]): Promise<number> {
  const harness = new URL('../../bench/run.js', import.meta.url);
  if (!existsSync(fileURLToPath(harness))) {
    throw new Error(
      "the benchmark is not part of the installed package: it lives in qbipc's repository " +
        '(it builds libqb C programs and writes its results there). In a clone of the repository: npm install && npm run bench',
    );
  }
  const { runBench } = (await import(harness.href)) as { runBench: (argv: string[]) => Promise<number> };
  return runBench(argv);
}
