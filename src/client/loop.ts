// The clients' event source: one native poller per thread (the same kind a
// service uses), whose fds are uv_poll handles in this thread's libuv loop.
// Its handles keep the process alive only while some client call is waiting,
// like a pending socket read.
import { NativeLoop } from '../poll.js';

let loop: NativeLoop | undefined;
let holds = 0;

/** This thread's client loop, created on first use. */
export function clientLoop(): NativeLoop {
  if (loop === undefined) {
    loop = new NativeLoop();
    loop.setKeepAlive(false);
  }
  return loop;
}

/** A call started waiting: keep the event loop alive until release(). */
export function hold(): void {
  if (holds++ === 0) clientLoop().setKeepAlive(true);
}

export function release(): void {
  if (holds > 0 && --holds === 0) loop?.setKeepAlive(false);
}
