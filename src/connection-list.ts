// The service's connections in libqb's list order: newest first (qb_list_add
// inserts at the head), with O(1) insert, removal and "next" for the
// connectionFirstGet/connectionNextGet walk.
interface Links<C> {
  newer: C | undefined;
  older: C | undefined;
}

export class ConnectionList<C> {
  private newest: C | undefined;
  private readonly links = new Map<C, Links<C>>();

  get size(): number {
    return this.links.size;
  }

  add(conn: C): void {
    if (this.links.has(conn)) return;
    if (this.newest !== undefined) this.links.get(this.newest)!.newer = conn;
    this.links.set(conn, { newer: undefined, older: this.newest });
    this.newest = conn;
  }

  delete(conn: C): void {
    const l = this.links.get(conn);
    if (l === undefined) return;
    if (l.newer !== undefined) this.links.get(l.newer)!.older = l.older;
    else this.newest = l.older;
    if (l.older !== undefined) this.links.get(l.older)!.newer = l.newer;
    this.links.delete(conn);
  }

  first(): C | undefined {
    return this.newest;
  }

  /** The connection after `conn` (the next older one); undefined at the end or when `conn` is not listed. */
  next(conn: C): C | undefined {
    return this.links.get(conn)?.older;
  }

  /** A snapshot, newest first: safe to change the list while walking it. */
  toArray(): C[] {
    const all: C[] = [];
    for (let c = this.newest; c !== undefined; c = this.links.get(c)!.older) all.push(c);
    return all;
  }
}
