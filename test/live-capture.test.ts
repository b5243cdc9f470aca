/**
 * LiveCapture on a real interface: tcpreplay sends a shared capture from one
 * network namespace over a veth pair while live-capture-child captures the
 * other end in a second namespace. Needs root (namespaces, tcpreplay); skips
 * with the reason otherwise.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { CaptureReader, END, NEED_DATA } from '../agent/capture/index.js';
import { createTestNetwork, netnsAvailable, netnsUnavailableReason, type TestNetwork } from './helpers/netns.js';
import type { ChildResult } from './helpers/live-capture-child.js';
import { REPO_ROOT, SHARED_PCAPS } from './helpers/paths.js';

const CHILD = join(REPO_ROOT, 'dist', 'test', 'helpers', 'live-capture-child.js');
// Ethernet, 659 packets of at most 1514 bytes, 566 of them TCP, caplen == len throughout.
const FILE = join(SHARED_PCAPS, 'ppa1e_evilprogram.pcap');
const UNPRIVILEGED = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all'];

function hasCommand(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`]).status === 0;
}

function skipReason(): string | false {
  if (!netnsAvailable()) return netnsUnavailableReason();
  if (!hasCommand('tcpreplay')) return 'tcpreplay is not installed';
  return false;
}
const skip = skipReason();

/** Packets, wire bytes and first timestamp of a capture file, read by the project's reader. */
async function fileFigures(path: string): Promise<{ packets: number; bytes: number; firstTs: number }> {
  const reader = await CaptureReader.open(path, { maxBlockBytes: 16777216, maxDecompressedBytes: 1e10, maxCompressionRatio: 1000 });
  let packets = 0;
  let bytes = 0;
  let firstTs = NaN;
  try {
    const r = reader.record;
    for (let status = reader.next(); status !== END; status = reader.next()) {
      if (status === NEED_DATA) { await reader.fill(); continue; }
      if (packets === 0) firstTs = r.tsSec + r.tsNsec / 1e9;
      packets++;
      bytes += r.wireLen;
    }
  } finally {
    await reader.close();
  }
  return { packets, bytes, firstTs };
}

/**
 * Packets of `path` matching `filter` per libpcap's own filter engine (what
 * `tcpdump -r FILE FILTER | wc -l` counts; tcpdump itself is not installed
 * here). Loads the binding in this test process only, which captures nothing.
 */
function libpcapCount(path: string, filter: string): number {
  interface Offline {
    open_offline(path: string, filter: string, bufferSize: number, snapLength: number, outfile: string,
      packetReady: () => void, isMonitor: boolean, bufferTimeout: number, warning: (msg: string) => void,
      promiscuous: boolean): string;
    dispatch(buf: Buffer, header: Buffer): number;
  }
  const b = createRequire(import.meta.url)('pcap/build/Release/pcap_binding.node') as { PcapSession: new () => Offline };
  const session = new b.PcapSession();
  let n = 0;
  session.open_offline(path, filter, 0, 262144, '', () => { n++; }, false, 0, () => {}, false);
  const buf = Buffer.alloc(262144);
  const header = Buffer.alloc(16);
  while (session.dispatch(buf, header) > 0) { /* dispatch() drains; a file ends with 0 */ }
  return n;
}

interface Captured { result: ChildResult; successful: number; replayOutput: string; startedAt: number; endedAt: number }

