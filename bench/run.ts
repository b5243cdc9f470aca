/**
 * `npm run bench [-- --quick]`: the project measured against libpcap, tcpdump
 * and tshark on the same synthetic capture, in one run, on this machine, as
 * ratios (absolute figures on shared machines move from run to run).
 *
 * Sections (see README "Benchmarks"):
 *  1. a generated capture (bench/capture-gen.ts), in a temporary folder;
 *  2. replay throughput: tcpdump with a reject-all filter (libpcap's floor),
 *     tcpdump -w /dev/null, tshark expert analysis, our reader alone, our
 *     decoder + flow table, analyzeCapture in-process and the `analyze`
 *     command with every analyzer; each a child process under GNU time, warm
 *     page cache, several runs; garbage collections of our stages;
 *  3. the cost of each analyzer: analyzeCapture with every analyzer on, all
 *     off, and each one off in turn;
 *  4. scaling: analyze at 1x/4x/16x file length and at 100 k/1 M/10 M flows;
 *     workers: analyze --workers 1/2/4 on the mixed capture and at 1 M flows,
 *     with the analyzers that cannot merge their windows yet turned off;
 *  5. live capture in network namespaces with tcpreplay at fixed rates, the
 *     agent and then tcpdump capturing, several runs (root only);
 *  6. publishing and ingest: agent -> nats-server -> collector on SQLite and
 *     PostgreSQL, messages per second and latency;
 *  and a table of the targets (issues 8, 13, 14, and issue "Analyzer engine v2").
 * Prints Markdown on stdout (progress on stderr) and writes bench-results.json.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { ANALYZERS } from '../agent/analyzers/index.js';
import { envName, resolveConfig } from '../common/config.js';
import type { Report } from '../common/report.js';
import { unshardableAnalyzers } from '../agent/shard/workers.js';
import { CLI, REPO_ROOT } from '../test/helpers/paths.js';
import { netnsAvailable, netnsUnavailableReason } from '../test/helpers/netns.js';
import { createTestDatabase } from '../test/helpers/postgres.js';
import { CONCURRENT_TCP_FLOWS, generateCapture, parseCount, type GenerateOptions, type GenerateResult } from './capture-gen.js';
import { benchIngest, type IngestRow } from './ingest.js';
import { TCPDUMP_BUFFER_KIB, WARMUP_PPS, benchLive, type LiveResult, type Rate } from './live.js';
import { GNU_TIME, commandOutput, firstLine, runTimed, spread, type Spread, type ThreadCpu, type TimedRun } from './measure.js';
import { ensurePostgres, ensurePrerequisites, isRoot } from './prereqs.js';
import { profileAnalyze, profileMarkdown, type ProfileSummary } from './profile.js';
import type { Stage, StageResult } from './stages.js';

const STAGES = join(REPO_ROOT, 'dist', 'bench', 'stages.js');
const SECTIONS = ['throughput', 'analyzers', 'scaling', 'workers', 'live', 'ingest'] as const;
const STORES = ['sqlite', 'postgres'] as const;
type Store = (typeof STORES)[number];
type Section = (typeof SECTIONS)[number];

interface Plan {
  quick: boolean;
  packets: number;
  seed: number;
  runs: number;
  tsharkSlice: number;
  tsharkRuns: number;
  /** Packets of the capture the per-analyzer section runs on (the main capture in the full run). */
  analyzerPackets: number;
  /** Rounds of the per-analyzer section (each: all on, all off, each analyzer off). */
  analyzerRuns: number;
  lengthBase: number;
  lengthFactors: number[];
  flowCounts: number[];
  /** Time limit of one scaling run: past it analyze is stopped and the row says how far it got. */
  scalingLimitSeconds: number;
  /** `analyze --workers N` rows: these worker counts, on the main capture and on one of this many distinct flows. */
  workerCounts: number[];
  workersFlows: number;
  liveSlice: number;
  liveRates: Rate[];
  /** Runs of the whole live section (every rate, agent then tcpdump, each run). */
  liveRuns: number;
  ingestPackets: number;
  ingestSpanSeconds: number;
  pacedSpeed: number;
  pacedSeconds: number;
  floodRate: number;
  floodSeconds: number;
  sections: Set<Section>;
  /** Stores of the ingest section. */
  stores: Store[];
  profile: boolean;
  keep: boolean;
  out: string;
}

const USAGE = `usage: npm run bench -- [--quick] [--packets N] [--seed S] [--runs R] [--live-runs R] [--only ${SECTIONS.join(',')}] [--stores ${STORES.join(',')}] [--profile] [--keep] [--out PATH]
  --quick     reduced sizes, about six minutes: 300 k packets, tshark on a 50 k slice once, each analyzer's cost on a 100 k slice,
              scaling at 1x/4x and 100 k/1 M flows, workers on the 300 k mix and 1 M flows, live at two rates once, a short ingest
  --packets   packets in the main capture (default 2M; quick 300k)
  --seed      generator seed (default 1)
  --runs      runs of each throughput and workers row (default 3)
  --live-runs runs of the live section (default 3; quick 1)
  --flood-rate messages/s of the ingest flood run (default 10500: issue 14's 10 k/s plus 5 %)
  --only      run only these sections (comma-separated)
  --stores    the ingest section's stores (default sqlite,postgres)
  --profile   also profile analyze on the main capture (node --cpu-prof) and print where the time goes
  --keep      keep the generated captures (printed path)
  --out       JSON results file (default bench-results.json in the repository)`;

function parseArgs(argv: string[]): Plan {
  const quick = argv.includes('--quick');
  const plan: Plan = quick ? {
    quick, packets: 300_000, seed: 1, runs: 3, tsharkSlice: 50_000, tsharkRuns: 1, analyzerPackets: 100_000, analyzerRuns: 2,
    lengthBase: 300_000, lengthFactors: [1, 4], flowCounts: [100_000, 1_000_000], scalingLimitSeconds: 20,
    workerCounts: [1, 2, 4], workersFlows: 1_000_000,
    liveSlice: 200_000, liveRates: [200_000, 'top'], liveRuns: 1,
    ingestPackets: 40_000, ingestSpanSeconds: 400, pacedSpeed: 20, pacedSeconds: 3, floodRate: 10_500, floodSeconds: 3,
    sections: new Set(SECTIONS), stores: [...STORES], profile: false, keep: false, out: join(REPO_ROOT, 'bench-results.json'),
  } : {
    quick, packets: 2_000_000, seed: 1, runs: 3, tsharkSlice: 200_000, tsharkRuns: 3, analyzerPackets: Infinity, analyzerRuns: 2,
    lengthBase: 500_000, lengthFactors: [1, 4, 16], flowCounts: [100_000, 1_000_000, 10_000_000], scalingLimitSeconds: 300,
    workerCounts: [1, 2, 4], workersFlows: 1_000_000,
    liveSlice: 500_000, liveRates: [50_000, 100_000, 200_000, 400_000, 'top'], liveRuns: 3,
    ingestPackets: 200_000, ingestSpanSeconds: 1200, pacedSpeed: 20, pacedSeconds: 10, floodRate: 10_500, floodSeconds: 10,
    sections: new Set(SECTIONS), stores: [...STORES], profile: false, keep: false, out: join(REPO_ROOT, 'bench-results.json'),
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--quick') continue;
    else if (a === '--packets') plan.packets = parseCount(argv[++i], '--packets');
    else if (a === '--seed') plan.seed = parseCount(argv[++i], '--seed');
    else if (a === '--runs') plan.runs = Math.max(1, parseCount(argv[++i], '--runs'));
    else if (a === '--stores') {
      const names = (argv[++i] ?? '').split(',').filter(Boolean);
      for (const n of names) if (!STORES.includes(n as Store)) throw new Error(`--stores: unknown store ${n} (${STORES.join(', ')})`);
      plan.stores = names as Store[];
    } else if (a === '--flood-rate') plan.floodRate = Math.max(1, parseCount(argv[++i], '--flood-rate'));
    else if (a === '--live-runs') plan.liveRuns = Math.max(1, parseCount(argv[++i], '--live-runs'));
    else if (a === '--only') {
      const names = (argv[++i] ?? '').split(',').filter(Boolean);
      for (const n of names) if (!SECTIONS.includes(n as Section)) throw new Error(`--only: unknown section ${n} (${SECTIONS.join(', ')})`);
      plan.sections = new Set(names as Section[]);
    } else if (a === '--profile') plan.profile = true;
    else if (a === '--keep') plan.keep = true;
    else if (a === '--out') plan.out = resolve(argv[++i] ?? '');
    else if (a === '-h' || a === '--help') { process.stdout.write(`${USAGE}\n`); process.exit(0); }
    else throw new Error(`unknown argument ${a}\n${USAGE}`);
  }
  plan.lengthBase = Math.min(plan.lengthBase, plan.packets);
  plan.tsharkSlice = Math.min(plan.tsharkSlice, plan.packets);
  plan.analyzerPackets = Math.min(plan.analyzerPackets, plan.packets);
  plan.liveSlice = Math.min(plan.liveSlice, plan.packets);
  return plan;
}

