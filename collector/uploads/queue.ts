/**
 * The analysis queue of uploaded captures.
 *
 * - Admission: at most `maxQueueSize` analyses queued or running, counting
 *   uploads still streaming in (`tryReserve()` before the body is read, so a
 *   full queue answers 503 without accepting the bytes).
 * - Concurrency: ONE analysis at a time by default. An analysis is a single
 *   CPU-bound thread that also wants up to `analysisMemoryMB` of heap; running
 *   several at once makes each slower (the same total work shares the cores
 *   with the collector's ingest and API) and multiplies the peak memory, so the
 *   collector could be OOM-killed by several large uploads arriving together.
 *   Raise `concurrency` only on hosts with spare cores *and* memory.
 * - Isolation: each analysis runs in a child process (analysis-child.js) with a
 *   heap limit and a kill timer; a crash, OOM or hang fails that job only. Its
 *   temporary files go to a directory of its own (TMPDIR), removed when it
 *   exits, and swept at start when a crash left one behind.
 * - Reports: the child writes the report as JSON and as HTML, capped
 *   (`maxReportWindows`, `maxReportFindings`, `maxReportMB`), into
 *   <dataDir>/reports/; the collector serves those files as they are and never
 *   parses a report.
 * - Restart policy (`recover()`): a job left `running` by a previous process is
 *   failed ("collector restarted during analysis"): we cannot tell whether that
 *   analysis is what brought the process down, and re-running it could loop.
 *   A job left `queued` whose upload file is still here is queued again (it was
 *   accepted with 202 and never started; its client is still polling). A queued
 *   job whose file is gone is failed. With PostgreSQL, several collectors share
 *   the jobs table; a job whose file is not in *this* collector's dataDir may be
 *   another collector's, so it is left alone (the TTL sweep removes it).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CollectorConfig } from '../../common/config.js';
import type { CaptureJob, Store } from '../store/types.js';
import type { ChildMessage } from './analysis-child.js';

/** The subset of a pino / Fastify logger used here. */
export interface LogSink {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export const uploadsDir = (dataDir: string): string => join(dataDir, 'uploads');
/** Where an upload's bytes live while it waits and runs. */
export const uploadPath = (dataDir: string, id: string): string => join(uploadsDir(dataDir), `${id}.cap`);
/** The analysis child's TMPDIR (spill files), removed when it exits. */
export const jobTempDir = (dataDir: string, id: string): string => join(uploadsDir(dataDir), `${id}.tmp`);
export const reportsDir = (dataDir: string): string => join(dataDir, 'reports');
/** A finished analysis's report, as the child wrote it. */
export const reportPath = (dataDir: string, id: string, format: 'json' | 'html'): string => join(reportsDir(dataDir), `${id}.${format}`);

/** Upload and report files are the uploader's data: readable by the collector's user only. */
export const PRIVATE_FILE = 0o600;
export const PRIVATE_DIR = 0o700;

export type QueueOutcome = 'done' | 'failed' | 'timeout' | 'rejected' | 'cancelled';

export interface QueueJob {
  id: string;
  /** The client's (sanitized) file name, shown as the report's source path. */
  filename: string;
}

export interface AnalysisQueueOptions {
  store: Store;
  config: Pick<CollectorConfig, 'maxQueueSize' | 'analysisTimeoutSeconds' | 'analysisMemoryMB' | 'maxReportWindows' | 'maxReportFindings' | 'maxReportMB'>;
  dataDir: string;
  logger: LogSink;
  /** Analyses running at once (default 1; see the file comment). */
  concurrency?: number;
  /** YAML configuration for the analyzers, passed on to the child (else defaults + environment). */
  configPath?: string;
  /** The child's environment (default: this process's minus secrets, so PCAP_ANALYZER_* settings apply). */
  env?: NodeJS.ProcessEnv;
  /** Progress writes to the store at most this often per job (default 500 ms). */
  progressIntervalMs?: number;
  /** Called once per outcome (metrics counters); `outcomes` holds the same totals. */
  onOutcome?: (outcome: QueueOutcome) => void;
}

interface Entry {
  job: QueueJob;
  child?: ChildProcess;
  /** DELETE: stop and write nothing more. */
  cancelled: boolean;
  timedOut: boolean;
  /** close(): stop, fail the job. */
  shutdown: boolean;
  /** Store writes of this job, in order (progress never lands after the final status). */
  writes: Promise<void>;
  /** Settles when the job has left the queue (child exited, files removed). */
  finished: Promise<void>;
  settle: () => void;
}

const CHILD_SCRIPT = fileURLToPath(new URL('./analysis-child.js', import.meta.url));
/** Tail of the child's stderr kept to explain a crash (V8 prints its OOM reason there). */
const STDERR_TAIL = 8192;
/** Temp files with no job, untouched this long, are leftovers of a crash (uploads in progress write constantly). */
const ORPHAN_AGE_MS = 10 * 60_000;

export class AnalysisQueue {
  private readonly store: Store;
  private readonly config: AnalysisQueueOptions['config'];
  private readonly dataDir: string;
  private readonly logger: LogSink;
  private readonly concurrency: number;
  private readonly configPath: string | undefined;
  private readonly env: NodeJS.ProcessEnv;
  private readonly progressIntervalMs: number;
  private readonly onOutcome: ((outcome: QueueOutcome) => void) | undefined;
  private reserved = 0;
  private readonly waiting: Entry[] = [];
  private readonly running = new Map<string, Entry>();
  private closed = false;
  /** Outcome counters, for metrics. `rejected`: tryReserve() said no (503). */
  readonly outcomes: Record<QueueOutcome, number> = { done: 0, failed: 0, timeout: 0, rejected: 0, cancelled: 0 };

