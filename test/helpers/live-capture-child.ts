/**
 * Captures on an interface and prints what it saw, for tests that run it
 * inside a network namespace:
 *
 *   ip netns exec NS node dist/test/helpers/live-capture-child.js --interface vc --bpf '' --seconds N
 *
 * Counts packets and bytes until N seconds pass with no packet (or SIGTERM),
 * then prints one JSON line {packets, bytes, linkType, stats, firstTs, lastTs}
 * and exits 0. Prints "ready" on stderr once the interface is open, so a test
 * can start sending. A LiveCapture.open error goes to stderr, exit 2.
 * Optional: --snaplen N, --promiscuous 0|1, --buffer-mb N.
 */
import { isUserError } from '../../common/errors.js';
import { LiveCapture, type LiveCaptureOptions } from '../../agent/capture/index.js';

export interface ChildResult {
  packets: number;
  /** Sum of wire lengths. */
  bytes: number;
  /** Sum of captured lengths. */
  capturedBytes: number;
  linkType: number;
  stats: { received: number; dropped: number; ifDropped: number };
  /** Kernel timestamps of the first and last packet, seconds since the epoch (null: none). */
  firstTs: number | null;
  lastTs: number | null;
}

function arg(name: string, fallback?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  if (i >= 0 && i + 1 < process.argv.length) return process.argv[i + 1];
  if (fallback === undefined) {
    process.stderr.write(`live-capture-child: --${name} is required\n`);
    process.exit(64);
  }
  return fallback;
}

const options: LiveCaptureOptions = {
  interface: arg('interface'),
  bpf: arg('bpf', ''),
  snaplen: Number(arg('snaplen', '262144')),
  promiscuous: arg('promiscuous', '1') === '1',
  bufferMB: Number(arg('buffer-mb', '16')),
};
const quietMs = Number(arg('seconds', '2')) * 1000;

let capture: LiveCapture;
try {
  capture = LiveCapture.open(options);
} catch (err) {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(isUserError(err) ? 2 : 1);
}

let packets = 0;
let bytes = 0;
let capturedBytes = 0;
let firstTs: number | null = null;
let lastTs = 0;
let lastPacketAt = Date.now();

function finish(): void {
  const stats = capture.stats();
  capture.close();
  const result: ChildResult = {
    packets, bytes, capturedBytes, linkType: capture.linkType, stats, firstTs, lastTs: firstTs === null ? null : lastTs,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}

capture.start((rec) => {
  packets++;
  bytes += rec.wireLen;
  capturedBytes += rec.capLen;
  lastTs = rec.tsSec + rec.tsNsec / 1e9;
  if (firstTs === null) firstTs = lastTs;
  lastPacketAt = Date.now();
}, (err) => {
  process.stderr.write(`capture failed: ${err.message}\n`);
  process.exit(1);
});

process.on('SIGTERM', finish);
// Quiet-period check; the ring hands packets over within ~100 ms, so 50 ms granularity is plenty.
setInterval(() => {
  if (Date.now() - lastPacketAt >= quietMs) finish();
}, 50);
process.stderr.write('ready\n');
