/**
 * Flow-sharded identity of crafted captures (issue 13): the report of one
 * pipeline and of flow-sharded workers (2 in this thread, 3 and 4 in worker
 * threads, their parts cloned across), `--format json` compared as text,
 * with only the named analyzers on.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { analyzeCapture } from '../../agent/analyze/analyze.js';
import { analyzeCaptureSharded } from '../../agent/analyze/analyze-sharded.js';
import { shardHash, shardOf } from '../../agent/decode/shard-hash.js';
import { buildConfig } from '../../common/config.js';
import { reportJsonChunks, type Report } from '../../common/report.js';
import { pcapFile, type PcapRecordSpec } from './capture-writer.js';

const json = (r: Report): string => [...reportJsonChunks(r)].join('');

/** Asserts the sharded reports equal one pipeline's (every finding listed unless `config` says otherwise); returns that report. */
export async function assertShardedSame(records: readonly PcapRecordSpec[], analyzers: readonly string[], config: Record<string, unknown> = {}): Promise<Report> {
  const dir = mkdtempSync(join(tmpdir(), 'pcap-analyzer-sharded-'));
  try {
    const path = join(dir, 'sharded.pcap');
    writeFileSync(path, pcapFile({}, records));
    const on = Object.fromEntries(Object.keys(buildConfig({}).analyzers).map((id) => [id, { enabled: analyzers.includes(id) }]));
    const cfg = buildConfig({ analyzers: on, report: { maxFindingsPerType: 1000 }, ...config });
    const one = await analyzeCapture(path, cfg);
    assert.deepEqual(one.warnings, []);
    for (const workers of [2, 3, 4]) {
      const many = await analyzeCaptureSharded(path, cfg, { workers, inProcess: workers === 2 });
      assert.equal(json(many.report), json(one.report), `${workers} workers`);
    }
    return one.report;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The workers (of `workers`) the frames go to. */
export function workersOf(frames: ReadonlyArray<Uint8Array>, workers = 4): Set<number> {
  return new Set(frames.map((data) => shardOf(shardHash(data, 0, data.length, 1), workers)));
}
