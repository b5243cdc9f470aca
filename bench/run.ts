/**
 * `npm run bench [-- --quick]`: the project measured against libpcap, tcpdump
 * and tshark on the same synthetic capture, in one run, on this machine, as
 * ratios (absolute figures on shared machines move from run to run).
 *
 * Sections (see README "Benchmarks"):
 *  1. a generated capture (bench/capture-gen.ts), in a temporary folder;
 *  2. replay throughput: tcpdump with a reject-all filter (libpcap's floor),
 *     tcpdump -w /dev/null, tshark expert analysis, our reader alone, our
 *     decoder + flow table, and `analyze` with every analyzer; each a child
 *     process under GNU time, warm page cache, several runs;
 *  3. scaling: analyze at 1x/4x/16x file length and at 100 k/1 M/10 M flows;
 *  4. live capture in network namespaces with tcpreplay at fixed rates, the
 *     agent and then tcpdump capturing (root only);
 *  5. publishing and ingest: agent -> nats-server -> collector on SQLite and
 *     PostgreSQL, messages per second and latency.
 * Prints Markdown on stdout (progress on stderr) and writes bench-results.json.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import type { Report } from '../common/report.js';
import { CLI, REPO_ROOT } from '../test/helpers/paths.js';
import { netnsAvailable, netnsUnavailableReason } from '../test/helpers/netns.js';
import { createTestDatabase } from '../test/helpers/postgres.js';
import { CONCURRENT_TCP_FLOWS, generateCapture, parseCount, type GenerateOptions, type GenerateResult } from './capture-gen.js';
import { benchIngest, type IngestRow } from './ingest.js';
import { TCPDUMP_BUFFER_KIB, WARMUP_PPS, benchLive, type LiveResult, type Rate } from './live.js';
import { GNU_TIME, commandOutput, firstLine, runTimed, spread, type Spread, type TimedRun } from './measure.js';
import { ensurePostgres, ensurePrerequisites, isRoot } from './prereqs.js';
import { profileAnalyze, profileMarkdown, type ProfileSummary } from './profile.js';

const STAGES = join(REPO_ROOT, 'dist', 'bench', 'stages.js');
const SECTIONS = ['throughput', 'scaling', 'live', 'ingest'] as const;
type Section = (typeof SECTIONS)[number];

interface Plan {
  quick: boolean;
  packets: number;
  seed: number;
  runs: number;
  tsharkSlice: number;
  tsharkRuns: number;
  lengthBase: number;
  lengthFactors: number[];
  flowCounts: number[];
  /** Time limit of one scaling run: past it analyze is stopped and the row says how far it got. */
  scalingLimitSeconds: number;
  liveSlice: number;
  liveRates: Rate[];
  ingestPackets: number;
  ingestSpanSeconds: number;
  pacedSpeed: number;
  pacedSeconds: number;
  sections: Set<Section>;
  profile: boolean;
  keep: boolean;
  out: string;
}

const USAGE = `usage: npm run bench -- [--quick] [--packets N] [--seed S] [--runs R] [--only ${SECTIONS.join(',')}] [--profile] [--keep] [--out PATH]
  --quick     reduced sizes, about two minutes: 300 k packets, tshark on a 50 k slice once, scaling at 1x/4x and 100 k/1 M flows,
              live at two rates, a short ingest
  --packets   packets in the main capture (default 2M; quick 300k)
  --seed      generator seed (default 1)
  --runs      runs of each throughput row (default 3)
  --only      run only these sections (comma-separated)
  --profile   also profile analyze on the main capture (node --cpu-prof) and print where the time goes
  --keep      keep the generated captures (printed path)
  --out       JSON results file (default bench-results.json in the repository)`;

