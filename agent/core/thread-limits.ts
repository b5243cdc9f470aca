import { readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
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

/**
 * Lowers the calling thread's CPU priority by `steps` nice levels (Linux:
 * setpriority on the thread id; a thread may always lower its own). False
 * where the thread id cannot be found (not Linux) or the call fails.
 */
export function lowerThreadPriority(steps: number): boolean {
  try {
    const tid = Number(/task\/(\d+)$/.exec(readlinkSync('/proc/thread-self'))?.[1]);
    if (!Number.isInteger(tid)) return false;
    setPriority(tid, Math.min(19, getPriority(tid) + steps));
    return true;
  } catch {
    return false;
  }
}
