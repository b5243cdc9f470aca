/**
 * Worker thread of test/fuzz.test.ts. It runs the cases and posts a `start`
 * message before each one, so the test (on the main thread) can stop it and
 * name the case if one hangs, even in a synchronous loop.
 *
 * Loaded on its own (as `node --test dist/test/` does with every file under
 * test/), it does nothing.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { analyzeCapture } from '../../agent/analyze/index.js';
import { FrameRecord } from '../../agent/capture/index.js';
import { Decoder, Transport, readDnsName, type PacketView } from '../../agent/decode/index.js';
import { Pipeline } from '../../agent/pipeline.js';
import { buildConfig, type Config } from '../../common/config.js';
import { ConfigError, InputError } from '../../common/errors.js';
import { renderText } from '../../common/report-text.js';
import {
  FUZZ_LINK_TYPES, Rng, buildCase, fragmentTrain, loadCorpus, mixSeed, randomFrame,
  type CaseFailure, type WorkerInput, type WorkerMessage, type WorkerResult,
} from './fuzz-lib.js';

/** Seed files are cut to this many bytes (whole records) to keep one case around a millisecond. */
const MAX_SEED_BYTES = 64 * 1024;
const MAX_SAVED_FAILURES = 20;

/**
 * Builds a config, shrinking the TCP analyzer's preallocated segment pool (a
 * million segments by default: tens of MB per pipeline) and the detectors'
 * key tables (the smallest memory budget: 16 keys each) when those keys exist,
 * so one case stays around a millisecond and pool exhaustion and table
 * eviction are exercised.
 */
function fuzzConfig(doc: Record<string, unknown>, tcpPool: number): Readonly<Config> {
  try {
    return buildConfig({ ...doc, memory: { budgetMB: 100 }, analyzers: { tcp: { maxUnackedSegments: tcpPool } } });
  } catch (err) {
    if (err instanceof ConfigError) return buildConfig(doc); // schema changed: fuzz with the default pool
    throw err;
  }
}

/** A few configurations: small tables (eviction, cheap to allocate), zero timeouts (expiry on every packet). */
function fuzzConfigs(): Readonly<Config>[] {
  return [
    fuzzConfig({ flows: { maxFlows: 1024 } }, 4096),
    fuzzConfig({ flows: { maxFlows: 16, maxFragmentDatagrams: 1 }, report: { topFlows: 3 } }, 0),
    fuzzConfig({ flows: { maxFlows: 64, maxFragmentDatagrams: 4, fragmentTimeout: 0, timeouts: { tcpHandshake: 0, tcpEstablished: 0, tcpClosed: 0, udp: 0, icmp: 0, other: 0 } } }, 64),
    fuzzConfig({ flows: { maxFlows: 256 }, input: { maxBlockBytes: 65536 }, report: { topFlows: 0 } }, 16),
  ];
}

function describeError(err: unknown): string {
  return err instanceof Error ? (err.stack ?? `${err.name}: ${err.message}`) : String(err);
}

class Tracker {
  readonly outcomes: Record<string, number> = {};
  readonly failures: CaseFailure[] = [];
  failureCount = 0;
  slowestMs = 0;
  slowestCase = -1;
  slowestLabel = '';
  rssPeak = 0;
  constructor(private readonly input: WorkerInput) {}

  count(outcome: string): void { this.outcomes[outcome] = (this.outcomes[outcome] ?? 0) + 1; }

  timed(index: number, label: string, ms: number): void {
    if (ms > this.slowestMs) { this.slowestMs = ms; this.slowestCase = index; this.slowestLabel = label; }
  }

  sampleRss(): void { this.rssPeak = Math.max(this.rssPeak, process.memoryUsage.rss()); }

  fail(index: number, label: string, error: string, bytes: Uint8Array | null): void {
    this.failureCount++;
    this.count('FAILURE');
    if (this.failures.length >= MAX_SAVED_FAILURES) return;
    let artifact = '';
    try {
      mkdirSync(this.input.artifactsDir, { recursive: true });
      const base = join(this.input.artifactsDir, `${this.input.mode}-seed-${this.input.seed}-case-${index}`);
      if (bytes) { writeFileSync(`${base}.bin`, bytes); artifact = `${base}.bin`; }
      writeFileSync(`${base}.txt`, `FUZZ_SEED=${this.input.seed} FUZZ_CASE=${index}\n${label}\n\n${error}\n`);
      if (!artifact) artifact = `${base}.txt`;
    } catch { /* saving is best effort */ }
    this.failures.push({ index, label, error, artifact });
  }
}

