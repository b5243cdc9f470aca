/**
 * The agent's replay source as a child process against a private nats-server:
 * a directory is replayed file by file in name order (hidden files and
 * folders skipped), `--loop` shifts each pass so no window id ever repeats,
 * and a second stop signal during the shutdown drain exits at once, with the
 * unacknowledged messages spooled to disk.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { WindowSummary } from '../common/report.js';
import { assertNoAddressLabels, freePort, metricValue, parseMetrics, spawnAgent, waitFor } from './helpers/agent-process.js';
import { EtherTypes, ethernet, ipv4, pcapFile, Proto, udp, type PcapRecordSpec } from './helpers/capture-writer.js';
import { goldenCases } from './helpers/golden.js';
import { startNatsServer } from './helpers/nats-server.js';
import { shardableEnv } from './helpers/shardable.js';
import { readStream, type StoredMessage } from './helpers/stream-reader.js';

/** Epoch second of t = 0: a multiple of every window length used here. */
const BASE = 1_700_000_000;

let work: string;
before(() => { work = mkdtempSync(join(tmpdir(), 'pa-agent-replay-')); });
after(() => { rmSync(work, { recursive: true, force: true }); });

function config(name: string, extra = ''): string {
  const path = join(work, `${name}.yaml`);
  writeFileSync(path, `windows:\n  seconds: 1\nstatus:\n  seconds: 1\n${extra}`);
  return path;
}

/** UDP packets at the given times (seconds after BASE) with the given source port. */
function capture(times: readonly number[], port: number): Buffer {
  const records: PcapRecordSpec[] = times.map((t) => {
    const us = Math.round(t * 1e6);
    const ip = ipv4({ src: '10.1.0.1', dst: '10.1.0.2', proto: Proto.UDP, payload: udp({ srcPort: port, dstPort: 7000, payload: Buffer.from('p') }) });
    return { tsSec: BASE + Math.floor(us / 1e6), tsSub: us % 1e6, data: ethernet('02:00:00:00:00:02', '02:00:00:00:00:01', EtherTypes.IPV4, ip) };
  });
  return pcapFile({}, records);
}

const windowsOf = (messages: StoredMessage[], sensor: string): Array<{ id: string; window: WindowSummary }> => messages
  .filter((m) => m.subject === `pcap.v1.${sensor}.window`)
  .map((m) => ({ id: m.msgId, window: m.body['window'] as WindowSummary }));

test('--replay DIR replays the regular, visible files in name order', async (t) => {
  const nats = await startNatsServer();
  t.after(() => nats.close());
  const dir = join(work, 'captures');
  mkdirSync(join(dir, 'sub.pcap'), { recursive: true });
  // Files written in an order that is neither name order nor its reverse; "10-" sorts before "2-".
  // Node lists a directory in UTF-8 byte order; name order (UTF-16, as JavaScript sorts) differs
  // for a name with a character past U+FFFF against one in U+E000..U+FFFF.
  const names = ['4-d.pcap', '10-a.pcap', 'z-\uE000.pcap', '6-f.pcap', '2-b.pcap', 'z-\u{1F600}.pcap', '3-c.pcap', '5-e.pcap'];
  const sorted = [...names].sort();
  for (const name of names) {
    const k = sorted.indexOf(name); // the k-th file holds k + 1 packets in second k
    writeFileSync(join(dir, name), capture(Array.from({ length: k + 1 }, (_, i) => k + 0.1 + i * 0.05), 100 + k));
  }
  writeFileSync(join(dir, '.hidden.pcap'), capture([0.5, 1.5, 2.5], 9));
  writeFileSync(join(dir, 'sub.pcap', 'inner.pcap'), capture([0.6], 8));
  const agent = spawnAgent(['--replay', dir, '--sensor', 'dir', '--nats', nats.url, '--listen', '', '--data-dir', join(work, 'dir'), '--config', config('dir')]);
  t.after(() => { agent.child.kill('SIGKILL'); });
  const { code } = await agent.exited;
  assert.equal(code, 0, agent.stderr());
  const windows = windowsOf(await readStream(nats.url, 'PCAP_ANALYZER'), 'dir').map((w) => w.window);
  assert.deepEqual(windows.map((w) => [Date.parse(w.start) / 1000 - BASE, w.packets, w.outOfOrderTimestamps]),
    sorted.map((_, k) => [k, k + 1, 0]),
    'one window per file, in time order: the files were read in name order, nothing else');
});

