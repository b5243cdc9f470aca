/**
 * Publishing and ingest: the agent replays a capture (1-second windows) and
 * publishes every window and finding to a nats-server; the collector consumes
 * them into SQLite or PostgreSQL. Two runs per store:
 *  - burst: replay at top speed, so messages come as fast as the agent makes
 *    them: committed messages per second is the pipeline's capacity;
 *  - paced: replay at a fixed multiple of real time (about 20 windows/s), where
 *    nothing queues: latency is the steady-state latency.
 *  - flood: the burst's own windows and findings (with new ids, as sensor
 *    `bench-<store>-flood`) published by this process at a fixed rate
 *    (`floodRate`, default 10,500 messages/s: issue 14's 10 k/s and 5 % to
 *    spare, so that 10 k/s can be committed) for `floodSeconds`, many
 *    publishes in flight: whether the collector keeps up with a sustained
 *    burst faster than one agent makes messages (issue 14: >= 10 k/s with p99
 *    publish-to-commit < 250 ms). `--flood-rate` sets a higher load.
 * Latency of one message: from its publish, seen by a plain NATS subscriber
 * here (the agent publishes a window when it closes; flood: when this
 * process publishes it), to the row's arrival time in the database
 * (`received_ms` in SQLite, `received_at` in PostgreSQL: set inside the
 * committing transaction).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { connect, createInbox, headers, type NatsConnection } from '@nats-io/transport-node';
import { subjectFor } from '../common/wire.js';
import { CLI } from '../test/helpers/paths.js';
import { freePort, metricValue, parseMetrics, waitFor } from '../test/helpers/agent-process.js';
import { startNatsServer } from '../test/helpers/nats-server.js';
import { machineBusySeconds, percentile, processCpuSeconds, sleep } from './measure.js';

export interface IngestRow {
  store: 'sqlite' | 'postgres';
  mode: 'burst' | 'paced' | 'flood';
  windows: number;
  findings: number;
  /** Messages published per second by the agent (first to last publish). */
  publishedPerSecond: number;
  /** Windows and findings committed per second (first publish to last commit). */
  committedPerSecond: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  latencyMaxMs: number;
  /** Mean time of one ingest transaction (collector_db_write_seconds). */
  dbWriteMeanMs: number;
  /** Mean messages per ingest transaction. */
  batchMean: number;
  /** The collector's CPU time (user + system) per committed message, in microseconds: its capacity on one free core is 1e6 / this. */
  collectorCpuUsPerMessage: number;
  /** nats-server's CPU time per committed message (µs). */
  natsCpuUsPerMessage: number;
  /** The flood publisher's (this process's) CPU time per message (µs); flood runs only. */
  publisherCpuUsPerMessage: number;
  /** CPU time used by the whole machine over the run, divided by its wall time: how many of the cores were busy. */
  machineBusyCores: number;
  error?: string;
}

interface Published { at: number; kind: 'window' | 'finding' }

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) { resolve(child.exitCode); return; }
    child.once('exit', (code) => resolve(code));
  });
}

function spawnLogged(argv: string[], log: string): { child: ChildProcess; tail: () => string } {
  const fd = openSync(log, 'w');
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', fd] });
  closeSync(fd);
  return { child, tail: () => { try { return readFileSync(log, 'utf8').slice(-600); } catch { return ''; } } };
}

/** Arrival times (ms since the epoch) of the stored rows of one sensor, by id. */
type ReadRows = (sensor: string) => Promise<Map<string, number>>;

function sqliteRows(path: string): ReadRows {
  return async (sensor) => {
    const db = new Database(path, { readonly: true, fileMustExist: true });
    try {
      const rows = db.prepare('SELECT id, received_ms AS ms FROM windows WHERE sensor = ? UNION ALL SELECT id, received_ms AS ms FROM findings WHERE sensor = ?')
        .all(sensor, sensor) as Array<{ id: string; ms: number }>;
      return new Map(rows.map((r) => [r.id, r.ms]));
    } finally {
      db.close();
    }
  };
}

