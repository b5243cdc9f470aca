/**
 * Live capture: tcpreplay plays a slice of the benchmark capture into one end
 * of a veth pair (its own network namespace) at a fixed packet rate while a
 * capturer listens on the other end (a second namespace): first the agent
 * (`pcap-analyzer agent --interface`, default configuration, publishing to a
 * nats-server in the root namespace), then `tcpdump -B <same buffer> -w
 * /dev/null` as the reference. For each rate: packets sent, seen, dropped by
 * the kernel, the interface and the agent, and the capturer's CPU time per
 * packet. The whole sequence runs several times (a fresh agent each run), as
 * "no drops" has to hold run after run. Each agent gets a one-second warm-up
 * first (not counted), as a long-running sensor is past its JIT warm-up.
 */
import type { ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_CONFIG } from '../common/config.js';
import { unshardableAnalyzers } from '../agent/shard/workers.js';
import { CLI } from '../test/helpers/paths.js';
import { freePort, metricValue, parseMetrics, waitFor } from '../test/helpers/agent-process.js';
import { startNatsServer } from '../test/helpers/nats-server.js';
import { createTestNetwork, type TestNetwork } from '../test/helpers/netns.js';
import { processCpuSeconds, sleep } from './measure.js';

export type Rate = number | 'top';

export interface LiveRow {
  /** 1-based run of the live section. */
  run: number;
  /** 'agent-workers': the agent with LIVE_WORKERS flow-sharded analysis workers. */
  capturer: 'agent' | 'agent-workers' | 'tcpdump';
  /** Target packets/s, or 'top' (tcpreplay --topspeed). */
  rate: Rate;
  /** Rate tcpreplay reports it achieved. */
  achievedPps: number;
  sent: number;
  /** Agent: packets analyzed; tcpdump: packets captured. */
  seen: number;
  kernelDrops: number;
  interfaceDrops: number;
  agentDrops: number;
  /** sent - seen: every packet not analyzed, whoever lost it. */
  lost: number;
  /** Capturer CPU (user + system) per packet sent, µs. */
  cpuUsPerPacket: number;
  error?: string;
}

export interface LiveResult {
  slicePackets: number;
  runs: number;
  rows: LiveRow[];
  /** Highest rate (achieved packets/s) with zero packets lost at it and every lower rate, in every run, per capturer. */
  zeroLossPps: Record<LiveRow['capturer'], number>;
  /** Runs in which the capturer had no kernel drop at any rate. */
  kernelDropFreeRuns: Record<LiveRow['capturer'], number>;
  /** The 'agent-workers' rows: analysis workers, and the analyzers off in them (those that cannot merge their windows yet). */
  workers: number;
  workersAnalyzersOff: string[];
}

/** Analysis workers of the 'agent-workers' capturer (pipeline.workers). */
export const LIVE_WORKERS = 2;

/** The agent's warm-up before the measured rates: one second at this rate. */
export const WARMUP_PPS = 50_000;
/** tcpdump -B: the same kernel buffer as the agent's default capture.bufferMB. */
export const TCPDUMP_BUFFER_KIB = DEFAULT_CONFIG.capture.bufferMB * 1024;

interface Replay { sent: number; achievedPps: number; failed: number; output: string }

function replay(net: TestNetwork, file: string, rate: Rate, limit = 0): Replay {
  const argv = ['tcpreplay', '-i', net.sendIf, '-K', rate === 'top' ? '--topspeed' : `--pps=${rate}`, ...(limit ? [`--limit=${limit}`] : []), file];
  const r = net.run(net.sendNs, argv, 300_000);
  const out = `${r.stdout}\n${r.stderr}`;
  if (r.status !== 0) throw new Error(`tcpreplay failed (${r.status}): ${out.trim().split('\n').slice(-3).join(' ')}`);
  return {
    sent: Number(/Successful packets:\s+(\d+)/.exec(out)?.[1] ?? NaN),
    failed: Number(/Failed packets:\s+(\d+)/.exec(out)?.[1] ?? 0),
    achievedPps: Number(/Rated:.*?([\d.]+) pps/.exec(out)?.[1] ?? NaN),
    output: out,
  };
}

interface AgentCounters { packets: number; received: number; kernel: number; iface: number; agent: number }

