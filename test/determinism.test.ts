/**
 * The same input always gives the same report: analyzed twice it is byte for
 * byte identical, and reading it in 1-byte, 4 KiB or 1 MiB pieces changes
 * nothing (windows, findings and their ids included).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadConfig } from '../common/config.js';
import { reportJsonChunks } from '../common/report.js';
import { analyzeCapture } from '../agent/analyze/index.js';
import { SHARED_PCAPS } from './helpers/paths.js';

const config = loadConfig();
const json = async (file: string, maxReadBytes?: number): Promise<string> => {
  const { report } = await analyzeCapture(file, config, maxReadBytes ? { maxReadBytes } : {});
  return [...reportJsonChunks(report)].join('');
};

// 1-byte reads cost an await each: only the smaller captures take them.
const CASES: Array<[string, number[]]> = [
  ['ppa1e_email-troubles.pcap', [4096, 1024 * 1024]],
  ['ppa_http_espn_fail.pcapng', [4096, 1024 * 1024]],
  ['ndpi_dns-tunnel-iodine.pcap', [1, 4096, 1024 * 1024]],
  ['wssample_smtp_icmp_fragneeded.pcap', [1, 4096]],
];

for (const [name, sizes] of CASES) {
  test(`deterministic and independent of read size: ${name}`, async () => {
    const file = join(SHARED_PCAPS, name);
    const first = await json(file);
    const report = JSON.parse(first) as { findings: unknown[]; windows: unknown[] };
    assert.ok(report.windows.length > 0);
    assert.equal(await json(file), first, 'a second run gives byte-identical JSON');
    for (const size of sizes) assert.equal(await json(file, size), first, `reading ${size} bytes at a time`);
  });
}
