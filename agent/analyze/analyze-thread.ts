/**
 * `analyze` in a worker thread with the pipeline thread's V8 limits (the same
 * as the agent's capture thread: see core/thread-limits.ts), so a capture with
 * millions of flows stays within the memory budget. The caller gets the same
 * result, callbacks and errors as from `analyzeCapture` in its own thread.
 * With `workers` above 1 the analysis runs in worker threads already
 * (analyze-sharded.ts): their coordinator, mostly waiting, runs in the
 * caller's thread, one V8 isolate fewer to start.
 */
import { Worker } from 'node:worker_threads';
import type { Config } from '../../common/config.js';
import { fromThreadError, type ThreadError } from '../../common/errors.js';
import { PIPELINE_THREAD_LIMITS } from '../core/thread-limits.js';
import type { WindowOutput } from '../window/window-engine.js';
import type { AnalyzeOptions, AnalyzeResult } from './analyze.js';
import { analyzeCaptureSharded } from './analyze-sharded.js';

export interface AnalyzeThreadData {
  path: string;
  config: Config;
  /** Post each window as it closes (the caller gave `onWindow`). */
  streaming: boolean;
  /** Post progress (the caller gave `onProgress`). */
  progress: boolean;
  maxReadBytes?: number;
}

export type FromAnalyzeThread =
  | { type: 'progress'; fraction: number }
  | { type: 'window'; out: WindowOutput }
  | { type: 'done'; result: AnalyzeResult }
  | { type: 'failed'; error: ThreadError };

export function analyzeCaptureInThread(path: string, config: Readonly<Config>, options: AnalyzeOptions = {}): Promise<AnalyzeResult> {
  if (options.workers !== undefined && options.workers > 1) return analyzeCaptureSharded(path, config, { ...options, workers: options.workers });
  const data: AnalyzeThreadData = {
    path,
    config: config as Config,
    streaming: options.onWindow !== undefined,
    progress: options.onProgress !== undefined,
    ...(options.maxReadBytes ? { maxReadBytes: options.maxReadBytes } : {}),
  };
  const worker = new Worker(new URL('./analyze-worker.js', import.meta.url), {
    workerData: data,
    resourceLimits: PIPELINE_THREAD_LIMITS,
    stdin: path === '-',
  });
  if (path === '-') process.stdin.pipe(worker.stdin!);
  return new Promise<AnalyzeResult>((resolve, reject) => {
    let settled = false;
    const settle = (fn: () => void): void => { if (!settled) { settled = true; fn(); } };
    worker.on('message', (msg: FromAnalyzeThread) => {
      switch (msg.type) {
        case 'progress': options.onProgress?.(msg.fraction); break;
        case 'window':
          try { options.onWindow?.(msg.out); } catch (err) { settle(() => reject(err)); void worker.terminate(); }
          break;
        case 'done': settle(() => resolve(msg.result)); break;
        case 'failed': settle(() => reject(fromThreadError(msg.error))); break;
      }
    });
    worker.on('error', (err) => settle(() => reject(err)));
    worker.on('exit', (code) => settle(() => reject(new Error(`the analysis thread stopped (exit code ${code}) before its report`))));
  }).finally(() => { if (path === '-') process.stdin.unpipe(worker.stdin!); });
}
