// In-thread mode: one shard on the service's own thread, called directly.
import type { Handshake } from './acceptor.js';
import type { Connection, ConnectionHandlers } from './connection.js';
import type { ServiceView } from './connection-base.js';
import { Shard, type RateSettings, type ShardSettings } from './shard.js';
import type { Shards, ShardsHost } from './shards.js';
import type { TransportFiles } from './transport/files.js';

export class LocalShards implements Shards<Connection> {
  private readonly shard: Shard;

  constructor(host: ShardsHost<Connection>, handlers: ConnectionHandlers, service: ServiceView, settings: ShardSettings) {
    this.shard = new Shard(host, handlers, service, settings);
  }

  create(id: number, h: Handshake): Connection {
    return this.shard.connection(h.fd, id, h);
  }

  place(conn: Connection, files: TransportFiles, bufferSize: number): void {
    this.shard.adopt(conn, files, bufferSize);
  }

  rejected(conn: Connection): void {
    this.shard.refuse(conn, 0);
  }

  setRate(rate: RateSettings): Promise<void> {
    this.shard.setRate(rate);
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.shard.disconnectAll();
    return Promise.resolve();
  }
}
