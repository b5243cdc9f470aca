/**
 * The collector as a real child process, fed by a real agent through a
 * nats-server spawned here, on SQLite and on PostgreSQL: reports equal to
 * `analyze`, SIGKILL mid-ingest loses and duplicates nothing, malformed
 * messages are terminated, the API refuses bad queries and missing tokens.
 * A collector started after its sensors stopped judges them by their
 * heartbeats' own times: not up, and no stale spool or drop figures as current.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { Finding, Report, WindowSummary } from '../common/report.js';
import { WINDOW_SCHEMA, subjectFor, type WindowMessage } from '../common/wire.js';
import { SHARED_PCAPS } from './helpers/paths.js';
import { analyzeJson, freePort, metricValue, parseMetrics, spawnAgent, spawnCli, waitFor, type AgentProcess } from './helpers/agent-process.js';
import { startNatsServer, type NatsServerHandle } from './helpers/nats-server.js';
import { createTestDatabase, postgresAvailable } from './helpers/postgres.js';

const SYNSCAN = join(SHARED_PCAPS, 'ppa_synscan.pcapng');
const DNS = join(SHARED_PCAPS, 'wssample_dns.cap');

let work: string;
before(() => { work = mkdtempSync(join(tmpdir(), 'pa-collector-')); });

interface Collector { proc: AgentProcess; base: string }

/** Collectors not yet stopped: a failed assertion must not leave one running. */
const running = new Set<Collector>();
after(async () => {
  for (const c of running) {
    c.proc.child.kill('SIGKILL');
    await c.proc.exited;
  }
  rmSync(work, { recursive: true, force: true });
});

/** Starts `pcap-analyzer collector` and waits for /api/health. */
async function startCollector(nats: NatsServerHandle, name: string, extra: string[] = [], env: Record<string, string> = {}): Promise<Collector> {
  const port = await freePort();
  const proc = spawnCli(['collector', '--nats', nats.url, '--listen', `127.0.0.1:${port}`, '--data-dir', join(work, name), ...extra], { env });
  const base = `http://127.0.0.1:${port}`;
  const collector = { proc, base };
  running.add(collector);
  await waitFor(`collector ${name} to answer`, async () => (await fetch(`${base}/api/health`)).ok || undefined, 20_000, 100);
  return collector;
}

async function stopCollector(c: Collector): Promise<void> {
  c.proc.child.kill('SIGTERM');
  const { code } = await c.proc.exited;
  running.delete(c);
  assert.equal(code, 0, c.proc.stderr());
}

const getJson = async <T>(url: string, headers: Record<string, string> = {}): Promise<T> => {
  const res = await fetch(url, { headers });
  assert.equal(res.status, 200, `${url}: ${res.status} ${await res.clone().text()}`);
  return await res.json() as T;
};

const ALL_TIME = 'from=0&to=4000000000';