  constructor(options: AnalysisQueueOptions) {
    this.store = options.store;
    this.config = options.config;
    this.dataDir = options.dataDir;
    this.logger = options.logger;
    this.concurrency = Math.max(1, Math.floor(options.concurrency ?? 1));
    this.configPath = options.configPath;
    this.env = options.env ?? withoutSecrets(process.env);
    this.progressIntervalMs = options.progressIntervalMs ?? 500;
    this.onOutcome = options.onOutcome;
  }

  get max(): number { return this.config.maxQueueSize; }

  /** Running, waiting, and uploads holding a slot while their body streams in. */
  stats(): { active: number; waiting: number; uploading: number; max: number } {
    return { active: this.running.size, waiting: this.waiting.length, uploading: this.reserved, max: this.max };
  }

  /** Takes a slot for an upload about to be read; false (and counted as rejected) when full. */
  tryReserve(): boolean {
    if (this.closed || this.reserved + this.waiting.length + this.running.size >= this.max) {
      this.count('rejected');
      return false;
    }
    this.reserved++;
    return true;
  }

  /** Gives back a slot whose upload was not accepted. */
  release(): void {
    if (this.reserved > 0) this.reserved--;
  }

  /** Queues an accepted upload (its job already created, file at uploadPath); uses the caller's reservation. */
  enqueue(job: QueueJob): void {
    this.release();
    this.push(job);
  }

  has(id: string): boolean {
    return this.running.has(id) || this.waiting.some((e) => e.job.id === id);
  }

  /** Stops a job (DELETE): drops it from the queue or kills its child; resolves once the child has exited. */
  async cancel(id: string): Promise<boolean> {
    const index = this.waiting.findIndex((e) => e.job.id === id);
    if (index >= 0) {
      this.waiting.splice(index, 1);
      this.count('cancelled');
      await this.removeFiles(id);
      return true;
    }
    const entry = this.running.get(id);
    if (!entry) return false;
    entry.cancelled = true;
    entry.child?.kill('SIGKILL');
    await entry.finished;
    return true;
  }