function parseArgs(argv: string[]): Plan {
  const quick = argv.includes('--quick');
  const plan: Plan = quick ? {
    quick, packets: 300_000, seed: 1, runs: 3, tsharkSlice: 50_000, tsharkRuns: 1,
    lengthBase: 300_000, lengthFactors: [1, 4], flowCounts: [100_000, 1_000_000], scalingLimitSeconds: 20,
    liveSlice: 200_000, liveRates: [200_000, 'top'],
    ingestPackets: 40_000, ingestSpanSeconds: 400, pacedSpeed: 20, pacedSeconds: 3,
    sections: new Set(SECTIONS), profile: false, keep: false, out: join(REPO_ROOT, 'bench-results.json'),
  } : {
    quick, packets: 2_000_000, seed: 1, runs: 3, tsharkSlice: 200_000, tsharkRuns: 3,
    lengthBase: 500_000, lengthFactors: [1, 4, 16], flowCounts: [100_000, 1_000_000, 10_000_000], scalingLimitSeconds: 300,
    liveSlice: 500_000, liveRates: [50_000, 100_000, 200_000, 400_000, 'top'],
    ingestPackets: 200_000, ingestSpanSeconds: 1200, pacedSpeed: 20, pacedSeconds: 10,
    sections: new Set(SECTIONS), profile: false, keep: false, out: join(REPO_ROOT, 'bench-results.json'),
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--quick') continue;
    else if (a === '--packets') plan.packets = parseCount(argv[++i], '--packets');
    else if (a === '--seed') plan.seed = parseCount(argv[++i], '--seed');
    else if (a === '--runs') plan.runs = Math.max(1, parseCount(argv[++i], '--runs'));
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
  plan.liveSlice = Math.min(plan.liveSlice, plan.packets);
  return plan;
}

// ---------------------------------------------------------------------------
// Results

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
  skipped?: string;
  error?: string;
}

interface ScalingRow {
  kind: 'length' | 'flows';
  label: string;
  packets: number;
  fileBytes: number;
  /** Flows in the capture (mice: exact distinct 5-tuples) and packets per flow (mice). */
  flows: number;
  packetsPerFlow: number;
  packetsPerSecond: number;
  cpuUsPerPacket: number;
  peakRssMB: number;
  flowsEvicted: number;
  /** CPU per packet relative to the first row of its kind (1.0 = linear cost). */
  costVsFirst: number;
  /** Set when analyze was stopped at the time limit. */
  stopped?: string;
  error?: string;
}

interface Results {
  schema: 'pcap-analyzer/bench@1';
  mode: 'quick' | 'full';
  startedAt: string;
  seconds: number;
  machine: Record<string, string | number>;
  capture?: GenerateResult;
  throughput: ThroughputRow[];
  scaling: ScalingRow[];
  live?: LiveResult;
  ingest: IngestRow[];
  profile?: ProfileSummary;
  skipped: Array<{ what: string; reason: string }>;
  targets: Array<{ what: string; target: string; measured: string; met: boolean | null }>;
}