async function fuzzFiles(port: MessagePort, input: WorkerInput): Promise<WorkerResult> {
  const corpus = loadCorpus(input.pcapDir, MAX_SEED_BYTES);
  const configs = fuzzConfigs();
  const tracker = new Tracker(input);
  const path = join(input.tmpDir, 'case.bin');

  const check = async (index: number, label: string, bytes: Uint8Array, config: Readonly<Config>, mustParse: boolean): Promise<void> => {
    writeFileSync(path, bytes);
    port.postMessage({ type: 'start', index, label, path } satisfies WorkerMessage);
    const t0 = performance.now();
    try {
      const { report, warnings } = await analyzeCapture(path, config);
      const internal = report.capture.decodeErrors['internal.error'];
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
      if (internal !== undefined) {
        tracker.fail(index, label, `pipeline.unexpected = ${internal}: ${warnings.join(' | ')}`, bytes);
      } else {
        // The report must render and serialize whatever the input.
        renderText(report);
        JSON.stringify(report);
        tracker.count(report.capture.truncatedRecords ? 'ok (cut short)' : 'ok');
      }
    } catch (err) {
      if (err instanceof InputError && !mustParse) tracker.count(`InputError ${err.code}`);
      else tracker.fail(index, label, describeError(err), bytes);
    }
    tracker.timed(index, label, performance.now() - t0);
  };

  // Unmutated seeds first: they must all parse (and this warms up the code before RSS is measured).
  for (const [i, seed] of corpus.entries()) {
    if (input.onlyCase < 0) await check(-1 - i, `${seed.name}: unchanged`, seed.bytes, configs[0]!, true);
  }
  const rssStart = process.memoryUsage.rss();
  tracker.rssPeak = rssStart;
  tracker.slowestMs = 0;
  const t0 = performance.now();
  let cases = 0;
  for (let i = 0; i < input.cases; i++) {
    if (input.onlyCase >= 0 && i !== input.onlyCase) continue;
    const rng = new Rng(mixSeed(input.seed, i));
    const built = buildCase(rng, corpus);
    const config = configs[rng.int(configs.length)]!;
    await check(i, built.label, built.bytes, config, false);
    cases++;
    if ((i & 31) === 0) tracker.sampleRss();
  }
  tracker.sampleRss();
  return {
    cases, seeds: corpus.map((s) => `${s.name} (${s.format}, link ${s.linkTypes.join('/')}, ${s.records.length} records, ${s.bytes.length} B)`),
    outcomes: tracker.outcomes, slowestMs: tracker.slowestMs, slowestCase: tracker.slowestCase, slowestLabel: tracker.slowestLabel,
    totalMs: performance.now() - t0, rssStart, rssEnd: process.memoryUsage.rss(), rssPeak: tracker.rssPeak,
    failures: tracker.failures, failureCount: tracker.failureCount,
  };
}

/** Invariants a decoded view must keep: nothing it points at lies outside the captured bytes. */
function viewProblem(v: PacketView, rec: FrameRecord): string | null {
  const frameEnd = rec.offset + rec.capLen;
  const l4End = v.l4Data === rec.data ? frameEnd : v.l4Data.length;
  if (v.transport === Transport.TCP || v.transport === Transport.UDP || v.transport === Transport.ICMP || v.transport === Transport.ICMPV6) {
    if (v.payloadCapLen < 0) return `payloadCapLen ${v.payloadCapLen} < 0`;
    if (v.payloadCapLen > 0 && v.payloadOff + v.payloadCapLen > l4End) return `payload ${v.payloadOff}+${v.payloadCapLen} past captured end ${l4End}`;
    if (v.payloadCapLen > Math.max(0, v.payloadLen)) return `payloadCapLen ${v.payloadCapLen} > payloadLen ${v.payloadLen}`;
  }
  if (v.dnsOff >= 0 && v.dnsOff + 12 > l4End) return `DNS header at ${v.dnsOff} past captured end ${l4End}`;
  if (v.srcPort < 0 || v.srcPort > 0xffff || v.dstPort < 0 || v.dstPort > 0xffff) return 'port out of range';
  return null;
}