// ---------------------------------------------------------------------------
// Results

/** Garbage collections of one of our stages, medians over its runs (measured inside the child). */
interface GcRates {
  eventsPerMillionPackets: number;
  msPerMillionPackets: number;
  /** GC time as % of the stage's in-process wall time. */
  percentOfWall: number;
}

interface ThroughputRow {
  name: string;
  command: string;
  /** Packets each run processed (a slice for tshark). */
  packets: number;
  fileBytes: number;
  slice: boolean;
  runs: number;
  packetsPerSecond: Spread;
  megabytesPerSecond: number;
  cpuSeconds: number;
  cpuUsPerPacket: number;
  peakRssMB: number;
  vsTcpdumpWrite: number;
  vsTshark: number;
  /** Our stages only (stages.js). */
  gc?: GcRates;
  skipped?: string;
  error?: string;
}

interface AnalyzerCostRow {
  /** 'every analyzer on', 'every analyzer off', or 'without <id>'. */
  label: string;
  without: string[];
  runs: number;
  /** In-process packets/s (open to finished report). */
  packetsPerSecond: Spread;
  /** In-process CPU (user + system, every thread) µs per packet. */
  cpuUsPerPacket: Spread;
  /** Median CPU µs per packet with every analyzer on minus this row's: what the analyzers off here cost. */
  costUsPerPacket: number;
  /** costUsPerPacket as % of the CPU per packet with every analyzer on. */
  costPercent: number;
  gc: GcRates;
  peakRssMB: number;
  error?: string;
}

interface AnalyzerCosts {
  packets: number;
  /** The main capture, or a slice of the same mix (quick). */
  slice: boolean;
  runs: number;
  /** Every analyzer on, every analyzer off, then one row per analyzer, costliest first. */
  rows: AnalyzerCostRow[];
  /** Sum of the single analyzers' costs, µs per packet. */
  sumOfSingleCostsUs: number;
}

interface ScalingRow {
  kind: 'length' | 'flows';
  label: string;
  packets: number;
  fileBytes: number;
  /** Flows in the capture as the report counts them (mice: exact distinct 5-tuples) and packets per flow (mice). */
  flows: number;
  /** Flows the generator started (mice: the distinct 5-tuples asked for). */
  generatedFlows: number;
  packetsPerFlow: number;
  packetsPerSecond: number;
  /** packetsPerSecond ÷ the mixed capture's (Results.scalingReference). */
  vsMixed: number;
  cpuUsPerPacket: number;
  peakRssMB: number;
  flowsEvicted: number;
  /** CPU per packet relative to the first row of its kind (1.0 = linear cost). */
  costVsFirst: number;
  /** Set when analyze was stopped at the time limit. */
  stopped?: string;
  error?: string;
}

/** One thread's CPU in a workers run (the run of median wall time). */
interface ThreadUse {
  cpuSeconds: number;
  /** cpuSeconds ÷ the run's wall time, %: 100 is one core kept busy. */
  percentOfWall: number;
  /** Node's main thread of the process (the command line, report writing and, with workers, the coordinator); the others are the analysis thread or the workers, and V8's and libuv's helpers. */
  main: boolean;
}

interface WorkersRow {
  /** 'mixed': the main capture; 'flows': every flow its own 5-tuple (WorkersSection.flows of them). */
  capture: 'mixed' | 'flows';
  label: string;
  workers: number;
  packets: number;
  fileBytes: number;
  runs: number;
  packetsPerSecond: Spread;
  /** Median user + system CPU of the process (every thread), and per packet. */
  cpuSeconds: number;
  cpuUsPerPacket: number;
  /** Every thread that used CPU, busiest first, sampled from /proc every THREAD_SAMPLE_MS. */
  threads: ThreadUse[];
  peakRssMB: number;
  /** peakRssMB ÷ workers, beside the 1-worker row's peakRssMB. */
  peakRssPerWorkerMB: number;
  /** Median packets/s ÷ the 1-worker row's of the same capture. */
  speedup: number;
  /** Every run's JSON report byte for byte the 1-worker report of the same capture (null: the 1-worker row itself, or nothing to compare). */
  identicalReport: boolean | null;
  /** Where the report differs from the 1-worker report (JSON paths, window indices as [*]). */
  differsAt?: string[];
  error?: string;
}

interface WorkersSection {
  /** Analyzers turned off in every row (1 worker included): those of the default configuration that cannot merge their windows yet. */
  analyzersOff: string[];
  /** The environment given to every row to turn them off. */
  env: Record<string, string>;
  /** Distinct flows of the 'flows' capture. */
  flows: number;
  runs: number;
  rows: WorkersRow[];
}

interface Results {
  schema: 'pcap-analyzer/bench@2';
  mode: 'quick' | 'full';
  startedAt: string;
  seconds: number;
  machine: Record<string, string | number>;
  capture?: GenerateResult;
  throughput: ThroughputRow[];
  analyzers?: AnalyzerCosts;
  scaling: ScalingRow[];
  /** The mixed capture's analyze packets/s the scaling rows are compared with, and where it comes from. */
  scalingReference?: { what: string; packetsPerSecond: number };
  workers?: WorkersSection;
  live?: LiveResult;
  ingest: IngestRow[];
  profile?: ProfileSummary;
  skipped: Array<{ what: string; reason: string }>;
  targets: Target[];
}

interface Target {
  /** Where the target is set: 'issue 8' or 'engine v2' (issue "Analyzer engine v2", "Done when"). */
  issue: string;
  what: string;
  target: string;
  measured: string;
  /** null: not decided by this run (e.g. stopped at the time limit below the bound). */
  met: boolean | null;
}

