// Notes for the cells that produced no result. One note per cell, unless the
// same client failed the same way in many cells (a crashing client fails every
// cell it runs): then one note for all of them, with the first message in full.
import type { Measurement } from './stats.js';
import type { Names } from './table.js';

/** More failures than this of one client and kind become one note. */
const GROUP_ABOVE = 3;

/** "exit SIGSEGV: Command failed: …" → "exit SIGSEGV". */
const kindOf = (error: string) => error.split(':')[0]!.trim();

export function failureNotes(ms: Measurement[], names: Names): string[] {
  const failed = ms.filter((m) => m.error !== undefined);
  const groups = new Map<string, Measurement[]>();
  for (const m of failed) {
    const key = `${m.client}|${kindOf(m.error!)}`;
    groups.set(key, [...(groups.get(key) ?? []), m]);
  }
  const cell = (m: Measurement) => `${m.workload} · ${names.server(m.server)} ← ${names.client(m.client)}, round ${m.round + 1}`;
  return [...groups.values()].flatMap((group) => {
    if (group.length <= GROUP_ABOVE) return group.map((m) => `failed: ${cell(m)}: ${m.error}`);
    const first = group[0]!;
    const servers = [...new Set(group.map((m) => names.server(m.server)))].join(', ');
    const workloads = new Set(group.map((m) => m.workload)).size;
    return [
      `failed: ${group.length} cells under ${names.client(first.client)} (servers: ${servers}; ${workloads} workload(s)), ` +
        `all "${kindOf(first.error!)}"; the first, ${cell(first)}: ${first.error}`,
    ];
  });
}
