// How sure a median over rounds is, without assuming how the rounds are
// distributed (this machine's are not normal: host freezes make long tails).
// The order statistics x(k) ≤ median ≤ x(n−k+1) hold with probability
// 1 − 2·P(B ≤ k−1), B ~ Binomial(n, ½): pick the narrowest pair that reaches the
// confidence asked for. Below 6 rounds no pair reaches 95 %: the range is the
// best there is, and `confidence` says how much it is worth (3 rounds: 75 %).

export interface MedianInterval {
  low: number;
  high: number;
  /** The interval's actual coverage (≥ the level asked for, unless even the range falls short). */
  confidence: number;
}

/** P(B ≤ k) for B ~ Binomial(n, ½). */
function binomialHalfCdf(n: number, k: number): number {
  let term = Math.pow(0.5, n); // P(B = 0)
  let sum = term;
  for (let i = 1; i <= k; i++) {
    term = (term * (n - i + 1)) / i;
    sum += term;
  }
  return sum;
}

/** The distribution-free confidence interval of the median of `xs` (undefined with fewer than 2 values). */
export function medianInterval(xs: readonly number[], level = 0.95): MedianInterval | undefined {
  const n = xs.length;
  if (n < 2) return undefined;
  const sorted = [...xs].sort((a, b) => a - b);
  let k = 1; // 1-based: the interval [x(k), x(n−k+1)]
  while (k + 1 <= n - k && 1 - 2 * binomialHalfCdf(n, k) >= level) k++;
  return { low: sorted[k - 1]!, high: sorted[n - k]!, confidence: 1 - 2 * binomialHalfCdf(n, k - 1) };
}
