// A service owner's caps on connections (options.maxConnections in total,
// options.maxConnectionsPerUid per client uid; libqb has neither). A client
// counts from its admission, before its directory is made, until its
// connection is gone or it was refused, so admissions in flight (an async
// connectionAccept) cannot overshoot a cap.
export class ConnectionLimits<C> {
  /** Each counted connection's uid. */
  private readonly counted = new Map<C, number>();
  private readonly perUid = new Map<number, number>();

  constructor(
    private readonly max: number | undefined,
    private readonly maxPerUid: number | undefined,
  ) {}

  /** Counts `conn` unless a cap is reached; then says which, and nothing is counted. */
  take(conn: C, uid: number): string | undefined {
    if (this.max === undefined && this.maxPerUid === undefined) return undefined;
    if (this.max !== undefined && this.counted.size >= this.max) return `the service has its maximum of ${this.max} connections`;
    const ofUid = this.perUid.get(uid) ?? 0;
    if (this.maxPerUid !== undefined && ofUid >= this.maxPerUid) return `uid ${uid} has its maximum of ${this.maxPerUid} connections`;
    this.counted.set(conn, uid);
    this.perUid.set(uid, ofUid + 1);
    return undefined;
  }

  /** `conn` is gone or was refused (again: nothing happens). */
  release(conn: C): void {
    const uid = this.counted.get(conn);
    if (uid === undefined) return;
    this.counted.delete(conn);
    const left = this.perUid.get(uid)! - 1;
    if (left === 0) this.perUid.delete(uid);
    else this.perUid.set(uid, left);
  }
}
