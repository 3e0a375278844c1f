// How much /dev/shm memory a process holds: the files of its connections that
// it still maps (mapped files stay allocated after they are unlinked), and the
// whole filesystem's use (statfs), which other processes change too.
import { readFileSync, statfsSync } from 'node:fs';

/** Bytes of /dev/shm files of this server's connections (qb-<pid>-…) that process `pid` maps, and how many mappings. */
export function mappedShm(pid = process.pid, serverPid = pid): { bytes: number; mappings: number } {
  const prefix = `/dev/shm/qb-${serverPid}-`;
  let bytes = 0;
  let mappings = 0;
  for (const line of readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n')) {
    const path = line.indexOf('/dev/shm/');
    if (path < 0 || !line.startsWith(prefix, path)) continue;
    const [from, to] = line
      .slice(0, line.indexOf(' '))
      .split('-')
      .map((hex) => parseInt(hex, 16)) as [number, number];
    bytes += to - from;
    mappings++;
  }
  return { bytes, mappings };
}

/** Bytes in use on /dev/shm (all processes). */
export function shmUsedBytes(): number {
  const s = statfsSync('/dev/shm');
  return (s.blocks - s.bfree) * s.bsize;
}
