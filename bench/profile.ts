/**
 * Where `analyze` spends its time: runs it under `node --cpu-prof` and sums the
 * profile's samples by function (self time) and by stage (the source folder:
 * capture, decode, flow, window, each analyzer, report, Node internals, GC).
 *
 *   node dist/bench/profile.js FILE [--top N]        profile analyze on FILE
 *   node dist/bench/profile.js --summarize X.cpuprofile [--top N]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { CLI } from '../test/helpers/paths.js';

interface CallFrame { functionName: string; url: string; lineNumber: number }
interface ProfileNode { id: number; callFrame: CallFrame }
interface CpuProfile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number }

export interface ProfileLine { name: string; where: string; stage: string; selfMs: number; percent: number }
export interface ProfileSummary { totalMs: number; functions: ProfileLine[]; stages: Array<{ stage: string; selfMs: number; percent: number }> }

/** The pipeline stage a source location belongs to. */
function stageOf(url: string, name: string): string {
  if (name === '(garbage collector)') return 'GC';
  if (name === '(idle)') return 'idle: main thread waiting (file reads in the thread pool)';
  if (name === '(program)' || name === '(root)') return `V8 ${name}`;
  if (name === 'read' && !url) return 'agent/capture (fs read binding)';
  const m = /\/dist\/(.*)$/.exec(url);
  if (!m) return url.startsWith('node:') ? 'Node internals' : url ? 'dependencies' : 'native';
  const path = m[1]!;
  const analyzer = /^agent\/analyzers\/(?:lib\/)?([^/]+)\.js$/.exec(path);
  if (analyzer) return path.includes('/lib/') ? 'analyzers (shared lib)' : `analyzer ${analyzer[1]}`;
  const dir = /^(agent\/[^/]+|common|collector)\//.exec(path);
  if (dir) return dir[1]!;
  return path;
}

export function summarizeProfile(profile: CpuProfile, top = 25): ProfileSummary {
  const byNode = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) byNode.set(profile.samples[i]!, (byNode.get(profile.samples[i]!) ?? 0) + (profile.timeDeltas[i] ?? 0));
  const fns = new Map<string, ProfileLine>();
  const stages = new Map<string, number>();
  let total = 0;
  for (const node of profile.nodes) {
    const us = byNode.get(node.id) ?? 0;
    if (!us) continue;
    total += us;
    const f = node.callFrame;
    const name = f.functionName || '(anonymous)';
    const short = f.url.replace(/^.*\/dist\//, '').replace(/^file:\/\//, '');
    const where = f.url ? `${short}:${f.lineNumber + 1}` : '';
    const key = `${name} ${where}`;
    const stage = stageOf(f.url, name);
    const line = fns.get(key) ?? { name, where, stage, selfMs: 0, percent: 0 };
    line.selfMs += us / 1000;
    fns.set(key, line);
    stages.set(stage, (stages.get(stage) ?? 0) + us / 1000);
  }
  const totalMs = total / 1000;
  const functions = [...fns.values()].sort((a, b) => b.selfMs - a.selfMs).slice(0, top);
  for (const f of functions) f.percent = (100 * f.selfMs) / totalMs;
  let analyzers = 0;
  for (const [stage, ms] of stages) if (stage.startsWith('analyzer')) analyzers += ms;
  const rows = [...stages].sort((a, b) => b[1] - a[1]).map(([stage, selfMs]) => ({ stage, selfMs, percent: (100 * selfMs) / totalMs }));
  return { totalMs, functions, stages: [{ stage: 'all analyzers together', selfMs: analyzers, percent: (100 * analyzers) / totalMs }, ...rows] };
}

/** Runs `analyze FILE --format json` under --cpu-prof and summarizes the profile. */
export function profileAnalyze(file: string, top = 25): ProfileSummary {
  const dir = mkdtempSync(join(tmpdir(), 'pa-bench-prof-'));
  try {
    const r = spawnSync(process.execPath, ['--cpu-prof', '--cpu-prof-dir', dir, CLI, 'analyze', file, '--format', 'json', '--out', join(dir, 'report.json'), '--no-progress'],
      { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
    if (r.status !== 0) throw new Error(`analyze under --cpu-prof failed (${r.status}): ${r.stderr}`);
    // One profile per thread: the analysis thread's is the largest (the main thread mostly waits for it).
    const name = readdirSync(dir).filter((n) => n.endsWith('.cpuprofile'))
      .sort((a, b) => statSync(join(dir, b)).size - statSync(join(dir, a)).size)[0];
    if (!name) throw new Error('no .cpuprofile written');
    return summarizeProfile(JSON.parse(readFileSync(join(dir, name), 'utf8')) as CpuProfile, top);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function profileMarkdown(s: ProfileSummary, stagesShown = 14): string {
  const lines = [
    `Total sampled: ${(s.totalMs / 1000).toFixed(2)} s (the profiler slows analyze down; compare shares, not times). Self time goes to the function`
    + ' the sample was in after inlining: `analyzeCapture` holds the inlined reader and pipeline loop.',
    '',
    '| stage (self time) | ms | % |',
    '|---|---:|---:|',
    ...s.stages.slice(0, stagesShown).map((x) => `| ${x.stage} | ${x.selfMs.toFixed(0)} | ${x.percent.toFixed(1)} |`),
    '',
    '| function (self time) | where | stage | ms | % |',
    '|---|---|---|---:|---:|',
    ...s.functions.map((f) => `| ${f.name} | ${f.where} | ${f.stage} | ${f.selfMs.toFixed(0)} | ${f.percent.toFixed(1)} |`),
  ];
  return lines.join('\n');
}

function main(argv: string[]): void {
  let top = 25;
  const i = argv.indexOf('--top');
  if (i >= 0) { top = Number(argv[i + 1]); argv.splice(i, 2); }
  if (argv[0] === '--summarize' && argv[1]) {
    process.stdout.write(`${profileMarkdown(summarizeProfile(JSON.parse(readFileSync(argv[1], 'utf8')) as CpuProfile, top))}\n`);
    return;
  }
  if (!argv[0]) throw new Error('usage: node dist/bench/profile.js FILE [--top N] | --summarize X.cpuprofile [--top N]');
  process.stdout.write(`${profileMarkdown(profileAnalyze(argv[0], top))}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    main(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`profile: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
}
