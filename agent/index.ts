/**
 * The analysis as other parts of the project use it (the CLI, the collector's
 * upload analyses): one entry point, so they never reach into its stages.
 * The sensor agent (NATS, HTTP) is `agent/sensor/agent.ts`, loaded only by
 * the `agent` command.
 */
export { analyzeCapture, analyzeCaptureInThread } from './analyze/index.js';
export type { AnalyzeOptions, AnalyzeResult } from './analyze/index.js';
export { SpillList } from './analyze/spill-list.js';
export type { WindowOutput } from './window/window-engine.js';
export { memoryPlan, type MemoryPlanLine } from './pipeline.js';