function postgresRows(url: string): ReadRows {
  return async (sensor) => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const { rows } = await client.query<{ id: string; ms: number }>(
        `SELECT id, (extract(epoch FROM received_at) * 1000)::float8 AS ms FROM windows WHERE sensor = $1
         UNION ALL SELECT id, (extract(epoch FROM received_at) * 1000)::float8 AS ms FROM findings WHERE sensor = $1`, [sensor]);
      return new Map(rows.map((r) => [r.id, Number(r.ms)]));
    } finally {
      await client.end();
    }
  };
}

interface WriteFigures { sum: number; count: number; messages: number; windowsAndFindings: number; cpuSeconds: number }

async function dbWrites(base: string): Promise<WriteFigures> {
  const m = parseMetrics(await (await fetch(`${base}/metrics`)).text());
  return {
    sum: metricValue(m, 'pcap_analyzer_collector_db_write_seconds_sum'),
    count: metricValue(m, 'pcap_analyzer_collector_db_write_seconds_count'),
    messages: metricValue(m, 'pcap_analyzer_collector_messages_ingested_total'),
    windowsAndFindings: metricValue(m, 'pcap_analyzer_collector_messages_ingested_total', 'kind="window"')
      + metricValue(m, 'pcap_analyzer_collector_messages_ingested_total', 'kind="finding"'),
    cpuSeconds: metricValue(m, 'process_cpu_seconds_total'),
  };
}

interface CpuMark { at: number; machine: number; nats: number; self: number }

function cpuMark(natsPid: number | undefined): CpuMark {
  const self = process.cpuUsage();
  return { at: Date.now(), machine: machineBusySeconds(), nats: processCpuSeconds(natsPid), self: (self.user + self.system) / 1e6 };
}

type Body = Record<string, unknown> & { id: string; sensor: string };

/**
 * Publishes copies of `templates` (new ids, sensor `sensor`) at `rate` messages/s for
 * `seconds`, at most `maxInFlight` awaiting their JetStream ack; returns each id's publish time.
 *
 * The flood stands for agents on other machines, so its own CPU is kept small: bodies are
 * serialized once per template (the id is spliced in), and acks come to one inbox
 * subscription instead of one request (promise, timer and two Error objects) per message,
 * which took more CPU than the collector under test on this 2-core machine.
 */
async function flood(nc: NatsConnection, templates: Body[], sensor: string, rate: number, seconds: number): Promise<Map<string, Published>> {
  const ID = '\u0000flood-id\u0000';
  const bodies = templates.map((t) => {
    const kind: Published['kind'] = typeof t['window'] === 'object' ? 'window' : 'finding';
    const [head, tail] = JSON.stringify({ ...t, id: ID, sensor }).split(JSON.stringify(ID)) as [string, string];
    return { kind, subject: subjectFor(sensor, kind), head, tail };
  });
  const sent = new Map<string, Published>();
  const total = Math.round(rate * seconds);
  const maxInFlight = 4096;
  let inFlight = 0;
  let acked = 0;
  let lastError = '';
  let resume: (() => void) | undefined;
  const inbox = createInbox();
  const acks = nc.subscribe(`${inbox}.*`, {
    callback: (err, msg) => {
      inFlight--;
      if (err) {
        lastError = String(err);
      } else {
        const ack = msg.json<{ error?: { description?: string } }>();
        if (ack.error) lastError = ack.error.description ?? JSON.stringify(ack.error); else acked++;
      }
      resume?.();
    },
  });
  const started = Date.now();
  try {
    for (let i = 0; i < total;) {
      const due = Math.min(total, Math.floor(((Date.now() - started) / 1000) * rate) + 1);
      for (; i < due && inFlight < maxInFlight; i++) {
        const body = bodies[i % bodies.length]!;
        const id = `${sensor}.flood.${body.kind[0]}.${i}`;
        const h = headers();
        h.set('Nats-Msg-Id', id);
        sent.set(id, { at: Date.now(), kind: body.kind });
        inFlight++;
        nc.publish(body.subject, body.head + JSON.stringify(id) + body.tail, { reply: `${inbox}.${i}`, headers: h });
      }
      // Until the next message is due, or an ack frees room.
      await new Promise<void>((r) => { resume = r; setTimeout(r, inFlight >= maxInFlight ? 50 : 2); });
      resume = undefined;
    }
    for (const deadline = Date.now() + 60_000; inFlight > 0 && Date.now() < deadline;) await sleep(10);
  } finally {
    acks.unsubscribe();
  }
  if (acked < total) throw new Error(`flood: ${total - acked} of ${total} publishes not acknowledged by JetStream${lastError ? ` (${lastError})` : ''}`);
  return sent;
}

