// A reading of a connection's shared memory taken by a thread that does not
// serve it (worker mode's main thread), through a mapping made for that thread.
// The mapping ends with the connection, not when V8 collects it: release().
import { native } from '../native.js';

/** Call it to read; release() gives the mapping's memory back (afterwards it reads zeros). Idempotent. */
export type MappedProbe<T> = (() => T) & { release(): void };

export function mappedProbe<T>(buffer: SharedArrayBuffer, read: () => T): MappedProbe<T> {
  return Object.assign(read, { release: () => void native.releaseMapping(buffer) });
}
