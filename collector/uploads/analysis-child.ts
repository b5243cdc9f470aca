/**
 * One uploaded capture's analysis, in its own process so a huge or hostile
 * capture can only exhaust its own heap (`--max-old-space-size`) and can be
 * killed on a timeout without touching the collector:
 *
 *   node --max-old-space-size=MB analysis-child.js CAPTURE --json=PATH --html=PATH
 *        [--name=NAME] [--config=PATH] [--max-windows=N] [--max-findings=N] [--max-bytes=N]
 *
 * It writes the report twice, as JSON and as HTML, so the collector serves
 * files and never parses a report. The report keeps at most N windows and N
 * findings (a warning says how many were left out); a JSON report over
 * --max-bytes fails the analysis, an HTML one over it is not written (the
 * JSON stays). Temporary files go to TMPDIR, which the collector gives each
 * job and removes.
 *
 * Talks to the parent over IPC: `{type:'progress', percent}` a few times a
 * second, then `{type:'done', warnings}` or `{type:'failed', message}`.
 * Exit codes follow the CLI: 0 done, 2 bad capture (the message is for the
 * client), 1 anything else, its configuration included (the message is only
 * "internal error"; the details go to stderr, which the collector logs).
 */
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { resolveConfig } from '../../common/config.js';
import { InputError, UsageError } from '../../common/errors.js';
import { reportJsonChunks, type Finding, type WindowSummary } from '../../common/report.js';
import { renderHtml } from '../../common/report-html.js';
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

/** The report file would pass --max-bytes. */
class ReportTooLarge extends Error {}

/** Writes the pieces to a private file; over `maxBytes` it stops, removes the file and throws ReportTooLarge. */
async function writeReport(path: string, pieces: Iterable<string>, maxBytes: number): Promise<void> {
  const out = createWriteStream(path, { flags: 'w', mode: 0o600 });
  const failed = once(out, 'error').then(([err]) => { throw err; });
  failed.catch(() => { /* raced below */ });
  let bytes = 0;
  try {
    for (const piece of pieces) {
      bytes += Buffer.byteLength(piece);
      if (bytes > maxBytes) throw new ReportTooLarge();
      if (!out.write(piece)) await Promise.race([once(out, 'drain'), failed]);
    }
    await Promise.race([new Promise<void>((resolve) => out.end(resolve)), failed]);
  } catch (err) {
    out.destroy();
    await rm(path, { force: true });
    throw err;
  }
}

const positiveInt = (value: string | undefined, name: string): number => {
  const n = Number(value);
  if (value === undefined || !Number.isSafeInteger(n) || n < 1) throw new UsageError(`--${name} needs a positive integer`);
  return n;
};

async function main(): Promise<number> {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: {
      json: { type: 'string' }, html: { type: 'string' }, name: { type: 'string' }, config: { type: 'string' },
      'max-windows': { type: 'string', default: '100000' }, 'max-findings': { type: 'string', default: '100000' }, 'max-bytes': { type: 'string', default: String(256 * 1024 * 1024) },
    },
  });
  const [capturePath] = positionals;
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
  if (capturePath === undefined || values.json === undefined || values.html === undefined) {
    throw new UsageError('usage: analysis-child CAPTURE --json=PATH --html=PATH [--name=NAME] [--config=PATH] [--max-windows=N] [--max-findings=N] [--max-bytes=N]');
  }
  const maxWindows = positiveInt(values['max-windows'], 'max-windows');
  const maxFindings = positiveInt(values['max-findings'], 'max-findings');
  const maxBytes = positiveInt(values['max-bytes'], 'max-bytes');
  const name = values.name ?? '';
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
  let windowsLeftOut = 0;
  let findingsLeftOut = 0;
  try {
    const onWindow = (out: WindowOutput): void => {
      if (windows.length < maxWindows) windows.push(out.summary); else windowsLeftOut++;
      for (const f of out.findings) { if (findings.length < maxFindings) findings.push(f); else findingsLeftOut++; }
    };
    let result;
    try {
      result = await analyzeCapture(capturePath, config, { onProgress, onWindow });
    } catch (err) {
      // The server's path of the upload means nothing to the client (and must not leak): name the upload.
      if (err instanceof InputError) err.message = err.message.split(capturePath).join(name || 'the upload');
      throw err;
    }
    const { report, warnings } = result;
    report.source.path = name;
    if (windowsLeftOut) warnings.push(`the report keeps the first ${maxWindows} windows (collector.maxReportWindows); ${windowsLeftOut} more were left out`);
    if (findingsLeftOut) warnings.push(`the report keeps the first ${maxFindings} findings (collector.maxReportFindings); ${findingsLeftOut} more were left out`);
    const limitMiB = Math.round(maxBytes / 1024 / 1024);
    try {
      await writeReport(values.json, reportJsonChunks(report, { windows, findings }), maxBytes);
    } catch (err) {
      if (err instanceof ReportTooLarge) throw new InputError('report_too_large', `the report would be larger than ${limitMiB} MiB (collector.maxReportMB)`);
      throw err;
    }
    try {
      await writeReport(values.html, [renderHtml({ ...report, windows: [...windows], findings: [...findings] })], maxBytes);
    } catch (err) {
      if (!(err instanceof ReportTooLarge)) throw err;
      warnings.push(`the HTML report would be larger than ${limitMiB} MiB (collector.maxReportMB): only the JSON report is kept`);
    }
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
    // Only what is wrong with the capture is the client's to read; a configuration or usage
    // problem is the collector's own (and its message may name a server path).
    if (err instanceof InputError) {
      await send({ type: 'failed', message: err.message });
      process.exit(2);
    }
    // Internal: the details are for the collector's log (it keeps this stderr), not for the client.
    const detail = err instanceof Error ? err.stack ?? err.message : String(err);
    process.stderr.write(`${detail}\n`);
    await send({ type: 'failed', message: 'internal error' });
    process.exit(1);
  },
);
