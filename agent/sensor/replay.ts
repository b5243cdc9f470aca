/**
 * Replay helpers: which files a replay path names, and pacing. Pacing only
 * decides when a packet is handed over; every clock still runs on the
 * packets' own timestamps, so results do not depend on the speed.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError, fsReason } from '../../common/errors.js';

/** A file, or every regular file of a directory in name order (hidden files skipped). */
export function listReplayFiles(path: string): string[] {
  let stat;
  try {
    stat = statSync(path);
  } catch (err) {
    throw new UsageError(`cannot replay ${path}: ${fsReason(err)}; check --replay (capture.replay)`);
  }
  if (!stat.isDirectory()) return [path];
  const files = readdirSync(path, { withFileTypes: true })
    .filter((entry) => entry.isFile() && !entry.name.startsWith('.'))
    .map((entry) => entry.name)
    .sort()
    .map((name) => join(path, name));
  if (files.length === 0) throw new UsageError(`cannot replay ${path}: the directory holds no files`);
  return files;
}

export interface Pacing {
  /** Milliseconds to wait before handing over a packet stamped `ts` (epoch seconds). */
  delayMs(ts: number): number;
  /** A new pass (loop): the next packet starts the clock again. */
  restart(): void;
}

/** `top`: no waiting; `realtime`: the original pacing; `N`: N times faster than the original. */
export function replayPacing(speed: string): Pacing {
  if (speed === 'top') return { delayMs: () => 0, restart: () => undefined };
  const factor = speed === 'realtime' ? 1 : Number(speed);
  if (!(factor > 0)) throw new UsageError(`capture.speed: "${speed}" must be top, realtime or a number above 0`);
  let firstTs = NaN;
  let startWall = 0;
  return {
    delayMs(ts: number): number {
      const now = performance.now();
      if (Number.isNaN(firstTs)) { firstTs = ts; startWall = now; return 0; }
      return startWall + ((ts - firstTs) * 1000) / factor - now;
    },
    restart(): void { firstTs = NaN; },
  };
}
