/**
 * The collector as a child process, over what only its own timers do: the
 * sweep (every 30 s after the one at start) removes windows past
 * retentionHours and uploads past reportTtlHours; a sensor is up while its
 * heartbeats come and down once sensorDownSeconds pass without one, in the
 * API and in /metrics; no metric label holds an address or port; an expired
 * analysis still running is stopped by the timer's sweep before its job goes.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { WindowSummary } from '../common/report.js';
import { assertNoAddressLabels, freePort, metricValue, parseMetrics, spawnAgent, spawnCli, waitFor, type AgentProcess } from './helpers/agent-process.js';
import { startNatsServer, type NatsServerHandle } from './helpers/nats-server.js';
import { isoMicros, publishWindows } from './helpers/stream-reader.js';
import { BAD_PCAPS, SHARED_PCAPS } from './helpers/paths.js';

const SYNSCAN = join(SHARED_PCAPS, 'ppa_synscan.pcapng');
const HANDSHAKE = join(SHARED_PCAPS, 'ppa_tcp_handshake.pcapng');
const SLOW = join(BAD_PCAPS, 'gzip_bomb.pcap.gz'); // an analysis of a few seconds
const ALL_TIME = 'from=0&to=4000000000';

let work: string;
let nats: NatsServerHandle;
type Collector = { proc: AgentProcess; base: string; dataDir: string };
let collector: Collector | undefined;
/** A second collector for the up/down test: with the first one's 3.6 s retention, a silent sensor could be removed before it is down. */
let steady: Collector | undefined;

async function startCollector(name: string, configText: string): Promise<Collector> {
  const port = await freePort();
  const dataDir = join(work, name);
  const config = join(work, `${name}.yaml`);
  writeFileSync(config, configText);
  const proc = spawnCli(['collector', '--nats', nats.url, '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir, '--config', config],
    { env: { API_TOKEN: '', API_TOKEN_FILE: '', DATABASE_URL: '', DATA_DIR: '' } });
  const started = { proc, base: `http://127.0.0.1:${port}`, dataDir };
  await waitFor(`${name} to answer`, async () => (await fetch(`${started.base}/api/health`)).ok || undefined, 30_000, 100);
  return started;
}

async function stopCollector(c: Collector | undefined): Promise<void> {
  if (!c) return;
  c.proc.child.kill('SIGTERM');
  const killer = setTimeout(() => c.proc.child.kill('SIGKILL'), 15_000);
  await c.proc.exited;
  clearTimeout(killer);
}

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'pa-collector-sweep-'));
  nats = await startNatsServer();
  // Windows and uploads go 3.6 s after they arrived (retention counts from arrival, not packet time).
  collector = await startCollector('collector', 'collector:\n  retentionHours: 0.001\n  reportTtlHours: 0.001\n');
});

after(async () => {
  await stopCollector(collector);
  await stopCollector(steady);
  await nats.close();
  rmSync(work, { recursive: true, force: true });
});

const getJson = async <T>(path: string): Promise<T> => {
  const res = await fetch(`${collector!.base}${path}`);
  assert.equal(res.status, 200, `${path}: ${res.status}`);
  return await res.json() as T;
};
const metrics = async (): Promise<Map<string, number>> => parseMetrics(await (await fetch(`${collector!.base}/metrics`)).text());

/** Windows of a month ago (packet time does not matter), published once the collector has made the stream. */
async function publishOldWindows(sensor: string, count: number): Promise<void> {
  const base = Math.floor(Date.now() / 1000) - 30 * 86400;
  const windows = Array.from({ length: count }, (_, j): WindowSummary => ({
    start: isoMicros(base + j), end: isoMicros(base + j + 1), packets: 1, bytes: 100,
    flows: { active: 1, new: 1, closed: 0 }, outOfOrderTimestamps: 0, metrics: {}, healthScore: 90, counters: { frames: 1 },
  }));
  await publishWindows(nats.url, sensor, { kind: 'replay', name: 'old' }, windows);
}

test('the sweep timer removes windows past retentionHours and uploads past reportTtlHours', async () => {
  // Both arrive after the sweep at start, so only the timer's next sweep (30 s) can remove them.
  await publishOldWindows('old', 50);
  let windowsLeft = -1;
  // Retention removes a sensor with its last window: its listing is then 404, which counts as none left.
  const windowsOf = async (): Promise<number> => {
    const res = await fetch(`${collector!.base}/api/sensors/old/windows?${ALL_TIME}&limit=1000`);
    if (res.status === 404) return (windowsLeft = 0);
    assert.equal(res.status, 200);
    return (windowsLeft = ((await res.json()) as { windows: WindowSummary[] }).windows.length);
  };
  await waitFor('the old windows stored', async () => (await windowsOf()) === 50 || undefined, 20_000, 100);

  const upload = await fetch(`${collector!.base}/api/captures`, { method: 'POST', body: new Uint8Array(readFileSync(HANDSHAKE)), headers: { 'content-type': 'application/octet-stream', 'x-filename': 'h.pcapng' } });
  assert.equal(upload.status, 202);
  const { id } = await upload.json() as { id: string };
  await waitFor('the analysis done', async () => (await getJson<{ status: string }>(`/api/captures/${id}`)).status === 'done' || undefined, 30_000, 100);
  assert.equal((await fetch(`${collector!.base}/api/captures/${id}/report`)).status, 200);

  await waitFor('the timer\'s sweep', async () => ((await windowsOf()) === 0 && (await fetch(`${collector!.base}/api/captures/${id}`)).status === 404) || undefined, 60_000, 500)
    .catch((err: unknown) => { throw new Error(`${String(err)}; windows ${windowsLeft}; collector log:\n${collector!.proc.stderr().slice(-3000)}`); });
  assert.equal((await fetch(`${collector!.base}/api/captures/${id}/report`)).status, 404, 'the report went with its job');
  // The 50 windows and their sensor, which retention removes with its last data.
  assert.equal(metricValue(await metrics(), 'pcap_analyzer_collector_retention_deleted_total'), 51);
  const swept = collector!.proc.stderr().split('\n').filter((l) => l.includes('"msg":"swept"')).map((l) => JSON.parse(l) as { expiredUploads: number; oldRows: number });
  assert.deepEqual(swept.at(-1), { ...swept.at(-1), expiredUploads: 1 });
  assert.equal(swept.reduce((n, s) => n + s.oldRows, 0), 51);
});

