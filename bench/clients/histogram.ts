// The latency histogram of bench/c/qbload.c, in TypeScript, so the node load
// clients report percentiles computed exactly as the C client does: exact
// below 256 ns, then 128 sub-buckets per power of two (< 0.8 % relative
// error), clamped at 2^34 ns (~17 s).
const LINEAR = 256;
const SUB = 128;
const TOP_BIT = 34;
export const BUCKETS = LINEAR + (TOP_BIT - 8) * SUB;

function index(ns: number): number {
  let v = Math.floor(ns);
  if (v < LINEAR) return Math.max(0, v);
  if (v >= 2 ** TOP_BIT) v = 2 ** TOP_BIT - 1;
  const msb = Math.floor(Math.log2(v));
  // guard log2 rounding at exact powers of two
  const m = 2 ** (msb + 1) <= v ? msb + 1 : 2 ** msb > v ? msb - 1 : msb;
  const shift = m - 7;
  return LINEAR + (shift - 1) * SUB + (Math.floor(v / 2 ** shift) - SUB);
}

function upper(i: number): number {
  if (i < LINEAR) return i;
  const k = i - LINEAR;
  const shift = Math.floor(k / SUB) + 1;
  return ((k % SUB) + SUB) * 2 ** shift + 2 ** shift - 1;
}

export class Histogram {
  readonly counts = new Float64Array(BUCKETS);
  n = 0;
  max = 0;

  record(ns: number): void {
    this.counts[index(ns)]!++;
    this.n++;
    if (ns > this.max) this.max = ns;
  }

  /** Non-empty buckets as [index, count] pairs, for sending to the coordinator. */
  toSparse(): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    this.counts.forEach((c, i) => c > 0 && out.push([i, c]));
    return out;
  }

  add(sparse: Array<[number, number]>, n: number, max: number): void {
    for (const [i, c] of sparse) this.counts[i]! += c;
    this.n += n;
    this.max = Math.max(this.max, max);
  }

  /** ns spent in values of at least `thresholdNs` (bucket upper bounds, as qbload's stalled_share). */
  timeAtOrAbove(thresholdNs: number): number {
    let ns = 0;
    for (let i = 0; i < BUCKETS; i++) if (this.counts[i]! > 0 && upper(i) >= thresholdNs) ns += this.counts[i]! * upper(i);
    return ns;
  }

  /** The value at `pct` percent, in ns (the bucket's upper bound, capped at the max). */
  percentile(pct: number): number {
    if (this.n === 0) return 0;
    const want = Math.min(this.n, Math.max(1, Math.ceil((pct / 100) * this.n - 1e-6)));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= want) return Math.min(upper(i), this.max);
    }
    return this.max;
  }
}
