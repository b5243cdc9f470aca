/**
 * A hostile sensor against a real collector process fed by a real nats-server:
 * it publishes only on its own subjects (as its NATS user may), yet tries to
 * speak for another sensor, take another's ids, send oversized, malformed and
 * far-future messages, unknown finding types and 10,000 distinct ones, and
 * more sensors than the metrics cap. Each is rejected (terminated and counted
 * in pcap_analyzer_collector_messages_rejected_total{reason}) or bounded; the
 * API, the pages and /metrics keep answering 200, and the honest sensor's data
 * is exactly what it sent.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import { envName } from '../common/config.js';
import type { Finding, WindowSummary } from '../common/report.js';
import {
  FINDING_SCHEMA, STATUS_SCHEMA, WINDOW_SCHEMA, findingMessageId, statusMessageId, subjectFor, windowMessageId,
  type FindingMessage, type SourceInfo, type StatusMessage, type WindowMessage,
} from '../common/wire.js';
import { CollectorMetrics, OTHER_SENSOR } from '../collector/metrics.js';
import { MAX_DEPTH, REJECT_REASONS, nestedDeeper } from '../collector/ingest/validate.js';
import { SqliteStore } from '../collector/store/sqlite.js';
import type { SensorRecord } from '../collector/store/types.js';
import { freePort, parseMetrics, spawnCli, waitFor, type AgentProcess } from './helpers/agent-process.js';
import { startNatsServer, type NatsServerHandle } from './helpers/nats-server.js';

const TOKEN = 'hostile-suite-token';
const AUTH = { authorization: `Bearer ${TOKEN}` };
const MAX_MESSAGE_BYTES = 16_384;
const MAX_SENSOR_SERIES = 4;
const source: SourceInfo = { kind: 'replay', name: 'hostile.pcap' };

let work = '';
let nats: NatsServerHandle | undefined;
let collector: AgentProcess | undefined;
let base = '';
let nc: NatsConnection | undefined;
let js: JetStreamClient;

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'pa-hostile-'));
  nats = await startNatsServer();
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  collector = spawnCli(['collector', '--nats', nats.url, '--listen', `127.0.0.1:${port}`, '--data-dir', join(work, 'collector')], {
    env: {
      API_TOKEN: TOKEN,
      [envName('collector.maxMessageBytes')]: String(MAX_MESSAGE_BYTES),
      [envName('collector.maxSensorSeries')]: String(MAX_SENSOR_SERIES),
      // Statuses dated after the moment of ingest count as that moment (no allowance).
      [envName('collector.clockSkewSeconds')]: '0',
    },
  });
  await waitFor('the collector connected to NATS', async () => {
    const health = await (await fetch(`${base}/api/health`)).json() as { nats?: { connected?: boolean } };
    return health.nats?.connected || undefined;
  }, 20_000);
  nc = await connect({ servers: nats.url });
  js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  await waitFor('the stream', () => jsm.streams.info('PCAP_ANALYZER').then(() => true, () => undefined), 10_000);
});

after(async () => {
  await nc?.close().catch(() => undefined);
  if (collector && collector.child.exitCode === null && collector.child.signalCode === null) {
    collector.child.kill('SIGTERM');
    const timer = setTimeout(() => collector?.child.kill('SIGKILL'), 15_000);
    await collector.exited;
    clearTimeout(timer);
  }
  await nats?.close();
  rmSync(work, { recursive: true, force: true });
});

// ---------------------------------------------------------------- honest messages

const iso = (ms: number): string => new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');

function windowSummary(startMs: number): WindowSummary {
  return {
    start: iso(startMs), end: iso(startMs + 1000), packets: 10, bytes: 1000, flows: { active: 2, new: 1, closed: 0 },
    outOfOrderTimestamps: 0, metrics: { tcp: { retransmissions: 0 } }, healthScore: 97,
    capture: { received: 10, drops: { kernel: 0, interface: 0, agent: 0 } }, counters: { frame: 10 },
  };
}

function windowMessage(sensor: string, startMs: number): WindowMessage {
  const window = windowSummary(startMs);
  return { schema: WINDOW_SCHEMA, id: windowMessageId(sensor, source, window), sensor, source, window };
}

function findingMessage(sensor: string, n: number, type = 'port_scan', severity: Finding['severity'] = 'warning'): FindingMessage {
  const finding: Finding = {
    id: `f${String(n).padStart(6, '0')}`, type, severity, window: { start: iso(Date.UTC(2026, 0, 1)), end: iso(Date.UTC(2026, 0, 1) + 1000) },
    host: '10.0.0.9', summary: `finding ${n}`, evidence: { ports: 100 },
  };
  return { schema: FINDING_SCHEMA, id: findingMessageId(sensor, source, finding), sensor, source, finding };
}

function statusMessage(sensor: string, time: string, version = '1.0.0', seq = 1): StatusMessage {
  return {
    schema: STATUS_SCHEMA, id: statusMessageId(sensor, new Date(Date.UTC(2026, 0, 1)), seq), sensor, version, source,
    startedAt: iso(Date.UTC(2026, 0, 1)), time, uptimeSeconds: 5, state: 'running',
    capture: { packets: 10, bytes: 1000, received: 10, drops: { kernel: 1, interface: 0, agent: 0 }, decodeErrors: {} },
    flows: { active: 2, evicted: 0 }, windows: 1,
    publish: { connected: true, published: 3, publishFailures: 0, inFlight: 0, spoolMessages: 0, spoolBytes: 0, overflowMessages: 0 },
  };
}

/** Publishes a body (object or raw text) on a subject, with its id as Nats-Msg-Id when it has one. */
async function publish(subject: string, body: unknown, msgID?: string): Promise<void> {
  const data = typeof body === 'string' ? body : JSON.stringify(body);
  await js.publish(subject, data, msgID ? { msgID } : {});
}

