/**
 * Child process of test/large-capture.test.ts: `node dist/test/helpers/analyze-rss.js FILE`
 * runs the real command, `pcap-analyzer analyze FILE --format json --out TMP`
 * (the CLI's main in this process), then prints one JSON line with figures
 * from the report's head and the peak RSS of this process, measured before
 * the report is read back.
 *
 * Without an argument (as when `node --test dist/test/` loads every file
 * under test/) it does nothing.
 */
import { closeSync, mkdtempSync, openSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { main } from '../../cli/main.js';
import type { Report } from '../../common/report.js';

export interface AnalyzeRssResult {
  exitCode: number;
  packets: number;
  bytes: number;
  truncatedRecords: number;
  decodeErrors: Record<string, number>;
  flowsEvicted: number;
  windows: number;
  reportBytes: number;
  maxRssBytes: number;
  seconds: number;
}

/** The report's `capture` object, parsed from the first bytes of the JSON file (it comes before the windows). */
function readCapture(file: string): Report['capture'] {
  const fd = openSync(file, 'r');
  const head = Buffer.alloc(64 * 1024);
  const n = readSync(fd, head, 0, head.length, 0);
  closeSync(fd);
  const text = head.toString('utf8', 0, n);
  const start = text.indexOf('"capture": ');
  const end = text.indexOf('\n  },\n', start);
  return JSON.parse(text.slice(start + '"capture": '.length, end + 4)) as Report['capture'];
}

const path = process.argv[2];
// eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
if (path !== undefined) {
  const dir = mkdtempSync(join(tmpdir(), 'pcap-analyzer-rss-'));
  const out = join(dir, 'report.json');
  try {
    const t0 = performance.now();
    const exitCode = await main(['analyze', path, '--format', 'json', '--out', out, '--no-progress']);
    const seconds = (performance.now() - t0) / 1000;
    // resourceUsage().maxRSS is in kilobytes: the peak resident set of this process so far.
    const maxRssBytes = process.resourceUsage().maxRSS * 1024;
    const capture = readCapture(out);
    const { size } = await import('node:fs').then((fs) => fs.statSync(out));
    let windows = 0;
    {
      // Count window lines without loading the report: each window is one line starting with '    {"start"'.
      const fd = openSync(out, 'r');
      const buf = Buffer.alloc(1 << 20);
      let pos = 0;
      let carry = '';
      for (let r = readSync(fd, buf, 0, buf.length, pos); r > 0; r = readSync(fd, buf, 0, buf.length, pos)) {
        pos += r;
        const text = carry + buf.toString('latin1', 0, r);
        const lines = text.split('\n');
        carry = lines.pop()!;
        for (const line of lines) if (line.startsWith('    {"start"')) windows++;
      }
      closeSync(fd);
    }
    const result: AnalyzeRssResult = {
      exitCode,
      packets: capture.packets,
      bytes: capture.bytes,
      truncatedRecords: capture.truncatedRecords,
      decodeErrors: capture.decodeErrors,
      flowsEvicted: capture.flowsEvicted,
      windows,
      reportBytes: size,
      maxRssBytes,
      seconds,
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
