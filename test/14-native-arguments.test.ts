// Every native entry point checks its arguments before it acts: a missing or
// mistyped argument throws a TypeError (ERR_INVALID_ARG_TYPE), a number out of
// range a RangeError (ERR_OUT_OF_RANGE), each naming the call and the argument.
// Before, a wrong type read as 0: close(undefined) closed fd 0.
import test from 'ava';
import { fstatSync } from 'node:fs';
import { native, type NativeHelper } from '../src/native.js';

type Kind = 'fd' | 'dirFd' | 'int' | 'uint' | 'id' | 'size' | 'number' | 'bool' | 'string' | 'bytes' | 'int32s' | 'array' | 'sab' | 'view';

/** A value of the right type for each kind: never acted on, since another argument is always wrong. */
const VALID: Record<Kind, () => unknown> = {
  fd: () => 1_000_000,
  dirFd: () => -100,
  int: () => 0,
  uint: () => 0,
  id: () => 0,
  size: () => 4096,
  number: () => 0,
  bool: () => false,
  string: () => '/nonexistent-qbipc-test',
  bytes: () => new Uint8Array(8),
  int32s: () => new Int32Array(8),
  array: () => [],
  sab: () => new SharedArrayBuffer(8),
  view: () => new Uint8Array(8),
};

/** Every function the addon exports, with its parameters (names as the error messages give them). */
const FUNCTIONS: Array<[name: keyof NativeHelper, params: Array<[string, Kind]>]> = [
  [
    'listenStream',
    [
      ['name', 'string'],
      ['abstract', 'bool'],
    ],
  ],
  [
    'connectStream',
    [
      ['name', 'string'],
      ['abstract', 'bool'],
    ],
  ],
  ['acceptStream', [['listenFd', 'fd']]],
  [
    'setPassCred',
    [
      ['fd', 'fd'],
      ['on', 'bool'],
    ],
  ],
  [
    'recvCredentials',
    [
      ['fd', 'fd'],
      ['into', 'bytes'],
      ['creds', 'int32s'],
    ],
  ],
  [
    'send',
    [
      ['fd', 'fd'],
      ['data', 'bytes'],
    ],
  ],
  [
    'recv',
    [
      ['fd', 'fd'],
      ['into', 'bytes'],
    ],
  ],
  ['shutdown', [['fd', 'fd']]],
  ['close', [['fd', 'fd']]],
  ['makeTempDir', [['template', 'string']]],
  ['openDirectory', [['path', 'string']]],
  ['fileIdentity', [['fd', 'fd']]],
  [
    'createFileAt',
    [
      ['dirFd', 'dirFd'],
      ['name', 'string'],
      ['size', 'size'],
      ['mode', 'uint'],
    ],
  ],
  [
    'fchown',
    [
      ['fd', 'fd'],
      ['uid', 'id'],
      ['gid', 'id'],
    ],
  ],
  [
    'fchmod',
    [
      ['fd', 'fd'],
      ['mode', 'uint'],
    ],
  ],
  [
    'unlinkAt',
    [
      ['dirFd', 'dirFd'],
      ['name', 'string'],
      ['isDirectory', 'bool'],
    ],
  ],
  [
    'mapShared',
    [
      ['fd', 'fd'],
      ['size', 'size'],
    ],
  ],
  [
    'mapRing',
    [
      ['fd', 'fd'],
      ['size', 'size'],
    ],
  ],
  [
    'mapFiles',
    [
      ['fds', 'int32s'],
      ['sizes', 'int32s'],
      ['doubled', 'uint'],
    ],
  ],
  ['releaseMapping', [['buffer', 'sab']]],
  [
    'wordAddress',
    [
      ['words', 'int32s'],
      ['index', 'uint'],
    ],
  ],
  [
    'futexWakeAt',
    [
      ['address', 'size'],
      ['count', 'uint'],
    ],
  ],
  [
    'futexWait',
    [
      ['words', 'int32s'],
      ['index', 'uint'],
      ['expected', 'int'],
      ['timeoutMs', 'number'],
    ],
  ],
  [
    'dgramOpen',
    [
      ['name', 'string'],
      ['bufferSize', 'uint'],
      ['passCred', 'bool'],
    ],
  ],
  [
    'dgramConnect',
    [
      ['fd', 'fd'],
      ['name', 'string'],
      ['bufferSize', 'uint'],
    ],
  ],
  [
    'sendv',
    [
      ['fd', 'fd'],
      ['parts', 'array'],
    ],
  ],
  [
    'dgramRecv',
    [
      ['fd', 'fd'],
      ['into', 'bytes'],
    ],
  ],
  [
    'recvPeek',
    [
      ['fd', 'fd'],
      ['into', 'bytes'],
    ],
  ],
  [
    'peerCredentials',
    [
      ['fd', 'fd'],
      ['out', 'int32s'],
    ],
  ],
  [
    'openExisting',
    [
      ['path', 'string'],
      ['size', 'size'],
    ],
  ],
  [
    'pollTwo',
    [
      ['fdA', 'fd'],
      ['eventsA', 'uint'],
      ['fdB', 'fd'],
      ['eventsB', 'uint'],
      ['timeoutMs', 'int'],
    ],
  ],
  [
    'semWait',
    [
      ['words', 'int32s'],
      ['index', 'uint'],
      ['timeoutMs', 'number'],
    ],
  ],
  ['mappingFaulted', [['view', 'view']]],
  [
    'setScheduling',
    [
      ['policy', 'uint'],
      ['priority', 'uint'],
    ],
  ],
  ['setCpuAffinity', [['cpus', 'int32s']]],
  [
    'copyBytes',
    [
      ['target', 'bytes'],
      ['offset', 'size'],
      ['source', 'bytes'],
    ],
  ],
];

