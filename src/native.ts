// The one module that knows the native helper exists. It wraps syscalls only;
// everything about libqb's protocol lives in TypeScript.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

/** Negative errno or a non-negative result: the helper's hot-path convention. */
export type SyscallResult = number;

// Every function checks its arguments before acting (native/args.h): a missing
// or mistyped one throws a TypeError with code ERR_INVALID_ARG_TYPE, a number
// out of range (a negative fd, a fractional size) a RangeError with code
// ERR_OUT_OF_RANGE, a string holding NUL a TypeError with ERR_INVALID_ARG_VALUE.
// Byte buffers (Uint8Array below) may be any TypedArray. fds are integers >= 0;
// dirFd may also be -100 (AT_FDCWD).

export interface NativePoller {
  add(fd: number, events: number, token: number): SyscallResult;
  modify(fd: number, events: number, token: number): SyscallResult;
  remove(fd: number): SyscallResult;
  ref(): void;
  unref(): void;
  close(): void;
}

/** Waits off the JS thread for a glibc semaphore to hold a token (see native/semwait.cc). */
export interface NativeSemWaiter {
  /** 0 started, -EBUSY while a wait is in progress; the result (0, -ETIMEDOUT, -ECANCELED) goes to onResult. */
  wait(words: Int32Array, index: number, timeoutMs: number): SyscallResult;
  cancel(): void;
  close(): void;
}

export interface NativeHelper {
  listenStream(name: string, abstract: boolean): number;
  connectStream(name: string, abstract: boolean): SyscallResult;
  acceptStream(listenFd: number): SyscallResult;
  setPassCred(fd: number, on: boolean): SyscallResult;
  recvCredentials(fd: number, into: Uint8Array, creds: Int32Array): SyscallResult;
  send(fd: number, data: Uint8Array): SyscallResult;
  recv(fd: number, into: Uint8Array): SyscallResult;
  shutdown(fd: number): SyscallResult;
  close(fd: number): SyscallResult;

  makeTempDir(template: string): string;
  openDirectory(path: string): SyscallResult;
  fileIdentity(fd: number): string;
  createFileAt(dirFd: number, name: string, size: number, mode: number): number;
  /** uid or gid -1: left unchanged. */
  fchown(fd: number, uid: number, gid: number): SyscallResult;
  fchmod(fd: number, mode: number): SyscallResult;
  unlinkAt(dirFd: number, name: string, isDirectory: boolean): SyscallResult;
  /**
   * A MAP_SHARED mapping, registered with the SIGBUS guard (native/busguard.cc). Throws (errno -ENOMEM) when
   * the guard cannot take it: the mapping is then undone, never handed out unguarded.
   */
  mapShared(fd: number, size: number): SharedArrayBuffer;
  /** 2 × size bytes: the file mapped twice back to back (size a multiple of the page size); guarded as mapShared. */
  mapRing(fd: number, size: number): SharedArrayBuffer;
  /**
   * Several files in one reserved range: a buffer per file, each starting on a page boundary and guarded on
   * its own as mapShared; bit i of `doubled` maps file i twice back to back, as mapRing. Releasing any of the
   * buffers releases them all, in one call instead of one per file.
   */
  mapFiles(fds: Int32Array, sizes: Int32Array, doubled: number): SharedArrayBuffer[];
  /**
   * Gives a mapping's memory back now instead of when V8 collects the buffer: its pages become private zero
   * pages (views over it read zeros from then on, never fault). True when released now; false when it was
   * released already or is not a buffer of mapShared/mapRing/mapFiles (a buffer of mapFiles releases every part).
   */
  releaseMapping(buffer: SharedArrayBuffer): boolean;

