// A client owns the files we map and may truncate them; our next access then
// faults (SIGBUS). The native guard (native/busguard.cc) turns that fault into
// private zero pages and a process-wide count. A connection compares the count
// after touching its shared memory (one Atomics.load) and, when it moved, asks
// whether one of its own mappings is the one that faulted.
import { native } from './native.js';

const faults = native.mappingFaults();

/** Faults caught so far in this process. */
export function faultCount(): number {
  return Atomics.load(faults, 0);
}

/** Whether any of these views lies over a mapping that faulted. */
export function anyFaulted(views: readonly ArrayBufferView[]): boolean {
  for (const view of views) if (native.mappingFaulted(view)) return true;
  return false;
}