  /** At start: fail or re-queue jobs a previous process left unfinished (policy in the file comment). */
  async recover(): Promise<{ requeued: number; failed: number }> {
    for (const dir of [uploadsDir(this.dataDir), reportsDir(this.dataDir)]) {
      await mkdir(dir, { recursive: true, mode: PRIVATE_DIR });
      await chmod(dir, PRIVATE_DIR); // also a directory an older version made with the default mode
    }
    const jobs = (await this.store.unfinishedJobs()).sort((a, b) => a.createdAt.localeCompare(b.createdAt));
    let requeued = 0;
    let failed = 0;
    for (const job of jobs) {
      if (this.has(job.id)) continue;
      const present = existsSync(uploadPath(this.dataDir, job.id));
      if (!present && this.store.kind === 'postgres') continue;
      if (job.status === 'queued' && present) {
        this.push({ id: job.id, filename: job.filename });
        requeued++;
        continue;
      }
      await this.store.updateJob(job.id, {
        status: 'failed',
        error: 'collector restarted during analysis',
        finishedAt: new Date().toISOString(),
      });
      await this.removeFiles(job.id);
      failed++;
    }
    await this.removeOrphans();
    if (requeued || failed) this.logger.info({ requeued, failed }, 'uploads left by the previous run recovered');
    return { requeued, failed };
  }

  /** Stops taking work and kills running analyses (their jobs fail); waiting jobs stay queued for recover(). */
  async close(): Promise<void> {
    this.closed = true;
    this.waiting.length = 0;
    const running = [...this.running.values()];
    for (const entry of running) {
      entry.shutdown = true;
      entry.child?.kill('SIGKILL');
    }
    await Promise.all(running.map((e) => e.finished));
  }

  /** Resolves when nothing is running or waiting (tests, graceful drains). */
  async idle(): Promise<void> {
    while (this.running.size > 0 || (this.waiting.length > 0 && !this.closed)) {
      await Promise.race([...this.running.values()].map((e) => e.finished));
    }
  }

  private count(outcome: QueueOutcome): void {
    this.outcomes[outcome]++;
    this.onOutcome?.(outcome);
  }

  private push(job: QueueJob): void {
    let settle!: () => void;
    const finished = new Promise<void>((resolve) => { settle = resolve; });
    // `finished` settles when run() is over; cancel() of a waiting entry never awaits it.
    const entry: Entry = { job, cancelled: false, timedOut: false, shutdown: false, writes: Promise.resolve(), finished, settle };
    this.waiting.push(entry);
    this.pump();
  }

  private pump(): void {
    while (!this.closed && this.running.size < this.concurrency && this.waiting.length > 0) {
      const entry = this.waiting.shift()!;
      this.running.set(entry.job.id, entry);
      void this.run(entry)
        .catch((err: unknown) => this.logger.error({ err, job: entry.job.id }, 'analysis bookkeeping failed'))
        .finally(() => {
          this.running.delete(entry.job.id);
          entry.settle();
          this.pump();
        });
    }
  }

  /** Queues a store write of this job after its earlier ones; errors are logged, not thrown. */
  private write(entry: Entry, patch: Partial<Omit<CaptureJob, 'id' | 'createdAt'>>): Promise<void> {
    entry.writes = entry.writes
      .then(() => (entry.cancelled ? undefined : this.store.updateJob(entry.job.id, patch)))
      .catch((err: unknown) => this.logger.error({ err, job: entry.job.id }, 'job update failed'));
    return entry.writes;
  }

