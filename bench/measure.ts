/**
 * Running a command and measuring it from outside, the same way for every
 * tool, ours included: wall time from spawn to exit, and user and system CPU
 * seconds and peak RSS of the process (and the children it waited for) from
 * GNU time (`/usr/bin/time -f`, Debian package `time`).
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

export const GNU_TIME = '/usr/bin/time';

export interface TimedRun {
  status: number | null;
  wallSeconds: number;
  userSeconds: number;
  sysSeconds: number;
  /** Peak resident set, bytes. */
  maxRssBytes: number;
  stdout: string;
  stderr: string;
  /** Stopped at the time limit (the figures are then up to that moment). */
  timedOut: boolean;
  /** When stopped: how far the command had read `progressFile`, 0..1 (NaN when unknown). */
  progress: number;
  /** With `threadSampleMs`: CPU of each thread of the measured process, busiest first. */
  threads?: ThreadCpu[];
}

/** One thread's CPU (user + system) as last sampled before it or its process ended. */
export interface ThreadCpu {
  tid: number;
  /** The process's first thread (Node's main thread). */
  main: boolean;
  cpuSeconds: number;
}

/**
 * How far `pid` has read `file`, as a fraction of its size: the bytes it has
 * read so far (/proc/PID/io rchar) while it holds the file open. The capture
 * reader reads at explicit offsets (pread), which leave the descriptor's
 * position at 0, so the position in fdinfo cannot say it. rchar also counts the
 * program's own files (a few MB of modules): on a capture of tens of MB or
 * more that is within a few percent, and never an underestimate.
 */
function readProgress(pid: number, file: string): number {
  try {
    const size = statSync(file).size;
    const open = readdirSync(`/proc/${pid}/fd`).some((fd) => {
      try { return readlinkSync(`/proc/${pid}/fd/${fd}`) === file; } catch { return false; }
    });
    if (!open || !size) return NaN;
    const rchar = Number(/^rchar:\s*(\d+)/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))?.[1]);
    return Math.min(1, rchar / size);
  } catch {
    // Process gone or /proc unreadable.
  }
  return NaN;
}

/** The direct children of a process (GNU time's child is the measured command). */
function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

const timeDir = mkdtempSync(join(tmpdir(), 'pa-bench-time-'));
process.once('exit', () => rmSync(timeDir, { recursive: true, force: true }));
let seq = 0;

export interface RunOptions {
  /** Characters of stdout kept. */
  maxStdout?: number;
  /** Time limit: the measured command (not GNU time) is killed, so its figures up to then are still reported. */
  timeoutMs?: number;
  /** A file the command reads sequentially: on timeout, how far it got is reported. */
  progressFile?: string;
  /** Variables added to this process's environment for the command. */
  env?: Readonly<Record<string, string>>;
  /**
   * Sample the CPU of each thread of the measured command this often (ms).
   * GNU time sees the process as a whole, and a thread's figures are gone with
   * the process, so each is the last sample taken: up to one interval short.
   */
  threadSampleMs?: number;
}

/** USER_HZ: the unit of /proc's CPU times (100 on Linux). */
const CLK_TCK = 100;

/** utime + stime of every thread of `pid`, seconds, into `into` (threads already ended keep their last sample). */
function sampleThreads(pid: number, into: Map<number, number>): void {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return; // gone
  }
  for (const tid of tids) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      into.set(Number(tid), (Number(f[11]) + Number(f[12])) / CLK_TCK);
    } catch {
      // Thread ended between the listing and the read.
    }
  }
}

