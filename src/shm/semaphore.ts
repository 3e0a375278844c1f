// glibc's process-shared sem_t at the memory level (x86_64): a 64-bit word
// whose low half is the value and high half the waiter count. We only post and
// trywait; the low half is updated with 32-bit atomics, which a glibc peer's
// 64-bit CAS observes atomically (same aligned word). See docs/wire.md §7.
import { EOVERFLOW } from '../errno.js';
import { native } from '../native.js';
import { HeaderWord, SEM_PSHARED } from './layout.js';

const SEM_VALUE_MAX = 0x7fffffff;

/** sem_init(pshared = 1, value 0): zero data, private = 128. */
export function semInit(header: Int32Array): void {
  Atomics.store(header, HeaderWord.SEM_VALUE, 0);
  Atomics.store(header, HeaderWord.SEM_WAITERS, 0);
  Atomics.store(header, HeaderWord.SEM_PRIVATE, SEM_PSHARED);
}

/** The futex word's address, for semPost (native.wordAddress). */
export function semAddress(header: Int32Array): number {
  return native.wordAddress(header, HeaderWord.SEM_VALUE);
}

/**
 * sem_post: value + 1, then FUTEX_WAKE (shared) only when someone registered as
 * a waiter. We are the ring's only poster, so the overflow check cannot race.
 * `address` is semAddress(header). Returns 0 or -EOVERFLOW.
 */
export function semPost(header: Int32Array, address: number): number {
  const rc = semRelease(header);
  if (rc === 0) semWake(header, address, 1);
  return rc;
}

/** The value half of sem_post (value + 1, no wake): 0 or -EOVERFLOW. Pair with semWake. */
export function semRelease(header: Int32Array): number {
  if (Atomics.load(header, HeaderWord.SEM_VALUE) >>> 0 >= SEM_VALUE_MAX) return -EOVERFLOW;
  Atomics.add(header, HeaderWord.SEM_VALUE, 1);
  return 0;
}

/**
 * The wake half of `posts` sem_posts: FUTEX_WAKE up to `posts` waiters, only when
 * one registered. Atomics.add in semRelease is a full barrier: a waiter that
 * registered before it is seen here; one that registers after finds the tokens
 * and does not sleep.
 */
export function semWake(header: Int32Array, address: number, posts: number): void {
  if (Atomics.load(header, HeaderWord.SEM_WAITERS) !== 0) native.futexWakeAt(address, posts);
}

/**
 * sem_trywait repeated up to `max` times, in one CAS: returns the tokens taken.
 * The value is client-writable, so the caller bounds `max` and treats tokens as
 * claims to verify, not facts.
 */
export function semTakeUpTo(header: Int32Array, max: number): number {
  for (;;) {
    const value = Atomics.load(header, HeaderWord.SEM_VALUE);
    if (value <= 0) return 0;
    const take = value < max ? value : max;
    if (Atomics.compareExchange(header, HeaderWord.SEM_VALUE, value, value - take) === value) return take;
  }
}

/** sem_getvalue. */
export function semValue(header: Int32Array): number {
  return Atomics.load(header, HeaderWord.SEM_VALUE) >>> 0;
}
