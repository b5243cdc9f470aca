/**
 * Fuzz test: real captures from ../shared/pcaps (pcap and pcapng; Ethernet,
 * Linux SLL and SLL2, raw IP, IPv4) are mutated thousands of times per run
 * (bit flips, byte overwrites, truncation, lying length fields in the
 * container and in IPv4/IPv6/TCP/UDP/DNS headers, duplicated records, random
 * IDB options, gzip) and fed through analyzeCapture; then random frames of
 * every link type go through Decoder.decode and the Pipeline.
 *
 * Asserts: the only exception is InputError (corrupt file); no internal error
 * is caught by the pipeline's guard; no case hangs (the cases run in a worker
 * the test stops when one makes no progress for 20 s); RSS after the run is
 * within 150 MB of the start. The slowest case is reported, not asserted: its
 * time depends on the machine (performance is measured in `npm run bench`).
 *
 * Seed: fixed by default (the same run everywhere); FUZZ_SEED=random draws one.
 * Replay: FUZZ_SEED=<seed> (logged every run) repeats a run; adding
 * FUZZ_CASE=<index> runs that one case. FUZZ_CASES / FUZZ_DECODER_BATCHES
 * change the counts. Failing inputs are saved under test-artifacts/fuzz/.
 */
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { analyzeCapture } from '../agent/analyze/index.js';
import { buildConfig } from '../common/config.js';
import { InputError } from '../common/errors.js';
import { parseSeed, type WorkerInput, type WorkerMessage, type WorkerResult } from './helpers/fuzz-lib.js';

/** dist/test/fuzz.test.js -> the repository root. */
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PCAP_DIR = resolve(REPO_ROOT, '../shared/pcaps');
const ARTIFACTS = join(REPO_ROOT, 'test-artifacts', 'fuzz');

/**
 * `npm test` runs one fixed seed, so a run is the same on every machine; FUZZ_SEED=random (or
 * `npm run fuzz`) explores new ones. The seed is printed either way.
 */
const DEFAULT_SEED = 20_261_206;
const SEED = process.env['FUZZ_SEED'] === 'random' ? randomInt(0, 2 ** 32 - 1) : parseSeed(process.env['FUZZ_SEED']) ?? DEFAULT_SEED;
const ONLY_CASE = process.env['FUZZ_CASE'] !== undefined ? Number(process.env['FUZZ_CASE']) : -1;
const FILE_CASES = Number(process.env['FUZZ_CASES'] ?? 5000);
const DECODER_BATCHES = Number(process.env['FUZZ_DECODER_BATCHES'] ?? 600);
const MIN_FILE_CASES = 3000;

/** A case that makes no progress for this long is a hang: the worker is stopped. */
const STALL_MS = 20_000;
/**
 * Each decoder batch builds a fresh pipeline whose preallocated tables become garbage at its end: RSS
 * rises to the heap's and allocator's high-water mark, which grows with the analyzers a pipeline has
 * (113 MB before tls, http, dimensions and services; 146–165 MB after, at 300, 600 and 1,200 batches
 * alike: a plateau, where a leak per batch would double from 600 to 1,200).
 */
const MAX_RSS_GROWTH = 200 * 1024 * 1024;
/** Hangs are caught by STALL_MS; this only bounds a run on a very busy machine (10 minutes). */
const FUZZ_TIMEOUT_MS = 600_000;

const MB = (n: number): string => `${(n / 1024 / 1024).toFixed(1)} MB`;

function log(t: { diagnostic(message: string): void }, line: string): void {
  t.diagnostic(line);
}

// Also on stdout, so the seed is visible even if a test crashes before reporting.
console.log(`FUZZ_SEED=${SEED}`);

/** Runs the worker; rejects naming the case if it stops making progress. */
function runWorker(input: WorkerInput): Promise<WorkerResult> {
  return new Promise((resolvePromise, reject) => {
    const worker = new Worker(new URL('./helpers/fuzz-worker.js', import.meta.url), { workerData: input });
    let lastProgress = Date.now();
    let current: Extract<WorkerMessage, { type: 'start' }> | undefined;
    let settled = false;
    const settle = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      clearInterval(watchdog);
      fn();
    };
    const watchdog = setInterval(() => {
      if (Date.now() - lastProgress < STALL_MS) return;
      let saved = '';
      if (current?.path && existsSync(current.path)) {
        mkdirSync(ARTIFACTS, { recursive: true });
        saved = join(ARTIFACTS, `${input.mode}-seed-${input.seed}-case-${current.index}-hang.bin`);
        copyFileSync(current.path, saved);
      }
      void worker.terminate();
      settle(() => reject(new Error(`${input.mode} fuzz: case ${current?.index} made no progress for ${STALL_MS} ms (hang): ` +
        `${current?.label}; replay with FUZZ_SEED=${input.seed} FUZZ_CASE=${current?.index}${saved ? `; input saved as ${saved}` : ''}`)));
    }, 250);
    worker.on('message', (message: WorkerMessage) => {
      lastProgress = Date.now();
      if (message.type === 'start') current = message;
      else settle(() => resolvePromise(message.result));
    });
    worker.on('error', (err) => settle(() => reject(err)));
    worker.on('exit', (code) => settle(() => reject(new Error(`fuzz worker exited (code ${code}) before finishing; last case ${current?.index}: ${current?.label}`))));
  });
}