/** Wrong values for a parameter of this kind: missing, a string (a number for strings), an object. */
function wrongValues(kind: Kind): Array<[string, unknown]> {
  return [['undefined', undefined], kind === 'string' ? ['a number', 1] : ['a string', '3'], ['an object', { valueOf: () => 3 }]];
}

function call(name: keyof NativeHelper, args: unknown[]): unknown {
  return (native[name] as (...a: unknown[]) => unknown)(...args);
}

test('the table covers every function the addon exports', (t) => {
  const covered = new Set<string>([
    ...FUNCTIONS.map(([name]) => name),
    'Poller',
    'SemWaiter',
    'yieldCpu',
    'scheduling',
    'cpuAffinity',
    'mappingFaults',
    'guardedMappings',
    'limitGuardedMappings',
  ]);
  t.deepEqual(
    Object.keys(native).filter((name) => !covered.has(name)),
    [],
  );
});

for (const [name, params] of FUNCTIONS) {
  test(`${name}: each argument of a wrong type throws TypeError ERR_INVALID_ARG_TYPE naming the call and the argument`, (t) => {
    params.forEach(([param, kind], i) => {
      for (const [what, value] of wrongValues(kind)) {
        const args = params.map(([, k]) => VALID[k]());
        args[i] = value;
        const error = t.throws(() => call(name, args), { instanceOf: TypeError }, `${name}: ${param} given ${what}`);
        t.is((error as NodeJS.ErrnoException | undefined)?.code, 'ERR_INVALID_ARG_TYPE', `${name}: ${param} given ${what}`);
        t.true(error?.message.startsWith(`${name}(`), error?.message);
        t.true(error?.message.includes(`"${param}"`), error?.message);
      }
    });
  });
}

test('close(undefined) throws and leaves fd 0 open (it used to close fd 0)', (t) => {
  const error = t.throws(() => call('close', [undefined]), { instanceOf: TypeError });
  t.is((error as NodeJS.ErrnoException | undefined)?.code, 'ERR_INVALID_ARG_TYPE');
  t.regex(error?.message ?? '', /^close\(fd\): the "fd" argument must be a file descriptor .*Received undefined$/);
  t.notThrows(() => fstatSync(0));
  t.throws(() => call('close', []), { code: 'ERR_INVALID_ARG_TYPE' } as never);
});

test('numbers out of range throw RangeError ERR_OUT_OF_RANGE: negative or fractional fds, sizes, indexes', (t) => {
  const cases: Array<[keyof NativeHelper, unknown[], string]> = [
    ['close', [-1], 'fd'],
    ['close', [1.5], 'fd'],
    ['close', [Number.NaN], 'fd'],
    ['send', [-3, new Uint8Array(1)], 'fd'],
    ['unlinkAt', [-2, 'x', false], 'dirFd'],
    ['createFileAt', [-100, 'x', -1, 0o600], 'size'],
    ['createFileAt', [-100, 'x', 4096, 0o10000], 'mode'],
    ['mapShared', [1_000_000, 0], 'size'],
    ['mapRing', [1_000_000, 2 ** 53], 'size'],
    ['fchown', [1_000_000, -2, 0], 'uid'],
    ['wordAddress', [new Int32Array(2), 2], 'index'],
    ['semWait', [new Int32Array(2), 1, 0], 'index'],
    ['dgramRecv', [1_000_000, new Uint8Array(8), new Int32Array(3)], 'creds'],
    ['peerCredentials', [1_000_000, new Int32Array(2)], 'out'],
    ['pollTwo', [1_000_000, 0x10000, 1_000_000, 0, 0], 'eventsA'],
    ['copyBytes', [new Uint8Array(4), -1, new Uint8Array(1)], 'offset'],
    ['copyBytes', [new Uint8Array(4), 2, new Uint8Array(3)], 'offset'],
    ['copyBytes', [new Uint8Array(4), 5, new Uint8Array(0)], 'offset'],
  ];
  for (const [name, args, param] of cases) {
    const error = t.throws(() => call(name, args), { instanceOf: RangeError }, `${name}(${args.map(String).join(', ')})`);
    t.is((error as NodeJS.ErrnoException | undefined)?.code, 'ERR_OUT_OF_RANGE', error?.message);
    t.true(error?.message.includes(`"${param}"`), error?.message);
  }
});