async function endToEnd(databaseArgs: string[], label: string): Promise<void> {
  const nats = await startNatsServer();
  try {
    const collector = await startCollector(nats, label, databaseArgs);
    const config = join(work, `${label}.yaml`);
    writeFileSync(config, 'windows:\n  seconds: 1\n');
    for (const [sensor, file] of [[`${label}-scan`, SYNSCAN], [`${label}-dns`, DNS]] as const) {
      const agent = spawnAgent(['--replay', file, '--sensor', sensor, '--nats', nats.url, '--listen', '', '--data-dir', join(work, `${sensor}-agent`), '--config', config]);
      assert.equal((await agent.exited).code, 0, agent.stderr());
      const expected = analyzeJson(file, config);
      const report = await waitFor(`${sensor}'s windows in the collector`, async () => {
        const r = await getJson<Report>(`${collector.base}/api/reports/${sensor}?${ALL_TIME}`).catch(() => undefined);
        return r && r.capture.packets === expected.capture.packets && r.findings.length === expected.findings.length ? r : undefined;
      }, 20_000, 200);
      assert.deepEqual(report.counters, expected.counters, `${sensor}: counters equal analyze's, zeros included`);
      assert.deepEqual(report.stats, expected.stats, `${sensor}: stats equal analyze's`);
      assert.deepEqual(report.healthScore, expected.healthScore, `${sensor}: the health score equals analyze's`);
      assert.equal(report.schema, 'pcap-analyzer/report@1');
      assert.equal(report.capture.bytes, expected.capture.bytes);
      // Within a window the collector lists findings by id; analyze lists them as reported.
      const byWindowAndId = (a: Finding, b: Finding): number => a.window.start.localeCompare(b.window.start) || a.id.localeCompare(b.id);
      assert.deepEqual([...report.findings].sort(byWindowAndId), [...expected.findings].sort(byWindowAndId));
      assert.equal(report.windows.length, expected.windows.length);
      const html = await fetch(`${collector.base}/api/reports/${sensor}?${ALL_TIME}&format=html`);
      assert.equal(html.status, 200);
      assert.match(html.headers.get('content-type') ?? '', /text\/html/);
      const page = await html.text();
      assert.match(page, new RegExp(`<title>PCAP Analyzer report: sensor:${sensor}</title>`));
      for (const f of expected.findings.slice(0, 3)) assert.ok(page.includes(f.type), f.type);
    }
    const sensors = await getJson<{ sensors: Array<{ id: string; up: boolean; capture: { packets: number } | null }> }>(`${collector.base}/api/sensors`);
    const scan = sensors.sensors.find((s) => s.id === `${label}-scan`);
    assert.ok(scan, 'sensor listed');
    assert.equal(scan.capture?.packets, 2011);
    const findings = await getJson<{ findings: Array<{ type: string; sensor: string }> }>(`${collector.base}/api/findings?type=port_scan`);
    assert.ok(findings.findings.some((f) => f.sensor === `${label}-scan`));
    const health = await getJson<{ status: string; database: { ok: boolean; kind: string }; nats: { connected: boolean } }>(`${collector.base}/api/health`);
    assert.equal(health.database.ok, true);
    assert.equal(health.nats.connected, true);
    await stopCollector(collector);
  } finally {
    await nats.close();
  }
}

test('end to end on SQLite: agent replay -> NATS -> collector; /api/reports counters equal analyze', async () => {
  await endToEnd([], 'sqlite');
});

test('end to end on PostgreSQL', async (t) => {
  const reason = await postgresAvailable();
  if (reason !== false) { t.skip(reason); return; }
  const db = await createTestDatabase();
  try {
    await endToEnd(['--database-url', db.url], 'pg');
  } finally {
    await db.drop();
  }
});

/** Waits until a collector has created the stream. */
async function streamReady(nats: NatsServerHandle): Promise<void> {
  const nc = await connect({ servers: nats.url });
  try {
    const jsm = await jetstreamManager(nc);
    await waitFor('the stream', async () => { await jsm.streams.info('PCAP_ANALYZER'); return true; }, 10_000, 100);
  } finally {
    await nc.drain();
  }
}

/** Publishes `count` synthetic window messages for one sensor straight to JetStream. */
async function publishWindows(nats: NatsServerHandle, sensor: string, count: number): Promise<void> {
  await streamReady(nats);
  const nc = await connect({ servers: nats.url });
  const js = jetstream(nc);
  const base = Date.UTC(2026, 0, 1) / 1000;
  for (let i = 0; i < count; i += 200) {
    const acks: Array<Promise<unknown>> = [];
    for (let j = i; j < Math.min(count, i + 200); j++) {
      const start = new Date((base + j) * 1000).toISOString().replace('.000Z', '.000000Z');
      const end = new Date((base + j + 1) * 1000).toISOString().replace('.000Z', '.000000Z');
      const window: WindowSummary = { start, end, packets: j, bytes: j * 100, flows: { active: 1, new: 1, closed: 0 }, outOfOrderTimestamps: 0, metrics: {}, healthScore: 90, counters: { frames: j } };
      const msg: WindowMessage = { schema: WINDOW_SCHEMA, id: `${sensor}.w.${j}`, sensor, source: { kind: 'replay', name: 'synthetic' }, window };
      acks.push(js.publish(subjectFor(sensor, 'window'), JSON.stringify(msg), { msgID: msg.id }));
    }
    await Promise.all(acks);
  }
  await nc.drain();
}

