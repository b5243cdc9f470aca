/** Locations tests need: the repository root and the shared captures beside it (../shared/pcaps). */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('package.json not found above the test file');
    dir = up;
  }
  return dir;
}

export const REPO_ROOT = findRoot();
export const SHARED_PCAPS = resolve(REPO_ROOT, '..', 'shared', 'pcaps');
export const BAD_PCAPS = join(SHARED_PCAPS, 'bad');
export const CLI = join(REPO_ROOT, 'bin', 'pcap-analyzer.js');

/** Reads a TSV file with a header row (lines starting with # are comments) into records. */
export function readTsv(text: string): Record<string, string>[] {
  const lines = text.split('\n').filter((l) => l && !l.startsWith('#'));
  const head = lines.shift()!.split('\t');
  return lines.map((l) => Object.fromEntries(l.split('\t').map((v, i) => [head[i], v])));
}