const log = (msg: string): void => { process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`); };

function machineInfo(): Record<string, string | number> {
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
  const cpuModel = /model name\s*:\s*(.*)/.exec(existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '')?.[1] ?? os.cpus()[0]?.model ?? 'unknown';
  let sqlite = '';
  try {
    const db = new Database(':memory:');
    sqlite = String(db.prepare('SELECT sqlite_version()').pluck().get());
    db.close();
  } catch { /* reported as empty */ }
  const betterSqlite = (JSON.parse(readFileSync(join(REPO_ROOT, 'node_modules', 'better-sqlite3', 'package.json'), 'utf8')) as { version: string }).version;
  const tcpdump = firstLine(['tcpdump', '--version']);
  const libpcap = /libpcap version \S+/.exec(commandOutput(['tcpdump', '--version']))?.[0] ?? '';
  return {
    cpuModel,
    cores: os.cpus().length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    tcpdump,
    libpcap,
    tshark: firstLine(['tshark', '--version']).replace(/\.$/, ''),
    tcpreplay: firstLine(['tcpreplay', '--version']),
    natsServer: firstLine(['/usr/sbin/nats-server', '--version']).replace(/^nats-server:\s*/, ''),
    postgres: firstLine(['psql', '--version']),
    sqlite: sqlite ? `SQLite ${sqlite} (better-sqlite3 ${betterSqlite})` : '',
  };
}

const MB = 1e6;
const num = (x: number, digits = 0): string => (Number.isFinite(x) ? x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '–');
const rate = (x: number): string => {
  if (!Number.isFinite(x)) return '–';
  if (x >= 1e6) return `${(x / 1e6).toFixed(2)} M`;
  if (x >= 1e3) return `${(x / 1e3).toFixed(x >= 1e5 ? 0 : 1)} k`;
  return x.toFixed(0);
};
const ratio = (x: number): string => (Number.isFinite(x) ? `${x >= 10 ? x.toFixed(1) : x.toFixed(2)}×` : '–');

// ---------------------------------------------------------------------------
// Sections

function generate(path: string, options: GenerateOptions): GenerateResult {
  const what = options.flows !== undefined ? `${num(options.flows)} flows` : `${num(options.packets)} packets`;
  log(`generating ${what} -> ${path}`);
  const r = generateCapture(path, options);
  log(`  ${num(r.packets)} packets, ${num(r.bytes / MB)} MB, ${num(r.spanSeconds, 1)} s of packet time, in ${r.generateSeconds.toFixed(1)} s`);
  return r;
}

/** The benchmark mix at a packet count (same seed): the main capture and its slices, each generated when first asked for and kept for the run. */
class Mixes {
  private readonly made = new Map<number, GenerateResult>();
  constructor(private readonly work: string, private readonly plan: Plan) {}

  get(packets: number): GenerateResult {
    let gen = this.made.get(packets);
    if (!gen) {
      const name = packets === this.plan.packets ? 'capture.pcap' : `slice-${packets}.pcap`;
      gen = generate(join(this.work, name), { packets, seed: this.plan.seed });
      this.made.set(packets, gen);
    }
    return gen;
  }

  has(packets: number): boolean {
    return this.made.has(packets);
  }
}

/** Throughput rows the ratios and targets look up. */
const ROW = {
  tcpdumpWrite: 'tcpdump -w /dev/null',
  tshark: 'tshark expert analysis',
  decodeFlow: 'pcap-analyzer: decoder + flow table',
  analyzeStage: 'pcap-analyzer: analyzeCapture in-process (all analyzers)',
  analyze: 'pcap-analyzer analyze (all analyzers)',
} as const;

interface RunSpec {
  name: string;
  argv: string[];
  runs: number;
  check?: (r: TimedRun) => string | undefined;
  /** Added to the environment of every run. */
  env?: Record<string, string>;
  /** Sample each thread's CPU this often (ms). */
  threadSampleMs?: number;
}
interface Outcome { runs: TimedRun[]; error?: string }

/** Why a run failed: its exit status and the end of its stderr. */
const failure = (r: TimedRun): string => `exit ${r.status}: ${r.stderr.trim().split('\n').slice(-2).join(' ')}`;

/**
 * Runs each spec `runs` times under GNU time, round-robin, so a noisy moment on
 * the shared machine hits every row alike; every other round goes backwards, so
 * a load that rises or falls during the section does not favour the first rows
 * (over two rounds, each row's mean position is the same). A spec that fails
 * (exit status or check) is not run again; its outcome keeps the runs before.
 */
async function roundRobin<S extends RunSpec>(specs: readonly S[]): Promise<Map<S, Outcome>> {
  const outcomes = new Map<S, Outcome>(specs.map((s) => [s, { runs: [] }]));
  const rounds = Math.max(0, ...specs.map((s) => s.runs));
  for (let round = 0; round < rounds; round++) {
    for (const spec of round % 2 ? [...specs].reverse() : specs) {
      const o = outcomes.get(spec)!;
      if (round >= spec.runs || o.error !== undefined) continue;
      log(`run ${round + 1}/${spec.runs}: ${spec.name}`);
      const r = await runTimed(spec.argv, {
        maxStdout: 1 << 16, timeoutMs: 1_800_000,
        ...(spec.env ? { env: spec.env } : {}),
        ...(spec.threadSampleMs ? { threadSampleMs: spec.threadSampleMs } : {}),
      });
      const bad = r.status !== 0 ? failure(r) : spec.check?.(r);
      if (bad) o.error = bad;
      else o.runs.push(r);
    }
  }
  return outcomes;
}

/** Reads every file once (not measured), so each tool then reads from the page cache. */
async function warmPageCache(files: Iterable<string>): Promise<void> {
  for (const f of new Set(files)) await runTimed(['cat', f], { maxStdout: 0 });
}

function stageArgv(stage: Stage, file: string, without: readonly string[] = []): string[] {
  return [process.execPath, STAGES, stage, file, ...(without.length ? ['--without', without.join(',')] : [])];
}

const stageResult = (r: TimedRun): StageResult => JSON.parse(r.stdout) as StageResult;

/** A run check: the stage read every packet of its file. */
const readsAll = (packets: number) => (r: TimedRun): string | undefined => {
  const got = stageResult(r).packets;
  return got === packets ? undefined : `read ${got} packets, expected ${packets}`;
};

function gcRates(results: readonly StageResult[]): GcRates {
  const median = (f: (x: StageResult) => number): number => spread(results.map(f)).median;
  return {
    eventsPerMillionPackets: median((x) => (x.gc.count / x.packets) * 1e6),
    msPerMillionPackets: median((x) => (x.gc.ms / x.packets) * 1e6),
    percentOfWall: median((x) => (100 * x.gc.ms) / (x.seconds * 1000)),
  };
}

interface RowSpec extends RunSpec { file: string; packets: number; slice: boolean; stage?: boolean }

async function throughput(plan: Plan, work: string, mixes: Mixes, missing: Map<string, string>, res: Results): Promise<void> {
  const main = mixes.get(plan.packets);
  const file = main.path;
  const specs: RowSpec[] = [];
  const skip = (name: string, command: string, reason: string): void => {
    res.throughput.push({ name, command, packets: 0, fileBytes: 0, slice: false, runs: 0, packetsPerSecond: spread([]), megabytesPerSecond: NaN, cpuSeconds: NaN, cpuUsPerPacket: NaN, peakRssMB: NaN, vsTcpdumpWrite: NaN, vsTshark: NaN, skipped: reason });
  };
  const reportPath = join(work, 'analyze-report.json');
  const tcpdumpMissing = missing.get('tcpdump');
  if (tcpdumpMissing) {
    skip('tcpdump, reject-all BPF (libpcap floor)', `tcpdump -r FILE 'ether proto 0x1234'`, tcpdumpMissing);
    skip(ROW.tcpdumpWrite, 'tcpdump -r FILE -w /dev/null', tcpdumpMissing);
  } else {
    specs.push({ name: 'tcpdump, reject-all BPF (libpcap floor)', argv: ['tcpdump', '-r', file, 'ether proto 0x1234'], file, packets: main.packets, slice: false, runs: plan.runs });
    specs.push({ name: ROW.tcpdumpWrite, argv: ['tcpdump', '-r', file, '-w', '/dev/null'], file, packets: main.packets, slice: false, runs: plan.runs });
  }
  const tsharkCommand = `tshark -r FILE -q -z expert`;
  if (missing.get('tshark')) {
    skip(ROW.tshark, tsharkCommand, missing.get('tshark')!);
  } else {
    const slice = mixes.get(plan.tsharkSlice);
    specs.push({ name: ROW.tshark, argv: ['tshark', '-r', slice.path, '-q', '-z', 'expert'], file: slice.path, packets: slice.packets, slice: slice !== main, runs: plan.tsharkRuns });
  }
  const stageRow = (name: string, stage: Stage): RowSpec => ({ name, argv: stageArgv(stage, file), file, packets: main.packets, slice: false, runs: plan.runs, stage: true, check: readsAll(main.packets) });
  specs.push(stageRow('pcap-analyzer: reader alone', 'read'), stageRow(ROW.decodeFlow, 'decode-flow'), stageRow(ROW.analyzeStage, 'analyze'));
  specs.push({
    name: ROW.analyze, argv: [process.execPath, CLI, 'analyze', file, '--format', 'json', '--out', reportPath, '--no-progress'], file, packets: main.packets, slice: false, runs: plan.runs,
    check: () => {
      const report = JSON.parse(readFileSync(reportPath, 'utf8')) as Report;
      return report.capture.packets === main.packets ? undefined : `report counts ${report.capture.packets} packets, expected ${main.packets}`;
    },
  });

  await warmPageCache(specs.map((s) => s.file));
  const outcomes = await roundRobin(specs);
  for (const spec of specs) {
    const { runs: rs, error } = outcomes.get(spec)!;
    const bytes = statSync(spec.file).size;
    const pps = spread(rs.map((r) => spec.packets / r.wallSeconds));
    const cpu = spread(rs.map((r) => r.userSeconds + r.sysSeconds)).median;
    const wall = spread(rs.map((r) => r.wallSeconds)).median;
    res.throughput.push({
      name: spec.name,
      command: spec.argv.map((a) => (a === spec.file ? 'FILE' : a === process.execPath ? 'node' : a.startsWith(REPO_ROOT) ? a.slice(REPO_ROOT.length + 1) : a === reportPath ? 'REPORT.json' : /\s/.test(a) ? `'${a}'` : a)).join(' '),
      packets: spec.packets, fileBytes: bytes, slice: spec.slice, runs: rs.length,
      packetsPerSecond: pps,
      megabytesPerSecond: bytes / wall / MB,
      cpuSeconds: cpu,
      cpuUsPerPacket: (cpu / spec.packets) * 1e6,
      peakRssMB: Math.max(...rs.map((r) => r.maxRssBytes)) / MB,
      vsTcpdumpWrite: NaN, vsTshark: NaN,
      ...(spec.stage && rs.length ? { gc: gcRates(rs.map(stageResult)) } : {}),
      ...(error ? { error } : {}),
    });
  }
  const med = (name: string): number => res.throughput.find((r) => r.name === name)?.packetsPerSecond.median ?? NaN;
  const tw = med(ROW.tcpdumpWrite);
  const ts = med(ROW.tshark);
  for (const row of res.throughput) {
    row.vsTcpdumpWrite = row.packetsPerSecond.median / tw;
    row.vsTshark = row.packetsPerSecond.median / ts;
  }
}

/**
 * What each analyzer costs: analyzeCapture (stages.js analyze) with every
 * analyzer on, with every one off, and with each one off in turn, round-robin.
 * An analyzer's cost is the CPU per packet with all on minus that without it
 * (in-process figures: Node's start-up is not in them).
 */
async function analyzerCosts(plan: Plan, mixes: Mixes, res: Results): Promise<void> {
  const gen = mixes.get(plan.analyzerPackets);
  const ids: string[] = ANALYZERS.map(([id]) => id);
  const spec = (label: string, without: string[]): RunSpec & { label: string; without: string[] } => ({
    name: `analyze, ${label}`, label, without, argv: stageArgv('analyze', gen.path, without), runs: plan.analyzerRuns, check: readsAll(gen.packets),
  });
  const specs = [spec('every analyzer on', []), spec('every analyzer off', ids), ...ids.map((id) => spec(`without ${id}`, [id]))];
  await warmPageCache([gen.path]);
  const outcomes = await roundRobin(specs);
  const rows = specs.map((s): AnalyzerCostRow => {
    const { runs, error } = outcomes.get(s)!;
    const results = runs.map(stageResult);
    return {
      label: s.label, without: s.without, runs: runs.length,
      packetsPerSecond: spread(results.map((x) => x.packets / x.seconds)),
      cpuUsPerPacket: spread(results.map((x) => (x.cpuSeconds / x.packets) * 1e6)),
      costUsPerPacket: NaN, costPercent: NaN,
      gc: gcRates(results),
      peakRssMB: spread(runs.map((r) => r.maxRssBytes)).median / MB,
      ...(error ? { error } : {}),
    };
  });
  const allOn = rows[0]!.cpuUsPerPacket.median;
  for (const row of rows) {
    row.costUsPerPacket = allOn - row.cpuUsPerPacket.median;
    row.costPercent = (100 * row.costUsPerPacket) / allOn;
  }
  const costOf = (r: AnalyzerCostRow): number => (Number.isFinite(r.costUsPerPacket) ? r.costUsPerPacket : -Infinity);
  const singles = rows.slice(2).sort((a, b) => costOf(b) - costOf(a));
  res.analyzers = {
    packets: gen.packets, slice: gen.packets !== plan.packets, runs: plan.analyzerRuns,
    rows: [rows[0]!, rows[1]!, ...singles],
    sumOfSingleCostsUs: singles.reduce((sum, r) => sum + r.costUsPerPacket, 0),
  };
}

async function analyzeOnce(file: string, work: string, limitSeconds: number): Promise<{ run: TimedRun; report: Report | undefined; error?: string }> {
  const out = join(work, 'scaling-report.json');
  const run = await runTimed([process.execPath, CLI, 'analyze', file, '--format', 'json', '--out', out, '--no-progress'],
    { maxStdout: 0, timeoutMs: limitSeconds * 1000, progressFile: file });
  if (run.timedOut) return { run, report: undefined };
  if (run.status !== 0) return { run, report: undefined, error: failure(run) };
  const report = JSON.parse(readFileSync(out, 'utf8')) as Report;
  rmSync(out, { force: true });
  return { run, report };
}

async function scaling(plan: Plan, work: string, mixes: Mixes, res: Results): Promise<void> {
  const add = async (kind: ScalingRow['kind'], label: string, gen: GenerateResult, remove: boolean): Promise<void> => {
    log(`scaling: analyze ${label}`);
    const { run, report, error } = await analyzeOnce(gen.path, work, plan.scalingLimitSeconds);
    if (remove) rmSync(gen.path, { force: true });
    const cpu = run.userSeconds + run.sysSeconds;
    // Stopped at the time limit: the packets read so far, from the file offset it had reached.
    const packets = run.timedOut ? Math.round(gen.packets * (Number.isFinite(run.progress) ? run.progress : NaN)) : report?.capture.packets ?? gen.packets;
    const flows = report ? Number(report.counters['tcp.streams'] ?? 0) + Number(report.counters['udp.streams'] ?? 0) : gen.flows;
    const row: ScalingRow = {
      kind, label, packets: gen.packets, fileBytes: gen.bytes, flows, generatedFlows: gen.flows, packetsPerFlow: gen.packetsPerFlow,
      packetsPerSecond: packets / run.wallSeconds, vsMixed: NaN, cpuUsPerPacket: (cpu / packets) * 1e6, peakRssMB: run.maxRssBytes / MB,
      flowsEvicted: report?.capture.flowsEvicted ?? NaN, costVsFirst: NaN,
      ...(run.timedOut ? { stopped: `stopped after ${plan.scalingLimitSeconds} s at ${num(100 * run.progress)} % of the file: figures up to then` } : {}),
      ...(error ? { error } : {}),
    };
    const first = res.scaling.find((r) => r.kind === kind);
    row.costVsFirst = first ? row.cpuUsPerPacket / first.cpuUsPerPacket : 1;
    res.scaling.push(row);
  };
  for (const f of plan.lengthFactors) {
    const packets = plan.lengthBase * f;
    // The main capture and slices other sections use stay; a capture made for this row alone is removed after it.
    const shared = packets === plan.packets || mixes.has(packets);
    const gen = shared ? mixes.get(packets) : generate(join(work, `length-${f}x.pcap`), { packets, seed: plan.seed });
    await add('length', `${f}× length`, gen, !shared);
  }
  for (const flows of plan.flowCounts) {
    const gen = generate(join(work, `flows-${flows}.pcap`), { packets: plan.packets, seed: plan.seed, flows });
    await add('flows', `${rate(flows)} flows (${gen.packetsPerFlow} packet${gen.packetsPerFlow > 1 ? 's' : ''} each)`, gen, true);
  }
  // The mixed capture's rate: `analyze` in the throughput table (median of its runs) when it ran, else the first length row.
  const analyze = res.throughput.find((r) => r.name === ROW.analyze && Number.isFinite(r.packetsPerSecond.median));
  const first = res.scaling.find((r) => r.kind === 'length' && !r.error);
  const reference = analyze ? { what: `\`analyze\` on the ${num(analyze.packets)}-packet mix (throughput table, median)`, packetsPerSecond: analyze.packetsPerSecond.median }
    : first ? { what: `the ${first.label} row (${num(first.packets)}-packet mix)`, packetsPerSecond: first.packetsPerSecond } : undefined;
  if (reference) {
    res.scalingReference = reference;
    for (const r of res.scaling) r.vsMixed = r.packetsPerSecond / reference.packetsPerSecond;
  }
}