test('SIGKILL in the middle of ingesting: after a restart every window is stored exactly once', async () => {
  const nats = await startNatsServer();
  try {
    // The agent's stream must exist before publishing; the first collector creates it.
    // Redelivery of what the killed collector fetched but never acknowledged comes after ackWaitSeconds.
    const first = await startCollector(nats, 'crash', [], { PCAP_ANALYZER_COLLECTOR_BATCH_SIZE: '20', PCAP_ANALYZER_COLLECTOR_ACK_WAIT_SECONDS: '3' });
    const total = 6000;
    const publishing = publishWindows(nats, 'crashy', total);
    await waitFor('ingest under way', async () => {
      const m = parseMetrics(await (await fetch(`${first.base}/metrics`)).text());
      const n = metricValue(m, 'pcap_analyzer_collector_messages_ingested_total', 'window');
      return n > 300 ? n : undefined;
    }, 30_000, 20);
    first.proc.child.kill('SIGKILL');
    await first.proc.exited;
    running.delete(first);
    await publishing;
    const second = await startCollector(nats, 'crash', [], { PCAP_ANALYZER_COLLECTOR_BATCH_SIZE: '200' });
    const windows = await waitFor('every window stored', async () => {
      const r = await getJson<{ windows: WindowSummary[] }>(`${second.base}/api/sensors/crashy/windows?${ALL_TIME}&limit=100000`).catch(() => undefined);
      return r && r.windows.length >= total ? r.windows : undefined;
    }, 60_000, 250);
    assert.equal(windows.length, total);
    assert.equal(new Set(windows.map((w) => w.start)).size, total, 'no window twice');
    assert.deepEqual(windows.map((w) => w.packets), Array.from({ length: total }, (_, i) => i), 'every window, in order');
    await waitFor('the consumer to have nothing pending', async () => metricValue(parseMetrics(await (await fetch(`${second.base}/metrics`)).text()), 'pcap_analyzer_collector_consumer_pending') === 0 || undefined, 30_000, 200);
    await stopCollector(second);
  } finally {
    await nats.close();
  }
});

test('malformed messages are counted, logged with subject and sequence, terminated; bad queries are 400; tokens are required', async () => {
  const nats = await startNatsServer();
  try {
    const collector = await startCollector(nats, 'bad', [], { API_TOKEN: 's3cret' });
    const auth = { authorization: 'Bearer s3cret' };
    await streamReady(nats);
    const nc = await connect({ servers: nats.url });
    const js = jetstream(nc);
    await js.publish('pcap.v1.evil.window', '{not json');
    await js.publish('pcap.v1.evil.window', JSON.stringify({ schema: 'pcap-analyzer/window@99', id: 'x', sensor: 'evil', source: {} }));
    await js.publish('pcap.v1.evil.finding', JSON.stringify({ schema: 'pcap-analyzer/finding@1', id: 'y', sensor: 'evil', source: { kind: 'live', name: 'x' }, finding: { type: 1 } }));
    await nc.drain();
    await waitFor('rejections counted', async () => {
      const m = parseMetrics(await (await fetch(`${collector.base}/metrics`)).text());
      return metricValue(m, 'pcap_analyzer_collector_messages_rejected_total') === 3 || undefined;
    }, 15_000, 100);
    assert.match(collector.proc.stderr(), /"subject":"pcap\.v1\.evil\.window","seq":1,"reason":"bad JSON".*malformed message terminated/);
    assert.match(collector.proc.stderr(), /unknown schema \\"pcap-analyzer\/window@99\\"/);
    // Terminated, not waiting for redelivery (ackWaitSeconds is 30 s by default).
    await waitFor('the consumer to have nothing pending', async () => metricValue(parseMetrics(await (await fetch(`${collector.base}/metrics`)).text()), 'pcap_analyzer_collector_consumer_pending') === 0 || undefined, 20_000, 200);

    // Every protected route: 401 without the token, and never the token in the audit log.
    for (const path of ['/api/sensors', '/api/findings', '/api/sensors/x/windows', '/api/reports/x', '/api/captures/x']) {
      const res = await fetch(collector.base + path);
      assert.equal(res.status, 401, path);
      assert.deepEqual(Object.keys(await res.json() as object).sort(), ['detail', 'error']);
    }
    assert.equal((await fetch(`${collector.base}/api/sensors`, { headers: { authorization: 'Bearer wrong' } })).status, 401);
    assert.equal((await fetch(`${collector.base}/api/health`)).status, 200);
    assert.equal((await fetch(`${collector.base}/api/sensors`, { headers: auth })).status, 200);
    assert.match(collector.proc.stderr(), /"audit":true,"principal":"token:[0-9a-f]{8}","ip":"127\.0\.0\.1","action":"authenticate","target":"\/api\/sensors","outcome":"denied"/);
    assert.doesNotMatch(collector.proc.stderr(), /s3cret|wrong/);

    const bad: Array<[string, RegExp]> = [
      ['/api/findings?severity=loud', /severity/],
      ['/api/findings?limit=0', /limit/],
      ['/api/findings?limit=5000', /limit/],
      ['/api/findings?ip=10.0.0.999', /not an IPv4 or IPv6 address/],
      ['/api/findings?from=yesterday', /from: "yesterday" is not an ISO-8601 time/],
      ['/api/findings?cursor=garbage', /cursor/],
      ['/api/findings?colour=red', /must NOT have additional properties|colour/],
      ['/api/reports/x?format=pdf', /format/],
      ['/api/sensors/x/windows?from=2026-01-02&to=2026-01-01', /from is after to/],
    ];
    for (const [path, detail] of bad) {
      const res = await fetch(collector.base + path, { headers: auth });
      const body = await res.json() as { error: string; detail: string };
      assert.equal(res.status, 400, `${path}: ${JSON.stringify(body)}`);
      assert.match(body.detail, detail, path);
    }
    const missing = await fetch(`${collector.base}/api/reports/nobody?${ALL_TIME}`, { headers: auth });
    assert.equal(missing.status, 404);
    await stopCollector(collector);
  } finally {
    await nats.close();
  }
});

