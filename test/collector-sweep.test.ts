/**
 * The collector as a child process, over what only its own timers do: the
 * sweep (every 30 s after the one at start) removes windows past
 * retentionHours and uploads past reportTtlHours; a sensor is up while its
 * heartbeats come and down once sensorDownSeconds pass without one, in the
 * API and in /metrics; no metric label holds an address or port. A sweep
 * that stops an expired analysis still running is tested in process
 * (upload-routes.test.ts): the collector's own sweep does not hand it the queue.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { WindowSummary } from '../common/report.js';
import { WINDOW_SCHEMA, subjectFor, type WindowMessage } from '../common/wire.js';
import { assertNoAddressLabels, freePort, metricValue, parseMetrics, spawnAgent, spawnCli, waitFor, type AgentProcess } from './helpers/agent-process.js';
import { startNatsServer, type NatsServerHandle } from './helpers/nats-server.js';
import { SHARED_PCAPS } from './helpers/paths.js';

const SYNSCAN = join(SHARED_PCAPS, 'ppa_synscan.pcapng');
const HANDSHAKE = join(SHARED_PCAPS, 'ppa_tcp_handshake.pcapng');
const ALL_TIME = 'from=0&to=4000000000';

let work: string;
let nats: NatsServerHandle;
let collector: { proc: AgentProcess; base: string; dataDir: string } | undefined;

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'pa-collector-sweep-'));
  nats = await startNatsServer();
  const port = await freePort();
  const dataDir = join(work, 'collector');
  const config = join(work, 'collector.yaml');
  // Windows and uploads go 3.6 s after they arrived (retention counts from arrival, not packet
  // time); a sensor is down after 8 s of silence.
  writeFileSync(config, 'collector:\n  retentionHours: 0.001\n  reportTtlHours: 0.001\n  sensorDownSeconds: 8\n');
  const proc = spawnCli(['collector', '--nats', nats.url, '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir, '--config', config],
    { env: { API_TOKEN: '', API_TOKEN_FILE: '', DATABASE_URL: '', DATA_DIR: '' } });
  collector = { proc, base: `http://127.0.0.1:${port}`, dataDir };
  await waitFor('the collector to answer', async () => (await fetch(`${collector!.base}/api/health`)).ok || undefined, 30_000, 100);
});

after(async () => {
  if (collector) {
    collector.proc.child.kill('SIGTERM');
    const killer = setTimeout(() => collector!.proc.child.kill('SIGKILL'), 15_000);
    await collector.proc.exited;
    clearTimeout(killer);
  }
  await nats.close();
  rmSync(work, { recursive: true, force: true });
});

const getJson = async <T>(path: string): Promise<T> => {
  const res = await fetch(`${collector!.base}${path}`);
  assert.equal(res.status, 200, `${path}: ${res.status}`);
  return await res.json() as T;
};
const metrics = async (): Promise<Map<string, number>> => parseMetrics(await (await fetch(`${collector!.base}/metrics`)).text());

/** Windows (of a month ago: packet time does not matter), published straight to JetStream once the collector has made the stream. */
async function publishOldWindows(sensor: string, count: number): Promise<void> {
  const nc = await connect({ servers: nats.url });
  try {
    const jsm = await jetstreamManager(nc);
    await waitFor('the stream', async () => { await jsm.streams.info('PCAP_ANALYZER'); return true; }, 10_000, 100);
    const js = jetstream(nc);
    const base = Math.floor(Date.now() / 1000) - 30 * 86400;
    for (let j = 0; j < count; j++) {
      const iso = (s: number): string => new Date(s * 1000).toISOString().replace('.000Z', '.000000Z');
      const window: WindowSummary = { start: iso(base + j), end: iso(base + j + 1), packets: 1, bytes: 100, flows: { active: 1, new: 1, closed: 0 }, outOfOrderTimestamps: 0, metrics: {}, healthScore: 90, counters: { frames: 1 } };
      const msg: WindowMessage = { schema: WINDOW_SCHEMA, id: `${sensor}.w.${j}`, sensor, source: { kind: 'replay', name: 'old' }, window };
      await js.publish(subjectFor(sensor, 'window'), JSON.stringify(msg), { msgID: msg.id });
    }
  } finally {
    await nc.drain();
  }
}

