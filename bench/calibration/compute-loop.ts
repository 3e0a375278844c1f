// The machine check's Node half (bench/drivers/calibration.ts): the arithmetic
// loop of bench/c/compute-loop.c in JavaScript, timed in chunks of about 1 µs,
// printing the same JSON line. Run as `node dist/bench/calibration/compute-loop.js SECONDS`.
const ITERATIONS_PER_CHUNK = 350; // about 1 µs here, as the C loop's chunk
const STALL_MS = 1; // qbload's threshold

function main(seconds: number): void {
  let x = 1;
  const start = performance.now();
  let previous = start;
  let stalled = 0;
  let chunks = 0;
  for (;;) {
    for (let i = 0; i < ITERATIONS_PER_CHUNK; i++) x = (Math.imul(x, 1103515245) + 12345) | 0;
    const t = performance.now();
    if (t - previous >= STALL_MS) stalled += t - previous;
    previous = t;
    chunks++;
    if (t - start >= seconds * 1000) break;
  }
  const elapsed = previous - start;
  // x is printed so that the loop's result is used.
  console.log(
    JSON.stringify({
      runtime: 'node',
      seconds: Number((elapsed / 1000).toFixed(3)),
      chunks,
      stalled_share: Number((stalled / elapsed).toFixed(4)),
      x,
    }),
  );
}

const seconds = Number(process.argv[2]);
if (!(seconds > 0)) {
  console.error('usage: node compute-loop.js SECONDS');
  process.exit(2);
}
main(seconds);
