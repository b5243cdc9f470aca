export { analyzeCapture } from './analyze.js';
export type { AnalyzeOptions, AnalyzeResult } from './analyze.js';
export { analyzeCaptureInThread } from './analyze-thread.js';
