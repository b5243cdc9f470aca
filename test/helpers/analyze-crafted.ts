/**
 * Writes crafted records to a temporary pcap, analyzes it with a config
 * override, and returns the report (no warnings allowed). Set
 * PCAP_ANALYZER_TEST_KEEP_CRAFTED=<dir> to keep the capture there as <name>.pcap,
 * e.g. to check a figure with tshark.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { analyzeCapture } from '../../agent/analyze/index.js';
import { buildConfig } from '../../common/config.js';
import type { Report } from '../../common/report.js';
import { pcapFile, type PcapRecordSpec } from './capture-writer.js';

export async function analyzeCrafted(records: readonly PcapRecordSpec[], config: Record<string, unknown> = {}, name = 'crafted'): Promise<Report> {
  const dir = mkdtempSync(join(tmpdir(), 'pcap-analyzer-crafted-'));
  try {
    const path = join(dir, `${name}.pcap`);
    writeFileSync(path, pcapFile({}, records));
    const keep = process.env['PCAP_ANALYZER_TEST_KEEP_CRAFTED'];
    if (keep) copyFileSync(path, join(keep, `${name}.pcap`));
    const { report, warnings } = await analyzeCapture(path, buildConfig(config));
    assert.deepEqual(warnings, []);
    return report;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
