/**
 * SIGHUP reloads analyzer thresholds without losing state: the pipeline (or
 * every flow-sharded worker) takes a new configuration mid-capture; flows and
 * analyzer state carry on, and the new thresholds decide from then on.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { buildConfig, type Config } from '../common/config.js';
import type { Finding } from '../common/report.js';
import { CaptureReader, END, NEED_DATA, FrameRecord } from '../agent/capture/index.js';
import { Pipeline } from '../agent/pipeline.js';
import { ShardThreads } from '../agent/shard/shard-threads.js';
import { WindowMerger } from '../agent/shard/window-merger.js';
import { waitFor } from './helpers/agent-process.js';
import { SHARED_PCAPS } from './helpers/paths.js';
import { shardableConfig } from './helpers/shardable.js';

const SYNSCAN = join(SHARED_PCAPS, 'ppa_synscan.pcapng');

/** Runs the capture through one pipeline; after `switchAt` packets it takes `next`. */
async function run(config: Readonly<Config>, switchAt = Infinity, next?: Readonly<Config>): Promise<{ findings: Finding[]; pipeline: Pipeline }> {
  const findings: Finding[] = [];
  const pipeline = new Pipeline(config, { onWindow: (out) => findings.push(...out.findings) });
  const reader = await CaptureReader.open(SYNSCAN, config.input);
  for (let status = reader.next(); status !== END; status = reader.next()) {
    if (status === NEED_DATA) { await reader.fill(); continue; }
    if (pipeline.packets === switchAt && next) pipeline.reconfigure(next);
    pipeline.process(reader.record);
  }
  await reader.close();
  pipeline.finish();
  return { findings, pipeline };
}

test('reconfigure: new thresholds apply at once, flow state is kept', async () => {
  const normal = buildConfig({ windows: { seconds: 1 } });
  const blind = buildConfig({ windows: { seconds: 1 }, analyzers: { port_scan: { minPorts: 1_000_000, minHosts: 1_000_000, minPortsSmall: 0 } } });
  const base = await run(normal);
  const scans = base.findings.filter((f) => f.type === 'port_scan');
  assert.ok(scans.length > 0, 'the capture holds a port scan');
  // Blind from the start: no scan found.
  assert.equal((await run(blind)).findings.filter((f) => f.type === 'port_scan').length, 0);
  // Blind at first, normal after 1,000 packets: the scan is found, from state gathered before the reload.
  const reloaded = await run(blind, 1000, normal);
  // The same finding, probes before the reload included (867 ports, 1,681 probes).
  assert.deepEqual(reloaded.findings.filter((f) => f.type === 'port_scan'), scans);
  assert.equal(reloaded.pipeline.flows.tcpStreams, base.pipeline.flows.tcpStreams);
  assert.equal(reloaded.pipeline.packets, base.pipeline.packets);
  // Normal, then blind: no new scan finding after the switch.
  const silenced = await run(normal, 200, blind);
  assert.equal(silenced.findings.filter((f) => f.type === 'port_scan').length, 0);
});

test('reconfigure: a reload that allows the scanner (analyzers.port_scan.allowHosts) takes effect at once', async () => {
  const normal = buildConfig({ windows: { seconds: 1 } });
  const allowing = buildConfig({ windows: { seconds: 1 }, analyzers: { port_scan: { allowHosts: ['172.16.0.8'] } } });
  assert.ok((await run(normal)).findings.some((f) => f.type === 'port_scan'), 'the capture holds a port scan');
  // The scan's probes settle after the first 200 packets: all of them are allowed.
  const reloaded = await run(normal, 200, allowing);
  assert.deepEqual(reloaded.findings.filter((f) => f.type === 'port_scan').map((f) => f.summary), []);
});

test('reconfigure with 2 analysis worker threads: every worker judges by the new thresholds from the packet where one pipeline took them', async () => {
  // high_rtt is judged in the workers: blind at first (thresholds no RTT reaches), normal after 500 of the 1,723 packets.
  const file = join(SHARED_PCAPS, 'ndpi_1kxun.pcap');
  const normal = buildConfig({ ...shardableConfig(), windows: { seconds: 1 } });
  const blind = buildConfig({ ...normal, analyzers: { ...normal.analyzers, rtt: { ...normal.analyzers.rtt, warning: 1e6, critical: 1e7 } } });
  const switchAt = 500;
  const records = await readAll(file, normal);
  const single: Finding[] = [];
  const pipeline = new Pipeline(blind, { onWindow: (out) => single.push(...out.findings) });
  records.forEach((rec, i) => { if (i === switchAt) pipeline.reconfigure(normal); pipeline.process(rec); });
  pipeline.finish();
  const highRtt = (fs: Finding[]): string[] => fs.filter((f) => f.type === 'high_rtt').map((f) => JSON.stringify(f));
  assert.ok(highRtt(single).length > 0, 'high RTT found after the reload');

  const sharded: Finding[] = [];
  const merger = new WindowMerger(blind, 2, (out) => sharded.push(...out.findings));
  const threads = new ShardThreads(blind, merger, { workers: 2, dropWhenFull: false, stallMs: 60_000, commitMemory: false });
  try {
    records.slice(0, switchAt).forEach((rec) => threads.push(rec));
    threads.flush();
    // The workers take a reload between records: once they have analyzed every packet before the switch.
    await waitFor('the workers to drain their rings', () => threads.stats().every((w) => w.ringBytes === 0) || undefined, 20_000, 10);
    await threads.reconfigure(normal);
    records.slice(switchAt).forEach((rec) => threads.push(rec));
    await threads.finish();
  } finally {
    await threads.terminate();
  }
  assert.deepEqual(highRtt(sharded), highRtt(single));
});

/** Every record of `file`, copied. */
async function readAll(file: string, config: Readonly<Config>): Promise<FrameRecord[]> {
  const reader = await CaptureReader.open(file, config.input);
  const out: FrameRecord[] = [];
  for (let status = reader.next(); status !== END; status = reader.next()) {
    if (status === NEED_DATA) { await reader.fill(); continue; }
    const r = reader.record;
    out.push(Object.assign(new FrameRecord(), { ...r, data: r.data.slice(r.offset, r.offset + r.capLen), offset: 0 }));
  }
  await reader.close();
  return out;
}