test('two collectors sharing one PostgreSQL database share the durable consumer: every window once', async (t) => {
  const reason = await postgresAvailable();
  if (reason !== false) { t.skip(reason); return; }
  const db = await createTestDatabase();
  const nats = await startNatsServer();
  try {
    const env = { PCAP_ANALYZER_COLLECTOR_BATCH_SIZE: '25' };
    const a = await startCollector(nats, 'shared-a', ['--database-url', db.url], env);
    const b = await startCollector(nats, 'shared-b', ['--database-url', db.url], env);
    const total = 3000;
    await publishWindows(nats, 'shared', total);
    const windows = await waitFor('every window stored', async () => {
      const r = await getJson<{ windows: WindowSummary[] }>(`${a.base}/api/sensors/shared/windows?${ALL_TIME}&limit=100000`).catch(() => undefined);
      return r && r.windows.length >= total ? r.windows : undefined;
    }, 60_000, 250);
    assert.equal(windows.length, total);
    assert.deepEqual(windows.map((w) => w.packets), Array.from({ length: total }, (_, i) => i));
    const ingested = async (c: Collector): Promise<number> => metricValue(parseMetrics(await (await fetch(`${c.base}/metrics`)).text()), 'pcap_analyzer_collector_messages_ingested_total');
    const [na, nb] = [await ingested(a), await ingested(b)];
    assert.equal(na + nb, total, `a ${na} + b ${nb}: each message delivered to one of them`);
    assert.ok(na > 0 && nb > 0, `both took part (a ${na}, b ${nb})`);
    await stopCollector(a);
    await stopCollector(b);
  } finally {
    await nats.close();
    await db.drop();
  }
});

