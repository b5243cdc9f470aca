import type { ResourceLimits } from 'node:worker_threads';

/**
 * V8 limits of the thread that runs the pipeline (the agent's capture thread,
 * `analyze`'s analysis thread). Its young generation is capped (semi-spaces of
 * 2 MB): the per-packet path allocates almost nothing that lives, and without
 * the cap V8 doubles the semi-spaces as a run goes on (+17 MB at hour 9 of the
 * soak, up to +48 MB), which looks like a leak on a sensor that runs for days
 * and pushes `analyze` past its memory budget at millions of flows.
 */
export const PIPELINE_THREAD_LIMITS: ResourceLimits = { maxYoungGenerationSizeMb: 6 };