async function metrics(): Promise<{ text: string; values: Map<string, number> }> {
  const res = await fetch(`${base}/metrics`);
  assert.equal(res.status, 200);
  const text = await res.text();
  return { text, values: parseMetrics(text) };
}

const rejected = (values: Map<string, number>, reason: string): number => values.get(`pcap_analyzer_collector_messages_rejected_total{reason="${reason}"}`) ?? 0;

const sensors = async (): Promise<SensorView[]> => (await getJson<{ sensors: SensorView[] }>('/api/sensors')).sensors;

async function getJson<T>(path: string): Promise<T> {
  const res = await fetch(base + path, { headers: AUTH });
  assert.equal(res.status, 200, `${path}: ${res.status}`);
  return await res.json() as T;
}

interface SensorView { id: string; version: string; state: string | null; capture: { drops: Record<string, number> } | null }

// ---------------------------------------------------------------- the suite

test('a hostile sensor is rejected or bounded, counted by reason; the API, pages and /metrics stay up; the honest sensor\'s data is intact', async () => {
  // The honest sensor.
  const goodWindow = windowMessage('good', Date.UTC(2026, 0, 1, 0, 0, 0));
  const goodFinding = findingMessage('good', 1);
  const goodStatus = statusMessage('good', new Date().toISOString());
  await publish(subjectFor('good', 'window'), goodWindow, goodWindow.id);
  await publish(subjectFor('good', 'finding'), goodFinding, goodFinding.id);
  await publish(subjectFor('good', 'status'), goodStatus, goodStatus.id);
  await waitFor('the honest sensor stored', async () => (await getJson<{ findings: unknown[] }>('/api/findings?sensor=good')).findings.length === 1 || undefined);

  const expected: Record<string, number> = Object.fromEntries(REJECT_REASONS.map((r) => [r, 0]));
  const evil = (kind: 'window' | 'finding' | 'status'): string => subjectFor('evil', kind);

  // Impersonation by body: evil's subject, good's name (and good's next window id).
  const nextGood = windowMessage('good', Date.UTC(2026, 0, 1, 0, 0, 1));
  await publish(evil('window'), { ...nextGood, window: { ...nextGood.window, packets: 666 } }, `evil.${nextGood.id}`);
  await publish(evil('status'), { ...statusMessage('good', new Date().toISOString(), 'pwned'), id: 'evil.s.1.1' });
  expected['sensor_mismatch'] += 2;

  // Another sensor's ids, under its own name: good's next window id, and one it already has.
  await publish(evil('window'), { ...windowMessage('evil', Date.UTC(2026, 0, 1, 0, 0, 1)), id: nextGood.id });
  await publish(evil('finding'), { ...findingMessage('evil', 1), id: goodFinding.id });
  expected['id_mismatch'] += 2;

  // A message on the wrong kind's subject, and outside pcap.v1.<sensor>.<kind>.
  await publish(evil('window'), findingMessage('evil', 2));
  await publish('pcap.v1.evil.window.extra', windowMessage('evil', Date.UTC(2026, 0, 1)));
  expected['bad_subject'] += 2;

  // Oversized: over collector.maxMessageBytes (and still under the server's max_payload).
  const big = windowMessage('evil', Date.UTC(2026, 0, 1, 0, 1));
  big.window.metrics = { filler: { text: 'x'.repeat(MAX_MESSAGE_BYTES) } };
  await publish(evil('window'), big);
  expected['too_large'] += 1;

  // Garbage and unknown schemas.
  await publish(evil('window'), '{"schema": "pcap-analyzer/window@1", ');
  await publish(evil('window'), '\u00ff\u00fe not utf-8 json');
  await publish(evil('window'), { ...windowMessage('evil', Date.UTC(2026, 0, 1)), schema: 'pcap-analyzer/window@2' });
  expected['bad_json'] += 2;
  expected['unknown_schema'] += 1;

  // Malformed statuses, windows and findings: each field the pages, /api/sensors and /metrics read.
  const now = new Date().toISOString();
  const malformed: unknown[] = [
    { ...statusMessage('evil', now), capture: undefined },
    { ...statusMessage('evil', now), capture: { ...statusMessage('evil', now).capture, drops: { kernel: 'lots', interface: 0, agent: 0 } } },
    { ...statusMessage('evil', now), time: 'yesterday' },
    { ...statusMessage('evil', now), state: '<script>' },
    { ...statusMessage('evil', now), publish: null },
    { ...statusMessage('evil', now), version: 'v\u0000\u001b[31m' },
    { ...statusMessage('evil', now), source: { kind: 'satellite', name: 'x' } },
  ];
  for (const m of malformed) await publish(evil('status'), m);
  await publish(evil('window'), { ...windowMessage('evil', Date.UTC(2026, 0, 2)), window: { ...windowSummary(Date.UTC(2026, 0, 2)), packets: -1 } });
  await publish(evil('window'), { ...windowMessage('evil', Date.UTC(2026, 0, 3)), window: { ...windowSummary(Date.UTC(2026, 0, 3)), healthScore: 'great' } });
  await publish(evil('finding'), findingMessage('evil', 3, '<img src=x>'));
  await publish(evil('finding'), findingMessage('evil', 4, 'port_scan', 'apocalyptic' as Finding['severity']));
  await publish(evil('finding'), { ...findingMessage('evil', 5), finding: { ...findingMessage('evil', 5).finding, evidence: { nested: { a: 1 } } } });
  expected['invalid'] += malformed.length + 5;

  // Nested deeper than the store could write back out (JSON.stringify runs out of stack near
  // 5,000 levels): a window's metrics, a finding's extra field, a status's. One such message
  // failed its whole batch, redelivered forever: ingest stopped for every sensor.
  const nested = (body: object): string => JSON.stringify(body).replace('"@deep@"', `${'['.repeat(6000)}${']'.repeat(6000)}`);
  const deepWindow = windowMessage('evil', Date.UTC(2026, 0, 4));
  await publish(evil('window'), nested({ ...deepWindow, window: { ...deepWindow.window, metrics: { tcp: { deep: '@deep@' } } } }));
  await publish(evil('finding'), nested({ ...findingMessage('evil', 6), finding: { ...findingMessage('evil', 6).finding, extra: '@deep@' } }));
  await publish(evil('status'), nested({ ...statusMessage('evil', now), extra: '@deep@' }));
  expected['invalid'] += 3;

  // Far future: accepted, but its time counts as the moment of ingest, so it cannot stay the latest.
  const future = statusMessage('evil', '9999-12-31T23:59:59.999Z', 'from-the-future', 2);
  await publish(evil('status'), future, future.id);
  await waitFor('the far-future status stored', async () => (await sensors()).find((s) => s.id === 'evil')?.version === 'from-the-future' || undefined);
  const later = statusMessage('evil', new Date().toISOString(), 'present', 3);
  await publish(evil('status'), later, later.id);
  await waitFor('a later honest status replaces it', async () => (await sensors()).find((s) => s.id === 'evil')?.version === 'present' || undefined);

  // Unknown finding types: stored (a newer agent may know more), labelled `other` in /metrics;
  // 10,000 distinct ones add no series.
  const distinct = 10_000;
  for (let i = 0; i < distinct; i += 500) {
    const acks: Array<Promise<unknown>> = [];
    for (let j = i; j < i + 500; j++) {
      const f = findingMessage('evil', 1000 + j, `made_up_${j}`, 'critical');
      acks.push(js.publish(evil('finding'), JSON.stringify(f), { msgID: f.id }));
    }
    await Promise.all(acks);
  }
  // More sensors than the metrics cap (each speaking for itself).
  for (let i = 0; i < MAX_SENSOR_SERIES + 3; i++) {
    const s = statusMessage(`many-${i}`, new Date().toISOString());
    await publish(subjectFor(`many-${i}`, 'status'), s, s.id);
  }

  // Every rejection counted under its reason, every accepted message stored.
  const m = await waitFor('every rejection counted and every accepted message stored', async () => {
    const { values } = await metrics();
    const stored = (await sensors()).length;
    // The sensor gauges (sensor_up, sensors_unlisted) are refreshed on their own tick: wait for it too.
    const caughtUp = values.get('pcap_analyzer_collector_findings_total{sensor="evil",type="other",severity="critical"}') === distinct && stored === 2 + MAX_SENSOR_SERIES + 3
      && values.get('pcap_analyzer_collector_sensors_unlisted') === 2 + 3;
    return REJECT_REASONS.every((r) => rejected(values, r) === expected[r]) && caughtUp ? values : undefined;
  }, 60_000, 200).catch(async (err: unknown) => {
    const { values } = await metrics();
    throw new Error(`${String(err)}; rejected now: ${JSON.stringify(REJECT_REASONS.map((r) => [r, rejected(values, r)]))}, expected ${JSON.stringify(expected)}`);
  });
  assert.equal(m.get('pcap_analyzer_collector_times_clamped_total{kind="status"}'), 1);
  // Stored with a value bounded: counted under the same counter.
  assert.equal(rejected(m, 'time_clamped'), 1);
  assert.equal(rejected(m, 'unknown_type'), distinct);
  assert.equal(m.get('pcap_analyzer_collector_findings_total{sensor="evil",type="other",severity="critical"}'), distinct);
  assert.equal(m.get('pcap_analyzer_collector_findings_total{sensor="good",type="port_scan",severity="warning"}'), 1);

  // Bounded series: one findings series per (listed sensor, known or other type, severity); per-sensor
  // gauges for at most collector.maxSensorSeries sensors.
  const { text } = await metrics();
  const findingSeries = text.split('\n').filter((l) => l.startsWith('pcap_analyzer_collector_findings_total{'));
  assert.ok(findingSeries.length <= 3, findingSeries.join('\n'));
  assert.doesNotMatch(text, /made_up_/);
  const upSeries = text.split('\n').filter((l) => l.startsWith('pcap_analyzer_sensor_up{'));
  assert.equal(upSeries.length, MAX_SENSOR_SERIES, upSeries.join('\n'));
  assert.equal(m.get('pcap_analyzer_collector_sensors_unlisted'), 2 + MAX_SENSOR_SERIES + 3 - MAX_SENSOR_SERIES);

  // Still answering, pages included.
  for (const path of ['/api/sensors', '/api/findings?limit=1000', '/api/findings?sensor=evil&type=made_up_9999', '/', '/sensors/good', '/sensors/evil', '/findings', '/api/reports/evil?from=0&to=4000000000']) {
    const res = await fetch(base + path, { headers: AUTH });
    assert.equal(res.status, 200, `${path}: ${res.status}`);
  }

  // The honest sensor: exactly what it sent, nothing of the impostor.
  const goods = await getJson<{ windows: WindowSummary[] }>('/api/sensors/good/windows?from=0&to=4000000000');
  assert.deepEqual(goods.windows, [goodWindow.window]);
  const goodFindings = await getJson<{ findings: Array<Finding & { sensor: string }> }>('/api/findings?sensor=good');
  assert.deepEqual(goodFindings.findings, [{ sensor: 'good', ...goodFinding.finding }]);
  const goodView = (await sensors()).find((s) => s.id === 'good');
  assert.equal(goodView?.version, '1.0.0');
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- capture is null in a view of a malformed status; tsc needs the chain
  assert.deepEqual(goodView?.capture?.drops, goodStatus.capture.drops);
  assert.equal((await getJson<{ findings: unknown[] }>('/api/findings?sensor=evil&type=made_up_0')).findings.length, 1);

  const log = collector!.stderr();
  assert.match(log, /"subject":"pcap\.v1\.evil\.window","seq":\d+,"reason":"body sensor does not match the subject".*malformed message terminated/);
  assert.match(log, /"reason":"16\d{3} bytes, over collector.maxMessageBytes \(16384\)"/);
  assert.doesNotMatch(log, /"level":50/, 'no error logged');
});

