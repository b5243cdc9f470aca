/**
 * Child process of test/large-capture.test.ts: `node dist/test/helpers/analyze-rss.js FILE`
 * analyzes FILE as `pcap-analyzer analyze` does (analyzeCapture with the
 * default configuration) and prints one JSON line with its own figures,
 * including the peak RSS of this process.
 *
 * Without an argument (as when `node --test dist/test/` loads every file
 * under test/) it does nothing.
 */
import { performance } from 'node:perf_hooks';
import { analyzeCapture } from '../../agent/analyze/index.js';
import { loadConfig } from '../../common/config.js';

export interface AnalyzeRssResult {
  packets: number;
  bytes: number;
  truncatedRecords: number;
  decodeErrors: Record<string, number>;
  tcpStreams: number;
  udpStreams: number;
  flowsEvicted: number;
  warnings: string[];
  maxRssBytes: number;
  seconds: number;
}

const path = process.argv[2];
if (path !== undefined) {
  const t0 = performance.now();
  const { report, warnings } = await analyzeCapture(path, loadConfig(process.argv[3]));
  const seconds = (performance.now() - t0) / 1000;
  const result: AnalyzeRssResult = {
    packets: report.capture.packets,
    bytes: report.capture.bytes,
    truncatedRecords: report.capture.truncatedRecords,
    decodeErrors: report.capture.decodeErrors,
    tcpStreams: report.counters['tcp.streams'] ?? 0,
    udpStreams: report.counters['udp.streams'] ?? 0,
    flowsEvicted: report.capture.flowsEvicted,
    warnings,
    // resourceUsage().maxRSS is in kilobytes: the peak resident set of this process.
    maxRssBytes: process.resourceUsage().maxRSS * 1024,
    seconds,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