function fuzzDecoder(port: MessagePort, input: WorkerInput): WorkerResult {
  const tracker = new Tracker(input);
  const small = fuzzConfig({ flows: { maxFlows: 16, maxFragmentDatagrams: 8, fragmentTimeout: 2, timeouts: { tcpHandshake: 1, tcpEstablished: 5, tcpClosed: 1, udp: 2, icmp: 1, other: 1 } } }, 32);
  const rssStart = process.memoryUsage.rss();
  tracker.rssPeak = rssStart;
  const t0 = performance.now();
  let frames = 0;
  for (let batch = 0; batch < input.cases; batch++) {
    if (input.onlyCase >= 0 && batch !== input.onlyCase) continue;
    const rng = new Rng(mixSeed(input.seed, batch));
    const linkType = FUZZ_LINK_TYPES[batch % FUZZ_LINK_TYPES.length]!;
    const label = `batch ${batch}, link type ${linkType}`;
    port.postMessage({ type: 'start', index: batch, label, path: '' } satisfies WorkerMessage);
    const tb = performance.now();
    // A fresh decoder and pipeline per batch: reassembly and flow state build up within it.
    const decoder = new Decoder(small.flows);
    let windows = 0;
    const pipeline = new Pipeline(small, { onWindow: () => { windows++; } });
    const rec = new FrameRecord();
    let ts = 1_600_000_000 + rng.int(1000);
    const queue: Uint8Array[] = [];
    for (let i = 0; i < 200; i++) {
      if (queue.length === 0) {
        if (linkType === 101 && rng.chance(0.3)) queue.push(...fragmentTrain(rng));
        else queue.push(randomFrame(rng, linkType));
      }
      const frame = queue.shift()!;
      // The frame sits inside a larger buffer, as it does in the reader's.
      const pre = rng.chance(0.5) ? 0 : rng.int(64);
      const data = new Uint8Array(pre + frame.length + rng.int(64));
      for (let k = 0; k < data.length; k++) data[k] = 0xa5;
      data.set(frame, pre);
      const r = rng.int(100);
      ts = r < 80 ? ts + rng.int(3) : r < 90 ? ts - rng.int(100) : r < 95 ? rng.u32() : rng.pick([0, 2 ** 40, 4294967295]);
      rec.data = data; rec.offset = pre; rec.capLen = frame.length;
      rec.wireLen = rng.chance(0.8) ? frame.length : rng.u32();
      rec.tsSec = ts; rec.tsNsec = rng.int(1e9); rec.linkType = linkType; rec.number = ++frames;
      try {
        const view = decoder.decode(rec);
        const problem = viewProblem(view, rec);
        if (problem !== null) tracker.fail(batch, `${label}, frame ${i}`, `invariant: ${problem}`, frame);
        if (view.dnsOff >= 0 && view.dnsQnameOff >= 0) {
          // What an analyzer does with the question name (off the packet path): must not throw either.
          const capEnd = view.l4Data === rec.data ? rec.offset + rec.capLen : view.l4Data.length;
          const name = readDnsName(view.l4Data, view.dnsOff, view.dnsQnameOff, Math.min(capEnd, view.dnsOff + view.dnsLen));
          if (name !== null && name.length > 1100) tracker.fail(batch, `${label}, frame ${i}`, `DNS name of ${name.length} characters`, frame);
        }
      } catch (err) {
        tracker.fail(batch, `${label}, frame ${i}`, describeError(err), frame);
      }
      const before = pipeline.unexpected;
      pipeline.process(rec);
      if (pipeline.unexpected !== before) tracker.fail(batch, `${label}, frame ${i} (pipeline)`, describeError(pipeline.lastError), frame);
    }
    try {
      pipeline.finish();
      JSON.stringify(pipeline.counters());
    } catch (err) {
      tracker.fail(batch, `${label}, finish`, describeError(err), null);
    }
    tracker.count(`link ${linkType}`);
    tracker.count(windows > 0 ? 'batches with windows' : 'batches without windows');
    tracker.timed(batch, label, performance.now() - tb);
    if ((batch & 63) === 0) tracker.sampleRss();
  }
  tracker.sampleRss();
  return {
    cases: frames, seeds: [], outcomes: tracker.outcomes, slowestMs: tracker.slowestMs, slowestCase: tracker.slowestCase,
    slowestLabel: tracker.slowestLabel, totalMs: performance.now() - t0, rssStart, rssEnd: process.memoryUsage.rss(),
    rssPeak: tracker.rssPeak, failures: tracker.failures, failureCount: tracker.failureCount,
  };
}

if (parentPort !== null) {
  const port = parentPort;
  const input = workerData as WorkerInput;
  const result = input.mode === 'files' ? await fuzzFiles(port, input) : fuzzDecoder(port, input);
  port.postMessage({ type: 'done', result } satisfies WorkerMessage);
}