/** Runs argv to completion under GNU time; stdout is kept (up to `maxStdout` characters). */
export function runTimed(argv: string[], options: RunOptions = {}): Promise<TimedRun> {
  const out = join(timeDir, `t${seq++}`);
  const child = spawn(GNU_TIME, ['-o', out, '-f', '%e %U %S %M', ...argv], {
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(options.env ? { env: { ...process.env, ...options.env } } : {}),
  });
  const max = options.maxStdout ?? 1 << 20;
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (d: string) => { if (stdout.length < max) stdout += d; });
  child.stderr.on('data', (d: string) => { stderr = (stderr + d).slice(-8000); });
  let timedOut = false;
  let progress = NaN;
  const timer = options.timeoutMs ? setTimeout(() => {
    timedOut = true;
    const pids = child.pid === undefined ? [] : childPids(child.pid);
    if (!pids.length) { child.kill('SIGKILL'); return; }
    for (const pid of pids) {
      if (options.progressFile && Number.isNaN(progress)) progress = readProgress(pid, options.progressFile);
      try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
    }
  }, options.timeoutMs) : undefined;
  const threadCpu = new Map<number, number>();
  let measuredPid: number | undefined;
  const sampler = options.threadSampleMs ? setInterval(() => {
    if (measuredPid === undefined && child.pid !== undefined) measuredPid = childPids(child.pid)[0];
    if (measuredPid !== undefined) sampleThreads(measuredPid, threadCpu);
  }, options.threadSampleMs) : undefined;
  const started = performance.now();
  let ended = NaN;
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', () => { ended = performance.now(); });
    child.once('close', (status) => {
      if (timer) clearTimeout(timer);
      if (sampler) clearInterval(sampler);
      let fields: number[] = [];
      try {
        // The last line: GNU time writes "Command exited with non-zero status N" before it on failure.
        const lines = readFileSync(out, 'utf8').trim().split('\n');
        fields = lines[lines.length - 1]!.trim().split(/\s+/).map(Number);
        rmSync(out, { force: true });
      } catch {
        // No figures (killed before GNU time wrote them).
      }
      const [, user = NaN, sys = NaN, rssKb = NaN] = fields;
      // Wall time from here (GNU time's %e has 10 ms steps: too coarse for tcpdump on a small file).
      const wall = ((Number.isNaN(ended) ? performance.now() : ended) - started) / 1000;
      const threads = sampler ? [...threadCpu].map(([tid, cpuSeconds]): ThreadCpu => ({ tid, main: tid === measuredPid, cpuSeconds })).sort((a, b) => b.cpuSeconds - a.cpuSeconds) : undefined;
      resolve({ status, wallSeconds: wall, userSeconds: user, sysSeconds: sys, maxRssBytes: rssKb * 1024, stdout, stderr, timedOut, progress, ...(threads ? { threads } : {}) });
    });
  });
}

export interface Spread { min: number; median: number; max: number }

/** CPU seconds (user + system, all threads) of a live process, from /proc; NaN when unknown. */
export function processCpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLK_TCK; // fields 14 and 15: utime, stime
  } catch {
    return NaN;
  }
}

/** CPU seconds the whole machine spent busy since boot (all cores; /proc/stat), NaN when unknown. */
export function machineBusySeconds(): number {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
    const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = fields;
    return (user + nice + system + irq + softirq + steal) / CLK_TCK;
  } catch {
    return NaN;
  }
}

export function spread(values: readonly number[]): Spread {
  const v = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (!v.length) return { min: NaN, median: NaN, max: NaN };
  const mid = v.length >> 1;
  return { min: v[0]!, median: v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2, max: v[v.length - 1]! };
}

/** Nearest-rank percentile (p in 0..100) of unsorted values. */
export function percentile(values: readonly number[], p: number): number {
  const v = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (!v.length) return NaN;
  return v[Math.min(v.length - 1, Math.max(0, Math.ceil((p / 100) * v.length) - 1))]!;
}

/** Everything a command prints (stdout then stderr), or '' when it cannot run. */
export function commandOutput(argv: string[]): string {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 10_000 });
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- spawnSync gives null output when the process could not start
  return r.error ? '' : `${r.stdout ?? ''}\n${r.stderr ?? ''}`;
}

/** First line of a command's output (stdout, else stderr), or '' when it cannot run. */
export function firstLine(argv: string[]): string {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 10_000 });
  if (r.error) return '';
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- spawnSync gives null output when the process could not start
  return `${r.stdout ?? ''}\n${r.stderr ?? ''}`.split('\n').map((l) => l.trim()).find((l) => l.length > 0) ?? '';
}

export function commandExists(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