async function agentCounters(base: string): Promise<AgentCounters> {
  const m = parseMetrics(await (await fetch(`${base}/metrics`)).text());
  return {
    packets: metricValue(m, 'pcap_analyzer_packets_total'),
    received: metricValue(m, 'pcap_analyzer_capture_received_total'),
    kernel: metricValue(m, 'pcap_analyzer_capture_drops_total', 'where="kernel"'),
    iface: metricValue(m, 'pcap_analyzer_capture_drops_total', 'where="interface"'),
    agent: metricValue(m, 'pcap_analyzer_capture_drops_total', 'where="agent"'),
  };
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) { resolve(child.exitCode); return; }
    child.once('exit', (code) => resolve(code));
  });
}

async function agentRows(net: TestNetwork, natsUrl: string, work: string, file: string, rates: readonly Rate[], run: number,
  capturer: 'agent' | 'agent-workers', env: Record<string, string>): Promise<LiveRow[]> {
  const config = join(work, 'live-agent.yaml');
  writeFileSync(config, 'logging:\n  level: warn\nstatus:\n  seconds: 2\nshutdown:\n  seconds: 3\n');
  const port = await freePort();
  const base = `http://${net.nsAddress}:${port}`;
  const dataDir = join(work, `live-agent-${run}`);
  mkdirSync(dataDir, { recursive: true });
  // The agent's log goes to a file: tcpreplay runs synchronously, and a pipe nobody reads could fill.
  const logPath = join(work, 'live-agent.log');
  const logFd = openSync(logPath, 'w');
  const child = net.exec(net.captureNs, [process.execPath, CLI, 'agent', '--interface', net.captureIf, '--sensor', 'bench-live', '--nats', natsUrl,
    '--listen', `${net.nsAddress}:${port}`, '--data-dir', dataDir, '--config', config], { stdio: ['ignore', 'ignore', logFd], env: { ...process.env, ...env } });
  closeSync(logFd);
  const stderr = (): string => { try { return readFileSync(logPath, 'utf8').slice(-500); } catch { return ''; } };
  const rows: LiveRow[] = [];
  try {
    await waitFor('the live agent to be ready', async () => (await fetch(`${base}/readyz`)).status === 200 || undefined, 30_000, 200)
      .catch((err: unknown) => { throw new Error(`${String(err)}; agent stderr: ${stderr()}`); });
    // Warm-up, not counted: a sensor runs for days, and the first second of a fresh process
    // (JIT compilation, the first windows) is not its steady state.
    const warm = replay(net, file, WARMUP_PPS, WARMUP_PPS);
    await waitFor('the warm-up packets to be analyzed', async () => {
      const c = await agentCounters(base);
      return c.packets + c.kernel + c.iface + c.agent >= warm.sent || undefined;
    }, 30_000, 200).catch(() => undefined);
    for (const rate of rates) {
      const before = await agentCounters(base);
      const cpu0 = processCpuSeconds(child.pid);
      const r = replay(net, file, rate);
      // Wait until everything sent is accounted for (analyzed or dropped), or nothing moves for 2 s.
      let last = before;
      let still = Date.now();
      for (const deadline = Date.now() + 60_000; Date.now() < deadline;) {
        await sleep(250);
        const now = await agentCounters(base);
        const done = now.packets - before.packets + (now.kernel - before.kernel) + (now.iface - before.iface) + (now.agent - before.agent);
        if (done >= r.sent) { last = now; break; }
        if (now.packets !== last.packets || now.kernel !== last.kernel) { last = now; still = Date.now(); } else if (Date.now() - still > 2000) break;
      }
      const after = await agentCounters(base);
      const seen = after.packets - before.packets;
      rows.push({
        run, capturer, rate, achievedPps: r.achievedPps, sent: r.sent, seen,
        kernelDrops: after.kernel - before.kernel, interfaceDrops: after.iface - before.iface, agentDrops: after.agent - before.agent,
        lost: r.sent - seen, cpuUsPerPacket: ((processCpuSeconds(child.pid) - cpu0) / r.sent) * 1e6,
      });
    }
  } finally {
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited(child);
    clearTimeout(timer);
  }
  return rows;
}