export interface IngestOptions {
  store: 'sqlite' | 'postgres';
  /** PostgreSQL database URL (store 'postgres'). */
  databaseUrl?: string;
  file: string;
  work: string;
  /** Replay speed of the paced run, and how long it runs (wall seconds). */
  pacedSpeed: number;
  pacedSeconds: number;
  /** Messages per second and seconds of the flood run. */
  floodRate: number;
  floodSeconds: number;
}

export async function benchIngest(o: IngestOptions): Promise<IngestRow[]> {
  const dir = join(o.work, `ingest-${o.store}`);
  mkdirSync(dir, { recursive: true });
  const nats = await startNatsServer();
  let nc: NatsConnection | undefined;
  let collector: ChildProcess | undefined;
  try {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const c = spawnLogged([process.execPath, CLI, 'collector', '--nats', nats.url, '--listen', `127.0.0.1:${port}`, '--data-dir', join(dir, 'collector'),
      ...(o.store === 'postgres' ? ['--database-url', o.databaseUrl!] : [])], join(dir, 'collector.log'));
    collector = c.child;
    await waitFor('the collector to answer', async () => (await fetch(`${base}/api/health`)).ok || undefined, 30_000, 100)
      .catch((err: unknown) => { throw new Error(`${String(err)}; collector log: ${c.tail()}`); });
    const readRows = o.store === 'postgres' ? postgresRows(o.databaseUrl!) : sqliteRows(join(dir, 'collector', 'pcap_analyzer.db'));

    const published = new Map<string, Map<string, Published>>();
    const templates: Body[] = [];
    nc = await connect({ servers: nats.url });
    const seen = nc.subscribe('pcap.v1.>', {
      callback: (err, msg) => {
        if (err) return;
        const at = Date.now();
        const kind = msg.subject.endsWith('.window') ? 'window' : msg.subject.endsWith('.finding') ? 'finding' : undefined;
        if (!kind) return;
        const body = msg.json<Body>();
        if (templates.length < 5000 && body.sensor.endsWith('-burst')) templates.push(body);
        let bySensor = published.get(body.sensor);
        if (!bySensor) published.set(body.sensor, bySensor = new Map());
        if (!bySensor.has(body.id)) bySensor.set(body.id, { at, kind });
      },
    });
    await nc.flush();

    const config = join(dir, 'agent.yaml');
    writeFileSync(config, 'windows:\n  seconds: 1\nlogging:\n  level: warn\n');
    const rows: IngestRow[] = [];
    for (const mode of ['burst', 'paced', 'flood'] as const) {
      const sensor = `bench-${o.store}-${mode}`;
      const w0 = await dbWrites(base);
      const c0 = cpuMark(nats.pid);
      if (mode === 'flood') {
        seen.unsubscribe(); // the flood's publish times are taken where it publishes
        if (!templates.length) throw new Error('flood: the burst published nothing to copy');
        published.set(sensor, await flood(nc, templates, sensor, o.floodRate, o.floodSeconds));
      } else {
        const a = spawnLogged([process.execPath, CLI, 'agent', '--replay', o.file, '--sensor', sensor, '--nats', nats.url, '--listen', '',
          '--data-dir', join(dir, `agent-${mode}`), '--config', config, ...(mode === 'paced' ? ['--speed', String(o.pacedSpeed)] : [])], join(dir, `agent-${mode}.log`));
        if (mode === 'paced') {
          await Promise.race([exited(a.child), sleep(o.pacedSeconds * 1000)]);
          a.child.kill('SIGTERM');
        }
        const code = await exited(a.child);
        if (code !== 0) throw new Error(`agent (${mode}) exited with ${code}: ${a.tail()}`);
        await nc.flush();
      }
      const sent = published.get(sensor) ?? new Map<string, Published>();
      // Every published window and finding committed, or nothing new for 5 s. Polled on the
      // collector's own counter: reading the rows back while it writes would load the database
      // under test (a full read of the sensor's rows every 100 ms took 40-220 ms of PostgreSQL).
      let lastCount = -1;
      let lastChange = Date.now();
      for (const deadline = Date.now() + 300_000; Date.now() < deadline;) {
        const committed = (await dbWrites(base)).windowsAndFindings - w0.windowsAndFindings;
        if (committed >= sent.size) break;
        if (committed !== lastCount) { lastCount = committed; lastChange = Date.now(); } else if (Date.now() - lastChange > 5000) break;
        await sleep(100);
      }
      const w1 = await dbWrites(base);
      const c1 = cpuMark(nats.pid);
      const stored = await readRows(sensor);
      const latencies: number[] = [];
      let firstPublish = Infinity;
      let lastPublish = -Infinity;
      let lastCommit = -Infinity;
      let windows = 0;
      let findings = 0;
      for (const [id, p] of sent) {
        firstPublish = Math.min(firstPublish, p.at);
        lastPublish = Math.max(lastPublish, p.at);
        if (p.kind === 'window') windows++; else findings++;
        const at = stored.get(id);
        if (at === undefined) continue;
        lastCommit = Math.max(lastCommit, at);
        latencies.push(Math.max(0, at - p.at));
      }
      const n = windows + findings;
      const missing = n - latencies.length;
      rows.push({
        store: o.store, mode, windows, findings,
        publishedPerSecond: n > 1 ? n / Math.max(0.001, (lastPublish - firstPublish) / 1000) : NaN,
        committedPerSecond: latencies.length ? latencies.length / Math.max(0.001, (lastCommit - firstPublish) / 1000) : NaN,
        latencyP50Ms: percentile(latencies, 50),
        latencyP99Ms: percentile(latencies, 99),
        latencyMaxMs: percentile(latencies, 100),
        dbWriteMeanMs: w1.count > w0.count ? ((w1.sum - w0.sum) / (w1.count - w0.count)) * 1000 : NaN,
        batchMean: w1.count > w0.count ? (w1.messages - w0.messages) / (w1.count - w0.count) : NaN,
        collectorCpuUsPerMessage: w1.messages > w0.messages ? ((w1.cpuSeconds - w0.cpuSeconds) / (w1.messages - w0.messages)) * 1e6 : NaN,
        natsCpuUsPerMessage: w1.messages > w0.messages ? ((c1.nats - c0.nats) / (w1.messages - w0.messages)) * 1e6 : NaN,
        publisherCpuUsPerMessage: mode === 'flood' && n ? ((c1.self - c0.self) / n) * 1e6 : NaN,
        machineBusyCores: (c1.machine - c0.machine) / Math.max(0.001, (c1.at - c0.at) / 1000),
        ...(missing > 0 ? { error: `${missing} of ${n} published messages not stored` } : {}),
      });
    }
    return rows;
  } finally {
    await nc?.close().catch(() => undefined);
    if (collector) {
      collector.kill('SIGTERM');
      const timer = setTimeout(() => collector?.kill('SIGKILL'), 15_000);
      await exited(collector);
      clearTimeout(timer);
    }
    await nats.close();
  }
}
