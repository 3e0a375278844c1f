// At start-up, the connection directories a dead server of this service left in
// /dev/shm (it was killed before it could remove them) are removed.
//
// A directory is removed only when all of this holds: its name is one
// ConnectionDirectory.create() makes; the server pid in it is not this process
// and no process has it (kill(pid, 0) says ESRCH); it is a real directory, not
// a link; a non-root server owns it; and it holds nothing but regular files
// named as this service's ring or control files, owned by the directory's
// owner (a connection's files and directory belong to the same user). The
// files are unlinked through a descriptor opened without following links and
// checked to be the directory examined. Anything else is left alone. An empty
// directory (a client removed its files, or the server died before making any)
// names no service; any service removes it.
//
// A server in another pid namespace sharing /dev/shm would look dead from here;
// only directories of a service with the same name could be affected.
import { fstatSync, lstatSync, readdirSync, type BigIntStats } from 'node:fs';
import { debuglog } from 'node:util';
import { directoryServerPid, SHM_ROOT } from './connection-dir.js';
import { native } from './native.js';
import { processAlive } from './process-alive.js';

const log = debuglog('qbipc');
const AT_FDCWD = -100;

/** The files a connection of `serviceName` can hold (transport/shm.ts, shm/ring-files.ts, transport/socket.ts). */
function serviceFileNames(serviceName: string): Set<string> {
  const names = new Set([`qb-control-${serviceName}`]);
  for (const ring of ['request', 'response', 'event']) {
    for (const part of ['header', 'data']) names.add(`qb-${ring}-${serviceName}-${part}`);
  }
  return names;
}

function lstatOrUndefined(path: string): BigIntStats | undefined {
  try {
    return lstatSync(path, { bigint: true });
  } catch {
    return undefined;
  }
}

/** Removes the stale directories of `serviceName`; returns the paths removed. Never throws. */
export function sweepStaleDirectories(serviceName: string): string[] {
  const removed: string[] = [];
  let entries: string[];
  try {
    entries = readdirSync(SHM_ROOT);
  } catch {
    return removed;
  }
  const ours = serviceFileNames(serviceName);
  const euid = process.geteuid?.() ?? -1;
  for (const entry of entries) {
    const pid = directoryServerPid(entry);
    if (pid === undefined || pid === process.pid || processAlive(pid)) continue;
    const path = `${SHM_ROOT}/${entry}`;
    try {
      if (removeIfStale(path, ours, euid)) removed.push(path);
    } catch (error) {
      log('left %s: %s', path, (error as Error).message);
    }
  }
  if (removed.length > 0) log('removed %d connection directories of dead servers of "%s"', removed.length, serviceName);
  return removed;
}

function removeIfStale(path: string, ours: Set<string>, euid: number): boolean {
  const seen = lstatOrUndefined(path);
  if (seen === undefined || !seen.isDirectory()) return false;
  if (euid !== 0 && seen.uid !== BigInt(euid)) return false;
  const fd = native.openDirectory(path);
  if (fd < 0) return false;
  try {
    const opened = fstatSync(fd, { bigint: true });
    if (opened.dev !== seen.dev || opened.ino !== seen.ino) return false;
    // The opened directory itself, whatever happens to `path` meanwhile.
    const here = `/proc/self/fd/${fd}`;
    const names = readdirSync(here);
    for (const name of names) {
      if (!ours.has(name)) return false;
      const file = lstatOrUndefined(`${here}/${name}`);
      if (file === undefined || !file.isFile() || file.uid !== seen.uid) return false;
    }
    for (const name of names) native.unlinkAt(fd, name, false);
  } finally {
    native.close(fd);
  }
  return native.unlinkAt(AT_FDCWD, path, true) === 0;
}
