// Waiting, without timing, until a thread sleeps in a futex wait (glibc's
// sem_wait, a native futexWait): /proc says what it sleeps on.
import { readFileSync } from 'node:fs';
import { setImmediate as turn } from 'node:timers/promises';

/**
 * Resolves true once the thread whose /proc directory is `procDir` (e.g.
 * /proc/PID or /proc/self/task/TID) sleeps in a futex wait; false after
 * `tries` looks (each one a turn of the event loop), or if it is gone.
 */
export async function sleepsInFutex(procDir: string, tries = 200_000): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    let wchan: string;
    try {
      wchan = readFileSync(`${procDir}/wchan`, 'utf8');
    } catch {
      return false;
    }
    if (wchan.includes('futex')) return true;
    await turn();
  }
  return false;
}
