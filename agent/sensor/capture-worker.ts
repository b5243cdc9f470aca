/**
 * The capture thread: one source (live libpcap capture or a paced replay)
 * feeding the pipeline. It runs apart from the main thread so that packet
 * work never waits on publishing or HTTP, and publishing never stalls behind
 * a burst of packets.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildConfig, type Config } from '../../common/config.js';
import { isUserError } from '../../common/errors.js';
import type { CaptureDrops, WindowCapture } from '../../common/report.js';
import { CaptureReader, END, NEED_DATA, linkTypeName, type FrameRecord } from '../capture/index.js';
import { LiveCapture, type LiveCaptureStats } from '../capture/live.js';
import type { PacketSpan } from '../core/packet-span.js';
import type { WindowOutput } from '../window/window-engine.js';
import { ShardedAnalysis, SingleAnalysis, type AnalysisTotals, type CaptureAnalysis } from './capture-analysis.js';
import type { CaptureCounters, CaptureWorkerData, FromCapture, ToCapture } from './protocol.js';
import { listReplayFiles, replayPacing } from './replay.js';

const port = parentPort!;
const data = workerData as CaptureWorkerData;
const config: Readonly<Config> = buildConfig(data.config);
const post = (msg: FromCapture): void => port.postMessage(msg);

/** How often counters go to the main thread while packets flow (ms of wall time). */
const COUNTERS_EVERY_MS = 1000;
/** How often the live clock is checked against the wall clock when traffic is quiet. */
const IDLE_TICK_MS = 200;

let stopping = false;
let live: LiveCapture | undefined;
let lastCountersAt = 0;
let windowCount = 0;
let windowLag = 0;
/** pcap_stats at the last closed window, for per-window drop counts. */
let statsAtWindow: LiveCaptureStats = { received: 0, dropped: 0, ifDropped: 0 };
let agentDropsAtWindow = 0;
let packetsRead = 0;
let receivedAtWindow = 0;
/** The source's link types (names) and what the readers of finished replay files counted: inputs cut short, caplen over wire length. */
const linkTypes = new Set<string>();
let truncatedInputs = 0;
let capLenOverWireLenDone = 0;
let reading: CaptureReader | undefined;

/** A replay waits on a worker with a full ring up to this long before the replay fails (live capture drops instead). */
const REPLAY_STALL_MS = 60_000;
const analysis: CaptureAnalysis = data.workers > 1
  ? new ShardedAnalysis(config, data.workers, onWindow, { dropWhenFull: data.source.kind === 'live', stallMs: REPLAY_STALL_MS })
  : new SingleAnalysis(config, onWindow);

function liveStats(): LiveCaptureStats {
  return live ? live.stats() : { received: packetsRead, dropped: 0, ifDropped: 0 };
}

/**
 * Packets the agent itself lost are counted where it happens (AnalysisTotals.agentDrops):
 * by the pipelines' guard (an internal error on a packet) and, with analysis workers,
 * at a worker's full ring. Never `received - analyzed`: libpcap's ps_recv is not a
 * count of packets delivered (on loopback it counts each packet twice, the outgoing
 * copy it discards and the incoming one).
 */
function counters(stats: LiveCaptureStats = liveStats()): CaptureCounters {
  const totals = analysis.totals();
  const workers = analysis.workerStats();
  return {
    packets: totals.packets,
    bytes: totals.bytes,
    received: stats.received,
    drops: { kernel: stats.dropped, interface: stats.ifDropped, agent: totals.agentDrops },
    decodeErrors: withoutInternal(totals.decodeErrors),
    flowsActive: totals.flowsActive,
    flowsEvicted: totals.flowsEvicted,
    conversationsForgotten: totals.conversationsForgotten,
    windows: windowCount,
    windowLagSeconds: windowLag,
    ...(workers.length ? { workers } : {}),
  };
}

/** Decode errors without the guard's internal errors (counted as agent drops). */
function withoutInternal(errors: Record<string, number>): Record<string, number> {
  const { ['internal.error']: _internal, ...rest } = errors;
  return rest;
}

