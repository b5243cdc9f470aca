/**
 * The analysis as other parts of the project use it (the CLI, the collector's
 * upload analyses): one entry point, so they never reach into its stages.
 * The sensor agent (NATS, HTTP) is `agent/sensor/agent.ts`, loaded only by
 * the `agent` command.
 *
 * Light to import: the stages (decoder, flow table, every analyzer) load on
 * first use of `analyzeCapture` or `memoryPlan`. `analyze` runs them in a
 * thread of their own, which loads them itself; loaded here as well, they
 * would delay that thread's start by their load time (about 0.1 s).
 */
import type { Config } from '../common/config.js';
import type { AnalyzeOptions, AnalyzeResult } from './analyze/analyze.js';
import type { MemoryPlanLine } from './pipeline.js';
import type { WorkerChoice } from './shard/workers.js';

export { analyzeCaptureInThread } from './analyze/analyze-thread.js';
export type { AnalyzeOptions, AnalyzeResult } from './analyze/analyze.js';
export { SpillList } from './analyze/spill-list.js';
export { RangeStats, rangeInputsProblem } from './analyzers/lib/range-stats.js';
export { PacketSpan } from './core/packet-span.js';
export type { WindowOutput } from './window/window-engine.js';
export type { MemoryPlanLine } from './pipeline.js';

/** Reads a whole capture through the pipeline in this thread and builds the report (see analyze/analyze.ts). */
export async function analyzeCapture(path: string, config: Readonly<Config>, options?: AnalyzeOptions): Promise<AnalyzeResult> {
  const { analyzeCapture: analyze } = await import('./analyze/analyze.js');
  return analyze(path, config, options);
}

/** How many flow-sharded workers `config` asks for and allows (see shard/workers.ts). */
export async function resolveWorkers(config: Readonly<Config>): Promise<WorkerChoice> {
  const { resolveWorkers: resolve } = await import('./shard/workers.js');
  return resolve(config);
}

/** What a pipeline with `config` preallocates at start (see pipeline.ts). */
export async function memoryPlan(config: Readonly<Config>): Promise<MemoryPlanLine[]> {
  const { memoryPlan: plan } = await import('./pipeline.js');
  return plan(config);
}
