// The node `net` transport of the node load client: a unix stream socket
// carrying libqb's framing (net-framing.ts), responses and events in order.
import net from 'node:net';
import { FrameReader, RES_HDR, socketPath } from '../servers/net-framing.js';
import type { Session } from './node-load.js';

export function connectNet(address: string, maxFrame: number, onFrame: (frame: Buffer) => void): Promise<Session> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(socketPath(address));
    const reader = new FrameReader(RES_HDR, maxFrame, onFrame);
    let ready = false;
    socket.once('connect', () => {
      ready = true;
      resolve({
        send: (frame) => void socket.write(frame),
        close: () => socket.destroy(),
        onClose: (fn) => void socket.once('close', () => fn()),
      });
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        reader.push(chunk);
      } catch (error) {
        socket.destroy(error as Error);
      }
    });
    socket.on('error', (error) => {
      if (!ready) reject(error);
      socket.destroy();
    });
  });
}