  private async run(entry: Entry): Promise<void> {
    const { id } = entry.job;
    const started = Date.now();
    void this.write(entry, { status: 'running', startedAt: new Date(started).toISOString(), progress: 0 });

    const tempDir = jobTempDir(this.dataDir, id);
    await mkdir(tempDir, { recursive: true, mode: PRIVATE_DIR });
    const c = this.config;
    // `--name=` keeps a client's file name starting with "-" a value, never an option.
    const args = [uploadPath(this.dataDir, id), `--json=${reportPath(this.dataDir, id, 'json')}`, `--html=${reportPath(this.dataDir, id, 'html')}`,
      `--name=${entry.job.filename || `${id}.cap`}`, `--max-windows=${c.maxReportWindows}`, `--max-findings=${c.maxReportFindings}`,
      `--max-bytes=${Math.floor(c.maxReportMB * 1024 * 1024)}`];
    if (this.configPath) args.push(`--config=${this.configPath}`);
    const child = fork(CHILD_SCRIPT, args, {
      // Only the heap limit: never inherit our own execArgv (--inspect, test runner flags).
      execArgv: [`--max-old-space-size=${this.config.analysisMemoryMB}`],
      env: { ...this.env, TMPDIR: tempDir },
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      serialization: 'json',
    });
    entry.child = child;
    let stderr = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (text: string) => { stderr = (stderr + text).slice(-STDERR_TAIL); });

    let result: ChildMessage | undefined;
    let lastProgressWrite = 0;
    child.on('message', (raw: unknown) => {
      const message = asChildMessage(raw);
      if (!message) return;
      if (message.type !== 'progress') { result = message; return; }
      const now = Date.now();
      if (now - lastProgressWrite < this.progressIntervalMs) return;
      lastProgressWrite = now;
      void this.write(entry, { progress: message.percent });
    });

