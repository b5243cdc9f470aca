/**
 * One uploaded capture's analysis, in its own process so a huge or hostile
 * capture can only exhaust its own heap (`--max-old-space-size`) and can be
 * killed on a timeout without touching the collector:
 *
 *   node --max-old-space-size=MB analysis-child.js CAPTURE REPORT [--name NAME] [--config PATH]
 *
 * Talks to the parent over IPC: `{type:'progress', percent}` a few times a
 * second, then `{type:'done', warnings}` or `{type:'failed', message}`.
 * Exit codes follow the CLI: 0 done, 2 bad input, 1 internal error.
 */
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { parseArgs } from 'node:util';
import { resolveConfig } from '../../common/config.js';
import { isUserError } from '../../common/errors.js';
import { reportJsonChunks, type Finding, type WindowSummary } from '../../common/report.js';
import { SpillList, analyzeCapture, type WindowOutput } from '../../agent/index.js';

export type ChildMessage =
  | { type: 'progress'; percent: number }
  | { type: 'done'; warnings: string[] }
  | { type: 'failed'; message: string };

/** Progress messages at most this often: each one becomes (throttled) store traffic in the parent. */
const PROGRESS_INTERVAL_MS = 250;
/** Windows / findings kept in memory before spilling to a temp file (as the CLI does). */
const SPILL_AFTER = 200;

function send(message: ChildMessage): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send || !process.connected) {
      // Run by hand: say it on stderr instead.
      if (message.type !== 'progress') process.stderr.write(`${JSON.stringify(message)}\n`);
      resolve();
      return;
    }
    process.send(message, undefined, {}, () => resolve());
  });
}

async function writeReport(path: string, pieces: Iterable<string>): Promise<void> {
  const out = createWriteStream(path, { flags: 'w' });
  const failed = once(out, 'error').then(([err]) => { throw err; });
  failed.catch(() => { /* raced below */ });
  for (const piece of pieces) {
    if (!out.write(piece)) await Promise.race([once(out, 'drain'), failed]);
  }
  await Promise.race([new Promise<void>((resolve) => out.end(resolve)), failed]);
}

async function main(): Promise<number> {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: { name: { type: 'string' }, config: { type: 'string' } },
  });
  const [capturePath, reportPath] = positionals;
  if (capturePath === undefined || reportPath === undefined) {
    throw new Error('usage: analysis-child CAPTURE REPORT [--name NAME] [--config PATH]');
  }
  const config = resolveConfig({ path: values.config, env: process.env });
  let lastSent = 0;
  let lastPercent = -1;
  const onProgress = (fraction: number): void => {
    // 99 at most: 100 means "report stored", which only the parent knows.
    const percent = Math.min(99, Math.max(0, Math.floor(fraction * 100)));
    const now = Date.now();
    if (percent === lastPercent || now - lastSent < PROGRESS_INTERVAL_MS) return;
    lastSent = now;
    lastPercent = percent;
    void send({ type: 'progress', percent });
  };
  const windows = new SpillList<WindowSummary>(SPILL_AFTER);
  const findings = new SpillList<Finding>(SPILL_AFTER * 4);
  try {
    const onWindow = (out: WindowOutput): void => { windows.push(out.summary); for (const f of out.findings) findings.push(f); };
    const { report, warnings } = await analyzeCapture(capturePath, config, { onProgress, onWindow });
    // The server's temp path means nothing to the client (and should not leak): name the upload instead.
    report.source.path = values.name ?? '';
    await writeReport(reportPath, reportJsonChunks(report, { windows, findings }));
    await send({ type: 'done', warnings });
    return 0;
  } finally {
    windows.dispose();
    findings.dispose();
  }
}

main().then(
  (code) => { process.exit(code); },
  async (err: unknown) => {
    if (isUserError(err)) {
      await send({ type: 'failed', message: err.message });
      process.exit(2);
    }
    const detail = err instanceof Error ? err.message : String(err);
    process.stderr.write(`${err instanceof Error ? err.stack ?? detail : detail}\n`);
    await send({ type: 'failed', message: `internal error: ${detail}` });
    process.exit(1);
  },
);
