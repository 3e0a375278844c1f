// The qbipc echo server the benchmark measures is `qbipc serve` itself
// (src/cli/serve.ts, handlers in src/cli/echo-app.ts). This script is kept for
// running it by hand: node dist/bench/servers/qbipc-echo.js NAME [workers].
import { serve } from '../../src/cli/serve.js';

const [name, workers = '0'] = process.argv.slice(2);
if (name === undefined) {
  console.error('usage: qbipc-echo NAME [workers]');
  process.exit(2);
}
process.exit(await serve([name, '--workers', workers]));
