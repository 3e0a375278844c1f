// The two scenario servers a differential test runs side by side: libqb's
// (test/c/scenario-server.c) and qbipc's (scenario-server.ts, in a child
// process). Both read commands on stdin, print one JSON object per line, and
// block on the gate pipe (fd 3) while paused.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { uniqueName } from './echo-service.js';
import { buildLibqbProgram, ROOT } from './peers.js';
import { JsonLineServer } from './json-line-server.js';
import type { Scenario } from './scenario-handlers.js';

const here = dirname(fileURLToPath(import.meta.url));

export type ServerKind = 'libqb' | 'qbipc';
export type Transport = 'shm' | 'socket';

export interface ServerSpec {
  scenario: Scenario;
  transport: Transport;
  /** qbipc only: worker threads (libqb has no worker mode). */
  workers?: number;
}

export function buildScenarioServer(): Promise<string> {
  return buildLibqbProgram(join(ROOT, 'test', 'c', 'scenario-server.c'), 'scenario-server');
}

/** Starts the scenario server of `kind` for `spec` (libqb: `workers` is ignored). */
export async function startScenarioServer(kind: ServerKind, spec: ServerSpec): Promise<JsonLineServer> {
  const name = uniqueName(`diff-${kind}`);
  if (kind === 'libqb') {
    return JsonLineServer.start('libqb scenario server', name, await buildScenarioServer(), [
      '--scenario',
      spec.scenario,
      '-n',
      name,
      '-t',
      spec.transport,
    ]);
  }
  return JsonLineServer.start('qbipc scenario server', name, process.execPath, [
    join(here, 'scenario-server.js'),
    '--scenario',
    spec.scenario,
    '--name',
    name,
    '--transport',
    spec.transport,
    '--workers',
    String(spec.workers ?? 0),
  ]);
}