/** How often a workers run's threads are sampled: each thread's CPU is up to this much short. */
const THREAD_SAMPLE_MS = 100;

/** Where a report differs from the reference (byte, and the text there in each), or undefined when they are the same. */
function reportDifference(report: Buffer, reference: Buffer): string[] | undefined {
  if (report.equals(reference)) return undefined;
  // The paths of the values that differ, in order, window indices as [*].
  const paths = new Set<string>();
  const walk = (a: unknown, b: unknown, path: string): void => {
    if (a === b) return;
    if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null || Array.isArray(a) !== Array.isArray(b)) {
      paths.add(path);
      return;
    }
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    for (const k of keys) {
      const sub = Array.isArray(a) ? `${path}[*]` : path ? `${path}.${k}` : k;
      walk((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], sub);
    }
  };
  walk(JSON.parse(report.toString('utf8')), JSON.parse(reference.toString('utf8')), '');
  // Same values in another order (keys, findings): the text differs all the same.
  if (paths.size === 0) paths.add('(order)');
  return [...paths];
}

/** A row's report differences, shortened for the table. */
function differenceText(paths: readonly string[]): string {
  const shown = paths.slice(0, 6).map((p) => p.replace(/^windows\[\*\]\.metrics\./, 'windows: '));
  return `differs: ${shown.join(', ')}${paths.length > shown.length ? ` and ${paths.length - shown.length} more` : ''}`;
}

/**
 * `analyze --workers N` on the mixed capture and on one of a million distinct
 * flows, round-robin. Analyzers that cannot merge their windows across
 * workers yet make N > 1 refuse to run, so every row (1 worker included, so
 * the rows compare like with like) runs with those turned off through the
 * environment. Each 2- and 4-worker report is compared with the 1-worker
 * report of the same capture: where the bench's captures fill bounded tables
 * (each worker evicts when its own share is full) they differ, and the row
 * says where; identity on every shared capture is the test's
 * (test/sharded-identity.test.ts). A 1-worker run that differs from the
 * first is an error (the analysis would not be deterministic).
 */
