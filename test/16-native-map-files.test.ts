// native.mapFiles: a connection's files in one reserved range. Each file gets a
// buffer of its own over the shared file; releasing any one of them gives the
// whole range back in one call; a file the peer truncates faults only its own
// part, so the others still reach the peer (a closing connection must still
// mark its rings closed and wake the client through them).
import test from 'ava';
import { closeSync, ftruncateSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { native } from '../src/native.js';

const PAGE = 4096;
/** A ring header's size (not a page multiple), a data file mapped twice, a page. */
const SIZES = [8252, 2 * PAGE, PAGE];
const DOUBLED = 0b010;

function withFiles(run: (fds: number[]) => void): void {
  const dir = mkdtempSync('/dev/shm/qbipc-test-mapfiles-');
  const fds = SIZES.map((size, i) => {
    const fd = openSync(`${dir}/part-${i}`, 'w+', 0o600);
    ftruncateSync(fd, size);
    return fd;
  });
  try {
    run(fds);
  } finally {
    fds.forEach((fd) => closeSync(fd));
    rmSync(dir, { recursive: true, force: true });
  }
}

test('each file gets a buffer over the shared file; a doubled one reads the same bytes twice', (t) => {
  withFiles((fds) => {
    const buffers = native.mapFiles(Int32Array.from(fds), Int32Array.from(SIZES), DOUBLED);
    t.deepEqual(
      buffers.map((b) => b.byteLength),
      [8252, 4 * PAGE, PAGE],
    );
    const [header, data, last] = buffers.map((b) => new Uint8Array(b)) as [Uint8Array, Uint8Array, Uint8Array];
    writeSync(fds[0]!, Uint8Array.of(7), 0, 1, 8251);
    writeSync(fds[1]!, Uint8Array.of(9), 0, 1, 5);
    t.is(header[8251], 7, 'the header part sees the file');
    t.is(data[5], 9);
    t.is(data[2 * PAGE + 5], 9, 'the second mapping of the data file sees the same byte');
    last[10] = 3;
    const back = new Uint8Array(1);
    readSync(fds[2]!, back, 0, 1, 10);
    t.is(back[0], 3, 'writes reach the file');
    t.true(native.releaseMapping(buffers[0]!));
  });
});

test('releasing any buffer releases every part at once; a second release finds nothing', (t) => {
  withFiles((fds) => {
    const before = native.guardedMappings();
    const buffers = native.mapFiles(Int32Array.from(fds), Int32Array.from(SIZES), DOUBLED);
    t.is(native.guardedMappings(), before + 3, 'each part is guarded on its own');
    const views = buffers.map((b) => new Uint8Array(b));
    writeSync(fds[0]!, Uint8Array.of(1), 0, 1, 0);
    writeSync(fds[1]!, Uint8Array.of(2), 0, 1, 0);
    writeSync(fds[2]!, Uint8Array.of(3), 0, 1, 0);
    t.deepEqual(
      views.map((v) => v[0]),
      [1, 2, 3],
    );
    t.true(native.releaseMapping(buffers[1]!), 'released by the middle part');
    t.deepEqual(
      views.map((v) => v[0]),
      [0, 0, 0],
      'every part reads zeros',
    );
    t.is(native.guardedMappings(), before, 'every part left the guard count');
    t.false(native.releaseMapping(buffers[0]!));
    t.false(native.releaseMapping(buffers[2]!));
    const back = new Uint8Array(1);
    readSync(fds[2]!, back, 0, 1, 0);
    t.is(back[0], 3, 'the files keep their bytes: only our mapping went');
  });
});

test('a truncated file faults its own part only: the others still share their files', (t) => {
  withFiles((fds) => {
    const faults = native.mappingFaults();
    const before = Atomics.load(faults, 0);
    const buffers = native.mapFiles(Int32Array.from(fds), Int32Array.from(SIZES), DOUBLED);
    const [header, data, last] = buffers.map((b) => new Uint8Array(b)) as [Uint8Array, Uint8Array, Uint8Array];
    ftruncateSync(fds[1]!, 0);
    t.is(data[100], 0, 'the access past the end of the file reads zeros instead of killing the process');
    t.is(Atomics.load(faults, 0), before + 1);
    t.true(native.mappingFaulted(data));
    t.false(native.mappingFaulted(header));
    t.false(native.mappingFaulted(last));
    writeSync(fds[0]!, Uint8Array.of(5), 0, 1, 4);
    writeSync(fds[2]!, Uint8Array.of(6), 0, 1, 4);
    t.is(header[4], 5, 'the header part still sees its file');
    t.is(last[4], 6);
    t.true(native.releaseMapping(buffers[2]!));
  });
});

test('arguments: one size per fd, at most 32 files, sizes >= 1, a doubled file a page multiple', (t) => {
  const cases: Array<[Int32Array, Int32Array, number, string]> = [
    [Int32Array.of(1_000_000, 1_000_000), Int32Array.of(PAGE, PAGE, PAGE), 0, 'sizes'],
    [new Int32Array(33).fill(1_000_000), new Int32Array(33).fill(PAGE), 0, 'fds'],
    [Int32Array.of(-1), Int32Array.of(PAGE), 0, 'fds'],
    [Int32Array.of(1_000_000), Int32Array.of(0), 0, 'sizes'],
    [Int32Array.of(1_000_000), Int32Array.of(PAGE + 4), 1, 'sizes'],
  ];
  for (const [fds, sizes, doubled, param] of cases) {
    const error = t.throws(() => native.mapFiles(fds, sizes, doubled), { instanceOf: RangeError });
    t.is((error as NodeJS.ErrnoException | undefined)?.code, 'ERR_OUT_OF_RANGE', error?.message);
    t.true(error?.message.includes(`"${param}"`), error?.message);
  }
  t.throws(() => native.mapFiles(Int32Array.of(1_000_000), Int32Array.of(PAGE), 0), { code: 'EBADF' } as never);
});
