/**
 * The security detectors on every shared capture and on the bench's mixed
 * traffic: each attack capture gives its finding, and nothing else anywhere
 * is reported above `info` (a false alarm costs an operator's trust; `info`
 * findings, such as a short internal beacon, are shown but never alert).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../common/config.js';
import type { Finding } from '../common/report.js';
import { analyzeCapture } from '../agent/index.js';
import { generateCapture } from '../bench/capture-gen.js';
import { SHARED_PCAPS } from './helpers/paths.js';

const DETECTORS = new Set(['port_scan', 'brute_force', 'flood', 'beaconing', 'dns_tunneling', 'exfiltration', 'lateral_movement']);

/** The shared captures that hold an attack, and the finding each must give (type, severity, subject). */
const ATTACKS: Partial<Record<string, { type: string; severity: string; host: string }>> = {
  'ppa_synscan.pcapng': { type: 'port_scan', severity: 'critical', host: '172.16.0.8' },
  'zeek_ftp_bruteforce.pcap': { type: 'brute_force', severity: 'warning', host: '192.168.56.1' },
  'ndpi_dns-tunnel-iodine.pcap': { type: 'dns_tunneling', severity: 'critical', host: '10.0.2.30' },
};

/** Security findings above info, as "type severity host: summary". */
function alarms(findings: readonly Finding[]): string[] {
  return findings.filter((f) => DETECTORS.has(f.type) && f.severity !== 'info').map((f) => `${f.type} ${f.severity} ${f.host ?? ''}: ${f.summary}`);
}

test('shared captures: each attack gives its finding, and nothing else is reported above info', async () => {
  const files = readdirSync(SHARED_PCAPS).filter((f) => /\.(pcap|pcapng|cap)(\.gz)?$/.test(f)).sort();
  assert.ok(files.length >= 30, `only ${files.length} shared captures`);
  for (const attack of Object.keys(ATTACKS)) assert.ok(files.includes(attack), `${attack} is a shared capture`);
  for (const file of files) {
    const { report } = await analyzeCapture(join(SHARED_PCAPS, file), loadConfig());
    const expected = ATTACKS[file];
    const got = alarms(report.findings);
    if (expected === undefined) {
      assert.deepEqual(got, [], `${file}: no security finding above info`);
      continue;
    }
    const hits = report.findings.filter((f) => f.type === expected.type && f.severity === expected.severity && f.host === expected.host);
    assert.ok(hits.length >= 1, `${file}: ${expected.type} ${expected.severity} for ${expected.host}; got ${JSON.stringify(got)}`);
    assert.deepEqual(got.filter((a) => !a.startsWith(`${expected.type} `)), [], `${file}: no other detector above info`);
  }
});

test('the bench\'s mixed traffic: only its injected port scan is reported above info', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'detectors-mix-'));
  try {
    const path = join(dir, 'mix.pcap');
    // The bench's generator and seed (bench/run.ts), cut to 300 k packets: web, bulk and interactive TCP,
    // DNS, RTP calls, some failures, and one vertical SYN scan of 1,000 ports from 203.0.113.66.
    generateCapture(path, { packets: 300_000, seed: 1 });
    const { report } = await analyzeCapture(path, loadConfig());
    assert.deepEqual(alarms(report.findings).map((a) => a.replace(/:.*/, '')), ['port_scan critical 203.0.113.66']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
