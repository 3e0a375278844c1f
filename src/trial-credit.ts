// A habit kept only while it pays: the serving thread tries something cheap that
// usually saves work (yield to a woken client, leave doorbells unread), and a
// connection on which it keeps missing stops trying, with one trial now and then
// in case the load has changed. A hit restores every allowed miss.
export class TrialCredit {
  private credit: number;
  private idleAsks = 0;

  constructor(
    private readonly missesAllowed: number,
    private readonly retryEvery: number,
  ) {
    this.credit = missesAllowed;
  }

  /** Whether to try now: always while misses are allowed; once stopped, once every `retryEvery` asks. */
  shouldTry(): boolean {
    if (this.credit > 0) return true;
    if (++this.idleAsks < this.retryEvery) return false;
    this.idleAsks = 0;
    this.credit = 1;
    return true;
  }

  /** What the try found. */
  result(hit: boolean): void {
    if (hit) this.credit = this.missesAllowed;
    else this.credit--;
  }
}