async function workers(plan: Plan, work: string, mixes: Mixes, res: Results): Promise<void> {
  const analyzersOff = unshardableAnalyzers(resolveConfig({ env: process.env }));
  const env = Object.fromEntries(analyzersOff.map((id) => [envName(`analyzers.${id}.enabled`), 'false']));
  const left = unshardableAnalyzers(resolveConfig({ env: { ...process.env, ...env } }));
  if (left.length) throw new Error(`workers: turning off ${analyzersOff.join(', ')} through the environment left ${left.join(', ')} on`);
  log(`workers: ${analyzersOff.length ? `analyzers off (they cannot merge their windows yet): ${analyzersOff.join(', ')}` : 'all analyzers'}`);

  const mixed = mixes.get(plan.packets);
  const flows = generate(join(work, `workers-flows-${plan.workersFlows}.pcap`), { packets: plan.packets, seed: plan.seed, flows: plan.workersFlows });
  interface WorkersSpec extends RunSpec { capture: WorkersRow['capture']; gen: GenerateResult; workers: number; report: string }
  const specs: WorkersSpec[] = [];
  // Each capture's first 1-worker report: every later report of the capture, 1 worker included, must equal it.
  const reference = new Map<WorkersRow['capture'], Buffer>();
  // Where each row's reports differ from the reference (the first run that differs).
  const differences = new Map<WorkersSpec, string[]>();
  for (const [capture, gen] of [['mixed', mixed], ['flows', flows]] as const) {
    for (const n of plan.workerCounts) {
      const report = join(work, `workers-${capture}-${n}.json`);
      const spec: WorkersSpec = {
        name: `analyze --workers ${n}, ${capture === 'mixed' ? 'mixed capture' : `${rate(plan.workersFlows)} flows`}`,
        argv: [process.execPath, CLI, 'analyze', gen.path, '--format', 'json', '--out', report, '--no-progress', '--workers', String(n)],
        runs: plan.runs, env, threadSampleMs: THREAD_SAMPLE_MS, capture, gen, workers: n, report,
        check: () => {
          const got = (JSON.parse(readFileSync(report, 'utf8')) as Report).capture.packets;
          if (got !== gen.packets) return `report counts ${got} packets, expected ${gen.packets}`;
          const bytes = readFileSync(report);
          const ref = reference.get(capture);
          // The 1-worker row runs first in the first round, so its report is there for the others' every run.
          if (ref === undefined) {
            if (n === 1) reference.set(capture, bytes);
            return undefined;
          }
          const difference = reportDifference(bytes, ref);
          if (difference === undefined) return undefined;
          if (n === 1) return `the 1-worker report differs from its first run (${difference.join(', ')})`;
          if (!differences.has(spec)) differences.set(spec, difference);
          return undefined;
        },
      };
      specs.push(spec);
    }
  }
  await warmPageCache([mixed.path, flows.path]);
  const outcomes = await roundRobin(specs);
  rmSync(flows.path, { force: true });

  const rows = specs.map((spec): WorkersRow => {
    const { runs: rs, error: failed } = outcomes.get(spec)!;
    const error = failed;
    rmSync(spec.report, { force: true });
    const wall = spread(rs.map((r) => r.wallSeconds)).median;
    const cpu = spread(rs.map((r) => r.userSeconds + r.sysSeconds)).median;
    const peak = Math.max(...rs.map((r) => r.maxRssBytes)) / MB;
    // Threads of the run closest to the median wall time.
    const typical = [...rs].sort((a, b) => Math.abs(a.wallSeconds - wall) - Math.abs(b.wallSeconds - wall)).at(0);
    const threads = typical?.threads?.filter((t: ThreadCpu) => t.cpuSeconds > 0)
      .map((t): ThreadUse => ({ cpuSeconds: t.cpuSeconds, percentOfWall: (100 * t.cpuSeconds) / typical.wallSeconds, main: t.main })) ?? [];
    return {
      capture: spec.capture, label: spec.name, workers: spec.workers, packets: spec.gen.packets, fileBytes: spec.gen.bytes, runs: rs.length,
      packetsPerSecond: spread(rs.map((r) => spec.gen.packets / r.wallSeconds)),
      cpuSeconds: cpu, cpuUsPerPacket: (cpu / spec.gen.packets) * 1e6, threads,
      peakRssMB: peak, peakRssPerWorkerMB: peak / spec.workers, speedup: NaN,
      identicalReport: spec.workers === 1 || !reference.has(spec.capture) ? null : !differences.has(spec),
      ...(differences.has(spec) ? { differsAt: differences.get(spec)! } : {}),
      ...(error ? { error } : {}),
    };
  });
  for (const row of rows) {
    const one = rows.find((r) => r.capture === row.capture && r.workers === 1);
    row.speedup = one ? row.packetsPerSecond.median / one.packetsPerSecond.median : NaN;
  }
  res.workers = { analyzersOff, env, flows: plan.workersFlows, runs: plan.runs, rows };
}

const V2 = 'engine v2';

function targets(plan: Plan, res: Results): void {
  const add = (issue: string, what: string, target: string, measured: string, met: boolean | null): void => { res.targets.push({ issue, what, target, measured, met }); };
  const row = (name: string): ThroughputRow | undefined => res.throughput.find((r) => r.name === name && !r.skipped && r.runs > 0);
  const onTarget = plan.packets >= 2_000_000 ? '' : ` (on the ${num(plan.packets)}-packet ${plan.quick ? 'quick ' : ''}capture; the target is set on 2 M packets)`;
  const analyze = row(ROW.analyze);
  if (analyze && Number.isFinite(analyze.vsTcpdumpWrite)) {
    const what = `analyze packets/s ÷ tcpdump -w /dev/null packets/s${onTarget}`;
    add('issue 8', what, '≥ 1.0×', ratio(analyze.vsTcpdumpWrite), analyze.vsTcpdumpWrite >= 1);
    add(V2, what, '≥ 0.30×', ratio(analyze.vsTcpdumpWrite), analyze.vsTcpdumpWrite >= 0.3);
  }
  const decodeFlow = row(ROW.decodeFlow);
  if (analyze && decodeFlow) {
    const x = analyze.packetsPerSecond.median / decodeFlow.packetsPerSecond.median;
    if (Number.isFinite(x)) add(V2, `analyze packets/s ÷ decoder + flow table packets/s${onTarget}`, '≥ 0.5×', ratio(x), x >= 0.5);
  }
  // What the 0.5× target leaves the analyzers: twice the decoder + flow table's time per packet, less the pipeline's
  // own with every analyzer off (in-process rows of the same run); set beside what the analyzers cost now.
  const [allOn, allOff] = res.analyzers?.rows ?? [];
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
  if (decodeFlow && allOn && allOff) {
    const us = (pps: number): number => 1e6 / pps;
    const budget = 2 * us(decodeFlow.packetsPerSecond.median) - us(allOff.packetsPerSecond.median);
    const cost = us(allOn.packetsPerSecond.median) - us(allOff.packetsPerSecond.median);
    if (Number.isFinite(budget) && Number.isFinite(cost)) {
      add(V2, 'wall µs per packet left to all analyzers under the 0.5× target (2 × decoder + flow table, less analyzeCapture with every analyzer off), against what they take (every analyzer on, less off)',
        '–', `${num(budget, 2)} µs left, ${num(cost, 2)} µs taken (with every analyzer off: ${ratio(decodeFlow.packetsPerSecond.median / allOff.packetsPerSecond.median)} the decoder + flow table's time)`, null);
    }
  }
  if (analyze && Number.isFinite(analyze.peakRssMB)) {
    add('issue 8', `analyze peak RSS${onTarget}`, '≤ 200 MB', `${num(analyze.peakRssMB)} MB`, analyze.peakRssMB <= 200);
  }
  const gc = row(ROW.analyzeStage)?.gc;
  if (gc && Number.isFinite(gc.percentOfWall)) {
    add(V2, `GC time of analyzeCapture, % of its wall time${onTarget}`, '< 5 %',
      `${num(gc.percentOfWall, 1)} % (${num(gc.eventsPerMillionPackets)} events, ${num(gc.msPerMillionPackets)} ms per 1 M packets)`, gc.percentOfWall < 5);
  }

  // Scaling rows stopped at the time limit: a rate up to then is a fair estimate, a peak RSS under the bound proves nothing.
  const note = (r: ScalingRow): string => (r.stopped ? ` (${r.stopped})` : '');
  const rssTarget = (what: string, r: ScalingRow): void => {
    if (Number.isFinite(r.peakRssMB)) add(V2, `${what}${note(r)}`, '≤ 200 MB', `${num(r.peakRssMB)} MB`, r.peakRssMB > 200 ? false : r.stopped ? null : true);
  };
  const flowsRow = (n: number): ScalingRow | undefined => res.scaling.find((r) => r.kind === 'flows' && r.generatedFlows === n && !r.error);
  const million = flowsRow(1_000_000);
  if (million && res.scalingReference && Number.isFinite(million.vsMixed)) {
    add(V2, `analyze packets/s at 1 M distinct flows ÷ the mixed capture's${note(million)}`, '≥ 0.5×',
      `${ratio(million.vsMixed)} (${rate(million.packetsPerSecond)} ÷ ${rate(res.scalingReference.packetsPerSecond)})`, million.vsMixed >= 0.5);
  }
  for (const n of [1_000_000, 10_000_000]) {
    const r = flowsRow(n);
    if (r) rssTarget(`analyze peak RSS at ${rate(n)} distinct flows`, r);
  }
  const overGB = res.scaling.filter((r) => r.kind === 'length' && r.fileBytes >= 1e9 && !r.error).sort((a, b) => b.fileBytes - a.fileBytes)[0];
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
  if (overGB) rssTarget(`analyze peak RSS on a capture over 1 GB (${overGB.label}: ${num(overGB.fileBytes / 1e9, 1)} GB)`, overGB);

  if (res.workers) {
    const w = res.workers;
    // With analyzers off, the rows measure less than the issue's sensor ("every analyzer on"): figures, not a verdict.
    const off = w.analyzersOff.length ? `; ${w.analyzersOff.length} analyzers off, as they cannot merge yet: not decided until they all run` : '';
    // A row with an error but runs still has figures: shown, not a verdict. A report that differs where tables fill is no error (the Workers table says where).
    const ok = (r: WorkersRow | undefined): r is WorkersRow => r !== undefined && r.runs > 0;
    const failed = (rs: WorkersRow[]): string => (rs.some((r) => r.error) ? '; a row has an error (Workers table)' : '');
    for (const capture of ['mixed', 'flows'] as const) {
      const rows = w.rows.filter((r) => r.capture === capture);
      const of = (n: number): WorkersRow | undefined => rows.find((r) => r.workers === n);
      const one = of(1);
      const two = of(2);
      const where = capture === 'mixed' ? `the mixed capture${onTarget}` : `the ${rate(w.flows)}-flow capture (${num(one?.packets ?? NaN)} packets)`;
      if (ok(one) && ok(two) && Number.isFinite(two.speedup)) {
        const error = failed([one, two]);
        add('issue 13', `--workers 2 packets/s ÷ --workers 1 packets/s on ${where}${off}${error}`, '≥ 1.5×',
          `${ratio(two.speedup)} (${rate(two.packetsPerSecond.median)} ÷ ${rate(one.packetsPerSecond.median)})`, off || error ? null : two.speedup >= 1.5);
      }
      const more = rows.filter((r) => r.workers > 1 && ok(r) && Number.isFinite(r.peakRssMB));
      if (ok(one) && Number.isFinite(one.peakRssMB) && more.length) {
        const error = failed([one, ...more]);
        add('issue 13', `peak RSS per worker (peak RSS ÷ workers) with ${more.map((r) => r.workers).join(' and ')} workers, against the 1-worker peak, on ${where}${off}${error}`, '≤ the 1-worker peak',
          `${more.map((r) => `${r.workers}: ${num(r.peakRssPerWorkerMB)} MB`).join(', ')}; 1: ${num(one.peakRssMB)} MB`,
          off || error ? null : more.every((r) => r.peakRssPerWorkerMB <= one.peakRssMB));
      }
    }
  }
  if (res.live) {
    const l = res.live;
    const agent = l.rows.filter((r) => r.capturer === 'agent' && r.sent > 0);
    const at200 = agent.filter((r) => r.rate === 200_000);
    if (at200.length) {
      const lost = at200.reduce((s, r) => s + r.lost, 0);
      const sent = at200.reduce((s, r) => s + r.sent, 0);
      add('issue 8', `live capture at 200 k packets/s (achieved ${at200.map((r) => rate(r.achievedPps)).join(', ')}), packets lost by the agent${l.runs > 1 ? ` in ${l.runs} runs` : ''}`,
        '0', `${num(lost)} of ${num(sent)}`, lost === 0);
    }
    if (agent.length) {
      const clean = l.kernelDropFreeRuns.agent;
      const drops = agent.reduce((s, r) => s + r.kernelDrops, 0);
      const top = Math.max(...agent.map((r) => r.achievedPps));
      // The issue asks for 3 runs of 3: fewer runs can fail the target but not meet it.
      add(V2, `live capture: agent kernel drops at every rate reached (up to ${rate(top)} packets/s), runs without any`, `0 drops in 3 runs of 3`,
        `${clean} of ${l.runs} run${l.runs > 1 ? 's' : ''} (${num(drops)} drops in all)`, clean < l.runs ? false : l.runs >= 3 ? true : null);
    }
    const sharded = l.rows.filter((r) => r.capturer === 'agent-workers' && r.sent > 0);
    if (sharded.length) {
      const clean = l.kernelDropFreeRuns['agent-workers'];
      const drops = sharded.reduce((s, r) => s + r.kernelDrops, 0);
      const ring = sharded.reduce((s, r) => s + r.agentDrops, 0);
      const top = Math.max(...sharded.map((r) => r.achievedPps));
      const off = l.workersAnalyzersOff.length ? ` (analyzers off: ${l.workersAnalyzersOff.join(', ')})` : '';
      add('issue 13', `live capture with ${l.workers} analysis workers: kernel drops at every rate reached (up to ${rate(top)} packets/s), runs without any${off}`, '0 drops in 3 runs of 3',
        `${clean} of ${l.runs} run${l.runs > 1 ? 's' : ''} (${num(drops)} kernel drops, ${num(ring)} agent drops in all)`, clean < l.runs ? false : l.runs >= 3 && !off ? true : null);
    }
  }
  for (const r of res.ingest.filter((x) => x.mode === 'flood' && !x.error)) {
    // A flood the bench could not publish at 10 k/s cannot show the collector meets it (not decided).
    const reached = r.publishedPerSecond >= 10_000;
    add('issue 14', `ingest into ${r.store === 'sqlite' ? 'SQLite' : 'PostgreSQL'}, flood published at ${num(r.publishedPerSecond)} messages/s: committed/s, p99 publish-to-commit`,
      '≥ 10,000/s, p99 < 250 ms', `${num(r.committedPerSecond)}/s, p99 ${num(r.latencyP99Ms)} ms`,
      r.committedPerSecond >= 10_000 && r.latencyP99Ms < 250 ? true : reached ? false : null);
  }
}

