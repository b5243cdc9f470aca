/**
 * Worker thread: checkpoints the collector's SQLite write-ahead log off the
 * ingest thread. Inline (SQLite's default, after a commit that grows the WAL
 * past 1000 pages) a checkpoint copies the log into the database file and
 * fsyncs it on the thread that also parses and commits messages; measured on
 * the ingest bench's messages, that was 45 % of that thread's time per
 * message (59 -> 33 µs) and 7 µs of its CPU. Here it runs on its own
 * connection every `intervalMs`; PASSIVE never waits for the writer.
 */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

export interface CheckpointWorkerData {
  path: string;
  intervalMs: number;
  busyTimeoutMs: number;
}

/** Worker -> store: a checkpoint failed (the store passes the text to its onCheckpointError, which the collector logs). */
export interface CheckpointError { error: string }

const { path, intervalMs, busyTimeoutMs } = workerData as CheckpointWorkerData;
const db = new Database(path, { fileMustExist: true });
db.pragma(`busy_timeout = ${busyTimeoutMs}`);
let failed = false;
const timer = setInterval(() => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
    failed = false;
  } catch (err) {
    // Reported once per run of failures: the writer's fallback checkpoint keeps the log bounded.
    if (!failed) parentPort?.postMessage({ error: err instanceof Error ? err.message : String(err) } satisfies CheckpointError);
    failed = true;
  }
}, intervalMs);
parentPort?.once('message', () => {
  clearInterval(timer);
  db.close();
  parentPort?.close();
});