  /** The address of words[index], for futexWakeAt (valid while `words` is mapped). */
  wordAddress(words: Int32Array, index: number): number;
  /** FUTEX_WAKE by address: no typed array to unwrap on the hot path. */
  futexWakeAt(address: number, count: number): SyscallResult;
  futexWait(words: Int32Array, index: number, expected: number, timeoutMs: number): SyscallResult;
  /** sched_yield(2): lets another runnable thread of this CPU (a client just woken) run first. */
  yieldCpu(): void;
  /** The calling thread's scheduling: [policy (0 normal, 1 FIFO, 2 round robin), real-time priority (0 when normal)]. */
  scheduling(): [number, number];
  /**
   * Sets the calling thread's scheduling (policy as scheduling() reports it; priority 1–99 with a real-time
   * policy, 0 otherwise): 0, or -EPERM without CAP_SYS_NICE or a fitting RLIMIT_RTPRIO. Real-time policies
   * are set with SCHED_RESET_ON_FORK.
   */
  setScheduling(policy: number, priority: number): number;
  /** The CPUs the calling thread may run on, ascending (sched_getaffinity). */
  cpuAffinity(): number[];
  /** Keeps the calling thread to these CPUs: 0, or -EINVAL when the process may run on none of them. */
  setCpuAffinity(cpus: Int32Array): number;
  /**
   * Copies all of `source` into `target` at byte `offset` with memmove: V8's own copy into shared memory
   * (TypedArray.prototype.set) moves word by word with relaxed atomics, several times slower for large messages.
   */
  copyBytes(target: ArrayBufferView, offset: number, source: ArrayBufferView): void;

  /**
   * Before each onReady call, out[0] is the batch's length n and out[1 + 2i], out[2 + 2i] the i-th ready fd's
   * token and poll(2) bits. keepThread: look for the next batch before returning to the loop (native/poller.cc).
   */
  Poller: new (out: Int32Array, onReady: () => void, keepThread: boolean) => NativePoller;

  dgramOpen(name: string, bufferSize: number, passCred: boolean): number;
  dgramConnect(fd: number, name: string, bufferSize: number): SyscallResult;
  sendv(fd: number, parts: readonly Uint8Array[]): SyscallResult;
  /** The datagram's real length (> into.byteLength when truncated) or -errno; creds: {pid, uid, gid, present}. */
  dgramRecv(fd: number, into: Uint8Array, creds?: Int32Array): SyscallResult;
  recvPeek(fd: number, into: Uint8Array): SyscallResult;
  peerCredentials(fd: number, out: Int32Array): SyscallResult;
  openExisting(path: string, size: number): number;
  /** Blocks: reventsA | reventsB << 16, 0 on timeout, or -errno. */
  pollTwo(fdA: number, eventsA: number, fdB: number, eventsB: number, timeoutMs: number): SyscallResult;
  SemWaiter: new (onResult: (result: number) => void) => NativeSemWaiter;
  semWait(words: Int32Array, index: number, timeoutMs: number): SyscallResult;

  /** Int32Array(1) over the process-wide count of SIGBUS faults caught in shared mappings (native/busguard.cc). */
  mappingFaults(): Int32Array;
  /** Whether the mapping under `view` faulted (the peer truncated its file) and now holds private zero pages. */
  mappingFaulted(view: ArrayBufferView): boolean;
  /** Mappings registered with the SIGBUS guard and not released, in this process. */
  guardedMappings(): number;
  /** For tests of the refusal path: registrations beyond `limit` live mappings fail; no argument: no limit. */
  limitGuardedMappings(limit?: number): void;
}

/** node-gyp-build's loader: build/Release (a source build) first, then prebuilds/<platform>-<arch>/ for this ABI. */
type AddonLoader = (packageRoot: string) => unknown;

const HOW_TO_BUILD =
  'Build it from source for this Node: "npm rebuild qbipc --build-from-source" in your project ' +
  '(needs python3, make and a C++17 compiler; see "Install" in qbipc\'s README), or "npm run build" in a clone of qbipc.';

function load(): NativeHelper {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
  const requireHere = createRequire(import.meta.url);
  try {
    return (requireHere('node-gyp-build') as AddonLoader)(root) as NativeHelper;
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message.split('\n')[0]! : String(cause);
    const target = `Node ${process.version} (ABI ${process.versions.modules}) on ${process.platform}-${process.arch}`;
    const found = reason.startsWith('No native build was found')
      ? `no prebuilt binary in ${path.join(root, 'prebuilds')} fits ${target}, and none was built from source ` +
        "(was the install script skipped, e.g. --ignore-scripts or pnpm's default?)"
      : `the native helper failed to load in ${target}: ${reason}`;
    throw Object.assign(new Error(`qbipc: cannot load its native helper: ${found}. ${HOW_TO_BUILD}`, { cause }), {
      code: 'ERR_QBIPC_NATIVE_HELPER',
    });
  }
}

export const native: NativeHelper = load();
