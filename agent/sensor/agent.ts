/**
 * `pcap-analyzer agent`: the main thread. It starts the capture thread, turns
 * its closed windows into wire messages for the publisher, sends heartbeats,
 * serves /metrics, /healthz and /readyz, and handles the lifecycle:
 * SIGTERM/SIGINT close the current window, wait for acknowledgements up to
 * `shutdown.seconds`, spool what is left and exit 0; SIGHUP reloads analyzer
 * thresholds; a replay without --loop ends the same way when its input ends.
 */
import { hostname } from 'node:os';
import { resolve as resolvePath } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Server } from 'node:http';
import { resolveConfig, type Config, type ConfigSources } from '../../common/config.js';
import { UsageError } from '../../common/errors.js';
import { createLogger, type Logger } from '../../common/logging.js';
import type { Finding, WindowSummary } from '../../common/report.js';
import {
  FINDING_SCHEMA, STATUS_SCHEMA, WINDOW_SCHEMA, findingMessageId, sensorToken, statusMessageId, subjectFor, windowMessageId,
  type FindingMessage, type SourceInfo, type StatusMessage, type WindowMessage,
} from '../../common/wire.js';
import { sensorInboxPrefix } from '../../common/nats.js';
import { Publisher, type PublisherStats } from '../publish/index.js';
import { startHttp, type Readiness } from './http.js';
import { AgentMetrics } from './metrics.js';
import { PIPELINE_THREAD_LIMITS } from '../core/thread-limits.js';
import type { CaptureCounters, CaptureWorkerData, FromCapture, ToCapture } from './protocol.js';
import { listReplayFiles, replayPacing } from './replay.js';
import { CaptureReader } from '../capture/index.js';
import { ensureDataDir } from '../../common/data-dir.js';
import { resolveWorkers } from '../shard/workers.js';

export interface AgentOptions {
  sources: ConfigSources;
  version: string;
  /** Where logs go (tests); stderr by default. */
  logger?: Logger;
}

type State = StatusMessage['state'];

const EMPTY_COUNTERS: CaptureCounters = {
  packets: 0, bytes: 0, received: 0, drops: { kernel: 0, interface: 0, agent: 0 },
  decodeErrors: {}, flowsActive: 0, flowsEvicted: 0, conversationsForgotten: 0, windows: 0, windowLagSeconds: 0,
};

/** Which source the configuration names: exactly one of capture.interface and capture.replay. */
export function agentSource(config: Readonly<Config>): SourceInfo {
  const { interface: iface, replay } = config.capture;
  if (iface && replay) throw new UsageError('agent takes one source: --interface (capture.interface) or --replay (capture.replay), not both');
  if (iface) return { kind: 'live', name: iface };
  if (replay) return { kind: 'replay', name: resolvePath(replay) };
  throw new UsageError('agent needs a source: --interface NAME (capture.interface) or --replay PATH (capture.replay)');
}

/** Analyzer keys read only at start (which analyzers run, table sizes, look-back bucket layout): a SIGHUP change of them needs a restart. */
const FIXED_AT_START = ['enabled', 'maxKeys', 'maxHosts', 'maxUnackedSegments', 'maxPending', 'lookback'];

const encoder = new TextEncoder();
const encode = (msg: unknown): Uint8Array => encoder.encode(JSON.stringify(msg));

/**
 * What can be checked of a replay before anything starts (so a mistake is one line, before any log):
 * the files exist and the first one is a capture. A later file's problem ends the replay with exit 2.
 */
async function checkReplay(config: Readonly<Config>): Promise<void> {
  if (config.capture.bpf) {
    throw new UsageError(`capture.bpf: "${config.capture.bpf}" cannot filter a replay: a capture filter applies to live capture only ` +
      "(libpcap runs it on the interface); filter the file first (tcpdump -r IN -w OUT 'EXPR') and replay OUT, or unset --bpf (PCAP_ANALYZER_CAPTURE_BPF)");
  }
  replayPacing(config.capture.speed); // rejects a bad speed
  const [first] = listReplayFiles(config.capture.replay);
  const reader = await CaptureReader.open(first!, config.input);
  await reader.close();
}

