// The server modes every conformance test runs in: one suite, parameterised
// (iceoryx2 style), never copied per mode.
import type { ServiceOptions } from '../../src/index.js';

export interface Mode {
  name: string;
  workers: number;
  options: ServiceOptions;
}

export const MODES: Mode[] = [
  { name: 'in-thread', workers: 0, options: { workers: 0 } },
  { name: 'workers 1', workers: 1, options: { workers: 1 } },
  { name: 'workers 2', workers: 2, options: { workers: 2 } },
];