const log = (msg: string): void => { process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`); };

function machineInfo(): Record<string, string | number> {
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

interface RowSpec { name: string; argv: string[]; file: string; packets: number; slice: boolean; runs: number; check?: (r: TimedRun) => string | undefined }

async function throughput(plan: Plan, work: string, main: GenerateResult, missing: Map<string, string>, res: Results): Promise<void> {
  const file = main.path;
  const specs: RowSpec[] = [];
  const skip = (name: string, command: string, reason: string): void => {
    res.throughput.push({ name, command, packets: 0, fileBytes: 0, slice: false, runs: 0, packetsPerSecond: spread([]), megabytesPerSecond: NaN, cpuSeconds: NaN, cpuUsPerPacket: NaN, peakRssMB: NaN, vsTcpdumpWrite: NaN, vsTshark: NaN, skipped: reason });
  };
  const reportPath = join(work, 'analyze-report.json');
  const tcpdumpMissing = missing.get('tcpdump');
  if (tcpdumpMissing) {
    skip('tcpdump, reject-all BPF (libpcap floor)', `tcpdump -r FILE 'ether proto 0x1234'`, tcpdumpMissing);
    skip('tcpdump -w /dev/null', 'tcpdump -r FILE -w /dev/null', tcpdumpMissing);
  } else {
    specs.push({ name: 'tcpdump, reject-all BPF (libpcap floor)', argv: ['tcpdump', '-r', file, 'ether proto 0x1234'], file, packets: main.packets, slice: false, runs: plan.runs });
    specs.push({ name: 'tcpdump -w /dev/null', argv: ['tcpdump', '-r', file, '-w', '/dev/null'], file, packets: main.packets, slice: false, runs: plan.runs });
  }
  const tsharkCommand = `tshark -r FILE -q -z expert`;
  if (missing.get('tshark')) {
    skip('tshark expert analysis', tsharkCommand, missing.get('tshark')!);
  } else {
    let slice = main;
    if (plan.tsharkSlice < main.packets) slice = generate(join(work, 'slice-tshark.pcap'), { packets: plan.tsharkSlice, seed: plan.seed });
    specs.push({ name: 'tshark expert analysis', argv: ['tshark', '-r', slice.path, '-q', '-z', 'expert'], file: slice.path, packets: slice.packets, slice: slice !== main, runs: plan.tsharkRuns });
  }
  const stageCheck = (r: TimedRun): string | undefined => {
    const got = (JSON.parse(r.stdout) as { packets: number }).packets;
    return got === main.packets ? undefined : `read ${got} packets, expected ${main.packets}`;
  };
  specs.push({ name: 'pcap-analyzer: reader alone', argv: [process.execPath, STAGES, 'read', file], file, packets: main.packets, slice: false, runs: plan.runs, check: stageCheck });
  specs.push({ name: 'pcap-analyzer: decoder + flow table', argv: [process.execPath, STAGES, 'decode-flow', file], file, packets: main.packets, slice: false, runs: plan.runs, check: stageCheck });
  specs.push({
    name: 'pcap-analyzer analyze (all analyzers)', argv: [process.execPath, CLI, 'analyze', file, '--format', 'json', '--out', reportPath, '--no-progress'], file, packets: main.packets, slice: false, runs: plan.runs,
    check: () => {
      const report = JSON.parse(readFileSync(reportPath, 'utf8')) as Report;
      return report.capture.packets === main.packets ? undefined : `report counts ${report.capture.packets} packets, expected ${main.packets}`;
    },
  });

  // Warm the page cache: read every file once (not measured).
  for (const f of new Set(specs.map((s) => s.file))) await runTimed(['cat', f], { maxStdout: 0 });
  const runs = new Map<RowSpec, TimedRun[]>(specs.map((s) => [s, []]));
  const errors = new Map<RowSpec, string>();
  const rounds = Math.max(...specs.map((s) => s.runs));
  // Round-robin, so a noisy moment on the shared machine hits every tool alike.
  for (let round = 0; round < rounds; round++) {
    for (const spec of specs) {
      if (round >= spec.runs || errors.has(spec)) continue;
      log(`run ${round + 1}/${spec.runs}: ${spec.name}`);
      const r = await runTimed(spec.argv, { maxStdout: 1 << 16, timeoutMs: 1_800_000 });
      if (r.status !== 0) { errors.set(spec, `exit ${r.status}: ${r.stderr.trim().split('\n').slice(-2).join(' ')}`); continue; }
      const bad = spec.check?.(r);
      if (bad) { errors.set(spec, bad); continue; }
      runs.get(spec)!.push(r);
    }
  }
  for (const spec of specs) {
    const rs = runs.get(spec)!;
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
      ...(errors.has(spec) ? { error: errors.get(spec)! } : {}),
    });
  }
  const med = (name: string): number => res.throughput.find((r) => r.name === name)?.packetsPerSecond.median ?? NaN;
  const tw = med('tcpdump -w /dev/null');
  const ts = med('tshark expert analysis');
  for (const row of res.throughput) {
    row.vsTcpdumpWrite = row.packetsPerSecond.median / tw;
    row.vsTshark = row.packetsPerSecond.median / ts;
  }
}

async function analyzeOnce(file: string, work: string, limitSeconds: number): Promise<{ run: TimedRun; report: Report | undefined; error?: string }> {
  const out = join(work, 'scaling-report.json');
  const run = await runTimed([process.execPath, CLI, 'analyze', file, '--format', 'json', '--out', out, '--no-progress'],
    { maxStdout: 0, timeoutMs: limitSeconds * 1000, progressFile: file });
  if (run.timedOut) return { run, report: undefined };
  if (run.status !== 0) return { run, report: undefined, error: `exit ${run.status}: ${run.stderr.trim().split('\n').slice(-2).join(' ')}` };
  const report = JSON.parse(readFileSync(out, 'utf8')) as Report;
  rmSync(out, { force: true });
  return { run, report };
}

async function scaling(plan: Plan, work: string, main: GenerateResult | undefined, res: Results): Promise<void> {
  const add = async (kind: ScalingRow['kind'], label: string, gen: GenerateResult, remove: boolean): Promise<void> => {
    log(`scaling: analyze ${label}`);
    const { run, report, error } = await analyzeOnce(gen.path, work, plan.scalingLimitSeconds);
    if (remove) rmSync(gen.path, { force: true });
    const cpu = run.userSeconds + run.sysSeconds;
    // Stopped at the time limit: the packets read so far, from the file offset it had reached.
    const packets = run.timedOut ? Math.round(gen.packets * (Number.isFinite(run.progress) ? run.progress : NaN)) : report?.capture.packets ?? gen.packets;
    const flows = report ? Number(report.counters['tcp.streams'] ?? 0) + Number(report.counters['udp.streams'] ?? 0) : gen.flows;
    const row: ScalingRow = {
      kind, label, packets: gen.packets, fileBytes: gen.bytes, flows, packetsPerFlow: gen.packetsPerFlow,
      packetsPerSecond: packets / run.wallSeconds, cpuUsPerPacket: (cpu / packets) * 1e6, peakRssMB: run.maxRssBytes / MB,
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
    const reuse = main && main.packets === packets;
    const gen = reuse ? main : generate(join(work, `length-${f}x.pcap`), { packets, seed: plan.seed });
    await add('length', `${f}× length`, gen, !reuse);
  }
  for (const flows of plan.flowCounts) {
    const gen = generate(join(work, `flows-${flows}.pcap`), { packets: plan.packets, seed: plan.seed, flows });
    await add('flows', `${rate(flows)} flows (${gen.packetsPerFlow} packet${gen.packetsPerFlow > 1 ? 's' : ''} each)`, gen, true);
  }
}

function targets(plan: Plan, res: Results): void {
  const analyze = res.throughput.find((r) => r.name.startsWith('pcap-analyzer analyze'));
  const onTarget = plan.packets >= 2_000_000 ? '' : ` (on the ${num(plan.packets)}-packet ${plan.quick ? 'quick ' : ''}capture; the target is set on 2 M packets)`;
  if (analyze && Number.isFinite(analyze.vsTcpdumpWrite)) {
    res.targets.push({ what: `analyze packets/s ÷ tcpdump -w /dev/null packets/s${onTarget}`, target: '≥ 1.0×', measured: ratio(analyze.vsTcpdumpWrite), met: analyze.vsTcpdumpWrite >= 1 });
  }
  if (analyze && Number.isFinite(analyze.peakRssMB)) {
    res.targets.push({ what: `analyze peak RSS${onTarget}`, target: '≤ 200 MB', measured: `${num(analyze.peakRssMB)} MB`, met: analyze.peakRssMB <= 200 });
  }
  if (res.live) {
    const at200 = res.live.rows.filter((r) => r.capturer === 'agent' && r.rate === 200_000);
    if (at200.length) {
      const r = at200[0]!;
      res.targets.push({ what: `live capture at 200 k packets/s (achieved ${rate(r.achievedPps)}), packets lost by the agent`, target: '0', measured: `${num(r.lost)} of ${num(r.sent)}`, met: r.lost === 0 });
    }
  }
}

// ---------------------------------------------------------------------------
// Markdown

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
  }
  if (res.scaling.length) {
    out.push('## Scaling of `analyze` (one run each)', '');
    out.push('| capture | packets | MB | flows | packets/s | CPU µs/packet | × first row\'s cost | peak RSS MB | flows evicted |');
    out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const r of res.scaling) {
      out.push(`| ${r.label}${r.stopped ? ` — ${r.stopped}` : ''}${r.error ? ` — ERROR: ${r.error}` : ''} | ${num(r.packets)} | ${num(r.fileBytes / MB)} | ${num(r.flows)} | ${rate(r.packetsPerSecond)} | ${num(r.cpuUsPerPacket, 2)} | ${ratio(r.costVsFirst)} | ${num(r.peakRssMB)} | ${num(r.flowsEvicted)} |`);
    }
    out.push('', 'Length rows are the realistic mix at 1×/4×/16× the packets; flow rows give every flow its own 5-tuple (mice of k packets). The flow table holds `flows.maxFlows` (65,536 by default) and evicts the least recently active (counted); each security detector keeps up to its `maxKeys` (100,000 by default) keys. A cost column near 1.0× means the cost per packet does not grow with the size.', '');
  }
  if (res.live) {
    const l = res.live;
    out.push(`## Live capture (${num(l.slicePackets)}-packet slice, tcpreplay -K into a veth, capturer in another namespace; agent warmed up 1 s at ${rate(WARMUP_PPS)} packets/s first)`, '');
    out.push('| capturer | target packets/s | achieved packets/s | sent | seen | kernel drops | interface drops | agent drops | lost | CPU µs/packet |');
    out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const r of l.rows) {
      out.push(`| ${r.capturer === 'agent' ? 'pcap-analyzer agent' : `tcpdump -B ${TCPDUMP_BUFFER_KIB} -w /dev/null`} | ${r.rate === 'top' ? 'top speed' : rate(r.rate)} | ${rate(r.achievedPps)} | ${num(r.sent)} | ${num(r.seen)} | ${num(r.kernelDrops)} | ${num(r.interfaceDrops)} | ${num(r.agentDrops)} | ${num(r.lost)} | ${num(r.cpuUsPerPacket, 2)} |`);
    }
    out.push('', `**Highest rate with zero loss:** agent ${l.zeroLossPps.agent ? `${rate(l.zeroLossPps.agent)} packets/s` : 'none of the rates tried'}; tcpdump ${l.zeroLossPps.tcpdump ? `${rate(l.zeroLossPps.tcpdump)} packets/s` : 'none of the rates tried'}. Achieved rates are what tcpreplay reports; it cannot always reach the target here.`, '');
  }
  if (res.ingest.length) {
    out.push('## Publishing and ingest (agent → nats-server → collector; 1-second windows)', '');
    out.push('| store | run | windows | findings | published/s | committed/s | latency p50 ms | p99 ms | max ms | DB write ms/batch |');
    out.push('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const r of res.ingest) {
      out.push(`| ${r.store}${r.error ? ` — ${r.error}` : ''} | ${r.mode} | ${num(r.windows)} | ${num(r.findings)} | ${num(r.publishedPerSecond)} | ${num(r.committedPerSecond)} | ${num(r.latencyP50Ms)} | ${num(r.latencyP99Ms)} | ${num(r.latencyMaxMs)} | ${num(r.dbWriteMeanMs, 1)} |`);
    }
    out.push('', `Burst: replay at top speed (capacity). Paced: ${plan.pacedSpeed}× real time (about ${plan.pacedSpeed} windows/s, no backlog) for ${plan.pacedSeconds} s. Latency: from the publish (seen by a NATS subscriber) to the row's arrival time in the committing transaction. The capture is the benchmark mix stretched in time (${num(plan.ingestPackets)} packets over about ${num(plan.ingestSpanSeconds)} s); stretched round trips look slow, hence many findings.`, '');
  }
  if (res.skipped.length) {
    out.push('## Skipped', '');
    for (const s of res.skipped) out.push(`- ${s.what}: ${s.reason}`);
    out.push('');
  }
  if (res.targets.length) {
    out.push('## Targets (issue 8)', '');
    out.push('| what | target | measured | met |', '|---|---|---|---|');
    for (const t of res.targets) out.push(`| ${t.what} | ${t.target} | ${t.measured} | ${t.met === null ? '–' : t.met ? 'yes' : '**no**'} |`);
    out.push('');
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
    schema: 'pcap-analyzer/bench@1', mode: plan.quick ? 'quick' : 'full', startedAt: new Date(started).toISOString(), seconds: 0,
    machine: machineInfo(), throughput: [], scaling: [], ingest: [], skipped: [], targets: [],
  };
  if (prereqs.missing.has(GNU_TIME)) {
    throw new Error(prereqs.missing.get(GNU_TIME)!);
  }
  for (const [, reason] of prereqs.missing) log(`missing: ${reason}`);

  const needsMain = plan.sections.has('throughput') || plan.sections.has('live') || plan.profile || (plan.sections.has('scaling') && plan.lengthFactors.some((f) => f * plan.lengthBase === plan.packets));
  const main = needsMain ? generate(join(work, 'capture.pcap'), { packets: plan.packets, seed: plan.seed }) : undefined;
  if (main) res.capture = main;

  if (plan.sections.has('throughput') && main) await throughput(plan, work, main, prereqs.missing, res);
  if (plan.sections.has('scaling')) await scaling(plan, work, main, res);

  if (plan.sections.has('live')) {
    const reason = !netnsAvailable() ? netnsUnavailableReason()
      : prereqs.missing.get('tcpreplay') ?? prereqs.missing.get('tcpdump') ?? prereqs.missing.get('ip') ?? prereqs.missing.get('/usr/sbin/nats-server');
    if (reason) {
      res.skipped.push({ what: 'live capture rows', reason });
      log(`skipped live capture: ${reason}`);
    } else {
      const slice = plan.liveSlice === main?.packets ? main : generate(join(work, 'slice-live.pcap'), { packets: plan.liveSlice, seed: plan.seed });
      log(`live capture: ${plan.liveRates.join(', ')} packets/s`);
      try {
        res.live = await benchLive(slice.path, slice.packets, plan.liveRates, work);
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
      for (const store of ['sqlite', 'postgres'] as const) {
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
          res.ingest.push(...await benchIngest({ store, ...(databaseUrl ? { databaseUrl } : {}), file: ingest.path, work, pacedSpeed: plan.pacedSpeed, pacedSeconds: plan.pacedSeconds }));
        } catch (err) {
          res.skipped.push({ what: `ingest into ${store}`, reason: `failed: ${err instanceof Error ? err.message : String(err)}` });
        } finally {
          await drop?.().catch(() => undefined);
        }
      }
    }
  }

  if (plan.profile && main) {
    log('profiling analyze (node --cpu-prof)');
    res.profile = profileAnalyze(main.path, 20);
  }

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
