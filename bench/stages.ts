/**
 * The project's own pipeline cut at two points, each run by the benchmark as a
 * child process of its own (so its peak RSS and CPU time are its alone):
 *
 *   node dist/bench/stages.js read FILE         CaptureReader alone: next()/fill() over every record
 *   node dist/bench/stages.js decode-flow FILE  reader + Decoder + packet clock + FlowTable (default config)
 *
 * Prints one JSON line: { stage, packets, bytes, flows, seconds } (seconds measured
 * in-process, from open to the last record).
 */
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { DEFAULT_CONFIG } from '../common/config.js';
import { CaptureReader, END, NEED_DATA } from '../agent/capture/index.js';
import { Decoder } from '../agent/decode/index.js';
import { FlowTable } from '../agent/flow/index.js';
import { PacketClock } from '../agent/core/packet-clock.js';

export interface StageResult {
  stage: 'read' | 'decode-flow';
  packets: number;
  bytes: number;
  /** Flows created (decode-flow only). */
  flows: number;
  seconds: number;
}

async function readOnly(path: string): Promise<StageResult> {
  const t0 = performance.now();
  const reader = await CaptureReader.open(path, DEFAULT_CONFIG.input);
  const rec = reader.record;
  let packets = 0;
  let bytes = 0;
  try {
    for (let s = reader.next(); s !== END; s = reader.next()) {
      if (s === NEED_DATA) { await reader.fill(); continue; }
      packets++;
      bytes += rec.wireLen;
    }
  } finally {
    await reader.close();
  }
  return { stage: 'read', packets, bytes, flows: 0, seconds: (performance.now() - t0) / 1000 };
}

async function decodeFlow(path: string): Promise<StageResult> {
  const t0 = performance.now();
  const reader = await CaptureReader.open(path, DEFAULT_CONFIG.input);
  const rec = reader.record;
  const clock = new PacketClock();
  const decoder = new Decoder(DEFAULT_CONFIG.flows);
  const flows = new FlowTable(DEFAULT_CONFIG.flows, clock);
  let packets = 0;
  let bytes = 0;
  try {
    for (let s = reader.next(); s !== END; s = reader.next()) {
      if (s === NEED_DATA) { await reader.fill(); continue; }
      packets++;
      bytes += rec.wireLen;
      const view = decoder.decode(rec);
      if (Number.isNaN(clock.base)) clock.base = decoder.timeBase;
      clock.observe(view.ts);
      flows.advance();
      flows.update(view);
    }
  } finally {
    await reader.close();
  }
  flows.endAll();
  return { stage: 'decode-flow', packets, bytes, flows: flows.tcpStreams + flows.udpStreams + flows.otherFlows, seconds: (performance.now() - t0) / 1000 };
}

async function main(argv: string[]): Promise<void> {
  const [stage, path] = argv;
  if (path === undefined || (stage !== 'read' && stage !== 'decode-flow')) {
    throw new Error('usage: node dist/bench/stages.js read|decode-flow FILE');
  }
  const result = stage === 'read' ? await readOnly(path) : await decodeFlow(path);
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`stages: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
