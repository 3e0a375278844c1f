// The server modes every conformance test runs in: one suite, parameterised
// (iceoryx2 style), never copied per mode. Worker modes join this list when
// the sharded server lands.
import type { ServiceOptions } from '../../src/index.js';

export interface Mode {
  name: string;
  options: ServiceOptions;
}

export const MODES: Mode[] = [{ name: 'in-thread', options: { workers: 0 } }];