test('--loop shifts every pass past the last: window ids and starts never repeat', async (t) => {
  const nats = await startNatsServer();
  t.after(() => nats.close());
  const file = join(work, 'loop.pcap');
  writeFileSync(file, capture([0.2, 1.4, 2.6], 5)); // 2.4 s: each pass moves by 4 windows of 1 s
  const httpPort = await freePort();
  const agent = spawnAgent(['--replay', file, '--loop', '--speed', '10', '--sensor', 'loop', '--nats', nats.url, '--listen', `127.0.0.1:${httpPort}`, '--data-dir', join(work, 'loop'), '--config', config('loop')]);
  t.after(() => { agent.child.kill('SIGKILL'); });
  await waitFor('three passes', async () => {
    const metrics = parseMetrics(await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text());
    return metricValue(metrics, 'pcap_analyzer_windows_total') >= 9 || undefined;
  }, 60_000, 200);
  // No address or port in any label of the agent's metrics (findings of a capture name hosts).
  const labels = assertNoAddressLabels(await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text());
  assert.ok(labels.some(([name]) => name === 'sensor' || name === 'source'), 'the labels were read');
  agent.child.kill('SIGTERM');
  const { code } = await agent.exited;
  assert.equal(code, 0, agent.stderr());
  const stopped = agent.stderr().split('\n').filter((l) => l.includes('"msg":"stopped"')).map((l) => JSON.parse(l) as { windows: number })[0];
  assert.ok(stopped, agent.stderr());
  const windows = windowsOf(await readStream(nats.url, 'PCAP_ANALYZER'), 'loop');
  assert.equal(windows.length, stopped.windows, 'every window the agent closed is stored: none was dropped as a duplicate id');
  assert.equal(new Set(windows.map((w) => w.id)).size, windows.length, 'no window id repeats');
  const starts = windows.map((w) => Date.parse(w.window.start) / 1000 - BASE);
  for (let i = 1; i < starts.length; i++) assert.ok(starts[i]! > starts[i - 1]!, `window starts increase: ${starts.join(' ')}`);
  const withPackets = windows.filter((w) => w.window.packets > 0).map((w) => Date.parse(w.window.start) / 1000 - BASE);
  assert.deepEqual(withPackets.slice(0, 9), [0, 1, 2, 4, 5, 6, 8, 9, 10], 'each pass starts on the window after the last one');
});

test('a second stop signal during the shutdown drain exits at once and spools what is unacknowledged', async (t) => {
  const dataDir = join(work, 'second');
  writeFileSync(join(work, 'second.pcap'), capture([0.2, 1.4], 6)); // before the agent starts, which opens it
  // NATS unreachable: the drain after the first signal would wait shutdown.seconds (an hour).
  const httpPort = await freePort();
  const agent = spawnAgent(['--replay', join(work, 'second.pcap'), '--loop', '--speed', '10', '--sensor', 'second', '--nats', `nats://127.0.0.1:${await freePort()}`, '--listen', `127.0.0.1:${httpPort}`, '--data-dir', dataDir, '--config', config('second', 'shutdown:\n  seconds: 3600\n')]);
  t.after(() => { agent.child.kill('SIGKILL'); });
  let exited = false;
  void agent.exited.then(() => { exited = true; });
  // Stop once windows wait to be published (NATS is unreachable, so they stay unacknowledged).
  await waitFor('windows to publish', async () => metricValue(parseMetrics(await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text()), 'pcap_analyzer_windows_total') >= 2 || undefined, 60_000, 100);
  agent.child.kill('SIGTERM');
  await waitFor('the first stop', () => /"msg":"stopping: closing the current window"/.test(agent.stderr()) || undefined, 30_000);
  assert.equal(exited, false, 'the first signal waits for the drain');
  agent.child.kill('SIGTERM');
  await waitFor('the exit after the second signal (the drain alone would take an hour)', () => exited || undefined, 60_000);
  const { code } = await agent.exited;
  assert.equal(code, 0, agent.stderr());
  assert.match(agent.stderr(), /"msg":"second signal: spooling what is unacknowledged and exiting now"/);
  const segments = readdirSync(join(dataDir, 'spool')).filter((f) => f.startsWith('seg-'));
  assert.ok(segments.length > 0, 'the unacknowledged windows are on disk for the next start');
});

test('--replay with 2 analysis workers (pipeline.workers) publishes the windows and findings of one pipeline', async (t) => {
  const nats = await startNatsServer();
  t.after(() => nats.close());
  const file = goldenCases().find((c) => c.name === 'generated-mixed-120k')!.file();
  const published = async (sensor: string, workers: number): Promise<{ windows: string[]; findings: string[]; stderr: string }> => {
    const agent = spawnAgent(['--replay', file, '--sensor', sensor, '--nats', nats.url, '--listen', '', '--data-dir', join(work, sensor), '--config', config(sensor)],
      { env: { ...shardableEnv(), PCAP_ANALYZER_PIPELINE_WORKERS: String(workers), PCAP_ANALYZER_WINDOWS_SECONDS: '10' } });
    t.after(() => { agent.child.kill('SIGKILL'); });
    const { code } = await agent.exited;
    assert.equal(code, 0, agent.stderr());
    const messages = await readStream(nats.url, 'PCAP_ANALYZER', `reader-${sensor}`);
    return {
      windows: windowsOf(messages, sensor).map((w) => JSON.stringify(w.window)),
      findings: messages.filter((m) => m.subject === `pcap.v1.${sensor}.finding`).map((m) => JSON.stringify(m.body['finding'])),
      stderr: agent.stderr(),
    };
  };
  const one = await published('one', 1);
  const two = await published('two', 2);
  assert.ok(one.windows.length > 3 && one.findings.length > 0, `several windows (${one.windows.length}) and findings (${one.findings.length})`);
  assert.deepEqual(firstDifference(two.windows, one.windows), undefined);
  assert.deepEqual(firstDifference(two.findings, one.findings), undefined);
});

/** Where two lists of JSON texts first differ (the entry and the text around the first differing character), or undefined. */
function firstDifference(actual: readonly string[], expected: readonly string[]): string | undefined {
  if (actual.length !== expected.length) return `${actual.length} entries, expected ${expected.length}`;
  for (let e = 0; e < expected.length; e++) {
    const [a, b] = [actual[e]!, expected[e]!];
    if (a === b) continue;
    let i = 0;
    while (a[i] === b[i]) i++;
    return `entry ${e} from character ${i}: …${a.slice(Math.max(0, i - 100), i + 100)}… expected …${b.slice(Math.max(0, i - 100), i + 100)}…`;
  }
  return undefined;
}
