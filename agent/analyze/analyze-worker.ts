/** The analysis thread of `analyzeCaptureInThread`: runs `analyzeCapture` and posts what it gives. */
import { parentPort, workerData } from 'node:worker_threads';
import { toThreadError } from '../../common/errors.js';
import { analyzeCapture } from './analyze.js';
import type { AnalyzeThreadData, FromAnalyzeThread } from './analyze-thread.js';

const data = workerData as AnalyzeThreadData;
const post = (msg: FromAnalyzeThread): void => parentPort!.postMessage(msg);

try {
  const result = await analyzeCapture(data.path, data.config, {
    ...(data.progress ? { onProgress: (fraction: number) => post({ type: 'progress', fraction }) } : {}),
    ...(data.streaming ? { onWindow: (out) => post({ type: 'window', out }) } : {}),
    ...(data.maxReadBytes ? { maxReadBytes: data.maxReadBytes } : {}),
  });
  post({ type: 'done', result });
} catch (err) {
  post({ type: 'failed', error: toThreadError(err) });
}