/** Starts the child on the capture interface, replays FILE into the sender end, stops the child. */
async function captureReplay(net: TestNetwork, bpf: string): Promise<Captured> {
  const child = net.exec(net.captureNs, ['node', CHILD, '--interface', net.captureIf, '--bpf', bpf, '--seconds', '20'],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
  child.stderr?.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  const exited = once(child, 'exit');
  try {
    const readyBy = Date.now() + 10_000;
    while (!stderr.includes('ready')) {
      if (child.exitCode !== null || Date.now() > readyBy) throw new Error(`capture child did not start: ${stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const startedAt = Date.now() / 1000;
    const replay = net.exec(net.sendNs, ['tcpreplay', '-i', net.sendIf, '--pps', '2000', FILE], { stdio: ['ignore', 'pipe', 'pipe'] });
    let replayOutput = '';
    replay.stdout?.setEncoding('utf8').on('data', (d: string) => { replayOutput += d; });
    replay.stderr?.setEncoding('utf8').on('data', (d: string) => { replayOutput += d; });
    const [code] = await once(replay, 'exit') as [number | null];
    assert.equal(code, 0, replayOutput);
    const endedAt = Date.now() / 1000;
    // The kernel hands a ring block to libpcap when it is full or 100 ms old; leave time for that.
    await new Promise((r) => setTimeout(r, 700));
    child.kill('SIGTERM');
    const [childCode] = await exited as [number | null];
    assert.equal(childCode, 0, stderr);
    const m = /Successful packets:\s+(\d+)/.exec(replayOutput);
    assert.ok(m, `no "Successful packets" in tcpreplay output:\n${replayOutput}`);
    return { result: JSON.parse(stdout) as ChildResult, successful: Number(m[1]), replayOutput, startedAt, endedAt };
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
}

describe('live capture on a veth pair between network namespaces', { skip }, () => {
  let net: TestNetwork;
  before(() => { net = createTestNetwork(); });
  after(() => {
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- undefined when before() failed
    net?.cleanup();
    const left = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
    assert.ok(!left.includes(`pa${process.pid}`), `namespaces left behind:\n${left}`);
  });

  test('sees every packet tcpreplay sent, with the file\'s bytes and kernel timestamps', async () => {
    const file = await fileFigures(FILE);
    const { result, successful, replayOutput, startedAt, endedAt } = await captureReplay(net, '');
    assert.equal(result.linkType, 1, 'veth is Ethernet');
    assert.equal(successful, file.packets, replayOutput);
    // Seen + dropped by the kernel (ring full) = sent; ps_recv counts both.
    assert.equal(result.packets + result.stats.dropped, successful, JSON.stringify(result));
    assert.equal(result.stats.received, successful, JSON.stringify(result));
    assert.equal(result.stats.dropped, 0, 'a 16 MiB ring holds 124 kB');
    assert.equal(result.bytes, file.bytes);
    assert.equal(result.capturedBytes, file.bytes, 'snaplen 262144 keeps whole frames');
    // Timestamps are the kernel's receive times, not the file's.
    assert.ok(result.firstTs !== null && result.lastTs !== null);
    assert.ok(result.firstTs >= startedAt - 1 && result.lastTs <= endedAt + 1,
      `timestamps ${result.firstTs}..${result.lastTs} outside the replay ${startedAt}..${endedAt}`);
    assert.ok(Math.abs(result.firstTs - file.firstTs) > 86400, 'first timestamp is the file\'s');
    // 659 packets at 2000 pps span about 0.33 s.
    assert.ok(result.lastTs - result.firstTs > 0.2 && result.lastTs - result.firstTs < 5, `span ${result.lastTs - result.firstTs}`);
  });

  test('a BPF filter keeps what libpcap\'s filter keeps from the file (tcpdump -r FILE tcp)', async () => {
    const expected = libpcapCount(FILE, 'tcp');
    assert.equal(expected, 566);
    const { result, successful } = await captureReplay(net, 'tcp');
    assert.equal(successful, 659);
    assert.equal(result.packets + result.stats.dropped, expected, JSON.stringify(result));
    // ps_recv on Linux counts only packets that passed the kernel filter.
    assert.equal(result.stats.received, expected, JSON.stringify(result));
  });

  test('an unknown interface exits 2 with libpcap\'s message and the name', () => {
    const r = net.run(net.captureNs, ['node', CHILD, '--interface', 'nosuch0', '--seconds', '1']);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /No such device exists/);
    assert.match(r.stderr, /"nosuch0"/);
    assert.equal(r.stdout, '');
  });

  test('a bad BPF expression exits 2 with the compile error and the expression', () => {
    const r = net.run(net.captureNs, ['node', CHILD, '--interface', net.captureIf, '--bpf', 'tcp and and', '--seconds', '1']);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /invalid capture filter "tcp and and": can't parse filter expression: syntax error/);
    const r2 = net.run(net.captureNs, ['node', CHILD, '--interface', net.captureIf, '--bpf', 'port 99999', '--seconds', '1']);
    assert.equal(r2.status, 2, r2.stderr);
    assert.match(r2.stderr, /invalid capture filter "port 99999": illegal port number 99999 > 65535/);
  });

  test('without CAP_NET_RAW: exit 2 naming the capability and how to grant it', () => {
    const r = net.run(net.captureNs, [...UNPRIVILEGED, 'node', CHILD, '--interface', net.captureIf, '--seconds', '1']);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /Operation not permitted/);
    assert.match(r.stderr, /CAP_NET_RAW/);
    assert.match(r.stderr, /CAP_NET_ADMIN for promiscuous mode/);
    assert.match(r.stderr, /setcap cap_net_raw,cap_net_admin\+eip/);
    assert.equal(r.stderr.trim().split('\n').length, 1, 'one line');
  });
});
