// Whether a process still exists: signal 0 tests it without sending anything
// (EPERM means it exists but is another user's).
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}