test('nesting depth: brackets inside strings (escaped quotes too) do not count; 64 levels pass, 65 do not', () => {
  const text = (t: string): Uint8Array => new TextEncoder().encode(t);
  const brackets = `{"a":"[[[[{{\\"[[[","b":"\\\\"}`;
  assert.deepEqual(JSON.parse(brackets), { a: '[[[[{{"[[[', b: '\\' });
  assert.equal(nestedDeeper(text(brackets), 1), false);
  assert.equal(nestedDeeper(text(`{"a":[{"b":"]]]]"}]}`), 2), true);
  assert.equal(nestedDeeper(text(`${'['.repeat(MAX_DEPTH)}${']'.repeat(MAX_DEPTH)}`), MAX_DEPTH), false);
  assert.equal(nestedDeeper(text(`${'['.repeat(MAX_DEPTH + 1)}${']'.repeat(MAX_DEPTH + 1)}`), MAX_DEPTH), true);
});

test('/metrics from stored content it does not trust: a non-number in drops is skipped, never thrown', () => {
  const m = new CollectorMetrics('test', 10);
  const base: SensorRecord = { id: 'old', version: '0', source, firstSeen: iso(0), lastSeen: iso(0), lastHeartbeat: null, lastStatus: null, lastHealthScore: null, lastWindowStart: null };
  const status = { capture: { drops: { kernel: 'lots', interface: null, agent: 3, bogus: 7 } } } as unknown as StatusMessage;
  assert.doesNotThrow(() => m.onSensors([{ ...base, lastStatus: status }, { ...base, id: 'odd', lastStatus: { capture: null } as unknown as StatusMessage }], () => true));
  assert.doesNotThrow(() => m.onSensors([{ ...base, id: 'weird', lastStatus: 'text' as unknown as StatusMessage, lastHealthScore: Number.NaN }], () => false));
});

