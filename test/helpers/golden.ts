/**
 * Golden reports: the `--format json` report of every shared capture (and of
 * two generated ones) as the analysis engine produced it when the files were
 * written. `test/golden.test.ts` compares the current engine with them;
 * `node dist/test/helpers/golden.js --update` rewrites them (only when a
 * difference is intended and named in that test).
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync, existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { tmpdir } from 'node:os';
import { gunzipSync, gzipSync } from 'node:zlib';
import { pathToFileURL } from 'node:url';
import { loadConfig } from '../../common/config.js';
import { reportJsonChunks, type Report } from '../../common/report.js';
import { analyzeCapture } from '../../agent/analyze/index.js';
import { generateCapture, type GenerateOptions } from '../../bench/capture-gen.js';
import { REPO_ROOT, SHARED_PCAPS } from './paths.js';

export const GOLDEN_DIR = join(REPO_ROOT, 'test', 'golden');

export interface GoldenCase {
  name: string;
  /** Path of the capture (generated ones are written on first use). */
  file(): string;
}

/** Generated captures: the bench's mixed traffic, and many short flows (mice). */
const GENERATED: ReadonlyArray<readonly [string, GenerateOptions]> = [
  ['generated-mixed-120k', { packets: 120_000, seed: 7, timeScale: 20 }],
  ['generated-mice-40k', { packets: 80_000, seed: 11, flows: 40_000, timeScale: 20 }],
];

export function goldenCases(): GoldenCase[] {
  const shared = readdirSync(SHARED_PCAPS)
    .filter((f) => /\.(pcap|pcapng|cap)(\.gz)?$/.test(f))
    .sort()
    .map((f): GoldenCase => ({ name: f, file: () => join(SHARED_PCAPS, f) }));
  const fixture: GoldenCase = { name: 'sample-loopback.pcap', file: () => join(REPO_ROOT, 'test', 'fixtures', 'sample-loopback.pcap') };
  const generated = GENERATED.map(([name, options]): GoldenCase => ({
    name,
    file: () => {
      const dir = join(tmpdir(), 'pcap-analyzer-golden');
      mkdirSync(dir, { recursive: true });
      const path = join(dir, `${name}.pcap`);
      if (!existsSync(path)) {
        // Written under a private name, then renamed: concurrent runs never read a half-written file.
        const partial = `${path}.${process.pid}.partial`;
        generateCapture(partial, options);
        renameSync(partial, path);
      }
      return path;
    },
  }));
  return [...shared, fixture, ...generated];
}

/** The report as JSON text, with the input's path reduced to its name (the only part that depends on where it ran). */
export async function goldenReport(c: GoldenCase): Promise<Report> {
  const { report } = await analyzeCapture(c.file(), loadConfig());
  report.source.path = basename(report.source.path);
  return JSON.parse([...reportJsonChunks(report)].join('')) as Report;
}

const goldenPath = (name: string): string => join(GOLDEN_DIR, `${name}.json.gz`);

export function readGolden(name: string): Report {
  return JSON.parse(gunzipSync(readFileSync(goldenPath(name))).toString('utf8')) as Report;
}

async function update(): Promise<void> {
  mkdirSync(GOLDEN_DIR, { recursive: true });
  for (const c of goldenCases()) {
    const report = await goldenReport(c);
    writeFileSync(goldenPath(c.name), gzipSync(`${JSON.stringify(report, null, 1)}\n`, { level: 9 }));
    process.stdout.write(`${c.name}: ${report.windows.length} windows, ${report.findings.length} findings\n`);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href && process.argv.includes('--update')) await update();