test('the sweep timer removes windows past retentionHours and uploads past reportTtlHours', async () => {
  // Both arrive after the sweep at start, so only the timer's next sweep (30 s) can remove them.
  await publishOldWindows('old', 50);
  let windowsLeft = -1;
  const windowsOf = async (): Promise<number> => (windowsLeft = (await getJson<{ windows: WindowSummary[] }>(`/api/sensors/old/windows?${ALL_TIME}&limit=1000`)).windows.length);
  await waitFor('the old windows stored', async () => (await windowsOf()) === 50 || undefined, 20_000, 100);

  const upload = await fetch(`${collector!.base}/api/captures`, { method: 'POST', body: new Uint8Array(readFileSync(HANDSHAKE)), headers: { 'content-type': 'application/octet-stream', 'x-filename': 'h.pcapng' } });
  assert.equal(upload.status, 202);
  const { id } = await upload.json() as { id: string };
  await waitFor('the analysis done', async () => (await getJson<{ status: string }>(`/api/captures/${id}`)).status === 'done' || undefined, 30_000, 100);
  assert.equal((await fetch(`${collector!.base}/api/captures/${id}/report`)).status, 200);

  await waitFor('the timer\'s sweep', async () => ((await windowsOf()) === 0 && (await fetch(`${collector!.base}/api/captures/${id}`)).status === 404) || undefined, 60_000, 500)
    .catch((err: unknown) => { throw new Error(`${String(err)}; windows ${windowsLeft}; collector log:\n${collector!.proc.stderr().slice(-3000)}`); });
  assert.equal((await fetch(`${collector!.base}/api/captures/${id}/report`)).status, 404, 'the report went with its job');
  assert.equal(metricValue(await metrics(), 'pcap_analyzer_collector_retention_deleted_total'), 50);
  const swept = collector!.proc.stderr().split('\n').filter((l) => l.includes('"msg":"swept"')).map((l) => JSON.parse(l) as { expiredUploads: number; oldRows: number });
  assert.deepEqual(swept.at(-1), { ...swept.at(-1), expiredUploads: 1 });
  assert.equal(swept.reduce((n, s) => n + s.oldRows, 0), 50);
});

test('a sensor is up while it reports and down after sensorDownSeconds of silence, in the API and /metrics; no label holds an address', async () => {
  const config = join(work, 'agent.yaml');
  writeFileSync(config, 'windows:\n  seconds: 1\n');
  const agent = spawnAgent(['--replay', SYNSCAN, '--sensor', 'up-down', '--nats', nats.url, '--listen', '', '--data-dir', join(work, 'agent'), '--config', config]);
  try {
    assert.equal((await agent.exited).code, 0, agent.stderr());
  } finally {
    agent.child.kill('SIGKILL');
  }
  type Sensors = { sensors: Array<{ id: string; up: boolean }> };
  const upNow = async (): Promise<boolean | undefined> => (await getJson<Sensors>('/api/sensors')).sensors.find((s) => s.id === 'up-down')?.up;
  // The agent's last heartbeat came as it stopped: up for 8 s, then down.
  const upMetric = async (): Promise<number> => metricValue(await metrics(), 'pcap_analyzer_sensor_up', 'sensor="up-down"');
  await waitFor('the sensor up', async () => ((await upNow()) === true && (await upMetric()) === 1) || undefined, 8000, 50);
  await waitFor('the sensor down', async () => ((await upNow()) === false && (await upMetric()) === 0) || undefined, 30_000, 200);
  const text = await (await fetch(`${collector!.base}/metrics`)).text();
  const labels = assertNoAddressLabels(text);
  assert.ok(labels.some(([name, value]) => name === 'sensor' && value === 'up-down'));
  assert.ok(labels.some(([name, value]) => name === 'type' && value === 'port_scan'), 'findings are labelled by type, not by host');
});
