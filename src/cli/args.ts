// Flag parsing for the qbipc commands: node:util parseArgs (strict), with
// errors a user can act on instead of parseArgs' generic wording.
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A bad command line: main prints the message (with the usage) and exits 2. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly usage: string,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

type Options = NonNullable<ParseArgsConfig['options']>;

export interface Parsed<O extends Options> {
  values: { [K in keyof O]?: O[K]['type'] extends 'boolean' ? boolean : string };
  positionals: string[];
}

export function parseFlags<O extends Options>(argv: string[], options: O, usage: string): Parsed<O> {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: true });
  } catch (error) {
    const e = error as Error & { code?: string };
    const quoted = /'([^']+)'/.exec(e.message)?.[1];
    switch (e.code) {
      case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
        throw new UsageError(`unknown flag ${quoted ?? ''}`.trim(), usage);
      case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE': {
        const flag = (quoted ?? 'a flag').split(' ')[0];
        if (/argument missing/.test(e.message)) throw new UsageError(`${flag} needs a value`, usage);
        if (/ambiguous/.test(e.message))
          throw new UsageError(`${flag} needs a value (one that starts with "-" is written ${flag}=VALUE)`, usage);
        throw new UsageError(e.message.split('\n')[0]!, usage);
      }
      default:
        throw new UsageError(e.message, usage);
    }
  }
}

/** An integer flag within [min, max]; `fallback` when absent. */
export function intFlag(value: string | undefined, flag: string, min: number, max: number, fallback: number, usage: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(`${flag} must be an integer from ${min} to ${max}, got "${value}"`, usage);
  }
  return n;
}

/** A finite number flag > 0, or ≥ 0 with `allowZero`; `fallback` when absent. */
export function numberFlag(value: string | undefined, flag: string, fallback: number, usage: string, allowZero = false): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || !(allowZero ? n >= 0 : n > 0)) {
    throw new UsageError(`${flag} must be a number ${allowZero ? '≥' : '>'} 0, got "${value}"`, usage);
  }
  return n + 0; // -0 → 0
}

/** One of `choices`; `fallback` when absent. */
export function choiceFlag<C extends string>(
  value: string | undefined,
  flag: string,
  choices: readonly C[],
  fallback: C,
  usage: string,
): C {
  if (value === undefined) return fallback;
  if (!(choices as readonly string[]).includes(value)) {
    throw new UsageError(`${flag} must be one of ${choices.join(', ')}, got "${value}"`, usage);
  }
  return value as C;
}