test('retention removes a sensor last seen before the cut, and its series leave /metrics', async () => {
  let now = Date.UTC(2026, 0, 1);
  const store = new SqliteStore(join(work, 'retention.db'), { now: () => new Date(now) });
  try {
    await store.migrate();
    const m = new CollectorMetrics('test', 10);
    for (const sensor of ['old', 'fresh']) {
      await store.ingest({ windows: [], findings: [findingMessage(sensor, 1)], statuses: [statusMessage(sensor, iso(now))] });
      m.onFindings([findingMessage(sensor, 1)]);
      now += 3_600_000;
    }
    m.onSensors(await store.sensors(), () => true);
    const series = async (sensor: string): Promise<number> => (await m.registry.metrics()).split('\n').filter((l) => l.includes(`sensor="${sensor}"`)).length;
    assert.ok(await series('old') >= 3, 'up, drops and findings of old');
    const removed = await store.deleteSensorsSeenBefore(iso(Date.UTC(2026, 0, 1) + 1000), 10);
    assert.deepEqual(removed, ['old']);
    m.forgetSensors(removed);
    assert.equal(await series('old'), 0);
    assert.ok(await series('fresh') >= 3);
    assert.deepEqual((await store.sensors()).map((s) => s.id), ['fresh']);
    // Over the cap, sensors share one label; a removed sensor frees its place.
    const capped = new CollectorMetrics('test', 1);
    capped.onFindings([findingMessage('a', 1), findingMessage('b', 1)]);
    assert.match(await capped.registry.metrics(), new RegExp(`sensor="${OTHER_SENSOR}"`));
  } finally {
    await store.close();
  }
});