    const limitSeconds = this.config.analysisTimeoutSeconds;
    const timer = setTimeout(() => { entry.timedOut = true; child.kill('SIGKILL'); }, limitSeconds * 1000);
    timer.unref();
    // 'close' (not 'exit'): fires after the IPC channel and stderr are drained, so `result` is final.
    const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.once('close', (c: number | null, s: NodeJS.Signals | null) => resolve({ code: c, signal: s }));
      child.once('error', (err) => { stderr += `\n${err.message}`; resolve({ code: null, signal: null }); });
    });
    clearTimeout(timer);
    entry.child = undefined;

    // The final status is written after the files are removed: a client that sees done/failed
    // never finds the upload still on disk.
    let final: Partial<Omit<CaptureJob, 'id' | 'createdAt'>> | undefined;
    const fail = (error: string, outcome: 'failed' | 'timeout'): void => {
      this.count(outcome);
      this.logger.warn({ job: id, code, signal, error, stderr: stderr.slice(-1000) || undefined }, 'capture analysis failed');
      final = { status: 'failed', error, finishedAt: new Date().toISOString() };
    };
    let keepReport = false;
    try {
      if (entry.cancelled) this.count('cancelled');
      else if (entry.shutdown) fail('collector restarted during analysis', 'failed');
      else if (entry.timedOut) fail(`analysis took longer than ${limitSeconds} s`, 'timeout');
      else if (code === 0 && result?.type === 'done') {
        await entry.writes;
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- set by another callback while this code waits; the narrowed type does not see it
        if (entry.cancelled) { this.count('cancelled'); return; }
        if (!existsSync(reportPath(this.dataDir, id, 'json'))) {
          // Details (the child's stderr) are in the log line fail() writes; the client gets the gist.
          fail('the analysis finished without a report (see the collector log)', 'failed');
        } else {
          keepReport = true;
          this.count('done');
          for (const warning of result.warnings) this.logger.info({ job: id, warning }, 'capture analysis warning');
          this.logger.info({ job: id, seconds: (Date.now() - started) / 1000 }, 'capture analyzed');
          final = { status: 'done', progress: 100, error: null, warnings: result.warnings, finishedAt: new Date().toISOString() };
        }
      } else if (code === 2 && result?.type === 'failed') fail(result.message, 'failed');
      else if (code === 1 && result?.type === 'failed') fail(`internal error while analyzing (see the collector log, job ${id})`, 'failed');
      else fail(this.crashReason(code, signal, stderr), 'failed');
    } finally {
      await this.removeFiles(id, keepReport);
      if (final) void this.write(entry, final);
      await entry.writes;
    }
  }

  /** Why a child died without saying so itself. */
  private crashReason(code: number | null, signal: NodeJS.Signals | null, stderr: string): string {
    const limit = this.config.analysisMemoryMB;
    if (/heap out of memory|Reached heap limit|Allocation failed/i.test(stderr)) {
      return `analysis ran out of memory (heap limit ${limit} MiB)`;
    }
    if (signal === 'SIGKILL') return `analysis was killed (SIGKILL), most likely by the system running out of memory (heap limit ${limit} MiB)`;
    if (signal) return `analysis crashed (signal ${signal})`;
    return `analysis exited unexpectedly (exit code ${code ?? 'unknown'})`;
  }

  /** An analysis's files: the upload, its temp directory, and (unless kept) its reports. */
  private async removeFiles(id: string, keepReport = false): Promise<void> {
    try {
      await removeJobFiles(this.dataDir, id, keepReport);
    } catch (err) {
      this.logger.error({ err, job: id }, 'could not remove the files of an analysis; the next sweep retries');
    }
  }

  /**
   * Files no job explains, left by a crash mid-upload or mid-analysis (a
   * SIGKILLed child's temp directory, say): an upload of no job untouched for
   * ORPHAN_AGE_MS, or of a job no longer queued; any temp directory of a job
   * not running; a report of no finished job.
   */
  private async removeOrphans(): Promise<void> {
    const check = async (dir: string, pattern: RegExp, orphan: (job: CaptureJob | null, ageMs: number, name: string) => boolean): Promise<void> => {
      for (const name of await readdir(dir)) {
        const id = pattern.exec(name)?.[1];
        if (!id || this.has(id)) continue;
        const path = join(dir, name);
        try {
          const age = Date.now() - (await stat(path)).mtimeMs;
          if (orphan(await this.store.job(id), age, name)) await rm(path, { force: true, recursive: true });
        } catch (err) {
          this.logger.warn({ err, file: name }, 'could not check a leftover upload file');
        }
      }
    };
    await check(uploadsDir(this.dataDir), /^([0-9a-f-]{36})\.(cap|tmp|report\.json)$/, (job, age, name) =>
      !name.endsWith('.cap') || (job === null && age > ORPHAN_AGE_MS) || (job !== null && job.status !== 'queued'));
    await check(reportsDir(this.dataDir), /^([0-9a-f-]{36})\.(json|html)$/, (job) => job === null || job.status !== 'done');
  }
}

/** Removes a job's upload, temp directory and (unless kept) reports; a failing removal is thrown after trying them all. */
export async function removeJobFiles(dataDir: string, id: string, keepReport = false): Promise<void> {
  const paths = [uploadPath(dataDir, id), jobTempDir(dataDir, id)];
  if (!keepReport) paths.push(reportPath(dataDir, id, 'json'), reportPath(dataDir, id, 'html'));
  const results = await Promise.allSettled(paths.map((path) => rm(path, { force: true, recursive: true })));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/**
 * The child parses hostile input and needs no credentials: database URL, API
 * token and NATS secrets are not handed to it.
 */
function withoutSecrets(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const secret = /TOKEN|PASSWORD|SECRET|CREDS|DATABASE_URL|KEY/i;
  return Object.fromEntries(Object.entries(env).filter(([name]) => !secret.test(name)));
}

function asChildMessage(raw: unknown): ChildMessage | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const m = raw as Record<string, unknown>;
  if (m['type'] === 'progress' && typeof m['percent'] === 'number') return { type: 'progress', percent: m['percent'] };
  if (m['type'] === 'done' && Array.isArray(m['warnings'])) return { type: 'done', warnings: m['warnings'].map(String) };
  if (m['type'] === 'failed' && typeof m['message'] === 'string') return { type: 'failed', message: m['message'] };
  return undefined;
}
