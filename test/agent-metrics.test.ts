/**
 * The agent's /metrics figures fed from real window summaries: the analysis
 * of a capture with detector tables far too small for it (so keys are
 * evicted), then each window through AgentMetrics into prom-client's text.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { buildConfig } from '../common/config.js';
import type { WindowSummary } from '../common/report.js';
import { analyzeCapture } from '../agent/index.js';
import { Pipeline } from '../agent/pipeline.js';
import { CaptureReader, NEED_DATA, RECORD } from '../agent/capture/index.js';
import { AgentMetrics } from '../agent/sensor/metrics.js';
import { SHARED_PCAPS } from './helpers/paths.js';

test('/metrics counts each analyzer table\'s evictions as the windows report them, labelled by analyzer only', async () => {
  // 16 keys per detector table (the smallest allowed): a capture of a few hundred hosts overflows some of them.
  const detectors = ['port_scan', 'brute_force', 'flood', 'beaconing', 'dns_tunneling', 'exfiltration', 'lateral_movement'];
  const config = buildConfig({ analyzers: Object.fromEntries(detectors.map((id) => [id, { maxKeys: 16 }])) });
  const windows: WindowSummary[] = [];
  await analyzeCapture(join(SHARED_PCAPS, 'ndpi_1kxun.pcap'), config, { onWindow: (out) => { windows.push(out.summary); } });
  const metrics = new AgentMetrics({ sensor: 's1', version: 'test', source: 'replay' });
  for (const w of windows) metrics.onWindow(w, []);
  const text = await metrics.registry.metrics();
  let overflowed = 0;
  for (const id of detectors) {
    const last = windows.at(-1)!.metrics[id]!;
    const evicted = Number(last['evicted'] ?? last['evictedKeys']); // dns_tunneling: evictedKeys
    assert.ok(Number.isFinite(evicted), `${id} reports its evictions`);
    const line = text.split('\n').find((l) => l.startsWith(`pcap_analyzer_table_evictions_total{table="${id}"`));
    if (evicted > 0) {
      overflowed++;
      assert.ok(line, `${id}: ${evicted} evicted, no counter`);
      assert.equal(Number(line.split(' ').at(-1)), evicted, `${id}: the counter equals the running total of the last window`);
    }
  }
  assert.ok(overflowed > 0, 'some detector table overflowed');
  for (const l of text.split('\n').filter((x) => x.startsWith('pcap_analyzer_table_evictions_total{'))) {
    assert.match(l, /^pcap_analyzer_table_evictions_total\{table="[a-z_]+",sensor="s1"\} \d+$/);
  }
});

test('every detector that keeps key tables has an evictions series at 0 from the start, before any window', async () => {
  const pipeline = new Pipeline(buildConfig({}), { onWindow: () => undefined });
  const owners = [...new Set(pipeline.context.memory.grantsMade.map((g) => g.table.split('.')[0]!))];
  assert.deepEqual(owners.sort(), ['beaconing', 'brute_force', 'dns_tunneling', 'exfiltration', 'flood', 'lateral_movement', 'port_scan']);
  const metrics = new AgentMetrics({ sensor: 's1', version: 'test', source: 'replay' });
  const before = await metrics.registry.metrics();
  assert.doesNotMatch(before, /^pcap_analyzer_table_evictions_total\{/m);
  metrics.onTables(owners);
  const lines = (await metrics.registry.metrics()).split('\n').filter((l) => l.startsWith('pcap_analyzer_table_evictions_total{'));
  assert.deepEqual(lines.sort(), owners.map((t) => `pcap_analyzer_table_evictions_total{table="${t}",sensor="s1"} 0`));
});

test('/metrics counts ended conversations forgotten before they resumed (flows.endedConversations full)', async () => {
  // The smallest table (4) and short idle timeouts: a capture of a few hundred conversations overwrites remembered ones.
  const config = buildConfig({ flows: { endedConversations: 4, timeouts: { udp: 1, tcpEstablished: 1, tcpClosed: 1, tcpHandshake: 1 } } });
  const pipeline = new Pipeline(config, { onWindow: () => undefined });
  const reader = await CaptureReader.open(join(SHARED_PCAPS, 'ndpi_1kxun.pcap'), config.input);
  try {
    for (;;) {
      const status = reader.next();
      if (status === RECORD) pipeline.process(reader.record);
      else if (status === NEED_DATA) await reader.fill();
      else break;
    }
  } finally { await reader.close(); }
  pipeline.finish();
  const forgotten = pipeline.flows.forgotten;
  assert.ok(forgotten > 0, 'the capture overflows a 4-entry table');
  const metrics = new AgentMetrics({ sensor: 's1', version: 'test', source: 'replay' });
  metrics.onCounters({
    packets: pipeline.packets, bytes: pipeline.bytes, received: pipeline.packets, drops: { kernel: 0, interface: 0, agent: 0 }, decodeErrors: {},
    flowsActive: pipeline.flows.active, flowsEvicted: pipeline.flows.evicted, conversationsForgotten: forgotten, windows: 0, windowLagSeconds: 0,
  });
  assert.match(await metrics.registry.metrics(), new RegExp(`^pcap_analyzer_conversations_forgotten_total\\{sensor="s1"\\} ${forgotten}$`, 'm'));
});

test('/metrics has the last window\'s per-VLAN and per-interface figures, labelled by dimension and a bounded value', async () => {
  const windows: WindowSummary[] = [];
  const config = buildConfig({ analyzers: { dimensions: { maxValues: 1 } } });
  await analyzeCapture(join(SHARED_PCAPS, 'zeek_vlan-pcp-dei.pcapng'), config, { onWindow: (out) => { windows.push(out.summary); } });
  const metrics = new AgentMetrics({ sensor: 's1', version: 'test', source: 'replay' });
  for (const w of windows) metrics.onWindow(w, []);
  const lines = (await metrics.registry.metrics()).split('\n').filter((l) => l.startsWith('pcap_analyzer_window_dimension_'));
  const last = windows.at(-1)!.metrics['dimensions'] as { vlan: Record<string, { packets: number; retransmissions: number }> };
  // maxValues 1: the first VLAN seen, and "other" for the rest (the untagged frames and the second VLAN).
  assert.deepEqual(Object.keys(last.vlan).length, 2);
  for (const [value, row] of Object.entries(last.vlan)) {
    assert.ok(lines.includes(`pcap_analyzer_window_dimension_packets{dimension="vlan",value="${value}",sensor="s1"} ${row.packets}`), value);
    assert.ok(lines.includes(`pcap_analyzer_window_dimension_retransmissions{dimension="vlan",value="${value}",sensor="s1"} ${row.retransmissions}`), value);
  }
  assert.ok(lines.includes(`pcap_analyzer_window_dimension_packets{dimension="interface",value="0",sensor="s1"} ${windows.at(-1)!.packets}`));
  for (const l of lines) assert.match(l, /^pcap_analyzer_window_dimension_[a-z_]+\{dimension="(vlan|interface)",value="(\d+|untagged|other)",(quantile="0\.\d+",)?sensor="s1"\} [\d.e-]+$/);
  // A window without the analyzer's metrics leaves no series behind.
  metrics.onWindow({ ...windows.at(-1)!, metrics: {} }, []);
  assert.doesNotMatch(await metrics.registry.metrics(), /^pcap_analyzer_window_dimension_\w+\{/m);
});