function onWindow(out: WindowOutput, totals: AnalysisTotals, span: PacketSpan, inputPackets: number | undefined): void {
  windowCount++;
  const endEpoch = Date.parse(out.summary.end) / 1000;
  windowLag = live ? Math.max(0, Date.now() / 1000 - endEpoch) : Math.max(0, analysis.clockEpoch - endEpoch);
  const stats = liveStats();
  const agent = analysis.totals().agentDrops;
  const drops: CaptureDrops = {
    kernel: stats.dropped - statsAtWindow.dropped,
    interface: stats.ifDropped - statsAtWindow.ifDropped,
    agent: agent - agentDropsAtWindow,
  };
  const received = live ? stats.received : inputPackets ?? packetsRead;
  out.summary.capture = { received: received - receivedAtWindow, drops, ...captureSinceLastWindow(totals, span) };
  out.summary.counters = countersSinceLastWindow(totals);
  out.summary.rangeInputs = out.rangeInputs;
  statsAtWindow = stats;
  agentDropsAtWindow = agent;
  receivedAtWindow = received;
  post({ type: 'window', summary: out.summary, findings: out.findings, counters: counters(stats) });
  lastCountersAt = Date.now();
}

/** The report counters accumulated since the previous window (zeros left out). */
let countersAtWindow: Record<string, number> = {};
function countersSinceLastWindow(totals: AnalysisTotals): Record<string, number> {
  const now = totals.counters;
  const since = delta(now, countersAtWindow);
  countersAtWindow = now;
  return since;
}


/** The report's `capture` figures so far, as `analyze` gives them (decodeErrors with the readers' and the pipeline's own). */
function captureTotals(totals: AnalysisTotals): { decodeErrors: Record<string, number>; undecoded: Record<string, number>; flowsEvicted: number; conversationsForgotten: number; truncatedRecords: number } {
  const capLenOverWireLen = capLenOverWireLenDone + (reading?.capLenOverWireLen ?? 0);
  const decodeErrors = capLenOverWireLen ? { ...totals.decodeErrors, 'frame.caplen_gt_len': capLenOverWireLen } : totals.decodeErrors;
  return { decodeErrors, undecoded: totals.undecoded, flowsEvicted: totals.flowsEvicted, conversationsForgotten: totals.conversationsForgotten, truncatedRecords: truncatedInputs };
}

/** Differences of `now` from `then`, zeros left out. */
function delta(now: Record<string, number>, then: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, value] of Object.entries(now)) {
    const d = value - (then[name] ?? 0);
    if (d !== 0) out[name] = d;
  }
  return out;
}

let captureAtWindow = captureTotals(analysis.totals());
/** The window's part of the report's `capture`: its packets' time span, and what was counted since the previous window. */
function captureSinceLastWindow(totals: AnalysisTotals, span: PacketSpan): Omit<WindowCapture, 'received' | 'drops'> {
  const now = captureTotals(totals);
  const then = captureAtWindow;
  captureAtWindow = now;
  if (live) linkTypes.add(linkTypeName(live.linkType));
  if (reading) for (const t of reading.linkTypes) linkTypes.add(linkTypeName(t));
  const out: Omit<WindowCapture, 'received' | 'drops'> = {
    decodeErrors: delta(now.decodeErrors, then.decodeErrors),
    undecoded: delta(now.undecoded, then.undecoded),
    flowsEvicted: now.flowsEvicted - then.flowsEvicted,
    conversationsForgotten: now.conversationsForgotten - then.conversationsForgotten,
    truncatedRecords: now.truncatedRecords - then.truncatedRecords,
    linkTypes: [...linkTypes],
  };
  if (!span.empty) {
    out.first = [span.firstSec, span.firstNsec];
    out.last = [span.lastSec, span.lastNsec];
  }
  return out;
}

function maybePostCounters(): void {
  const now = Date.now();
  if (now - lastCountersAt < COUNTERS_EVERY_MS) return;
  lastCountersAt = now;
  post({ type: 'counters', counters: counters() });
  workerFailed();
}

/** An analysis worker failed: the capture ends as after a stop, and says why. */
function workerFailed(): void {
  const err = analysis.error;
  if (!err || stopping) return;
  post({ type: 'fatal', message: err.message });
  stop();
}

async function finish(warnings: string[]): Promise<void> {
  const stats = liveStats();
  live?.close(); // stats() keeps answering with the figures as of close
  try {
    await analysis.finish();
  } catch (err) {
    // A worker that failed or stalled: its last windows are lost; the others' totals still go out.
    warnings.push(`analysis workers did not finish: ${(err as Error).message}`);
  }
  post({ type: 'done', counters: counters(stats), warnings });
  port.close();
}

