/**
 * The project's own pipeline, cut at three points, each run by the benchmark as
 * a child process of its own (so its peak RSS and CPU time are its alone):
 *
 *   node dist/bench/stages.js read FILE          CaptureReader alone: next()/fill() over every record
 *   node dist/bench/stages.js decode-flow FILE   reader + Decoder + packet clock + FlowTable (default config)
 *   node dist/bench/stages.js analyze FILE [--without ID[,ID...]]
 *                                                analyzeCapture in-process (default config), those analyzers
 *                                                disabled (`analyzers.<id>.enabled: false`); no report written
 *
 * Prints one JSON line (StageResult). Its seconds, CPU seconds and garbage
 * collections are measured in-process over the same span, from opening the file
 * to the last record (analyze: to the finished report), so Node's start-up is
 * not in them. Collections are counted by a PerformanceObserver on 'gc' entries.
 */
import { PerformanceObserver, performance, type PerformanceEntry } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { DEFAULT_CONFIG, resolveConfig } from '../common/config.js';
import { analyzeCapture } from '../agent/analyze/index.js';
import { ANALYZERS } from '../agent/analyzers/index.js';
import { CaptureReader, END, NEED_DATA } from '../agent/capture/index.js';
import { Decoder } from '../agent/decode/index.js';
import { FlowTable } from '../agent/flow/index.js';
import { PacketClock } from '../agent/core/packet-clock.js';

export type Stage = 'read' | 'decode-flow' | 'analyze';

/** Garbage collections during the measured span. */
export interface GcFigures {
  /** GC events (scavenges, mark-compacts, incremental steps, weak callbacks: every 'gc' entry). */
  count: number;
  /** Their summed duration, milliseconds. */
  ms: number;
}

export interface StageResult {
  stage: Stage;
  packets: number;
  bytes: number;
  /** Flows created: decode-flow, TCP and UDP streams and other flows; analyze, the report's tcp.streams + udp.streams; read, 0. */
  flows: number;
  /** Wall seconds in-process, from open to the end. */
  seconds: number;
  /** CPU seconds (user + system, every thread) over the same span. */
  cpuSeconds: number;
  gc: GcFigures;
  /** Analyzers disabled (analyze only). */
  without: string[];
}

type Counted = Pick<StageResult, 'stage' | 'packets' | 'bytes' | 'flows'>;
type Measured = Pick<StageResult, 'seconds' | 'cpuSeconds' | 'gc'>;

/** Runs `work`, timing it and counting the garbage collections that start inside it. */
async function measured<T>(work: () => Promise<T>): Promise<{ value: T; figures: Measured }> {
  const entries: PerformanceEntry[] = [];
  const observer = new PerformanceObserver((list) => { entries.push(...list.getEntries()); });
  observer.observe({ entryTypes: ['gc'] });
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const value = await work();
  const t1 = performance.now();
  const cpu = process.cpuUsage(cpu0);
  // Node hands 'gc' entries to JavaScript from an immediate: let the last ones arrive, then take what is buffered.
  await new Promise((resolve) => setImmediate(resolve));
  entries.push(...observer.takeRecords());
  observer.disconnect();
  const inSpan = entries.filter((e) => e.startTime >= t0 && e.startTime <= t1);
  return {
    value,
    figures: {
      seconds: (t1 - t0) / 1000,
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
      gc: { count: inSpan.length, ms: inSpan.reduce((sum, e) => sum + e.duration, 0) },
    },
  };
}

async function readOnly(path: string): Promise<Counted> {
  const reader = await CaptureReader.open(path, DEFAULT_CONFIG.input);
  const rec = reader.record;
  let packets = 0;
  let bytes = 0;
  try {
    for (let s = reader.next(); s !== END; s = reader.next()) {
      if (s === NEED_DATA) { await reader.fill(); continue; }
      packets++;
      bytes += rec.wireLen;
    }
  } finally {
    await reader.close();
  }
  return { stage: 'read', packets, bytes, flows: 0 };
}

async function decodeFlow(path: string): Promise<Counted> {
  const reader = await CaptureReader.open(path, DEFAULT_CONFIG.input);
  const rec = reader.record;
  const clock = new PacketClock();
  const decoder = new Decoder(DEFAULT_CONFIG.flows);
  const flows = new FlowTable(DEFAULT_CONFIG.flows, clock);
  let packets = 0;
  let bytes = 0;
  try {
    for (let s = reader.next(); s !== END; s = reader.next()) {
      if (s === NEED_DATA) { await reader.fill(); continue; }
      packets++;
      bytes += rec.wireLen;
      const view = decoder.decode(rec);
      if (Number.isNaN(clock.base)) clock.base = decoder.timeBase;
      clock.observe(view.ts);
      flows.advance();
      flows.update(view);
    }
  } finally {
    await reader.close();
  }
  flows.endAll();
  return { stage: 'decode-flow', packets, bytes, flows: flows.tcpStreams + flows.udpStreams + flows.otherFlows };
}

async function analyze(path: string, without: readonly string[]): Promise<Counted> {
  const overrides = Object.fromEntries(without.map((id) => [`analyzers.${id}.enabled`, false]));
  const { report } = await analyzeCapture(path, resolveConfig({ overrides }));
  const c = report.counters;
  return { stage: 'analyze', packets: report.capture.packets, bytes: report.capture.bytes, flows: (c['tcp.streams'] ?? 0) + (c['udp.streams'] ?? 0) };
}

const USAGE = 'usage: node dist/bench/stages.js read|decode-flow FILE | analyze FILE [--without ID[,ID...]]';

async function main(argv: string[]): Promise<void> {
  const [stage, path, flag, list] = argv;
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
  if (path === undefined || (stage !== 'read' && stage !== 'decode-flow' && stage !== 'analyze')) throw new Error(USAGE);
  let without: string[] = [];
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
  if (flag !== undefined) {
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
    if (stage !== 'analyze' || flag !== '--without' || list === undefined || argv.length > 4) throw new Error(USAGE);
    without = list.split(',').filter(Boolean);
    const known = new Set<string>(ANALYZERS.map(([id]) => id));
    const unknown = without.filter((id) => !known.has(id));
    if (unknown.length) throw new Error(`--without: unknown analyzer ${unknown.join(', ')} (${[...known].join(', ')})`);
  }
  const { value, figures } = await measured(() => (stage === 'read' ? readOnly(path) : stage === 'decode-flow' ? decodeFlow(path) : analyze(path, without)));
  const result: StageResult = { ...value, ...figures, without };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`stages: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
