// The workload table: what every (server, client) pair is measured under.
// qbload's flags express each one; the node load client takes the same flags.

export type WorkloadKind = 'ping-pong' | 'pipelined' | 'events' | 'churn';

export interface Workload {
  /** Stable id (JSON, --workloads). */
  key: string;
  title: string;
  kind: WorkloadKind;
  clients: number;
  /** Payload bytes per request (events: per event). */
  size: number;
  /** Requests in flight per client. */
  depth: number;
  /** Events per request (events only). */
  batch: number;
  /**
   * Server and clients pinned to CPU 0. On a small VM a cross-CPU wake-up
   * costs tens of µs, so a 1-client ping-pong otherwise measures placement luck.
   */
  sameCpu: boolean;
  /** What the rate counts. */
  unit: 'msgs' | 'events' | 'connects';
  /** What a latency figure is the time of. */
  latency: string;
}

const KIB = 1024;
const sizeText = (n: number) => (n >= KIB ? `${n / KIB} KiB` : `${n} B`);
const clientsText = (n: number) => `${n} client${n === 1 ? '' : 's'}`;

function pingPong(size: number, clients: number, sameCpu = false): Workload {
  return {
    key: `pp-${size}-c${clients}${sameCpu ? '-cpu0' : ''}`,
    title: `ping-pong ${sizeText(size)}, ${clientsText(clients)}${sameCpu ? ', same CPU' : ''}`,
    kind: 'ping-pong',
    clients,
    size,
    depth: 1,
    batch: 0,
    sameCpu,
    unit: 'msgs',
    latency: 'round trip',
  };
}

function pipelined(size: number, clients: number, depth: number): Workload {
  return {
    key: `pipe-${size}-d${depth}-c${clients}`,
    title: `pipelined ${sizeText(size)} ×${depth} in flight, ${clientsText(clients)}`,
    kind: 'pipelined',
    clients,
    size,
    depth,
    batch: 0,
    sameCpu: false,
    unit: 'msgs',
    latency: 'send to its response',
  };
}

function events(size: number, clients: number, batch: number): Workload {
  return {
    key: `events-${size}-b${batch}-c${clients}`,
    title: `events ${sizeText(size)} fan-out to ${clientsText(clients)} (${batch} per request)`,
    kind: 'events',
    clients,
    size,
    depth: 1,
    batch,
    sameCpu: false,
    unit: 'events',
    latency: `request to its ${batch}th event`,
  };
}

function churn(clients: number): Workload {
  return {
    key: `churn-c${clients}`,
    title: `connection churn, ${clientsText(clients)} (connect, 64 B round trip, disconnect)`,
    kind: 'churn',
    clients,
    size: 64,
    depth: 1,
    batch: 0,
    sameCpu: false,
    unit: 'connects',
    latency: 'whole cycle',
  };
}

/** Clients of the rate-vs-clients sweep (ping-pong 64 B, unpinned): the plot. */
export const SWEEP = [1, 2, 4, 8, 16];
/** --quick: two points of the sweep, 4 clients elsewhere (cheap to start, still concurrent). */
export const QUICK_SWEEP = [1, 4];

export const FULL: Workload[] = [
  pingPong(64, 1, true),
  pingPong(1 * KIB, 1, true),
  pingPong(16 * KIB, 1, true),
  pingPong(256 * KIB, 1, true),
  ...SWEEP.map((c) => pingPong(64, c)),
  pingPong(16 * KIB, 8),
  pipelined(64, 4, 16),
  events(64, 8, 64),
  churn(4),
];

export const QUICK: Workload[] = [...QUICK_SWEEP.map((c) => pingPong(64, c)), pipelined(64, 4, 16), events(64, 4, 64), churn(2)];

/** Part of the plot: ping-pong 64 B, placement left to the scheduler. */
export function inSweep(w: Workload): boolean {
  return w.kind === 'ping-pong' && w.size === 64 && !w.sameCpu;
}

/** The load program's flags (qbload's; node-load accepts the same). */
export function loadArgs(address: string, w: Workload, seconds: number): string[] {
  const common = ['-n', address, '-c', String(w.clients), '-T', String(seconds)];
  switch (w.kind) {
    case 'churn':
      return [...common, '--churn'];
    case 'events':
      return [...common, '--events', '-s', String(w.size), '-b', String(w.batch), '-m', String(Math.max(12328, w.size + 64))];
    default:
      return [...common, '-s', String(w.size), '-d', String(w.depth), '-m', String(Math.max(12328, w.size + 64))];
  }
}