async function tcpdumpRow(net: TestNetwork, file: string, rate: Rate, run: number): Promise<LiveRow> {
  // The agent's kernel buffer (capture.bufferMB, 32 MiB by default), so both capturers get the same queue.
  const child = net.exec(net.captureNs, ['tcpdump', '-i', net.captureIf, '-n', '-B', String(TCPDUMP_BUFFER_KIB), '-w', '/dev/null'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (d: string) => { stderr += d; });
  try {
    await waitFor('tcpdump to listen', () => (stderr.includes('listening on') ? true : undefined), 10_000, 20);
    const cpu0 = processCpuSeconds(child.pid);
    const r = replay(net, file, rate);
    // tcpdump's buffered ring hands over a block when it fills or after its 1 s timeout:
    // stop only after that, or the packets of the last block are counted as never captured.
    await sleep(1500);
    const cpu = processCpuSeconds(child.pid) - cpu0;
    child.kill('SIGINT');
    await exited(child);
    const num = (re: RegExp): number => Number(re.exec(stderr)?.[1] ?? NaN);
    const captured = num(/(\d+) packets? captured/);
    const kernel = num(/(\d+) packets? dropped by kernel/);
    return {
      run, capturer: 'tcpdump', rate, achievedPps: r.achievedPps, sent: r.sent, seen: captured,
      kernelDrops: kernel, interfaceDrops: num(/(\d+) packets? dropped by interface/) || 0, agentDrops: 0,
      lost: r.sent - captured, cpuUsPerPacket: (cpu / r.sent) * 1e6,
    };
  } finally {
    if (child.exitCode === null && child.signalCode === null) { child.kill('SIGKILL'); await exited(child); }
  }
}

export async function benchLive(file: string, slicePackets: number, rates: readonly Rate[], runs: number, work: string): Promise<LiveResult> {
  const workersAnalyzersOff = unshardableAnalyzers(DEFAULT_CONFIG);
  const workersEnv = {
    PCAP_ANALYZER_PIPELINE_WORKERS: String(LIVE_WORKERS),
    ...Object.fromEntries(workersAnalyzersOff.map((id) => [`PCAP_ANALYZER_ANALYZERS_${id.toUpperCase()}_ENABLED`, 'false'])),
  };
  const net = createTestNetwork();
  const rows: LiveRow[] = [];
  try {
    const nats = await startNatsServer({ host: net.rootAddress });
    try {
      for (let run = 1; run <= runs; run++) {
        rows.push(...await agentRows(net, nats.url, work, file, rates, run, 'agent', {}));
        rows.push(...await agentRows(net, nats.url, work, file, rates, run, 'agent-workers', workersEnv));
        for (const rate of rates) rows.push(await tcpdumpRow(net, file, rate, run));
      }
    } finally {
      await nats.close();
    }
  } finally {
    net.cleanup();
  }
  const runNumbers = Array.from({ length: runs }, (_, i) => i + 1);
  const of = (who: LiveRow['capturer'], run: number): LiveRow[] => rows.filter((x) => x.capturer === who && x.run === run && x.sent > 0);
  // Counting up from the lowest rate, the last one before the first loss: a lucky zero at a
  // higher rate after a loss at a lower one is noise, not a capacity. Then the lowest over the runs.
  const best = (who: LiveRow['capturer']): number => Math.min(...runNumbers.map((run) => {
    let ok = 0;
    for (const r of of(who, run).sort((a, b) => a.achievedPps - b.achievedPps)) {
      if (r.lost !== 0) break;
      ok = r.achievedPps;
    }
    return ok;
  }));
  const dropFree = (who: LiveRow['capturer']): number => runNumbers.filter((run) => {
    const rs = of(who, run);
    return rs.length > 0 && rs.every((r) => r.kernelDrops === 0);
  }).length;
  return {
    slicePackets, runs, rows,
    zeroLossPps: { agent: best('agent'), 'agent-workers': best('agent-workers'), tcpdump: best('tcpdump') },
    kernelDropFreeRuns: { agent: dropFree('agent'), 'agent-workers': dropFree('agent-workers'), tcpdump: dropFree('tcpdump') },
    workers: LIVE_WORKERS, workersAnalyzersOff,
  };
}
