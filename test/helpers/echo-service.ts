// The test service: the same application protocol as the C reference server
// (id 1 echo, id 2 events, anything else -EINVAL), plus a record of every
// callback so tests can wait on them instead of sleeping.
import { readdirSync } from 'node:fs';
import {
  createService, IpcType, makeResponse, readRequestHeader, writeResponseHeader, EAGAIN, EINVAL,
  type Connection, type Service, type ServiceHandlers, type ServiceOptions,
} from '../../src/index.js';

export const ID_ECHO = 1;
export const ID_EVENTS = 2;
export const ID_EVENT = 3;

let counter = 0;
/** A service name no other test (or test process) uses. */
export function uniqueName(tag: string): string {
  return `qbt-${process.pid}-${tag}-${counter++}`;
}

type CallbackName = 'accept' | 'created' | 'closed' | 'destroyed' | 'request';

export interface EchoService {
  service: Service;
  name: string;
  /** Every callback, in order, with the connection's client pid. */
  log: Array<{ callback: CallbackName; pid: number }>;
  /** Resolves when `callback` has been called `count` times in total. */
  when(callback: CallbackName, count?: number): Promise<void>;
  count(callback: CallbackName): number;
  stop(): Promise<void>;
}

interface EventPump {
  next: number;
  total: number;
  length: number;
  timer?: NodeJS.Timeout;
}

export async function startEchoService(
  overrides: Partial<ServiceHandlers> = {},
  options: ServiceOptions & { tag?: string; type?: IpcType; beforeRun?: (s: Service) => void } = {},
): Promise<EchoService> {
  const name = uniqueName(options.tag ?? 'echo');
  const log: EchoService['log'] = [];
  const waiters: Array<{ callback: CallbackName; count: number; resolve: () => void }> = [];
  const pumps = new Map<Connection, EventPump>();
  const count = (callback: CallbackName) => log.filter((e) => e.callback === callback).length;
  const record = (callback: CallbackName, conn: Connection) => {
    log.push({ callback, pid: conn.pid });
    for (const w of waiters.filter((x) => x.callback === callback && count(callback) >= x.count)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
  };

  const pump = (conn: Connection) => {
    const p = pumps.get(conn);
    if (p === undefined) return;
    p.timer = undefined;
    while (p.next < p.total) {
      const payload = new Uint8Array(p.length);
      for (let j = 0; j < p.length; j++) payload[j] = (p.next + j) & 0xff;
      const rc = conn.eventSend(makeResponse(ID_EVENT, p.next, payload));
      if (rc === -EAGAIN) {
        p.timer = setTimeout(() => pump(conn), 1); // ring full: the client is still reading
        return;
      }
      if (rc < 0) return;
      p.next++;
    }
  };

  const handlers: ServiceHandlers = {
    connectionAccept(conn, uid, gid) {
      record('accept', conn);
      return overrides.connectionAccept ? overrides.connectionAccept(conn, uid, gid) : 0;
    },
    connectionCreated(conn) {
      record('created', conn);
      overrides.connectionCreated?.(conn);
    },
    msgProcess(conn, data) {
      record('request', conn);
      if (overrides.msgProcess) {
        const rc = overrides.msgProcess(conn, data);
        if (rc !== undefined) return rc;
      }
      const header = readRequestHeader(data);
      if (header.id === ID_ECHO) {
        const payload = data.subarray(16);
        const head = writeResponseHeader(new Uint8Array(24), { id: ID_ECHO, size: 24 + payload.byteLength, error: 0 });
        conn.responseSendv([head, payload]); // the payload goes from ring to ring, no copy in between
        return 0;
      }
      if (header.id === ID_EVENTS) {
        const args = new DataView(data.buffer, data.byteOffset + 16, Math.min(8, data.byteLength - 16));
        const total = args.byteLength >= 4 ? args.getUint32(0, true) : 0;
        const length = args.byteLength >= 8 ? args.getUint32(4, true) : 0;
        conn.responseSend(makeResponse(ID_EVENTS, 0));
        const old = pumps.get(conn);
        if (old?.timer) clearTimeout(old.timer);
        pumps.set(conn, { next: 0, total, length });
        pump(conn);
        return 0;
      }
      conn.responseSend(makeResponse(header.id, -EINVAL));
      return 0;
    },
    connectionClosed(conn) {
      record('closed', conn);
      const p = pumps.get(conn);
      if (p?.timer) clearTimeout(p.timer);
      pumps.delete(conn);
      return overrides.connectionClosed ? overrides.connectionClosed(conn) : 0;
    },
    connectionDestroyed(conn) {
      record('destroyed', conn);
      overrides.connectionDestroyed?.(conn);
    },
  };

  const service = createService(name, 0, options.type ?? IpcType.SHM, handlers, options);
  options.beforeRun?.(service);
  await service.run();
  return {
    service,
    name,
    log,
    count,
    when(callback, wanted = 1) {
      if (count(callback) >= wanted) return Promise.resolve();
      return new Promise((resolve) => waiters.push({ callback, count: wanted, resolve }));
    },
    async stop() {
      for (const p of pumps.values()) if (p.timer) clearTimeout(p.timer);
      await service.destroy();
    },
  };
}

/** Entries under /dev/shm made by this process as a server (qb-<pid>-…). */
export function shmEntries(pid = process.pid): string[] {
  return readdirSync('/dev/shm').filter((e) => e.startsWith(`qb-${pid}-`));
}

/** Open file descriptors of this process. */
export function fdCount(): number {
  return readdirSync('/proc/self/fd').length;
}
