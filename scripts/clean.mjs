// Before `npm pack`: removes dist/ so that prepare's fresh compile is all that ships
// (tsc never deletes the output of a source that was renamed or removed).
import { rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

rmSync(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist'), { recursive: true, force: true });