// ---------------------------------------------------------------------------
// Markdown

/**
 * CPU seconds of the busiest threads of a workers row (as many as the workers,
 * plus two), then the rest summed. Seconds, not % of wall: on a loaded shared
 * machine the wall time is mostly waiting for a core.
 */
function threadsCell(r: WorkersRow): string {
  if (!r.threads.length) return '–';
  const shown = r.threads.slice(0, r.workers + 2);
  const rest = r.threads.slice(shown.length);
  const cells = shown.map((t) => `${num(t.cpuSeconds, 2)}${t.main ? ' main' : ''}`);
  if (rest.length) cells.push(`+${num(rest.reduce((sum, t) => sum + t.cpuSeconds, 0), 2)} in ${rest.length} others`);
  return cells.join(', ');
}

function markdown(plan: Plan, res: Results): string {
  const out: string[] = [];
  const m = res.machine;
  out.push(`# PCAP Analyzer benchmark (${res.mode}${plan.quick ? ': reduced sizes' : ''})`, '');
  out.push(`Machine: ${m['cpuModel']}, ${m['cores']} cores, ${m['memoryGiB']} GiB, ${m['kernel']}; Node ${m['node']}; ${m['tcpdump']}, ${m['libpcap']}; ${m['tshark']}; ${m['tcpreplay']}; nats-server ${m['natsServer']}; ${m['postgres']}; ${m['sqlite']}.`);
  out.push(`Run: ${res.startedAt}, ${num(res.seconds)} s. Ratios compare medians measured in this run; absolute figures on a shared machine vary by ±30 %.`, '');
  if (res.capture) {
    const c = res.capture;
    out.push(`Capture: ${num(c.packets)} packets, ${num(c.bytes / MB)} MB, ${num(c.spanSeconds, 1)} s of packet time; ${num(c.tcpFlows)} TCP flows (about ${num(CONCURRENT_TCP_FLOWS)} at once), ${num(c.dnsQueries)} DNS queries, ${num(c.mediaCalls)} RTP calls, a ${num(c.scanProbes)}-port scan; seed ${c.seed}${plan.quick ? ' (quick: reduced size)' : ''}.`, '');
  }
  if (res.throughput.length) {
    out.push('## Replay throughput (same file, warm page cache)', '');
    out.push('| stage | runs | packets/s median (min–max) | MB/s | CPU s | CPU µs/packet | peak RSS MB | × tcpdump -w | × tshark |');
    out.push('|---|---:|---|---:|---:|---:|---:|---:|---:|');
    for (const r of res.throughput) {
      if (r.skipped) { out.push(`| ${r.name} | – | skipped: ${r.skipped} | | | | | | |`); continue; }
      const p = r.packetsPerSecond;
      const name = `${r.name}${r.slice ? ` (${rate(r.packets)}-packet slice, scaled)` : ''}${r.error ? ` — ERROR: ${r.error}` : ''}`;
      out.push(`| ${name} | ${r.runs} | ${rate(p.median)} (${rate(p.min)}–${rate(p.max)}) | ${num(r.megabytesPerSecond)} | ${num(r.cpuSeconds, 2)} | ${num(r.cpuUsPerPacket, 2)} | ${num(r.peakRssMB)} | ${ratio(r.vsTcpdumpWrite)} | ${ratio(r.vsTshark)} |`);
    }
    out.push('', 'Commands: ' + res.throughput.map((r) => `\`${r.command}\``).join(', ') + '.', '');
    const gcRows = res.throughput.filter((r) => r.gc);
    if (gcRows.length) {
      out.push('### Garbage collection in our stages (PerformanceObserver `gc` inside the child, median of the runs above)', '');
      out.push('| stage | GC events / 1 M packets | GC ms / 1 M packets | GC time, % of wall |');
      out.push('|---|---:|---:|---:|');
      for (const r of gcRows) out.push(`| ${r.name} | ${num(r.gc!.eventsPerMillionPackets)} | ${num(r.gc!.msPerMillionPackets)} | ${num(r.gc!.percentOfWall, 1)} |`);
      out.push('', 'Wall time here is the stage\'s own, from opening the file to the last record (analyze: to the finished report). Every `gc` entry counts: scavenges, mark-compacts, incremental marking steps.', '');
    }
  }
  if (res.analyzers) {
    const a = res.analyzers;
    const on = a.rows[0]!;
    const off = a.rows[1]!;
    out.push(`## Cost of each analyzer (analyzeCapture in-process, ${a.slice ? `a ${rate(a.packets)}-packet slice of the mix` : `the ${rate(a.packets)}-packet capture`}, ${a.runs} run${a.runs > 1 ? 's' : ''} of each, round-robin)`, '');
    out.push('| analyzers | packets/s median (min–max) | CPU µs/packet median (min–max) | cost µs/packet | % of all-on CPU | GC ms / 1 M packets | peak RSS MB |');
    out.push('|---|---|---|---:|---:|---:|---:|');
    for (const r of a.rows) {
      const p = r.packetsPerSecond;
      const c = r.cpuUsPerPacket;
      const cost = r === on ? '' : num(r.costUsPerPacket, 2);
      const percent = r === on ? '' : num(r.costPercent, 1);
      out.push(`| ${r.label}${r.error ? ` — ERROR: ${r.error}` : ''} | ${rate(p.median)} (${rate(p.min)}–${rate(p.max)}) | ${num(c.median, 2)} (${num(c.min, 2)}–${num(c.max, 2)}) | ${cost} | ${percent} | ${num(r.gc.msPerMillionPackets)} | ${num(r.peakRssMB)} |`);
    }
    out.push('', `Command: \`node dist/bench/stages.js analyze FILE [--without ID[,ID…]]\` (default configuration, \`analyzers.<id>.enabled: false\` for those given; figures measured in-process, without Node's start-up). `
      + `An analyzer's cost is the median CPU per packet with every analyzer on minus the median without it; `
      + `"every analyzer off" gives them all together (${num(off.costUsPerPacket, 2)} µs/packet), against ${num(a.sumOfSingleCostsUs, 2)} µs/packet for the sum of the single costs; the two need not agree, as analyzers share work (the others read \`tcp\`'s per-packet result) `
      + 'and taking one out changes the per-packet loop the others are compiled in. '
      + `The all-on row runs first in one round and last in the next, so its spread (${num(on.cpuUsPerPacket.max - on.cpuUsPerPacket.min, 2)} µs/packet here) shows how much the machine moved during the section: `
      + 'smaller costs, and negative ones, are noise.', '');
  }
  if (res.scaling.length) {
    out.push('## Scaling of `analyze` (one run each)', '');
    out.push('| capture | packets | MB | flows | packets/s | × mixed capture | CPU µs/packet | × first row\'s cost | peak RSS MB | flows evicted |');
    out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const r of res.scaling) {
      out.push(`| ${r.label}${r.stopped ? ` — ${r.stopped}` : ''}${r.error ? ` — ERROR: ${r.error}` : ''} | ${num(r.packets)} | ${num(r.fileBytes / MB)} | ${num(r.flows)} | ${rate(r.packetsPerSecond)} | ${ratio(r.vsMixed)} | ${num(r.cpuUsPerPacket, 2)} | ${ratio(r.costVsFirst)} | ${num(r.peakRssMB)} | ${num(r.flowsEvicted)} |`);
    }
    const ref = res.scalingReference;
    out.push('', `"× mixed capture": packets/s ÷ ${ref ? `${rate(ref.packetsPerSecond)}, ${ref.what}` : 'the mixed capture\'s (not measured in this run)'}. `
      + 'Length rows are the realistic mix at 1×/4×/16× the packets; flow rows give every flow its own 5-tuple (mice of k packets). The flow table holds `flows.maxFlows` (65,536 by default) and evicts the least recently active (counted); the security detectors\' key tables are sized from `memory.budgetMB` (`pcap-analyzer config` prints them) and evict the least recently active key when full (counted). A cost column near 1.0× means the cost per packet does not grow with the size.', '');
  }
  if (res.workers) {
    const w = res.workers;
    out.push(`## Workers: \`analyze --workers N\` (${w.runs} run${w.runs > 1 ? 's' : ''} of each, round-robin; ${w.analyzersOff.length ? `${w.analyzersOff.length} analyzers off in every row` : 'all analyzers'})`, '');
    out.push('| capture | workers | packets/s median (min–max) | × 1 worker | CPU s | CPU µs/packet | CPU s per thread (busiest first) | peak RSS MB | peak RSS ÷ workers MB | report = 1 worker\'s |');
    out.push('|---|---:|---|---:|---:|---:|---|---:|---:|---|');
    for (const r of w.rows) {
      const p = r.packetsPerSecond;
      const capture = `${r.capture === 'mixed' ? 'mixed' : `${rate(w.flows)} flows`}, ${rate(r.packets)} packets${r.error ? ` — ERROR: ${r.error}` : ''}`;
      const same = r.workers === 1 ? '(reference)' : r.identicalReport === null ? '–' : r.identicalReport ? 'byte-identical' : differenceText(r.differsAt ?? []);
      out.push(`| ${capture} | ${r.workers} | ${rate(p.median)} (${rate(p.min)}–${rate(p.max)}) | ${ratio(r.speedup)} | ${num(r.cpuSeconds, 2)} | ${num(r.cpuUsPerPacket, 2)} | ${threadsCell(r)} | ${num(r.peakRssMB)} | ${num(r.peakRssPerWorkerMB)} | ${same} |`);
    }
    const envText = Object.entries(w.env).map(([k, v]) => `${k}=${v}`).join(' ');
    out.push('', `Command: \`${envText ? `${envText} ` : ''}node bin/pcap-analyzer.js analyze FILE --format json --out REPORT.json --no-progress --workers N\`. `
      + (w.analyzersOff.length
        ? `Analyzers off in every row, 1 worker included: ${w.analyzersOff.join(', ')} — they cannot merge their windows across workers yet, and \`--workers\` above 1 refuses to run while one is on; the rows measure the pipeline without them, not the sensor with every analyzer on. `
        : 'Every analyzer on. ')
      + `The mixed capture is the main capture; the other gives each of ${num(w.flows)} flows its own 5-tuple. Each 2- and 4-worker report is compared byte for byte with the 1-worker report of the same capture (every run); where it differs, the table names the values that do (window figures as "windows: analyzer.field"): these captures fill bounded tables (the mixed one flood's window counts and exfiltration's and beaconing's keys, the other every flow table), and where a table fills each worker evicts when its own share is full, other keys at other times than one pipeline (docs/architecture.md, Workers). Identity on every shared capture is tested (test/sharded-identity.test.ts). `
      + 'Threads: Node\'s main thread (marked "main": command line, writing the report; with more than 1 worker also the coordinator, merging the windows), with 1 worker the analysis thread that does everything, with more the N worker threads (each reads the whole file, hashes every packet\'s host pair and analyzes its own), and V8\'s and libuv\'s helpers (garbage collection, compilation, file reads), the smallest summed as "others". '
      + `Each thread's CPU is sampled from /proc every ${THREAD_SAMPLE_MS} ms (up to that much short); the CPU s column (GNU time: user + system, every thread) is exact; \`bench-results.json\` also gives each thread's CPU as % of the wall time. `
      + `"× 1 worker": median packets/s ÷ the 1-worker row's of the same capture; this machine has ${String(res.machine['cores'])} cores, so more workers than cores share them.`, '');
  }
  if (res.live) {
    const l = res.live;
    out.push(`## Live capture (${num(l.slicePackets)}-packet slice, tcpreplay -K into a veth, capturer in another namespace; ${l.runs} run${l.runs > 1 ? 's' : ''}, a fresh agent per run, warmed up 1 s at ${rate(WARMUP_PPS)} packets/s first)`, '');
    out.push('| run | capturer | target packets/s | achieved packets/s | sent | seen | kernel drops | interface drops | agent drops | lost | CPU µs/packet |');
    out.push('|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const r of l.rows) {
      const who = r.capturer === 'agent' ? 'pcap-analyzer agent' : r.capturer === 'agent-workers' ? `pcap-analyzer agent, ${l.workers} workers` : `tcpdump -B ${TCPDUMP_BUFFER_KIB} -w /dev/null`;
      out.push(`| ${r.run} | ${who} | ${r.rate === 'top' ? 'top speed' : rate(r.rate)} | ${rate(r.achievedPps)} | ${num(r.sent)} | ${num(r.seen)} | ${num(r.kernelDrops)} | ${num(r.interfaceDrops)} | ${num(r.agentDrops)} | ${num(r.lost)} | ${num(r.cpuUsPerPacket, 2)} |`);
    }
    const pps = (x: number): string => (x ? `${rate(x)} packets/s` : 'none of the rates tried');
    out.push('', `**Highest rate with zero loss${l.runs > 1 ? ' in every run' : ''}:** agent ${pps(l.zeroLossPps.agent)}; with ${l.workers} workers ${pps(l.zeroLossPps['agent-workers'])}; tcpdump ${pps(l.zeroLossPps.tcpdump)}. `
      + `**Runs without a kernel drop at any rate:** agent ${l.kernelDropFreeRuns.agent} of ${l.runs}; with ${l.workers} workers ${l.kernelDropFreeRuns['agent-workers']} of ${l.runs}; tcpdump ${l.kernelDropFreeRuns.tcpdump} of ${l.runs}. Achieved rates are what tcpreplay reports; it cannot always reach the target here.`
      + (l.workersAnalyzersOff.length ? ` With workers, analyzers off (they cannot merge their windows yet): ${l.workersAnalyzersOff.join(', ')}.` : ''), '');
  }
  if (res.ingest.length) {
    out.push('## Publishing and ingest (agent → nats-server → collector; 1-second windows)', '');
    out.push('| store | run | windows | findings | published/s | committed/s | latency p50 ms | p99 ms | max ms | messages/batch | DB write ms/batch | CPU µs/message: collector | nats-server | flood publisher | machine busy, cores |');
    out.push('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const r of res.ingest) {
      out.push(`| ${r.store}${r.error ? ` — ${r.error}` : ''} | ${r.mode} | ${num(r.windows)} | ${num(r.findings)} | ${num(r.publishedPerSecond)} | ${num(r.committedPerSecond)} | ${num(r.latencyP50Ms)} | ${num(r.latencyP99Ms)} | ${num(r.latencyMaxMs)} | ${num(r.batchMean)} | ${num(r.dbWriteMeanMs, 1)} | ${num(r.collectorCpuUsPerMessage)} | ${num(r.natsCpuUsPerMessage)} | ${num(r.publisherCpuUsPerMessage)} | ${num(r.machineBusyCores, 2)} |`);
    }
    out.push('', `Burst: replay at top speed (capacity). Paced: ${plan.pacedSpeed}× real time (about ${plan.pacedSpeed} windows/s, no backlog) for ${plan.pacedSeconds} s. Flood: the burst's windows and findings again (new ids) published by the bench itself at ${num(plan.floodRate)} messages/s for ${plan.floodSeconds} s, thousands in flight (published/s says whether it got there): whether the collector keeps up with more than one agent makes. Collector CPU per message: its user + system time over the messages it committed; one free core commits 1e6 / that many messages per second. nats-server's CPU per message likewise; the flood publisher's is this process's (it stands for agents on other machines). Machine busy: CPU time of everything on the machine (the database included) over the run's wall time, in cores; at the machine's core count, the flood measures the machine, not the collector alone. Latency: from the publish (seen by a NATS subscriber) to the row's arrival time in the committing transaction. The capture is the benchmark mix stretched in time (${num(plan.ingestPackets)} packets over about ${num(plan.ingestSpanSeconds)} s); stretched round trips look slow, hence many findings.`, '');
  }
  if (res.skipped.length) {
    out.push('## Skipped', '');
    for (const s of res.skipped) out.push(`- ${s.what}: ${s.reason}`);
    out.push('');
  }
  if (res.targets.length) {
    out.push('## Targets', '');
    out.push('| issue | what | target | measured | met |', '|---|---|---|---|---|');
    for (const t of res.targets) out.push(`| ${t.issue} | ${t.what} | ${t.target} | ${t.measured} | ${t.met === null ? '– (not decided by this run)' : t.met ? 'yes' : '**no**'} |`);
    out.push('', '"engine v2": the issue "Analyzer engine v2", "Done when". A target whose figure this run did not measure has no row.', '');
  }
  if (res.profile) {
    out.push('## Where `analyze` spends its CPU time (node --cpu-prof, main capture)', '', profileMarkdown(res.profile), '');
  }
  return out.join('\n');
}

