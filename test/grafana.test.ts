/**
 * The Grafana dashboard (deploy/grafana/pcap-analyzer.json) against real
 * parts: a private nats-server, the collector and an agent replaying a capture
 * in a loop (child processes), and Debian's Prometheus scraping both on
 * loopback every second. Every PromQL expression of the dashboard, with its
 * variables set to "All", must return data through Prometheus's HTTP API.
 * `promtool check metrics` must find nothing to say about either /metrics.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, spawnAgent, waitFor } from './helpers/agent-process.js';
import { deferrer, http, startCollector } from './helpers/collector-process.js';
import { startNatsServer } from './helpers/nats-server.js';
import { REPO_ROOT, SHARED_PCAPS } from './helpers/paths.js';

const PROMETHEUS = '/usr/bin/prometheus';
const PROMTOOL = '/usr/bin/promtool';
const DASHBOARD = join(REPO_ROOT, 'deploy', 'grafana', 'pcap-analyzer.json');
/** IPv6 TCP (RTT), DNS (latency, a timeout) and ICMPv6 over 64 s: at twice its speed, a pass of 32 s gives every agent panel data (RTT windows last 3 s, the scrape is every 1 s). */
const CAPTURE = join(SHARED_PCAPS, 'arkime_v6.pcap');

interface Target { expr: string; refId: string }
interface Panel { type: string; title: string; targets?: Target[]; datasource?: { uid: string } }
interface Dashboard { uid: string; panels: Panel[]; templating: { list: Array<{ name: string; query: unknown }> } }

/** The dashboard's variables as Grafana sets them with "All" selected. */
const VARIABLES: Record<string, string> = {
  '$__rate_interval': '1m',
  '$agent_job': 'pcap-agent.*',
  '$collector_job': 'pcap-collector',
  '$sensor': '.*',
};

function substitute(expr: string): string {
  let out = expr;
  for (const [name, value] of Object.entries(VARIABLES)) out = out.split(name).join(value);
  assert.doesNotMatch(out, /\$/, `a variable left in ${out}`);
  return out;
}

const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;
const queryPanels = dashboard.panels.filter((p) => p.type !== 'row');

test('the dashboard: agent and collector rows, every panel on the datasource variable with PromQL targets', () => {
  assert.deepEqual(dashboard.panels.filter((p) => p.type === 'row').map((p) => p.title), ['Agent', 'Collector']);
  assert.deepEqual(dashboard.templating.list.map((v) => v.name), ['datasource', 'agent_job', 'collector_job', 'sensor']);
  for (const p of queryPanels) {
    assert.equal(p.datasource?.uid, '${datasource}', p.title);
    assert.ok(p.targets?.length, `${p.title} has a query`);
  }
  const exprs = queryPanels.flatMap((p) => p.targets!.map((t) => t.expr)).join('\n');
  for (const name of ['process_resident_memory_bytes', 'process_cpu_seconds_total', 'nodejs_eventloop_lag_p99_seconds']) {
    assert.ok(exprs.includes(name), `${name}: the standard name, unprefixed`);
  }
});

const missing = [PROMETHEUS, PROMTOOL].filter((f) => spawnSync(f, ['--version']).status !== 0);

