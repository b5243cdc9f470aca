/** The analysis thread of `analyzeCaptureInThread`: runs `analyzeCapture` and posts what it gives. */
import { parentPort, workerData } from 'node:worker_threads';
import type { Config } from '../../common/config.js';
import { toThreadError } from '../../common/errors.js';
import { analyzeCapture, type AnalyzeOptions } from './analyze.js';
import { analyzeCaptureSharded } from './analyze-sharded.js';
import type { AnalyzeThreadData, FromAnalyzeThread } from './analyze-thread.js';

const data = workerData as AnalyzeThreadData;
const post = (msg: FromAnalyzeThread): void => parentPort!.postMessage(msg);

try {
  const analyze = data.workers !== undefined && data.workers > 1
    ? (path: string, config: Config, options: AnalyzeOptions) => analyzeCaptureSharded(path, config, { ...options, workers: data.workers! })
    : analyzeCapture;
  const result = await analyze(data.path, data.config, {
    ...(data.progress ? { onProgress: (fraction: number) => post({ type: 'progress', fraction }) } : {}),
    ...(data.streaming ? { onWindow: (out) => post({ type: 'window', out }) } : {}),
    ...(data.maxReadBytes ? { maxReadBytes: data.maxReadBytes } : {}),
  });
  post({ type: 'done', result });
} catch (err) {
  post({ type: 'failed', error: toThreadError(err) });
}
