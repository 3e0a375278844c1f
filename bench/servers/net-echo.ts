// The node `net` echo server: what a Node user would write instead of libqb
// IPC — a unix stream socket and the same framing and protocol as the C echo
// server (id 1 echo, id 2 events, others -EINVAL). Events share the stream
// with responses (a byte stream has no second channel), with back-pressure.
// Usage: node net-echo.js ADDRESS   ("@name": abstract socket). Prints
// "ready pid=P"; exits on SIGTERM/SIGINT.
import net from 'node:net';
import { EINVAL } from '../../src/errno.js';
import { eventPattern, FrameReader, ID_ECHO, ID_EVENT, ID_EVENTS, REQ_HDR, RES_HDR, responseHeader, socketPath } from './net-framing.js';

const address = process.argv[2];
if (address === undefined) {
  console.error('usage: net-echo ADDRESS');
  process.exit(2);
}
const MAX_FRAME = 64 * 1024 * 1024;
let pattern = eventPattern(0);

function pumpEvents(socket: net.Socket, count: number, len: number): void {
  let k = 0;
  const pump = () => {
    while (k < count) {
      const header = responseHeader(ID_EVENT, RES_HDR + len, k);
      const off = k & 0xff;
      k++;
      socket.write(header);
      if (!socket.write(pattern.subarray(off, off + len))) {
        socket.once('drain', pump);
        return;
      }
    }
  };
  pump();
}

const server = net.createServer((socket) => {
  const reader = new FrameReader(REQ_HDR, MAX_FRAME, (frame) => {
    const id = frame.readInt32LE(0);
    if (id === ID_ECHO) {
      socket.write(responseHeader(ID_ECHO, RES_HDR + frame.length - REQ_HDR, 0));
      socket.write(frame.subarray(REQ_HDR));
    } else if (id === ID_EVENTS && frame.length >= REQ_HDR + 8) {
      const count = frame.readUInt32LE(REQ_HDR);
      const len = frame.readUInt32LE(REQ_HDR + 4);
      if (pattern.length < len + 256) pattern = eventPattern(len);
      socket.write(responseHeader(ID_EVENTS, RES_HDR, 0));
      pumpEvents(socket, count, len);
    } else {
      socket.write(responseHeader(id, RES_HDR, -EINVAL));
    }
  });
  socket.on('data', (chunk: Buffer) => {
    socket.cork();
    try {
      reader.push(chunk);
    } catch (error) {
      console.error(`net-echo: ${(error as Error).message}; dropping the client`);
      socket.destroy();
      return;
    }
    socket.uncork();
  });
  socket.on('error', () => socket.destroy());
});

server.listen(socketPath(address), () => console.log(`ready pid=${process.pid}`));
server.on('error', (error) => {
  console.error(`net-echo: ${error.message}`);
  process.exit(1);
});
const stop = () => process.exit(0); // abstract sockets leave nothing behind
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