async function runLive(): Promise<void> {
  const c = config.capture;
  try {
    live = LiveCapture.open({ interface: c.interface, bpf: c.bpf, snaplen: c.snaplen, promiscuous: c.promiscuous, bufferMB: c.bufferMB });
  } catch (err) {
    post({ type: 'fatal', message: isUserError(err) ? err.message : String(err) });
    port.close();
    return;
  }
  post({ type: 'ready', linkType: live.linkType, tables: analysis.tableOwners() });
  let checkEvery = 0;
  live.start((rec: FrameRecord) => {
    analysis.process(rec);
    // Under load the binding reads packet after packet without returning to the event loop.
    if (++checkEvery === 1024) { checkEvery = 0; maybePostCounters(); }
  }, (err: Error) => {
    // The interface went down or away: end as after a stop, and say why.
    post({ type: 'fatal', message: `capture on ${c.interface} failed: ${err.message}` });
    stop();
  });
  const grace = config.windows.graceSeconds;
  const idle = setInterval(() => {
    if (stopping) return;
    analysis.advanceTo(Date.now() / 1000 - grace);
    // Packets held back for a batch reach the workers when traffic is slow.
    flushAnalysis();
    maybePostCounters();
  }, IDLE_TICK_MS);
  if (!stopping) await new Promise<void>((resolve) => { stopResolvers.push(resolve); });
  clearInterval(idle);
  // What the kernel received before the stop is analyzed, not left in the ring.
  await live.drain();
  await finish([]);
}

/** A replayed file that cannot be read ends the replay, as `analyze` ends on it: exit 2 with the reader's message. */
function unreadable(file: string, message: string): void {
  post({ type: 'fatal', message: `${file}: ${message}`, input: true });
  stopping = true;
}

async function runReplay(): Promise<void> {
  const c = config.capture;
  let files: string[];
  try {
    files = listReplayFiles(c.replay);
  } catch (err) {
    post({ type: 'fatal', message: isUserError(err) ? err.message : String(err) });
    port.close();
    return;
  }
  post({ type: 'ready', linkType: -1, tables: analysis.tableOwners() });
  const warnings: string[] = [];
  const pacing = replayPacing(c.speed);
  // Each loop pass is shifted past the previous one, on a window boundary, so windows (and their ids) never repeat.
  let shift = 0;
  let passFirst = Infinity;
  let passLast = -Infinity;
  let yieldEvery = 0;
  do {
    for (const file of files) {
      let reader: CaptureReader;
      try {
        reader = await CaptureReader.open(file, config.input);
      } catch (err) {
        if (!isUserError(err)) throw err;
        unreadable(file, err.message);
        break;
      }
      reading = reader;
      try {
        const rec = reader.record;
        for (let status = reader.next(); status !== END && !stopping; status = reader.next()) {
          if (status === NEED_DATA) {
            try { await reader.fill(); } catch (err) {
              if (!isUserError(err)) throw err;
              unreadable(file, err.message);
              break;
            }
            continue;
          }
          const ts = rec.tsSec + rec.tsNsec / 1e9;
          if (ts < passFirst) passFirst = ts;
          if (ts > passLast) passLast = ts;
          rec.tsSec += shift;
          const wait = pacing.delayMs(ts);
          if (wait > 1) {
            flushAnalysis();
            await sleep(wait);
          }
          packetsRead++;
          analysis.process(rec);
          if (++yieldEvery === 4096) {
            yieldEvery = 0;
            maybePostCounters();
            await new Promise<void>((resolve) => setImmediate(resolve)); // lets a stop message (and workers' windows) in
          }
        }
        if (reader.truncated) {
          truncatedInputs++;
          warnings.push(`${file}: cut short at byte offset ${reader.truncatedAt}; replayed the complete packets before it`);
        }
      } finally {
        await reader.close();
        for (const t of reader.linkTypes) linkTypes.add(linkTypeName(t));
        capLenOverWireLenDone += reader.capLenOverWireLen;
        reading = undefined;
      }
      if (stopping) break;
    }
    if (!c.loop || stopping || passFirst === Infinity) break;
    const seconds = config.windows.seconds;
    shift += Math.ceil((passLast - passFirst + seconds) / seconds) * seconds;
    pacing.restart();
    passFirst = Infinity;
    passLast = -Infinity;
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- set by another callback while this code waits; the narrowed type does not see it
  } while (!stopping);
  await finish(warnings);
}

const stopResolvers: Array<() => void> = [];

function stop(): void {
  stopping = true;
  for (const resolve of stopResolvers.splice(0)) resolve();
}

function flushAnalysis(): void {
  try {
    analysis.flush();
  } catch {
    workerFailed();
  }
}

port.on('message', (msg: ToCapture) => {
  if (msg.type === 'stop') {
    stop();
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- spelled out, so that a new message type is never taken for a reload
  } else if (msg.type === 'reload') {
    analysis.reconfigure(buildConfig(msg.config));
  }
});

// A rejection here is a bug, not input: it reaches the main thread as the worker's 'error' (exit 1).
await (data.source.kind === 'live' ? runLive() : runReplay());
