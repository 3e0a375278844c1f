// The client side of the SHM transport (docs/wire.md §6.3 client,
// §8.1, §8.4–§8.6): attach the three rings, write requests and ring a doorbell
// byte per request, read responses and events, pay one byte per event.
import path from 'node:path';
import { IpcType, PollEvent } from '../constants.js';
import { EAGAIN, EBADMSG, EINVAL, ENOTCONN } from '../errno.js';
import { QbError } from '../errors.js';
import { native } from '../native.js';
import { DATA_PATH_OFFSET, HEADER_FILE_SIZE, HEADER_STRUCT_SIZE, HeaderWord, PATH_FIELD_SIZE, ringDataSize } from '../shm/layout.js';
import { copyOut } from '../shm/copy.js';
import { ShmRing } from '../shm/ring.js';
import type { Channel } from './channel.js';
import { mapExisting } from './map.js';

const AT_FDCWD = -100;
const decoder = new TextDecoder();
const stray = new Uint8Array(4096);

interface Attached {
  ring: ShmRing;
  headerPath: string;
  dataPath: string;
}

/** Maps one ring as libqb's client does: header, then the data file it names (which must be ours: <base>-data). */
function attach(base: string, headerSize: number, bufferSize: number): Attached {
  const headerPath = `${base}-header`;
  const header = mapExisting(headerPath, headerSize);
  const named = new Uint8Array(header, DATA_PATH_OFFSET, PATH_FIELD_SIZE);
  const end = named.indexOf(0);
  const dataPath = decoder.decode(named.slice(0, end < 0 ? PATH_FIELD_SIZE : end));
  // libqb opens whatever the header names; we open only the file beside it.
  if (dataPath !== `${base}-data`) throw new QbError(-EINVAL, `the ring header ${headerPath} names a foreign data file ${dataPath}`);
  const dataSize = ringDataSize(bufferSize);
  const words = new Int32Array(header);
  if (Atomics.load(words, HeaderWord.WORD_SIZE) !== dataSize / 4) {
    throw new QbError(-EINVAL, `the ring ${base} has word_size ${Atomics.load(words, HeaderWord.WORD_SIZE)}, expected ${dataSize / 4}`);
  }
  const ring = new ShmRing(header, mapExisting(dataPath, dataSize, native.mapRing), dataSize);
  Atomics.add(ring.header, HeaderWord.REF_COUNT, 1);
  return { ring, headerPath, dataPath };
}

export class ShmChannel implements Channel {
  readonly type = IpcType.SHM;
  readonly responseFd = undefined;
  readonly responseSemaphore: Int32Array;
  readonly responseSemaphoreIndex = HeaderWord.SEM_VALUE;
  private readonly rings: Attached[];
  private readonly request: ShmRing;
  private readonly response: ShmRing;
  private readonly events: ShmRing;
  /** Events taken whose doorbell byte has not been read yet. */
  private doorbellDebt = 0;
  /** Request doorbells the socket refused (EAGAIN): sent when it is writable. */
  private owedDoorbells = 0;
  private readonly bell = new Uint8Array(1);

  constructor(
    private readonly setupFd: number,
    paths: { request: string; response: string; event: string },
    bufferSize: number,
  ) {
    const rings: Attached[] = [];
    try {
      rings.push(attach(paths.request, HEADER_FILE_SIZE, bufferSize));
      rings.push(attach(paths.response, HEADER_STRUCT_SIZE, bufferSize));
      rings.push(attach(paths.event, HEADER_STRUCT_SIZE, bufferSize));
    } catch (error) {
      for (const r of rings) r.ring.close();
      throw error;
    }
    this.rings = rings;
    [this.request, this.response, this.events] = rings.map((r) => r.ring) as [ShmRing, ShmRing, ShmRing];
    this.responseSemaphore = this.response.header;
  }

  get pollFd(): number {
    return this.setupFd;
  }

  get eventFd(): number {
    return this.setupFd;
  }

  get setupInterest(): number {
    return this.owedDoorbells > 0 ? PollEvent.OUT : 0;
  }