/** Processes whose parent is `ppid` and whose command line holds `needle`, from /proc. */
function childrenOf(ppid: number, needle: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // The parent's pid is the second field after the command name, which is in parentheses and may hold blanks.
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (parent === ppid && readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(needle)) pids.push(Number(entry));
    } catch { /* gone meanwhile */ }
  }
  return pids;
}

test('the sweep timer stops an expired analysis still running, then removes its job and files', async () => {
  const c = collector!;
  const cancelled = async (): Promise<number> => metricValue(await metrics(), 'pcap_analyzer_collector_analyses_total', 'outcome="cancelled"');
  const cancelledBefore = await cancelled();
  const upload = await fetch(`${c.base}/api/captures`, { method: 'POST', body: new Uint8Array(readFileSync(SLOW)), headers: { 'content-type': 'application/octet-stream', 'x-filename': 'slow.pcap.gz' } });
  assert.equal(upload.status, 202);
  const { id } = await upload.json() as { id: string };
  // The analysis (a child process of the collector) is paused, so that it is still running when
  // the timer's next sweep comes (every 30 s), however fast or slow this machine is.
  const analysis = await waitFor('the analysis process', () => childrenOf(c.proc.child.pid!, 'analysis-child').at(0), 30_000, 5);
  try {
    process.kill(analysis, 'SIGSTOP');
    await waitFor('the job running', async () => (await getJson<{ status: string }>(`/api/captures/${id}`)).status === 'running' || undefined, 30_000, 100);
    // Past its TTL (3.6 s) the timer's sweep removes the job, having stopped its analysis first.
    await waitFor('the timer\'s sweep', async () => (await fetch(`${c.base}/api/captures/${id}`)).status === 404 || undefined, 60_000, 500);
    assert.equal(existsSync(`/proc/${analysis}`), false, 'the paused analysis was killed, not left behind');
    assert.equal(await cancelled(), cancelledBefore + 1, 'counted as cancelled');
    assert.equal((await fetch(`${c.base}/api/captures/${id}/report`)).status, 404);
    assert.deepEqual(readdirSync(join(c.dataDir, 'uploads')).filter((f) => f.includes(id)), [], 'the upload went with its job');
  } finally {
    try { process.kill(analysis, 'SIGKILL'); } catch { /* already gone */ }
  }
});

test('a sensor is up while it reports and down after sensorDownSeconds of silence, in the API and /metrics; no label holds an address', async () => {
  const config = join(work, 'agent.yaml');
  writeFileSync(config, 'windows:\n  seconds: 1\n');
  // Its own collector (own durable consumer on the same stream): a sensor is down after 8 s of silence.
  steady = await startCollector('steady', 'collector:\n  sensorDownSeconds: 8\n  consumer: steady\n');
  const base = steady.base;
  // A looping replay keeps reporting; killed, it sends no last status (a finished replay would say so), so silence makes it down.
  const agent = spawnAgent(['--replay', SYNSCAN, '--loop', '--sensor', 'up-down', '--nats', nats.url, '--listen', '', '--data-dir', join(work, 'agent'), '--config', config]);
  type Sensors = { sensors: Array<{ id: string; up: boolean }> };
  const upNow = async (): Promise<boolean | undefined> => (await (await fetch(`${base}/api/sensors`)).json() as Sensors).sensors.find((s) => s.id === 'up-down')?.up;
  const upMetric = async (): Promise<number> => metricValue(parseMetrics(await (await fetch(`${base}/metrics`)).text()), 'pcap_analyzer_sensor_up', 'sensor="up-down"');
  try {
    await waitFor('the sensor up', async () => ((await upNow()) === true && (await upMetric()) === 1) || undefined, 60_000, 100);
    await waitFor('a port_scan finding counted', async () => metricValue(parseMetrics(await (await fetch(`${base}/metrics`)).text()), 'pcap_analyzer_collector_findings_total', 'type="port_scan"') > 0 || undefined, 60_000, 200);
  } finally {
    agent.child.kill('SIGKILL');
  }
  await agent.exited;
  await waitFor('the sensor down', async () => ((await upNow()) === false && (await upMetric()) === 0) || undefined, 60_000, 200);
  const text = await (await fetch(`${base}/metrics`)).text();
  const labels = assertNoAddressLabels(text);
  assert.ok(labels.some(([name, value]) => name === 'sensor' && value === 'up-down'));
  assert.ok(labels.some(([name, value]) => name === 'type' && value === 'port_scan'), 'findings are labelled by type, not by host');
});