test('a collector started on a stream after its sensors stopped: the one killed is down, the one stopped in order is stopped, no spool or drops shown as current', async () => {
  const nats = await startNatsServer();
  const agents: AgentProcess[] = [];
  try {
    const agentConfig = join(work, 'liveness-agent.yaml');
    writeFileSync(agentConfig, 'windows:\n  seconds: 1\nstatus:\n  seconds: 1\n');
    const start = (sensor: string): AgentProcess => {
      const agent = spawnAgent(['--replay', SYNSCAN, '--loop', '--sensor', sensor, '--nats', nats.url, '--listen', '', '--data-dir', join(work, `${sensor}-agent`), '--config', agentConfig]);
      agents.push(agent);
      return agent;
    };
    const killed = start('killed');
    const halted = start('halted');
    const nc = await connect({ servers: nats.url });
    let stored: number;
    try {
      const jsm = await jetstreamManager(nc);
      const heartbeats = async (sensor: string): Promise<number> => {
        const info = await jsm.streams.info('PCAP_ANALYZER', { subjects_filter: `pcap.v1.${sensor}.status` });
        return info.state.subjects?.[`pcap.v1.${sensor}.status`] ?? 0;
      };
      await waitFor('three heartbeats of each sensor in the stream', async () => ((await heartbeats('killed')) >= 3 && (await heartbeats('halted')) >= 3) || undefined, 30_000, 200);
      // Killed: no word at all; SIGTERM: the agent's orderly stop, with its final heartbeat.
      killed.child.kill('SIGKILL');
      halted.child.kill('SIGTERM');
      assert.equal((await halted.exited).code, 0, halted.stderr());
      await killed.exited;
      stored = (await jsm.streams.info('PCAP_ANALYZER')).state.messages;
    } finally {
      await nc.close();
    }
    const killedAt = Date.now();

    // Down after 5 s of silence (3 heartbeat intervals are less). The collector starts once that has passed
    // since the kill, so it reads heartbeats 5 s old or more: ingested just now, they are not news.
    const dataDir = join(work, 'liveness');
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(join(dataDir, 'collector.yaml'), 'collector:\n  sensorDownSeconds: 5\n');
    await new Promise((r) => setTimeout(r, Math.max(0, killedAt + 6000 - Date.now())));
    const collector = await startCollector(nats, 'liveness', ['--config', join(dataDir, 'collector.yaml')]);
    type View = { id: string; up: boolean; liveness: string; state: string | null; lastSeen: string; lastHeartbeat: string | null; spool: unknown; capture: { packets: number } | null };
    const sensors = async (): Promise<View[]> => (await getJson<{ sensors: View[] }>(`${collector.base}/api/sensors`)).sensors;
    await waitFor('every message ingested', async () =>
      metricValue(parseMetrics(await (await fetch(`${collector.base}/metrics`)).text()), 'pcap_analyzer_collector_messages_ingested_total') >= stored || undefined, 30_000, 200);
    const [haltedView, killedView] = await sensors();
    assert.equal(killedView!.id, 'killed');
    assert.equal(killedView.up, false, 'killed 6 s before: its last heartbeat is older than sensorDownSeconds, however recently it was read');
    assert.equal(killedView.liveness, 'down');
    assert.ok(Date.parse(killedView.lastHeartbeat!) <= killedAt, `last heartbeat ${killedView.lastHeartbeat} made before the kill (by ${new Date(killedAt).toISOString()})`);
    assert.ok(Date.parse(killedView.lastSeen) > killedAt + 5000, 'read by the collector well after');
    assert.equal(killedView.spool, null, 'no spool figure from a sensor that is not reporting');
    assert.ok(killedView.capture && killedView.capture.packets > 0, 'its totals as of the last heartbeat stay');

    assert.equal(haltedView!.id, 'halted');
    assert.equal(haltedView.up, false);
    assert.equal(haltedView.liveness, 'stopped', 'the final heartbeat of an orderly stop');
    assert.equal(haltedView.state, 'stopping');
    assert.equal(haltedView.spool, null);

    const text = await (await fetch(`${collector.base}/metrics`)).text();
    const m = parseMetrics(text);
    assert.equal(m.get('pcap_analyzer_sensor_up{sensor="killed"}'), 0);
    assert.equal(m.get('pcap_analyzer_sensor_up{sensor="halted"}'), 0);
    assert.deepEqual(text.split('\n').filter((l) => l.startsWith('pcap_analyzer_sensor_capture_drops{')), [], 'no drop gauge of a sensor that is not up');
    await stopCollector(collector);
  } finally {
    for (const a of agents) a.child.kill('SIGKILL');
    await nats.close();
  }
});