  /** §8.1 step 2: request ref_count ≠ 2 means the server closed the rings. */
  flowControl(): number {
    if (Atomics.load(this.request.header, HeaderWord.REF_COUNT) !== 2) return -ENOTCONN;
    return Atomics.load(this.request.header, HeaderWord.FLOW_CONTROL);
  }

  send(parts: readonly Uint8Array[], length: number, doorbell: number): number {
    const rc = this.request.write(parts, length, false);
    if (rc < 0) return rc === -EBADMSG ? -ENOTCONN : rc; // a corrupt read_pt: the server is not a libqb server
    this.bell[0] = doorbell;
    if (this.owedDoorbells > 0) {
      this.owedDoorbells++;
      return this.flush() < 0 ? -ENOTCONN : rc;
    }
    const n = native.send(this.setupFd, this.bell);
    if (n === -EAGAIN) this.owedDoorbells++;
    else if (n < 0) return -ENOTCONN;
    return rc;
  }

  /** Sends owed doorbells (their values are meaningless). */
  private flush(): number {
    while (this.owedDoorbells > 0) {
      const n = native.send(this.setupFd, stray.subarray(0, Math.min(this.owedDoorbells, stray.byteLength)));
      if (n === -EAGAIN) return 0;
      if (n < 0) return n;
      this.owedDoorbells -= n;
    }
    return 0;
  }

  private take(ring: ShmRing): Uint8Array | number {
    const rc = ring.nextChunk();
    if (rc === 0) return -EAGAIN;
    if (rc < 0) return rc;
    const message = copyOut(ring.bytes, ring.chunkOffset, ring.chunkOffset + ring.chunkLength);
    ring.reclaim();
    return message;
  }

  takeResponse(): Uint8Array | number {
    return this.take(this.response);
  }

  waitResponseSync(timeoutMs: number): number {
    return native.semWait(this.responseSemaphore, this.responseSemaphoreIndex, timeoutMs);
  }

  takeEvent(): Uint8Array | number {
    const event = this.take(this.events);
    if (typeof event !== 'number') {
      this.doorbellDebt++;
      this.payDebt();
    }
    return event;
  }

  /** Reads at most the doorbell bytes of events already taken: the rest stay, so the fd stays readable for them. */
  private payDebt(): number {
    while (this.doorbellDebt > 0) {
      const n = native.recv(this.setupFd, stray.subarray(0, Math.min(this.doorbellDebt, stray.byteLength)));
      if (n === -EAGAIN) return 0;
      if (n <= 0) return -ENOTCONN;
      this.doorbellDebt -= n;
    }
    return 0;
  }

  setupReady(revents: number): number {
    if (revents & PollEvent.OUT && this.flush() < 0) return -ENOTCONN;
    if (revents & PollEvent.IN) {
      if (this.payDebt() < 0) return -ENOTCONN;
      const n = native.recvPeek(this.setupFd, this.bell);
      if (n === 0) return -ENOTCONN; // EOF
      // A byte with no event behind it (the server posts before it rings): drop it, or a level-triggered wait spins.
      if (n > 0 && !this.events.hasWork) native.recv(this.setupFd, this.bell);
    }
    return 0;
  }

  /**
   * qb_ipcc_disconnect for SHM (§10.5): normally ref_count 1 then −1 → 0 on
   * each ring. When the server died: ref_count −1 and the files unlinked (by
   * the paths we attached, never by those in shared memory), and, unlike libqb,
   * the then empty directory removed.
   */
  close(serverGone: boolean): void {
    for (const { ring, headerPath, dataPath } of this.rings) {
      if (!serverGone) {
        ring.close();
        continue;
      }
      Atomics.store(ring.header, HeaderWord.REF_COUNT, -1);
      native.unlinkAt(AT_FDCWD, dataPath, false);
      native.unlinkAt(AT_FDCWD, headerPath, false);
    }
    if (serverGone) {
      const dir = path.dirname(this.rings[0]!.headerPath);
      if (path.basename(dir).startsWith('qb-')) native.unlinkAt(AT_FDCWD, dir, true);
    }
  }
}
