/**
 * Where the tests find the repository and the shared configuration corpus
 * (../shared/corpus, next to the repository). Paths only; reads nothing.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root: the nearest ancestor of this file holding package.json and core/. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'core'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('repository root not found');
    dir = up;
  }
}

/** The real-world configuration corpus (keepalived/, ldirectord/). */
export const CORPUS_DIR = resolve(repoRoot(), '..', 'shared', 'corpus');
