/**
 * Removal of uploads past their TTL (`reportTtlHours`, set as the job's
 * expiresAt at upload). The collector calls `sweepExpired` on a timer.
 */
import { rm } from 'node:fs/promises';
import type { Store } from '../store/types.js';
import { reportTempPath, uploadPath } from './queue.js';

/**
 * Removes at most `batch` jobs expired at `now`, with their files and reports,
 * and returns how many: a full batch means there may be more, call again
 * (small batches keep each database transaction short on a large backlog).
 * When `queue` is given, an expired job still queued or running is stopped first.
 */
export async function sweepExpired(
  store: Store,
  dataDir: string,
  now: Date | string = new Date(),
  batch = 100,
  queue?: { cancel(id: string): Promise<boolean> },
): Promise<number> {
  const nowIso = typeof now === 'string' ? now : now.toISOString();
  const jobs = await store.expiredJobs(nowIso, Math.max(1, Math.floor(batch)));
  let removed = 0;
  for (const job of jobs) {
    if (queue) await queue.cancel(job.id);
    await rm(uploadPath(dataDir, job.id), { force: true });
    await rm(reportTempPath(dataDir, job.id), { force: true });
    if (await store.deleteJob(job.id)) removed++;
  }
  return removed;
}
