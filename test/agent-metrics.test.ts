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
