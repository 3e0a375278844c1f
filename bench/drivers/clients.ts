// The client table: the load programs. Each takes qbload's flags and prints
// qbload's JSON line, so one runner drives them all (workloads.ts: loadArgs).
// `quick: false`: left out of --quick unless named in --clients.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { buildC, ROOT } from './build-c.js';
import type { Protocol } from './servers.js';

export interface ClientDriver {
  /** --clients key. */
  key: string;
  /** Column label. */
  name: string;
  /** Which servers it can load. */
  speaks: Protocol;
  /** The program and its leading arguments (builds it if needed). */
  command(): [string, string[]];
  /** Part of --quick by default. */
  quick: boolean;
  /** Why it cannot run in this build, or undefined. */
  missing?(): string | undefined;
}

const distBench = path.join(ROOT, 'dist', 'bench');

export const CLIENTS: ClientDriver[] = [
  {
    key: 'qbload',
    name: 'libqb C (qbload)',
    speaks: 'libqb',
    command: () => [buildC('qbload'), []],
    quick: true,
  },
  {
    key: 'qbipc',
    name: 'qbipc client (node)',
    speaks: 'libqb',
    command: () => [process.execPath, [path.join(distBench, 'clients', 'node-load.js'), '--transport', 'qbipc']],
    quick: false,
    missing: () =>
      existsSync(path.join(ROOT, 'dist', 'src', 'client', 'client.js')) ? undefined : 'the qbipc client (src/client) is not in this build',
  },
  {
    key: 'node',
    name: 'node net client',
    speaks: 'net',
    command: () => [process.execPath, [path.join(distBench, 'clients', 'node-load.js'), '--transport', 'net']],
    quick: true,
  },
];
