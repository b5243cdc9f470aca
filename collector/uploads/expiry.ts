/**
 * Removal of uploads past their TTL (`reportTtlHours`, set as the job's
 * expiresAt at upload). The collector calls `sweepExpired` on a timer.
 */
import type { Store } from '../store/types.js';
import { removeJobFiles, type LogSink } from './queue.js';

/**
 * Removes at most `batch` jobs expired at `now`, with their files and reports,
 * and returns how many: a full batch means there may be more, call again
 * (small batches keep each database transaction short on a large backlog).
 * When `queue` is given, an expired job still queued or running is stopped
 * first. A job whose files cannot be removed is logged and kept for the next
 * sweep; the others are still removed.
 */
export async function sweepExpired(
  store: Store,
  dataDir: string,
  now: Date | string = new Date(),
  batch = 100,
  queue?: { cancel(id: string): Promise<boolean> },
  logger?: Pick<LogSink, 'warn'>,
): Promise<number> {
  const nowIso = typeof now === 'string' ? now : now.toISOString();
  const jobs = await store.expiredJobs(nowIso, Math.max(1, Math.floor(batch)));
  let removed = 0;
  for (const job of jobs) {
    try {
      if (queue) await queue.cancel(job.id);
      await removeJobFiles(dataDir, job.id);
      if (await store.deleteJob(job.id)) removed++;
    } catch (err) {
      logger?.warn({ err, job: job.id }, 'could not remove an expired upload; the next sweep retries');
    }
  }
  return removed;
}
