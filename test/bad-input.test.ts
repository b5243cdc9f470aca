/**
 * Every malformed file in ../shared/pcaps/bad/ is handled as its MANIFEST.tsv
 * says, through the real CLI: unreadable files end with exit 2 and one line
 * naming the problem and the byte offset; files cut short are analyzed up to
 * the cut with a warning; gzip is streamed within limits.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Report } from '../common/report.js';
import { BAD_PCAPS, CLI, readTsv } from './helpers/paths.js';

interface Run { status: number | null; stdout: string; stderr: string; report?: Report }

function analyze(file: string, ...extra: string[]): Run {
  const r = spawnSync(process.execPath, [CLI, 'analyze', file, '--format', 'json', ...extra], { encoding: 'utf8', timeout: 60_000 });
  const run: Run = { status: r.status, stdout: r.stdout, stderr: r.stderr };
  if (r.status === 0) run.report = JSON.parse(r.stdout) as Report;
  return run;
}

/** Exit 2, nothing on stdout, exactly one line on stderr that matches, and no stack trace. */
function assertRejected(run: Run, pattern: RegExp): void {
  assert.equal(run.status, 2, run.stderr);
  assert.equal(run.stdout, '');
  const lines = run.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `expected one line, got: ${run.stderr}`);
  assert.match(lines[0]!, pattern);
  assert.doesNotMatch(run.stderr, /\n\s+at /);
}

/** Exit 0, the given packet count, and (when cut) a warning naming the offset plus truncatedRecords = 1. */
function assertRead(run: Run, packets: number, cutAt?: number): Report {
  assert.equal(run.status, 0, run.stderr);
  const report = run.report!;
  assert.equal(report.capture.packets, packets);
  if (cutAt === undefined) {
    assert.equal(report.capture.truncatedRecords, 0);
    assert.equal(run.stderr, '');
  } else {
    assert.equal(report.capture.truncatedRecords, 1);
    assert.match(run.stderr, new RegExp(`warning: input is cut short: the record at byte offset ${cutAt} is incomplete`));
  }
  return report;
}

const manifest = readTsv(readFileSync(join(BAD_PCAPS, 'MANIFEST.tsv'), 'utf8'));
const bad = (name: string): string => join(BAD_PCAPS, name);

test('every file of bad/MANIFEST.tsv has a case here', () => {
  const covered = new Set(['empty.pcap', 'bad_magic.pcap', 'truncated_mid_record.pcap', 'truncated_mid_record_header.pcap',
    'caplen_gt_snaplen.pcap', 'caplen_ffffffff.pcap', 'caplen_gt_wirelen.pcap', 'pcapng_block_len_mismatch.pcapng',
    'pcapng_block_len_huge.pcapng', 'pcapng_truncated_mid_block.pcapng', 'gzip_compressed.pcap.gz', 'gzip_bomb.pcap.gz']);
  for (const row of manifest) assert.ok(covered.has(row['file']!), `no case for ${row['file']}`);
});

test('empty file: rejected, no header', () => {
  assertRejected(analyze(bad('empty.pcap')), /empty input: no capture file header \(at byte offset 0\)/);
});

test('bad magic: rejected as an unknown format', () => {
  assertRejected(analyze(bad('bad_magic.pcap')), /unknown file format: magic 0xdeadbeef .* \(at byte offset 0\)/);
});

test('cut mid-record: 9 packets, then a truncation warning', () => {
  // Record #10 starts after the 24-byte header and 9 records.
  const report = assertRead(analyze(bad('truncated_mid_record.pcap')), 9, 1113);
  assert.ok(report.counters['tcp']! > 0);
});

test('cut inside a record header: 5 packets, then a truncation warning', () => {
  assertRead(analyze(bad('truncated_mid_record_header.pcap')), 5, 500);
});

test('caplen above snaplen: read tolerantly, like libpcap and Wireshark', () => {
  assertRead(analyze(bad('caplen_gt_snaplen.pcap')), 60);
});

test('caplen 0xFFFFFFFF: rejected at record #3 without allocating it', () => {
  // 24-byte header + records #1 (16+66) and #2 (16+152): record #3 is at offset 274.
  const run = analyze(bad('caplen_ffffffff.pcap'));
  assertRejected(run, /record #3 claims a captured length of 4294967295 bytes.*after 2 packets \(at byte offset 274\)/);
});

test('caplen above wire length: all 60 read, record flagged', () => {
  const report = assertRead(analyze(bad('caplen_gt_wirelen.pcap')), 60);
  assert.equal(report.capture.decodeErrors['frame.caplen_gt_len'], 1);
});

test('pcapng leading/trailing length mismatch: rejected as a corrupt block after 1 packet', () => {
  assertRejected(analyze(bad('pcapng_block_len_mismatch.pcapng')),
    /corrupt pcapng block after 1 packet: leading block length 1476 differs from trailing length \d+ \(at byte offset 160\)/);
});

test('pcapng block length 0xFFFFFFF0: rejected after 2 packets without allocating it', () => {
  assertRejected(analyze(bad('pcapng_block_len_huge.pcapng')),
    /corrupt pcapng block after 2 packets: block total length 4294967280 exceeds .* \(at byte offset 1628\)/);
});

test('pcapng cut mid-block: 3 packets, then a truncation warning', () => {
  assertRead(analyze(bad('pcapng_truncated_mid_block.pcapng')), 3, 1740);
});

test('gzip: inflated as a stream, same report as the plain file', () => {
  const report = assertRead(analyze(bad('gzip_compressed.pcap.gz')), 60);
  assert.equal(report.source.compressed, true);
  const plain = analyze(join(BAD_PCAPS, '..', 'wssample_smtp_icmp_fragneeded.pcap')).report!;
  assert.deepEqual(report.counters, plain.counters);
  assert.deepEqual(report.flows, plain.flows);
});

test('gzip bomb: streamed in bounded memory, all 2559 records read', () => {
  const report = assertRead(analyze(bad('gzip_bomb.pcap.gz')), 2559);
  assert.equal(report.source.compressed, true);
});

test('gzip bomb: a lower ratio limit stops it with exit 2 naming the setting', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pcap-analyzer-'));
  const config = join(dir, 'config.yaml');
  writeFileSync(config, 'input:\n  maxCompressionRatio: 100\n');
  assertRejected(analyze(bad('gzip_bomb.pcap.gz'), '--config', config), /inflates more than 100:1 \(input.maxCompressionRatio\)/);
});

test('gzip bomb: a lower size limit stops it with exit 2 naming the setting', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pcap-analyzer-'));
  const config = join(dir, 'config.yaml');
  writeFileSync(config, 'input:\n  maxDecompressedBytes: 100000000\n');
  assertRejected(analyze(bad('gzip_bomb.pcap.gz'), '--config', config), /inflates past 100000000 bytes \(input.maxDecompressedBytes\)/);
});
