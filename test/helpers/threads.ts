// The threads of this process, as /proc/self/task shows them.
import { readdirSync, readFileSync } from 'node:fs';

/** How many threads of this process have a /proc/self/task/TID/`file` that `matches` (a thread that ends meanwhile is skipped). */
export function countThreads(file: 'stat' | 'status', matches: (text: string) => boolean): number {
  let count = 0;
  for (const tid of readdirSync('/proc/self/task')) {
    let text: string;
    try {
      text = readFileSync(`/proc/self/task/${tid}/${file}`, 'utf8');
    } catch {
      continue;
    }
    if (matches(text)) count++;
  }
  return count;
}