test('elements and optional arguments are checked too; typed arrays other than Uint8Array are bytes', (t) => {
  t.throws(() => native.sendv(1_000_000, ['x' as unknown as Uint8Array]), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' } as never);
  t.throws(() => native.dgramRecv(1_000_000, new Uint8Array(8), 'x' as unknown as Int32Array), { code: 'ERR_INVALID_ARG_TYPE' } as never);
  t.throws(() => native.openDirectory('/dev\0/shm'), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_VALUE' } as never);
  t.throws(() => native.releaseMapping(new ArrayBuffer(8) as unknown as SharedArrayBuffer), { code: 'ERR_INVALID_ARG_TYPE' } as never);
  // Right types: the call runs (EBADF from the kernel, not an exception).
  t.true(native.send(1_000_000, new Uint16Array(4) as unknown as Uint8Array) < 0);
  t.true(native.dgramRecv(1_000_000, new Uint8Array(8)) < 0);
  t.false(native.releaseMapping(new SharedArrayBuffer(8)), 'not a mapping: nothing to release');
});

test('Poller and SemWaiter check their constructor and method arguments', (t) => {
  t.throws(() => new native.Poller(undefined as unknown as Int32Array, () => {}, false), {
    instanceOf: TypeError,
    code: 'ERR_INVALID_ARG_TYPE',
  } as never);
  t.throws(() => new native.Poller(new Int32Array(2), () => {}, false), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' } as never);
  t.throws(() => new native.Poller(new Int32Array(3), 'x' as unknown as () => void, false), { code: 'ERR_INVALID_ARG_TYPE' } as never);
  t.throws(() => new native.Poller(new Int32Array(3), () => {}, 1 as unknown as boolean), {
    code: 'ERR_INVALID_ARG_TYPE',
    message: /"keepThread"/,
  } as never);
  const poller = new native.Poller(new Int32Array(3), () => {}, false);
  try {
    for (const method of ['add', 'modify'] as const) {
      t.throws(() => poller[method](undefined as unknown as number, 1, 0), {
        code: 'ERR_INVALID_ARG_TYPE',
        message: /^Poller\.\w+\(fd, events, token\): the "fd"/,
      } as never);
      t.throws(() => poller[method](3, '1' as unknown as number, 0), { code: 'ERR_INVALID_ARG_TYPE', message: /"events"/ } as never);
      t.throws(() => poller[method](3, 1, {} as unknown as number), { code: 'ERR_INVALID_ARG_TYPE', message: /"token"/ } as never);
      t.throws(() => poller[method](-1, 1, 0), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' } as never);
    }
    t.throws(() => poller.remove('3' as unknown as number), { code: 'ERR_INVALID_ARG_TYPE', message: /^Poller\.remove\(fd\)/ } as never);
  } finally {
    poller.close();
  }
  t.throws(() => new native.SemWaiter(undefined as unknown as () => void), {
    instanceOf: TypeError,
    code: 'ERR_INVALID_ARG_TYPE',
  } as never);
  const waiter = new native.SemWaiter(() => {});
  try {
    t.throws(() => waiter.wait(undefined as unknown as Int32Array, 0, 0), {
      code: 'ERR_INVALID_ARG_TYPE',
      message: /^SemWaiter\.wait\(words, index, timeoutMs\): the "words"/,
    } as never);
    t.throws(() => waiter.wait(new Int32Array(4), 'x' as unknown as number, 0), {
      code: 'ERR_INVALID_ARG_TYPE',
      message: /"index"/,
    } as never);
    t.throws(() => waiter.wait(new Int32Array(4), 0, {} as unknown as number), {
      code: 'ERR_INVALID_ARG_TYPE',
      message: /"timeoutMs"/,
    } as never);
  } finally {
    waiter.close();
  }
});