// ---------------------------------------------------------------------------

async function main(): Promise<void> {
  const plan = parseArgs(process.argv.slice(2));
  const started = Date.now();
  const work = mkdtempSync(join(os.tmpdir(), 'pa-bench-'));
  const cleanup = (): void => { if (!plan.keep) rmSync(work, { recursive: true, force: true }); };
  process.on('exit', cleanup);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => { cleanup(); process.exit(130); });

  const prereqs = ensurePrerequisites();
  for (const line of prereqs.log) log(line);
  const res: Results = {
    schema: 'pcap-analyzer/bench@2', mode: plan.quick ? 'quick' : 'full', startedAt: new Date(started).toISOString(), seconds: 0,
    machine: machineInfo(), throughput: [], scaling: [], ingest: [], skipped: [], targets: [],
  };
  if (prereqs.missing.has(GNU_TIME)) {
    throw new Error(prereqs.missing.get(GNU_TIME)!);
  }
  for (const [, reason] of prereqs.missing) log(`missing: ${reason}`);

  const mixes = new Mixes(work, plan);
  if (plan.sections.has('throughput')) await throughput(plan, work, mixes, prereqs.missing, res);
  if (plan.sections.has('analyzers')) await analyzerCosts(plan, mixes, res);
  if (plan.sections.has('scaling')) await scaling(plan, work, mixes, res);
  if (plan.sections.has('workers')) await workers(plan, work, mixes, res);

  if (plan.sections.has('live')) {
    const reason = !netnsAvailable() ? netnsUnavailableReason()
      : prereqs.missing.get('tcpreplay') ?? prereqs.missing.get('tcpdump') ?? prereqs.missing.get('ip') ?? prereqs.missing.get('/usr/sbin/nats-server');
    if (reason) {
      res.skipped.push({ what: 'live capture rows', reason });
      log(`skipped live capture: ${reason}`);
    } else {
      const slice = mixes.get(plan.liveSlice);
      log(`live capture: ${plan.liveRates.join(', ')} packets/s, ${plan.liveRuns} run${plan.liveRuns > 1 ? 's' : ''}`);
      try {
        res.live = await benchLive(slice.path, slice.packets, plan.liveRates, plan.liveRuns, work);
      } catch (err) {
        res.skipped.push({ what: 'live capture rows', reason: `failed: ${err instanceof Error ? err.message : String(err)}` });
      }
    }
  }

  if (plan.sections.has('ingest')) {
    const natsMissing = prereqs.missing.get('/usr/sbin/nats-server');
    if (natsMissing) {
      res.skipped.push({ what: 'ingest rows', reason: natsMissing });
    } else {
      const native = generate(join(work, 'ingest-probe.pcap'), { packets: Math.min(20_000, plan.ingestPackets), seed: plan.seed + 1 });
      const nativeSpan = (native.spanSeconds * plan.ingestPackets) / native.packets;
      rmSync(native.path, { force: true });
      const ingest = generate(join(work, 'ingest.pcap'), { packets: plan.ingestPackets, seed: plan.seed + 1, timeScale: plan.ingestSpanSeconds / Math.max(0.001, nativeSpan) });
      for (const store of plan.stores) {
        log(`ingest: ${store}`);
        let databaseUrl: string | undefined;
        let drop: (() => Promise<void>) | undefined;
        if (store === 'postgres') {
          const pgLog: string[] = [];
          const reason = ensurePostgres(pgLog);
          for (const line of pgLog) log(line);
          if (reason) { res.skipped.push({ what: 'ingest into PostgreSQL', reason }); continue; }
          try {
            const db = await createTestDatabase();
            databaseUrl = db.url;
            drop = db.drop;
          } catch (err) {
            res.skipped.push({ what: 'ingest into PostgreSQL', reason: `cannot create a database: ${err instanceof Error ? err.message : String(err)}` });
            continue;
          }
        }
        try {
          res.ingest.push(...await benchIngest({ store, ...(databaseUrl ? { databaseUrl } : {}), file: ingest.path, work, pacedSpeed: plan.pacedSpeed, pacedSeconds: plan.pacedSeconds, floodRate: plan.floodRate, floodSeconds: plan.floodSeconds }));
        } catch (err) {
          res.skipped.push({ what: `ingest into ${store}`, reason: `failed: ${err instanceof Error ? err.message : String(err)}` });
        } finally {
          await drop?.().catch(() => undefined);
        }
      }
    }
  }

  if (plan.profile) {
    log('profiling analyze (node --cpu-prof)');
    res.profile = profileAnalyze(mixes.get(plan.packets).path, 20);
  }
  if (mixes.has(plan.packets)) res.capture = mixes.get(plan.packets);

  targets(plan, res);
  res.seconds = Math.round((Date.now() - started) / 100) / 10;
  writeFileSync(plan.out, `${JSON.stringify(res, null, 2)}\n`);
  process.stdout.write(`${markdown(plan, res)}\n`);
  log(`results: ${plan.out}${plan.keep ? `; captures kept in ${work}` : ''}`);
  if (!isRoot()) log('not root: live capture rows need root (network namespaces); packages were not installed');
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