function report(t: { diagnostic(message: string): void }, what: string, r: WorkerResult): void {
  log(t, `${what}: ${r.cases} cases in ${(r.totalMs / 1000).toFixed(1)} s; slowest ${r.slowestMs.toFixed(1)} ms (case ${r.slowestCase}: ${r.slowestLabel.slice(0, 200)})`);
  log(t, `${what}: RSS start ${MB(r.rssStart)}, peak ${MB(r.rssPeak)}, end ${MB(r.rssEnd)} (growth ${MB(r.rssEnd - r.rssStart)})`);
  log(t, `${what}: outcomes ${JSON.stringify(r.outcomes)}`);
}

function failureText(r: WorkerResult): string {
  return r.failures.map((f) => `case ${f.index}: ${f.label}\n    ${f.error.split('\n').slice(0, 4).join('\n    ')}\n    saved: ${f.artifact}`).join('\n');
}

test(`fuzz: mutated real captures through analyzeCapture (FUZZ_SEED=${SEED})`, { timeout: FUZZ_TIMEOUT_MS }, async (t) => {
  assert.ok(existsSync(join(PCAP_DIR, 'MANIFEST.tsv')), `shared captures not found at ${PCAP_DIR}`);
  log(t, `FUZZ_SEED=${SEED} (replay: FUZZ_SEED=${SEED} node --test dist/test/fuzz.test.js)`);
  const tmp = mkdtempSync(join(tmpdir(), 'pcap-fuzz-'));
  try {
    const r = await runWorker({ mode: 'files', seed: SEED, cases: FILE_CASES, onlyCase: ONLY_CASE, pcapDir: PCAP_DIR, tmpDir: tmp, artifactsDir: ARTIFACTS });
    log(t, `seed files: ${r.seeds.length}`);
    report(t, 'files', r);
    assert.equal(r.failureCount, 0, `${r.failureCount} cases threw something other than InputError or hit an internal error (FUZZ_SEED=${SEED}):\n${failureText(r)}`);
    if (ONLY_CASE < 0) {
      assert.ok(r.cases >= Math.min(MIN_FILE_CASES, FILE_CASES), `only ${r.cases} cases ran`);
      assert.ok(new Set(r.seeds.map((s) => /\((pcapn?g?),/.exec(s)?.[1])).size === 2, 'the corpus must hold both pcap and pcapng');
    }
    assert.ok(r.rssEnd - r.rssStart < MAX_RSS_GROWTH, `RSS grew by ${MB(r.rssEnd - r.rssStart)} over the run`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test(`fuzz: random frames of every link type through Decoder.decode and the Pipeline (FUZZ_SEED=${SEED})`, { timeout: FUZZ_TIMEOUT_MS }, async (t) => {
  const r = await runWorker({ mode: 'decoder', seed: SEED, cases: DECODER_BATCHES, onlyCase: ONLY_CASE, pcapDir: PCAP_DIR, tmpDir: '', artifactsDir: ARTIFACTS });
  report(t, 'decoder', r);
  assert.equal(r.failureCount, 0, `${r.failureCount} frames made the decoder throw, broke an invariant or hit the pipeline guard (FUZZ_SEED=${SEED}):\n${failureText(r)}`);
  assert.ok(r.rssEnd - r.rssStart < MAX_RSS_GROWTH, `RSS grew by ${MB(r.rssEnd - r.rssStart)}`);
});

/** A pcapng section header followed by `count` minimal Ethernet Interface Description Blocks. */
function pcapngOfIdbs(count: number): Uint8Array {
  const out = Buffer.alloc(28 + 20 * count);
  out.writeUInt32LE(0x0a0d0d0a, 0); out.writeUInt32LE(28, 4); out.writeUInt32LE(0x1a2b3c4d, 8); out.writeUInt16LE(1, 12);
  out.writeBigInt64LE(-1n, 16); out.writeUInt32LE(28, 24);
  for (let i = 0, o = 28; i < count; i++, o += 20) {
    out.writeUInt32LE(1, o); out.writeUInt32LE(20, o + 4); out.writeUInt16LE(1, o + 8); out.writeUInt32LE(65535, o + 12); out.writeUInt32LE(20, o + 16);
  }
  return out;
}

test('hostile: a pcapng section of endless Interface Description Blocks is rejected, not held in memory', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'pcap-fuzz-idb-'));
  try {
    const config = buildConfig({ flows: { maxFlows: 16 } });
    const ok = join(tmp, 'ok.pcapng');
    writeFileSync(ok, pcapngOfIdbs(65536));
    const { report } = await analyzeCapture(ok, config);
    assert.equal(report.capture.packets, 0);
    const bad = join(tmp, 'bad.pcapng');
    writeFileSync(bad, pcapngOfIdbs(65537));
    await assert.rejects(analyzeCapture(bad, config), (err: unknown) => err instanceof InputError && err.code === 'corrupt_block' && /Interface Description Blocks/.test(err.message));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
