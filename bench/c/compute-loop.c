/*
 * The machine check's native half (bench/drivers/calibration.ts): an
 * arithmetic loop timed in chunks of about 1 us for SECONDS, no memory
 * traffic, no syscalls but the vDSO clock. It prints one JSON line:
 * the chunks done, and the share of the time spent in stretches of
 * 1 ms or more (a chunk that long was not running: the host or another
 * thread had the CPU), the same threshold as qbload's stalled_share.
 * bench/calibration/compute-loop.ts is the same loop in JavaScript.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define ITERATIONS_PER_CHUNK 700 /* about 1 us here */
#define STALL_SECONDS 1e-3

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  double seconds = argc > 1 ? atof(argv[1]) : 0;
  if (!(seconds > 0)) {
    fprintf(stderr, "usage: compute-loop SECONDS\n");
    return 2;
  }
  volatile unsigned x = 1; /* volatile: the loop must not be folded away */
  const double start = now();
  double previous = start, stalled = 0;
  long chunks = 0;
  for (;;) {
    for (int i = 0; i < ITERATIONS_PER_CHUNK; i++) x = x * 1103515245u + 12345u;
    const double t = now();
    if (t - previous >= STALL_SECONDS) stalled += t - previous;
    previous = t;
    chunks++;
    if (t - start >= seconds) break;
  }
  const double elapsed = previous - start;
  printf("{\"runtime\":\"c\",\"seconds\":%.3f,\"chunks\":%ld,\"stalled_share\":%.4f}\n", elapsed, chunks, stalled / elapsed);
  return 0;
}
