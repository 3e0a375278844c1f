#!/usr/bin/env -S node --max-semi-space-size=2
// qbipc: the command line. `qbipc serve|bench|ping …`; each command is a
// module exporting `(argv) => Promise<exit code>`, loaded only when used.
//
// The V8 flag caps each thread's young generation (2 MiB semi-spaces). Under
// sustained allocation V8 otherwise grows it to 2 × 16 MiB per isolate and
// keeps it: a long-running `qbipc serve` would gain ~25 MB of RSS over minutes
// for no speed it needs (a scavenge per 2 MiB allocated is a fraction of 1 %).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { UsageError } from './args.js';

const USAGE = `usage: qbipc <command> [flags]
  serve NAME [--type shm|socket] [--workers N]   an echo service libqb clients can use
  bench [--quick] [--servers …] [--clients …]    benchmark qbipc against libqb's C server (in a clone of the repository)
  ping NAME [--count N] [--size B]               round trips and latency against a libqb service
  --version                                      print qbipc's version
Run "qbipc <command> --help" for a command's flags.`;

/** The version in qbipc's package.json (dist/src/cli/ is three levels below it). */
function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
  return String(pkg.version);
}

type Command = (argv: string[]) => Promise<number>;

const COMMANDS: Record<string, { module: string; export: string }> = {
  serve: { module: './serve.js', export: 'serve' },
  bench: { module: './bench.js', export: 'bench' },
  ping: { module: './ping.js', export: 'ping' },
};

async function load(name: string): Promise<Command> {
  const { module, export: exported } = COMMANDS[name]!;
  let mod: Record<string, unknown>;
  try {
    mod = (await import(module)) as Record<string, unknown>;
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    const file = fileURLToPath(new URL(module, import.meta.url));
    // only when the command's own module is missing, not something it imports
    if (e.code === 'ERR_MODULE_NOT_FOUND' && e.message.includes(`'${file}'`)) {
      throw new Error(`"qbipc ${name}" is not available in this build: ${file} is missing (run "npm run build")`, { cause: error });
    }
    throw error;
  }
  const fn = mod[exported];
  if (typeof fn !== 'function') throw new Error(`"qbipc ${name}": ${module} does not export ${exported}()`);
  return fn as Command;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    (name === undefined ? console.error : console.log)(USAGE);
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-v') {
    console.log(version());
    return 0;
  }
  if (!Object.hasOwn(COMMANDS, name)) {
    console.error(`qbipc: unknown command "${name}"\n${USAGE}`);
    return 2;
  }
  try {
    return await (
      await load(name)
    )(rest);
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`qbipc ${name}: ${error.message}\n${error.usage}`);
      return 2;
    }
    console.error(`qbipc ${name}: ${(error as Error).message}`);
    return 1;
  }
}

const code = await main(process.argv.slice(2));
process.exit(code);