/** Seconds after an analysis worker's last ring-full drop during which the agent reports itself degraded. */
const BEHIND_SECONDS = 10;

/** Analysis workers that dropped packets on a full ring lately (too slow, or stalled): /readyz degraded while it lasts. */
class WorkersBehind {
  private drops: number[] = [];
  private lastDropAt: number[] = [];

  note(c: CaptureCounters, now: number): void {
    c.workers?.forEach((w, i) => {
      if (w.ringFullDrops > (this.drops[i] ?? 0)) this.lastDropAt[i] = now;
      this.drops[i] = w.ringFullDrops;
    });
  }

  /** Why the agent is degraded, or undefined. */
  behind(now: number): string | undefined {
    const late = this.lastDropAt.flatMap((at, i) => (now - at < BEHIND_SECONDS * 1000 ? [i] : []));
    if (late.length === 0) return undefined;
    const which = late.map((i) => `${i + 1} (${this.drops[i]} dropped)`).join(', ');
    return `analysis workers ${which}: ring full in the last ${BEHIND_SECONDS} s, packets dropped (a worker too slow or stalled)`;
  }
}

export async function runAgent(options: AgentOptions): Promise<number> {
  const config = resolveConfig(options.sources);
  const source = agentSource(config);
  if (source.kind === 'replay') await checkReplay(config);
  const { workers, note } = resolveWorkers(config);
  ensureDataDir(resolvePath(config.dataDir)); // the spool's parent: a file there is one line, not ENOTDIR
  const sensor = config.sensor.id || hostname();
  const log = options.logger ?? createLogger(config.logging, { bindings: { sensor } });
  if (sensorToken(sensor) !== sensor) log.info({ subjectToken: sensorToken(sensor) }, 'the sensor id has dots: its NATS subjects and message ids carry them as "_" (the collector shows the id as given)');
  const startedAt = new Date();
  let state: State = 'starting';
  let counters = EMPTY_COUNTERS;
  let statusSeq = 0;

  const metrics = new AgentMetrics({ sensor, version: options.version, source: source.kind });
  const workersBehind = new WorkersBehind();
  const publisher = await Publisher.start({ nats: config.nats, spool: config.spool, dataDir: resolvePath(config.dataDir), logger: log, name: `pcap-analyzer-agent ${sensor}`, inboxPrefix: sensorInboxPrefix(sensor) });

  const readiness = (): Readiness => {
    const reasons: string[] = [];
    const p = publisher.stats();
    if (state !== 'running' && state !== 'degraded') reasons.push(`state is ${state}`);
    if (p.degraded) reasons.push(`spool over its limits (${p.overflowMessages} messages dropped)`);
    const behind = workersBehind.behind(Date.now());
    if (behind) reasons.push(behind);
    const degraded = p.degraded || behind !== undefined;
    return { ready: reasons.length === 0, reasons, state: degraded && state === 'running' ? 'degraded' : state };
  };
  const refreshPublishMetrics = (): PublisherStats => {
    const p = publisher.stats();
    metrics.onPublisher(p, readiness().ready);
    return p;
  };

  let http: Server | undefined;
  if (config.http.listen) {
    try {
      http = await startHttp(config.http.listen, metrics.registry, () => { refreshPublishMetrics(); return readiness(); });
    } catch (err) {
      await publisher.close({ quiet: true });
      throw err;
    }
  }

  const statusMessage = (final: boolean): StatusMessage => {
    const p = refreshPublishMetrics();
    const now = new Date();
    const current = readiness().state as State;
    return {
      schema: STATUS_SCHEMA,
      id: statusMessageId(sensor, startedAt, ++statusSeq),
      sensor,
      version: options.version,
      source,
      startedAt: startedAt.toISOString(),
      time: now.toISOString(),
      uptimeSeconds: Math.round((now.getTime() - startedAt.getTime()) / 1000),
      state: current,
      heartbeatSeconds: config.status.seconds,
      ...(final ? { final } : {}),
      capture: { packets: counters.packets, bytes: counters.bytes, received: counters.received, drops: counters.drops, decodeErrors: counters.decodeErrors },
      flows: { active: counters.flowsActive, evicted: counters.flowsEvicted, conversationsForgotten: counters.conversationsForgotten },
      windows: counters.windows,
      publish: {
        connected: p.connected, published: p.published, publishFailures: p.publishFailures, inFlight: p.inFlight,
        spoolMessages: p.spoolMessages, spoolBytes: p.spoolBytes, overflowMessages: p.overflowMessages,
      },
    };
  };
  /** `final`: the stop's last heartbeat, spooled like a window when NATS is away (the collector shows the sensor stopped, not down). */
  const sendStatus = (final = false): void => {
    const msg = statusMessage(final);
    publisher.enqueue({ subject: subjectFor(sensor, 'status'), msgId: msg.id, data: encode(msg) }, { droppable: !final });
  };

  const publishWindow = (summary: WindowSummary, findings: Finding[]): void => {
    const window: WindowMessage = { schema: WINDOW_SCHEMA, id: windowMessageId(sensor, source, summary), sensor, source, window: summary };
    publisher.enqueue({ subject: subjectFor(sensor, 'window'), msgId: window.id, data: encode(window) });
    for (const finding of findings) {
      const msg: FindingMessage = { schema: FINDING_SCHEMA, id: findingMessageId(sensor, source, finding), sensor, source, finding };
      publisher.enqueue({ subject: subjectFor(sensor, 'finding'), msgId: msg.id, data: encode(msg) });
    }
    metrics.onWindow(summary, findings);
  };

  if (note) log.info(note);
  const workerData: CaptureWorkerData = { config: config as Config, source, workers };
  const worker = new Worker(new URL('./capture-worker.js', import.meta.url), { workerData, resourceLimits: PIPELINE_THREAD_LIMITS });
  const post = (msg: ToCapture): void => worker.postMessage(msg);

  let fatal: string | undefined;
  /** The fatal problem is the input's (a replayed file), not a failure of the capture: exit 2. */
  let fatalInput = false;
  let gotDone = false;
  let workerError: unknown;
  let captureDone!: () => void;
  const done = new Promise<void>((resolve) => { captureDone = resolve; });
  let readyResolve!: (ok: boolean) => void;
  const started = new Promise<boolean>((resolve) => { readyResolve = resolve; });

  worker.on('message', (msg: FromCapture) => {
    switch (msg.type) {
      case 'ready':
        if (state === 'starting') state = 'running';
        metrics.onTables(msg.tables);
        log.info({ source: source.kind, name: source.name, linkType: msg.linkType }, 'capturing');
        readyResolve(true);
        break;
      case 'window':
        counters = msg.counters;
        metrics.onCounters(counters);
        workersBehind.note(counters, Date.now());
        publishWindow(msg.summary, msg.findings);
        break;
      case 'counters':
        counters = msg.counters;
        metrics.onCounters(counters);
        workersBehind.note(counters, Date.now());
        break;
      case 'fatal':
        fatal = msg.message;
        fatalInput = msg.input === true;
        if (state === 'starting') { readyResolve(false); break; }
        log.error({ error: msg.message }, fatalInput ? 'replay input unreadable; stopping' : 'capture failed; stopping');
        break;
      case 'done':
        gotDone = true;
        counters = msg.counters;
        metrics.onCounters(counters);
        for (const w of msg.warnings) log.warn(w);
        captureDone();
        break;
    }
  });
  worker.on('error', (err) => { workerError = err; readyResolve(false); captureDone(); });
  worker.on('exit', (code) => {
    if (!gotDone && workerError === undefined && fatal === undefined) workerError = new Error(`capture thread exited (${code}) before finishing`);
    readyResolve(false);
    captureDone();
  });

  const cleanup = async (quiet = false): Promise<void> => {
    await publisher.close({ quiet });
    await new Promise<void>((resolve) => (http ? http.close(() => resolve()) : resolve()));
    http?.closeAllConnections();
  };

  // Signals count from here: a stop before the capture thread is ready ends it as soon as it is.
  let stopSignal: string | undefined;
  const onStop = (signal: NodeJS.Signals): void => {
    if (stopSignal !== undefined) {
      log.warn({ signal }, 'second signal: spooling what is unacknowledged and exiting now');
      void cleanup().finally(() => process.exit(0));
      return;
    }
    stopSignal = signal;
    state = 'stopping';
    log.info({ signal }, 'stopping: closing the current window');
    post({ type: 'stop' });
  };
  const onReload = (): void => {
    if (!options.sources.path) { log.warn('SIGHUP: no --config file to reload'); return; }
    try {
      const next = resolveConfig(options.sources);
      const restartNeeded: string[] = (['capture', 'nats', 'spool', 'http', 'memory', 'flows', 'windows', 'sensor', 'dataDir'] as const)
        .filter((key) => JSON.stringify(next[key]) !== JSON.stringify(config[key]));
      // Analyzer keys laid out at start: which run, table sizes, look-back buckets.
      const before = config.analyzers as unknown as Record<string, Record<string, unknown>>;
      for (const [id, keys] of Object.entries(next.analyzers as unknown as Record<string, Record<string, unknown>>)) {
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
        for (const k of FIXED_AT_START) if (k in keys && JSON.stringify(keys[k]) !== JSON.stringify(before[id]?.[k])) restartNeeded.push(`analyzers.${id}.${k}`);
      }
      post({ type: 'reload', config: next as Config });
      log.info({ needRestart: restartNeeded.length ? restartNeeded.join(', ') : undefined }, 'SIGHUP: analyzer thresholds reloaded');
    } catch (err) {
      log.error({ err: err instanceof Error ? err.message : String(err) }, 'SIGHUP: configuration rejected, keeping the current one');
    }
  };
  process.on('SIGTERM', onStop);
  process.on('SIGINT', onStop);
  process.on('SIGHUP', onReload);

  const removeSignalHandlers = (): void => {
    process.off('SIGTERM', onStop);
    process.off('SIGINT', onStop);
    process.off('SIGHUP', onReload);
  };

  if (!(await started)) {
    removeSignalHandlers();
    await worker.terminate();
    await cleanup(true); // nothing started: the error line alone says what happened
    if (fatal !== undefined) throw new UsageError(fatal);
    throw workerError instanceof Error ? workerError : new Error(`capture thread ended at start: ${String(workerError)}`);
  }

  const statusTimer = setInterval(() => sendStatus(), config.status.seconds * 1000);
  sendStatus();

  try {
    await done;
    if (workerError !== undefined) throw workerError;
    // A replay that read all of its input says so: the collector shows it finished, not stopping.
    state = source.kind === 'replay' && stopSignal === undefined && fatal === undefined ? 'finished' : 'stopping';
    clearInterval(statusTimer);
    sendStatus(true);
    const waitMs = config.shutdown.seconds * 1000;
    const acked = await publisher.drain(waitMs);
    const left = publisher.stats();
    log.info({ windows: counters.windows, packets: counters.packets, acknowledged: acked, spooled: left.spoolMessages, reason: stopSignal ?? 'end of replay' }, 'stopped');
  } finally {
    clearInterval(statusTimer);
    removeSignalHandlers();
    await cleanup();
  }
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- set by another callback while this code waits; the narrowed type does not see it
  if (fatal !== undefined && fatalInput) throw new UsageError(fatal);
  return fatal === undefined ? 0 : 1;
}
