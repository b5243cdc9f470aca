/**
 * The large-capture check: `analyze` of a capture over 1 GB keeps RSS
 * under 200 MB. The capture is made by scripts/make-large-capture.mjs (records
 * of the shared Ethernet pcaps repeated with time moving forward and per-
 * repetition IPv4 addresses) in the temp dir, analyzed in a child process
 * that reports its own peak RSS, then deleted.
 *
 * SKIP_LARGE=1 skips it; LARGE_CAPTURE_SIZE (e.g. 200M) changes the size.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { AnalyzeRssResult } from './helpers/analyze-rss.js';

const run = promisify(execFile);

/** dist/test/large-capture.test.js -> the repository root. */
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PCAP_DIR = resolve(REPO_ROOT, '../shared/pcaps');
const MAKER = join(REPO_ROOT, 'scripts', 'make-large-capture.mjs');
const HELPER = fileURLToPath(new URL('./helpers/analyze-rss.js', import.meta.url));

const SIZE = process.env['LARGE_CAPTURE_SIZE'] ?? '1.1G';
const GB = 1024 ** 3;
const MAX_RSS = 200 * 1024 * 1024;

interface MakerResult { path: string; bytes: number; packets: number; repetitions: number; sources: string[]; spanSeconds: number }

const MB = (n: number): string => `${(n / 1024 / 1024).toFixed(1)} MB`;

test('analyze of a capture over 1 GB keeps RSS under 200 MB', { skip: process.env['SKIP_LARGE'] === '1' ? 'SKIP_LARGE=1' : false, timeout: 240_000 }, async (t) => {
  const path = join(tmpdir(), `pcap-analyzer-large-${process.pid}-${Date.now()}.pcap`);
  try {
    const t0 = Date.now();
    // Repetitions keep the shared captures' own gaps (clamped to 10 s): days of packet time, tens of thousands
    // of windows, so this also proves the JSON report's windows do not stay in memory.
    const made = await run(process.execPath, [MAKER, path, '--size', SIZE, '--pcaps', PCAP_DIR], { timeout: 120_000, maxBuffer: 1024 * 1024 });
    const file = JSON.parse(made.stdout) as MakerResult;
    const genSeconds = (Date.now() - t0) / 1000;
    t.diagnostic(`generated ${path}: ${file.bytes} bytes (${(file.bytes / GB).toFixed(2)} GiB), ${file.packets} packets, ` +
      `${file.repetitions} repetitions of ${file.sources.length} captures, ${file.spanSeconds} s of packet time, in ${genSeconds.toFixed(1)} s`);
    assert.equal(statSync(path).size, file.bytes);
    if (process.env['LARGE_CAPTURE_SIZE'] === undefined) assert.ok(file.bytes > GB, `the capture must be over 1 GB, is ${file.bytes} bytes`);

    const analyzed = await run(process.execPath, [HELPER, path], { timeout: 180_000, maxBuffer: 16 * 1024 * 1024 });
    const r = JSON.parse(analyzed.stdout) as AnalyzeRssResult;
    t.diagnostic(`analyzed ${r.packets} packets in ${r.seconds.toFixed(1)} s: ${Math.round(r.packets / r.seconds)} packets/s, ` +
      `${(file.bytes / 1024 / 1024 / r.seconds).toFixed(0)} MiB/s; peak RSS ${MB(r.maxRssBytes)}`);
    t.diagnostic(`report: ${r.windows} windows, ${MB(r.reportBytes)} of JSON; ${r.flowsEvicted} flows evicted; decode errors ${JSON.stringify(r.decodeErrors)}`);
    assert.equal(r.exitCode, 0);
    assert.equal(r.packets, file.packets, 'every record written is analyzed');
    assert.equal(r.truncatedRecords, 0);
    assert.ok(r.windows > 1000, `a long capture: ${r.windows} windows`);
    assert.ok(r.maxRssBytes < MAX_RSS, `peak RSS ${MB(r.maxRssBytes)} is not under ${MB(MAX_RSS)}`);
  } finally {
    if (existsSync(path)) rmSync(path, { force: true });
  }
});