describe('against a running agent and collector', { skip: missing.length ? `${missing.join(', ')} missing (apt-get install prometheus)` : false }, () => {
  test('promtool check metrics is clean on both /metrics; Prometheus evaluates every dashboard expression with data', { timeout: 180_000 }, async (t) => {
    const defer = deferrer(t);
    const work = mkdtempSync(join(tmpdir(), 'pa-grafana-'));
    defer(() => rmSync(work, { recursive: true, force: true }));
    const nats = await startNatsServer();
    defer(() => nats.close());
    const collector = await startCollector(defer, nats.url, join(work, 'collector'));

    const agentPort = await freePort();
    const agentConfig = join(work, 'agent.yaml');
    writeFileSync(agentConfig, 'windows:\n  seconds: 1\n');
    const agent = spawnAgent(['--replay', CAPTURE, '--loop', '--speed', '2', '--sensor', 'graf1', '--nats', nats.url,
      '--listen', `127.0.0.1:${agentPort}`, '--data-dir', join(work, 'agent'), '--config', agentConfig]);
    defer(async () => { agent.child.kill('SIGKILL'); await agent.exited; });
    const agentBase = `http://127.0.0.1:${agentPort}`;
    await waitFor('the agent\'s /metrics', async () => (await http(`${agentBase}/metrics`)).status === 200 || undefined, 20_000, 200);

    for (const [what, url] of [['agent', `${agentBase}/metrics`], ['collector', `${collector.base}/metrics`]] as const) {
      const text = (await http(url)).text;
      assert.match(text, /^process_resident_memory_bytes\{?.*\}? \d+/m, `${what}: process_* unprefixed`);
      assert.match(text, /^nodejs_heap_size_used_bytes/m, `${what}: nodejs_* unprefixed`);
      assert.doesNotMatch(text, /^pcap_analyzer_(collector_)?(process|nodejs)_/m, `${what}: no prefixed default metrics`);
      const check = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8' });
      assert.equal(check.status, 0, `${what}: ${check.stdout}${check.stderr}`);
      assert.equal(`${check.stdout}${check.stderr}`.trim(), '', `${what}: promtool has nothing to say`);
    }
    // Labelled counters exist at 0 before their first event (the evictions series once the capture thread is ready).
    const agentText = await waitFor('the capture thread ready', async () => {
      const text = (await http(`${agentBase}/metrics`)).text;
      return text.includes('pcap_analyzer_table_evictions_total{') ? text : undefined;
    }, 20_000, 100);
    for (const series of ['pcap_analyzer_capture_drops_total{where="kernel",sensor="graf1"} 0', 'pcap_analyzer_capture_drops_total{where="interface",sensor="graf1"} 0',
      'pcap_analyzer_publish_total{result="failed",sensor="graf1"} 0', 'pcap_analyzer_findings_total{type="flood",severity="critical",sensor="graf1"} 0',
      'pcap_analyzer_decode_errors_total{reason="tcp.bad_data_offset",sensor="graf1"} 0']) {
      assert.ok(agentText.split('\n').includes(series), series);
    }
    // One evictions series per detector that keeps key tables, from the start (0 until its first eviction).
    for (const table of ['flood', 'exfiltration', 'beaconing', 'port_scan', 'brute_force', 'lateral_movement', 'dns_tunneling']) {
      assert.match(agentText, new RegExp(`^pcap_analyzer_table_evictions_total\\{table="${table}",sensor="graf1"\\} \\d+$`, 'm'), table);
    }
    const collectorText = (await http(`${collector.base}/metrics`)).text;
    for (const series of ['pcap_analyzer_collector_messages_rejected_total{reason="bad_json"} 0', 'pcap_analyzer_collector_analyses_total{outcome="failed"} 0']) {
      assert.ok(collectorText.split('\n').includes(series), series);
    }

    const promPort = await freePort();
    const promDir = join(work, 'prometheus');
    const config = join(work, 'prometheus.yml');
    writeFileSync(config, `global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: pcap-agent
    static_configs: [{ targets: ["127.0.0.1:${agentPort}"] }]
  - job_name: pcap-collector
    static_configs: [{ targets: ["${new URL(collector.base).host}"] }]
`);
    const prom = spawn(PROMETHEUS, [`--config.file=${config}`, `--storage.tsdb.path=${promDir}`, `--web.listen-address=127.0.0.1:${promPort}`, '--log.level=warn'],
      { stdio: ['ignore', 'ignore', 'pipe'] });
    let promLog = '';
    prom.stderr.on('data', (d: Buffer) => { promLog += d.toString(); });
    const promExited = new Promise<void>((resolve) => prom.on('exit', () => resolve()));
    defer(async () => { prom.kill('SIGTERM'); await promExited; });
    const promBase = `http://127.0.0.1:${promPort}`;
    await waitFor('Prometheus ready', async () => (await http(`${promBase}/-/ready`)).status === 200 || undefined, 30_000, 200);

    const query = async (expr: string): Promise<number> => {
      const answer = await http(`${promBase}/api/v1/query?query=${encodeURIComponent(expr)}`);
      assert.equal(answer.status, 200, `${expr}: ${answer.text}`);
      const body = JSON.parse(answer.text) as { status: string; data: { resultType: string; result: Array<{ value: [number, string] }> } };
      assert.equal(body.status, 'success');
      return body.data.result.filter((r) => Number.isFinite(Number(r.value[1]))).length;
    };
    // Both targets up first: then each expression in turn, until it returns data.
    await waitFor('both targets scraped', async () => (await query('up == 1')) === 2 || undefined, 30_000, 500);
    const variableQuery = 'pcap_analyzer_info{sensor="graf1"}';
    assert.equal(await waitFor(variableQuery, async () => (await query(variableQuery)) || undefined, 10_000, 500), 1);
    const results: string[] = [];
    for (const panel of queryPanels) {
      for (const target of panel.targets!) {
        const expr = substitute(target.expr);
        const series = await waitFor(`${panel.title}: ${expr} returning data${promLog ? ` (prometheus: ${promLog.slice(-500)})` : ''}`,
          async () => (await query(expr)) || undefined, 90_000, 1000);
        results.push(`${series} series  ${panel.title}`);
      }
    }
    for (const line of results) t.diagnostic(line);
    assert.equal(results.length, queryPanels.reduce((n, p) => n + p.targets!.length, 0));
  });
});
