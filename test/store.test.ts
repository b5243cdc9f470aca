/**
 * The collector's store, one suite run against both backends: SQLite in a
 * temporary directory and PostgreSQL in a fresh database per test (skipped,
 * with the reason, when no server is available). Messages are built from a
 * real capture's windows and findings (ppa_synscan), moved in time as needed.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { analyzeCapture } from '../agent/analyze/index.js';
import { isoTime } from '../common/address.js';
import { buildConfig } from '../common/config.js';
import type { Finding, FindingSeverity, WindowSummary } from '../common/report.js';
import {
  FINDING_SCHEMA, STATUS_SCHEMA, WINDOW_SCHEMA, findingMessageId, windowMessageId,
  type FindingMessage, type SourceInfo, type StatusMessage, type WindowMessage,
} from '../common/wire.js';
import { openStore, PostgresStore } from '../collector/store/index.js';
import { SqliteStore } from '../collector/store/sqlite.js';
import { MIGRATIONS } from '../collector/store/migrations.js';
import { normalizeTime } from '../collector/store/shared.js';
import { sensorLiveness, sensorView } from '../collector/http/app.js';
import type { CaptureJob, IngestBatch, StoredFinding, Store } from '../collector/store/types.js';
import { freePort } from './helpers/nats-server.js';
import { SHARED_PCAPS } from './helpers/paths.js';
import { createTestDatabase, postgresAvailable } from './helpers/postgres.js';

// ------------------------------------------------------------ messages

let templateWindows: WindowSummary[] = [];
let templateFindings: Finding[] = [];
before(async () => {
  const { report } = await analyzeCapture(join(SHARED_PCAPS, 'ppa_synscan.pcapng'), buildConfig({}));
  templateWindows = report.windows;
  templateFindings = report.findings;
  assert.ok(templateWindows.length >= 3 && templateFindings.length >= 5, 'the capture gives windows and findings');
});

const SOURCE: SourceInfo = { kind: 'replay', name: '/captures/ppa_synscan.pcapng' };
/** Packet time of window 0 (the capture's first window); window i starts 10 s later per step. */
const BASE = Date.parse('2010-07-04T20:24:10Z') / 1000;
const startOf = (i: number): string => isoTime(BASE + 10 * i);

function windowMsg(sensor: string, index: number, healthScore: number | null = 90, source = SOURCE): WindowMessage {
  const window: WindowSummary = { ...structuredClone(templateWindows[index % templateWindows.length]!), start: startOf(index), end: startOf(index + 1), healthScore };
  return { schema: WINDOW_SCHEMA, id: windowMessageId(sensor, source, window), sensor, source, window };
}

interface FindingSpec {
  window: number;
  n?: number;
  type?: string;
  severity?: FindingSeverity;
  flow?: Finding['flow'] | null;
  host?: string | null;
  evidence?: Finding['evidence'];
}

/** A real finding moved to window `spec.window`, with a fresh stable id and the given fields. */
function findingMsg(sensor: string, spec: FindingSpec, source = SOURCE): FindingMessage {
  const n = spec.n ?? 0;
  const base = structuredClone(templateFindings[n % templateFindings.length]!);
  const finding: Finding = {
    ...base,
    id: createHash('sha256').update(`${sensor}/${spec.window}/${n}/${spec.type ?? base.type}`).digest('hex').slice(0, 16),
    type: spec.type ?? base.type,
    severity: spec.severity ?? base.severity,
    window: { start: startOf(spec.window), end: startOf(spec.window + 1) },
    evidence: spec.evidence ?? base.evidence,
  };
  if (spec.flow === null) delete finding.flow; else if (spec.flow) finding.flow = spec.flow;
  if (spec.host === null) delete finding.host; else if (spec.host) finding.host = spec.host;
  return { schema: FINDING_SCHEMA, id: findingMessageId(sensor, source, finding), sensor, source, finding };
}

function statusMsg(sensor: string, time: string, version = '1.0.0', state: StatusMessage['state'] = 'running'): StatusMessage {
  return {
    schema: STATUS_SCHEMA, id: `${sensor}.s.${Date.parse(time)}`, sensor, version, source: SOURCE,
    startedAt: '2025-01-01T00:00:00.000Z', time, uptimeSeconds: 60, state,
    capture: { packets: 1000, bytes: 60_000, received: 1000, drops: { kernel: 0, interface: 0, agent: 0 }, decodeErrors: {} },
    flows: { active: 10, evicted: 0 }, windows: 6,
    publish: { connected: true, published: 50, publishFailures: 0, inFlight: 0, spoolMessages: 0, spoolBytes: 0, overflowMessages: 0 },
  };
}

const batch = (parts: Partial<IngestBatch>): IngestBatch => ({ windows: [], findings: [], statuses: [], ...parts });

/** Newest first by (window start, id): the order findings() must give. */
const newestFirst = (a: FindingMessage, b: FindingMessage): number =>
  a.finding.window.start < b.finding.window.start ? 1 : a.finding.window.start > b.finding.window.start ? -1 : a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
const ids = (items: Array<{ id: string }>): string[] => items.map((i) => i.id);

async function allPages(store: Store, query: { limit: number } & Record<string, string | number>): Promise<{ pages: StoredFinding[][]; cursors: Array<string | null> }> {
  const pages: StoredFinding[][] = [];
  const cursors: Array<string | null> = [];
  let cursor: string | undefined;
  do {
    const page = await store.findings({ ...query, ...(cursor ? { cursor } : {}) });
    pages.push(page.items);
    cursors.push(page.nextCursor);
    cursor = page.nextCursor ?? undefined;
    assert.ok(pages.length < 100, 'pagination ends');
  } while (cursor);
  return { pages, cursors };
}

// ------------------------------------------------------------ backends

type Row = Record<string, unknown>;

interface Harness {
  store: Store;
  /** Another store on the same database (not migrated), e.g. a second collector. */
  another(options?: { now?: () => Date }): Store;
  /** Direct SQL, to look under the contract. */
  sql(text: string): Promise<Row[]>;
  cleanup(): Promise<void>;
}

interface Backend {
  name: 'sqlite' | 'postgres';
  skip: string | false;
  open(options?: { now?: () => Date; migrate?: boolean }): Promise<Harness>;
}

const work = mkdtempSync(join(tmpdir(), 'pa-store-'));
after(() => rmSync(work, { recursive: true, force: true }));
let dbCount = 0;

const sqliteBackend: Backend = {
  name: 'sqlite',
  skip: false,
  async open(options = {}) {
    const path = join(work, `db${dbCount++}`, 'store.db');
    const stores: Store[] = [];
    const make = (o: { now?: () => Date } = {}): Store => { const s = new SqliteStore(path, o); stores.push(s); return s; };
    const store = make(options);
    if (options.migrate !== false) await store.migrate();
    return {
      store,
      another: make,
      async sql(text) {
        const db = new Database(path, { readonly: true });
        try { return db.prepare(text).all() as Row[]; } finally { db.close(); }
      },
      async cleanup() { for (const s of stores) await s.close(); },
    };
  },
};

const postgresBackend: Backend = {
  name: 'postgres',
  skip: await postgresAvailable(),
  async open(options = {}) {
    const db = await createTestDatabase();
    const stores: Store[] = [];
    const make = (o: { now?: () => Date } = {}): Store => { const s = new PostgresStore(db.url, o); stores.push(s); return s; };
    const store = make(options);
    if (options.migrate !== false) await store.migrate();
    return {
      store,
      another: make,
      async sql(text) {
        const client = new pg.Client({ connectionString: db.url });
        await client.connect();
        try { return (await client.query(text)).rows as Row[]; } finally { await client.end(); }
      },
      async cleanup() {
        for (const s of stores) await s.close();
        await db.drop();
      },
    };
  },
};

/** Runs `fn` with a fresh store and always cleans up. */
async function withStore(backend: Backend, fn: (h: Harness) => Promise<void>, options?: { now?: () => Date; migrate?: boolean }): Promise<void> {
  const h = await backend.open(options);
  try { await fn(h); } finally { await h.cleanup(); }
}

const count = async (h: Harness, table: string): Promise<number> => Number((await h.sql(`SELECT count(*) AS n FROM ${table}`))[0]!['n']);

/** A settable wall clock. */
function clock(startIso: string): { now: () => Date; set(iso: string): void } {
  let t = Date.parse(startIso);
  return { now: () => new Date(t), set(iso) { t = Date.parse(iso); } };
}

// ------------------------------------------------------------ the suite

for (const backend of [sqliteBackend, postgresBackend]) {
  describe(`store: ${backend.name}`, { skip: backend.skip }, () => {
    test('migrations are applied once each, also twice over and from several collectors at once', () => withStore(backend, async (h) => {
      assert.equal(await count(h, 'findings').catch(() => -1), -1, 'nothing before migrate()');
      await h.store.migrate();
      await h.store.migrate();
      // Collectors starting together on a database another one migrated meanwhile.
      await Promise.all([h.another().migrate(), h.another().migrate(), h.store.migrate()]);
      const versions = (await h.sql('SELECT version FROM schema_migrations ORDER BY version')).map((r) => Number(r['version']));
      assert.deepEqual(versions, MIGRATIONS[backend.name].map((m) => m.version));
      assert.equal(await count(h, 'findings'), 0);
    }, { migrate: false }));

    test('several collectors migrating an empty database at once', () => withStore(backend, async (h) => {
      const collectors = [h.store, h.another(), h.another(), h.another()];
      await Promise.all(collectors.map((s) => s.migrate()));
      assert.equal(await count(h, 'schema_migrations'), MIGRATIONS[backend.name].length);
    }, { migrate: false }));

    test('ingest is idempotent: a redelivered batch only counts duplicates', () => withStore(backend, async (h) => {
      const windows = [0, 1, 2].map((i) => windowMsg('edge-1', i));
      const findings = templateFindings.map((_, n) => findingMsg('edge-1', { window: n % 3, n }));
      const first = batch({ windows, findings, statuses: [statusMsg('edge-1', '2025-01-01T00:01:00.000Z')] });
      assert.deepEqual(await h.store.ingest(first), { inserted: windows.length + findings.length, duplicates: 0 });
      assert.deepEqual(await h.store.ingest(first), { inserted: 0, duplicates: windows.length + findings.length });
      assert.equal(await count(h, 'windows'), windows.length);
      assert.equal(await count(h, 'findings'), findings.length);
      // Partly new, and one id twice within the batch.
      const next = windowMsg('edge-1', 3);
      assert.deepEqual(await h.store.ingest(batch({ windows: [windows[0]!, next, next] })), { inserted: 1, duplicates: 2 });
      assert.deepEqual(await h.store.ingest(batch({})), { inserted: 0, duplicates: 0 });
      // Stored as sent.
      const stored = await h.store.windows('edge-1', startOf(0), startOf(10), 100);
      assert.deepEqual(stored.map((s) => s.window), [...windows, next].map((w) => w.window));
      assert.deepEqual(stored[0], { sensor: 'edge-1', id: windows[0]!.id, source: SOURCE, window: windows[0]!.window });
    }));

    test('sensors: upserted from statuses and windows, late statuses and windows do not overwrite newer ones', async () => {
      const wall = clock('2025-01-01T00:00:00.000Z');
      await withStore(backend, async (h) => {
        const s = h.store;
        // A window before any status: the sensor exists, version unknown.
        await s.ingest(batch({ windows: [windowMsg('edge-1', 5, 80)] }));
        let rec = await s.sensor('edge-1');
        assert.deepEqual(rec, {
          id: 'edge-1', version: '', source: SOURCE, firstSeen: '2025-01-01T00:00:00.000Z', lastSeen: '2025-01-01T00:00:00.000Z',
          lastHeartbeat: null, lastStatus: null, lastHealthScore: 80, lastWindowStart: new Date(Date.parse(startOf(5))).toISOString(),
        });

        wall.set('2025-01-01T00:00:10.000Z');
        const newer = statusMsg('edge-1', '2025-01-01T00:00:09.500Z', '1.1.0', 'running');
        await s.ingest(batch({ statuses: [newer] }));
        rec = await s.sensor('edge-1');
        assert.equal(rec?.version, '1.1.0');
        assert.deepEqual(rec.lastStatus, newer);
        assert.equal(rec.lastSeen, '2025-01-01T00:00:10.000Z');

        // A redelivered older status: seen, but it does not replace the newer one.
        wall.set('2025-01-01T00:00:20.000Z');
        await s.ingest(batch({ statuses: [statusMsg('edge-1', '2025-01-01T00:00:04.000Z', '1.0.0', 'starting')] }));
        rec = await s.sensor('edge-1');
        assert.equal(rec?.version, '1.1.0');
        assert.deepEqual(rec.lastStatus, newer);
        assert.equal(rec.lastSeen, '2025-01-01T00:00:20.000Z');

        // The collector's clock steps back: last_seen stays, the newer status lands.
        wall.set('2025-01-01T00:00:05.000Z');
        const newest = statusMsg('edge-1', '2025-01-01T00:00:30.000Z', '1.2.0', 'degraded');
        await s.ingest(batch({ statuses: [newest] }));
        rec = await s.sensor('edge-1');
        assert.deepEqual(rec?.lastStatus, newest);
        assert.equal(rec.version, '1.2.0');
        assert.equal(rec.lastSeen, '2025-01-01T00:00:20.000Z');
        assert.equal(rec.firstSeen, '2025-01-01T00:00:00.000Z');

        // Health follows the latest window, not the latest arrival.
        await s.ingest(batch({ windows: [windowMsg('edge-1', 2, 10)] }));
        assert.equal((await s.sensor('edge-1'))?.lastHealthScore, 80);
        await s.ingest(batch({ windows: [windowMsg('edge-1', 7, 55), windowMsg('edge-1', 6, 99)] }));
        assert.equal((await s.sensor('edge-1'))?.lastHealthScore, 55);
        await s.ingest(batch({ windows: [windowMsg('edge-1', 8, null)] }));
        assert.equal((await s.sensor('edge-1'))?.lastHealthScore, null);

        // Out of order within one batch, for a new sensor; a finding alone also registers its sensor.
        wall.set('2025-01-01T00:01:00.000Z');
        const b2 = statusMsg('core-2', '2025-01-01T00:00:50.000Z', '2.0.0');
        await s.ingest(batch({ statuses: [b2, statusMsg('core-2', '2025-01-01T00:00:40.000Z', '1.9.0')], findings: [findingMsg('dmz-3', { window: 1 })] }));
        assert.deepEqual((await s.sensor('core-2'))?.lastStatus, b2);
        const all = await s.sensors();
        assert.deepEqual(all.map((r) => r.id), ['core-2', 'dmz-3', 'edge-1']);
        assert.equal(all[1]!.lastSeen, '2025-01-01T00:01:00.000Z');
        assert.equal(await s.sensor('nope'), null);
      }, { now: wall.now });
    });

    test('liveness: the heartbeat is the status\'s own time, never later than its arrival; final and interval decide stopped and down', async () => {
      const wall = clock('2025-01-01T00:10:00.000Z');
      await withStore(backend, async (h) => {
        const s = h.store;
        const liveness = async (at: string): Promise<string> => sensorLiveness((await s.sensor('edge-1'))!, 60, Date.parse(at));
        // A backlog read late: the heartbeat made at 00:05 is five minutes old, though read just now.
        await s.ingest(batch({ statuses: [statusMsg('edge-1', '2025-01-01T00:05:00.000Z')] }));
        let rec = await s.sensor('edge-1');
        assert.equal(rec?.lastHeartbeat, '2025-01-01T00:05:00.000Z');
        assert.equal(rec.lastSeen, '2025-01-01T00:10:00.000Z');
        assert.equal(await liveness('2025-01-01T00:10:00.000Z'), 'down');
        assert.equal(await liveness('2025-01-01T00:05:59.000Z'), 'up');

        // A sensor clock an hour ahead: dated at its arrival, so its silence counts from then, not from an hour on.
        wall.set('2025-01-01T00:10:05.000Z');
        const ahead = statusMsg('edge-1', '2025-01-01T01:10:05.000Z');
        await s.ingest(batch({ statuses: [ahead] }));
        rec = await s.sensor('edge-1');
        assert.deepEqual(rec?.lastStatus, ahead);
        assert.equal(rec.lastHeartbeat, '2025-01-01T00:10:05.000Z');
        assert.equal(await liveness('2025-01-01T00:11:05.000Z'), 'up');
        assert.equal(await liveness('2025-01-01T00:11:06.000Z'), 'down');
        // A redelivered older status changes nothing.
        wall.set('2025-01-01T00:10:30.000Z');
        await s.ingest(batch({ statuses: [statusMsg('edge-1', '2025-01-01T00:09:00.000Z')] }));
        assert.equal((await s.sensor('edge-1'))?.lastHeartbeat, '2025-01-01T00:10:05.000Z');

        // A sensor with a 60 s heartbeat is allowed three of them (180 s) before it is down.
        wall.set('2025-01-01T02:00:00.000Z');
        await s.ingest(batch({ statuses: [{ ...statusMsg('edge-1', '2025-01-01T02:00:00.000Z'), heartbeatSeconds: 60 }] }));
        assert.equal(await liveness('2025-01-01T02:03:00.000Z'), 'up');
        assert.equal(await liveness('2025-01-01T02:03:01.000Z'), 'down');
        // The final heartbeat of an orderly stop: stopped at once; its spool is not shown.
        wall.set('2025-01-01T02:00:10.000Z');
        await s.ingest(batch({ statuses: [{ ...statusMsg('edge-1', '2025-01-01T02:00:10.000Z', '1.0.0', 'stopping'), final: true }] }));
        rec = await s.sensor('edge-1');
        assert.equal(sensorLiveness(rec!, 60, Date.parse('2025-01-01T02:00:10.000Z')), 'stopped');
        const view = sensorView(rec!, 60, Date.parse('2025-01-01T02:00:10.000Z'));
        assert.deepEqual([view['up'], view['liveness'], view['spool'], view['lastHeartbeat']], [false, 'stopped', null, '2025-01-01T02:00:10.000Z']);
        // Started again: up.
        wall.set('2025-01-01T03:00:00.000Z');
        await s.ingest(batch({ statuses: [statusMsg('edge-1', '2025-01-01T03:00:00.000Z', '1.0.0', 'starting')] }));
        assert.equal(await liveness('2025-01-01T03:00:01.000Z'), 'up');
        assert.notEqual(sensorView((await s.sensor('edge-1'))!, 60, Date.parse('2025-01-01T03:00:01.000Z'))['spool'], null);
      }, { now: wall.now });
    });

    test('windows and findings by time range: [from, to), oldest first, any ISO precision', () => withStore(backend, async (h) => {
      const s = h.store;
      await s.ingest(batch({
        windows: [...Array.from({ length: 30 }, (_, i) => windowMsg('a', i)), ...Array.from({ length: 5 }, (_, i) => windowMsg('b', i))],
        findings: Array.from({ length: 30 }, (_, i) => findingMsg('a', { window: i, n: i })),
      }));
      const starts = (ws: Array<{ window: WindowSummary }>): string[] => ws.map((w) => w.window.start);
      const expected = Array.from({ length: 10 }, (_, i) => startOf(5 + i));
      // startOf(5) is 2010-07-04T20:25:00.000000Z; the bounds in other precisions and offsets.
      for (const [from, to] of [
        [startOf(5), startOf(15)],
        ['2010-07-04T20:25:00Z', '2010-07-04T20:26:40Z'],
        ['2010-07-04T20:25:00.000Z', '2010-07-04T20:26:40.000000000Z'],
        ['2010-07-04T22:25:00+02:00', '2010-07-04T15:26:40-05:00'],
        ['2010-07-04T20:24:59.999999Z', '2010-07-04T20:26:39.999999Z'],
      ] as const) {
        assert.deepEqual(starts(await s.windows('a', from, to, 1000)), expected, `${from} .. ${to}`);
        assert.deepEqual((await s.findingsInRange('a', from, to, 1000)).map((f) => f.finding.window.start), expected, `${from} .. ${to}`);
      }
      assert.deepEqual(starts(await s.windows('a', '2010-07-04T20:25:00.000001Z', startOf(15), 1000)), expected.slice(1), 'from is inclusive to the microsecond');
      assert.deepEqual(starts(await s.windows('a', startOf(5), startOf(15), 3)), expected.slice(0, 3));
      assert.deepEqual(starts(await s.windows('b', startOf(0), startOf(100), 1000)), [0, 1, 2, 3, 4].map(startOf));
      assert.deepEqual(await s.windows('c', startOf(0), startOf(100), 1000), []);
      assert.deepEqual(await s.findingsInRange('b', startOf(0), startOf(100), 1000), []);
      await assert.rejects(s.windows('a', 'yesterday', startOf(1), 10), RangeError);
    }));

    test('findings: each filter, and ip matches whole addresses from flow, host and evidence', () => withStore(backend, async (h) => {
      const s = h.store;
      const flow = (client: string, server: string): Finding['flow'] => ({ proto: 'tcp', client, clientPort: 40000, server, serverPort: 443 });
      const f1 = findingMsg('a', { window: 0, type: 'failed_handshake', severity: 'warning', flow: flow('10.0.0.1', '192.0.2.7'), host: '192.0.2.7' });
      const f2 = findingMsg('a', { window: 1, type: 'port_scan', severity: 'critical', flow: null, host: '10.0.0.10', evidence: { target: '198.51.100.4', ports: 1000, sampleHosts: '198.51.100.5,198.51.100.6' } });
      const f3 = findingMsg('b', { window: 2, type: 'connection_refused', severity: 'info', flow: null, host: '203.0.113.9', evidence: { firstClient: '10.0.0.1:4444', refused: 3 } });
      const f4 = findingMsg('b', { window: 3, type: 'dns_tunneling', severity: 'info', flow: null, host: '2001:db8::1', evidence: { client: '[2001:db8::2]:53', note: 'not 10.0.0.1x' } });
      const f5 = findingMsg('a', { window: 4, type: 'traffic_burst', severity: 'info', flow: null, host: null, evidence: { bursts: 3 } });
      await s.ingest(batch({ findings: [f3, f1, f5, f2, f4] }));
      const q = async (query: Record<string, string>): Promise<string[]> => ids((await s.findings({ limit: 100, ...query })).items);

      assert.deepEqual(await q({}), ids([f5, f4, f3, f2, f1]));
      assert.deepEqual(await q({ sensor: 'a' }), ids([f5, f2, f1]));
      assert.deepEqual(await q({ type: 'port_scan' }), ids([f2]));
      assert.deepEqual(await q({ severity: 'info' }), ids([f5, f4, f3]));
      assert.deepEqual(await q({ sensor: 'b', severity: 'info' }), ids([f4, f3]));
      assert.deepEqual(await q({ ip: '10.0.0.1' }), ids([f3, f1]), 'never 10.0.0.10 or 10.0.0.1x');
      assert.deepEqual(await q({ ip: '10.0.0.10' }), ids([f2]));
      assert.deepEqual(await q({ ip: '10.0.0' }), []);
      assert.deepEqual(await q({ ip: '198.51.100.4' }), ids([f2]), 'evidence value');
      assert.deepEqual(await q({ ip: '198.51.100.6' }), ids([f2]), 'evidence list');
      assert.deepEqual(await q({ ip: '192.0.2.7' }), ids([f1]), 'flow server');
      assert.deepEqual(await q({ ip: '2001:DB8:0:0::1' }), ids([f4]), 'IPv6 in another spelling');
      assert.deepEqual(await q({ ip: '2001:db8::2' }), ids([f4]), 'IPv6 endpoint in evidence');
      assert.deepEqual(await q({ from: startOf(1), to: startOf(3) }), ids([f3, f2]));
      assert.deepEqual(await q({ from: '2010-07-04T20:24:30Z' }), ids([f5, f4, f3]));
      assert.deepEqual(await q({ to: '2010-07-04T20:24:20.000001Z' }), ids([f2, f1]));
      assert.deepEqual(await q({ sensor: 'a', type: 'port_scan', severity: 'critical', ip: '10.0.0.10', from: startOf(0), to: startOf(9) }), ids([f2]));
      assert.deepEqual(await q({ sensor: 'zzz' }), []);
      assert.deepEqual((await s.findings({ limit: 100, sensor: 'a' })).items[1], { sensor: 'a', id: f2.id, source: SOURCE, finding: f2.finding });
    }));

    test('findings: keyset pagination over 250 findings, newest first, each exactly once', () => withStore(backend, async (h) => {
      const s = h.store;
      const severities: FindingSeverity[] = ['info', 'warning', 'critical'];
      // Ten findings share each window start: ties are broken by id.
      const all = Array.from({ length: 250 }, (_, k) => findingMsg(k % 2 ? 'a' : 'b', { window: Math.floor(k / 10), n: k, severity: severities[k % 3]! }));
      const shuffled = [...all].sort((x, y) => (x.finding.id < y.finding.id ? -1 : 1));
      for (let i = 0; i < shuffled.length; i += 90) await s.ingest(batch({ findings: shuffled.slice(i, i + 90) }));
      const expected = ids([...all].sort(newestFirst));

      const { pages, cursors } = await allPages(s, { limit: 100 });
      assert.deepEqual(pages.map((p) => p.length), [100, 100, 50]);
      assert.equal(cursors[2], null);
      assert.deepEqual(pages.flat().map((f) => f.id), expected);

      const critical = await allPages(s, { limit: 7, severity: 'critical' });
      assert.deepEqual(critical.pages.flat().map((f) => f.id), ids([...all].filter((f) => f.finding.severity === 'critical').sort(newestFirst)));

      // Exactly two full pages: the second says it is the last.
      const twoPages = await allPages(s, { limit: 100, to: startOf(20) });
      assert.deepEqual(twoPages.pages.map((p) => p.length), [100, 100]);
      assert.deepEqual(twoPages.cursors.map((c) => c === null), [false, true]);

      // Findings arriving between pages: newer ones do not shift later pages.
      const page1 = await s.findings({ limit: 100 });
      await s.ingest(batch({ findings: [findingMsg('a', { window: 99, n: 1 }), findingMsg('a', { window: 1, n: 9999 })] }));
      const page2 = await s.findings({ limit: 100, cursor: page1.nextCursor! });
      assert.deepEqual(page2.items.map((f) => f.id), expected.slice(100, 200));

      await assert.rejects(s.findings({ limit: 10, cursor: 'not-a-cursor' }), /cursor/);
      await assert.rejects(s.findings({ limit: 10, cursor: Buffer.from('["tuesday","x"]').toString('base64url') }), /cursor/);
      await assert.rejects(s.findings({ limit: 0 }), RangeError);
      await assert.rejects(s.findings({ limit: 1001 }), RangeError);
      assert.equal((await s.findings({ limit: 1000 })).items.length, 252);
    }));

    test('findingCounts by severity since a time', () => withStore(backend, async (h) => {
      const s = h.store;
      const severities: FindingSeverity[] = ['critical', 'warning', 'warning', 'info', 'info', 'info'];
      await s.ingest(batch({ findings: Array.from({ length: 60 }, (_, k) => findingMsg('a', { window: k % 10, n: k, severity: severities[k % 6]! })) }));
      assert.deepEqual(await s.findingCounts(startOf(0)), { info: 30, warning: 20, critical: 10 });
      // Windows 5..9 hold k % 10 >= 5: k = 5..9, 15..19, ...
      const expected = { info: 0, warning: 0, critical: 0 };
      for (let k = 0; k < 60; k++) if (k % 10 >= 5) expected[severities[k % 6]!]++;
      assert.deepEqual(await s.findingCounts('2010-07-04T20:25:00Z'), expected);
      assert.deepEqual(await s.findingCounts('2030-01-01T00:00:00Z'), { info: 0, warning: 0, critical: 0 });
    }));

    test('capture jobs: create, progress, report, expiry, unfinished, delete with report', () => withStore(backend, async (h) => {
      const s = h.store;
      const job = (id: string, createdAt: string, expiresAt: string, status: CaptureJob['status'] = 'queued'): CaptureJob => ({
        id, status, filename: `${id}.pcapng`, sizeBytes: 5_000_000_000, progress: 0, error: null, warnings: [], createdAt, startedAt: null, finishedAt: null, expiresAt,
      });
      const j1 = job('00000000-0000-4000-8000-000000000001', '2025-01-01T10:00:00.000Z', '2025-01-02T10:00:00.000Z');
      const j2 = job('00000000-0000-4000-8000-000000000002', '2025-01-01T09:00:00.000Z', '2025-01-01T12:00:00.000Z');
      const j3 = job('00000000-0000-4000-8000-000000000003', '2025-01-01T08:00:00.000Z', '2025-01-01T11:00:00.000Z', 'done');
      for (const j of [j1, j2, j3]) await s.createJob(j);
      assert.deepEqual(await s.job(j1.id), j1);
      assert.equal(await s.job('missing'), null);
      await assert.rejects(s.createJob(j1), 'ids are unique');

      await s.updateJob(j1.id, { status: 'running', startedAt: '2025-01-01T10:00:01.000Z', progress: 12.5 });
      assert.deepEqual(await s.job(j1.id), { ...j1, status: 'running', startedAt: '2025-01-01T10:00:01.000Z', progress: 12.5 });
      await s.updateJob(j1.id, {});
      assert.deepEqual(ids(await s.unfinishedJobs()), [j2.id, j1.id], 'oldest first, done jobs left out');

      const report = JSON.stringify({ schema: 'pcap-analyzer/report@1', windows: templateWindows, pad: 'x'.repeat(2_000_000) });
      await s.saveReport(j1.id, report);
      assert.equal(await s.report(j1.id), report);
      await s.saveReport(j1.id, '{"again":true}');
      assert.equal(await s.report(j1.id), '{"again":true}');
      assert.equal(await s.report(j2.id), null);
      await assert.rejects(s.saveReport('no-such-job', '{}'), 'a report belongs to a job');
      await s.updateJob(j1.id, { status: 'done', progress: 100, finishedAt: '2025-01-01T10:05:00.000Z' });
      assert.deepEqual(ids(await s.unfinishedJobs()), [j2.id]);
      await s.updateJob(j2.id, { status: 'failed', error: 'bad magic number (at byte offset 0)', finishedAt: '2025-01-01T10:06:00.000Z' });
      assert.equal((await s.job(j2.id))?.error, 'bad magic number (at byte offset 0)');

      assert.deepEqual(ids(await s.expiredJobs('2025-01-01T10:30:00.000Z', 10)), []);
      assert.deepEqual(ids(await s.expiredJobs('2025-01-01T12:00:00.000Z', 10)), [j3.id, j2.id], 'oldest expiry first, expired at its instant');
      assert.deepEqual(ids(await s.expiredJobs('2030-01-01T00:00:00Z', 2)), [j3.id, j2.id]);
      assert.deepEqual(ids(await s.expiredJobs('2030-01-01T00:00:00Z', 10)), [j3.id, j2.id, j1.id]);

      assert.equal(await s.deleteJob(j1.id), true);
      assert.equal(await s.job(j1.id), null);
      assert.equal(await s.report(j1.id), null);
      assert.equal(await count(h, 'capture_reports'), 0, 'the report went with its job');
      assert.equal(await s.deleteJob(j1.id), false);
    }));

    test('deleteOlderThan removes by arrival time, in batches of at most `limit` rows per table', () => withStore(backend, async (h) => {
      const s = h.store;
      const findings = Array.from({ length: 80 }, (_, k) => findingMsg('a', { window: k % 40, n: k }));
      // The older arrivals are the newer windows: retention goes by arrival, not packet time.
      await s.ingest(batch({ windows: Array.from({ length: 30 }, (_, i) => windowMsg('a', 10 + i)), findings: findings.slice(0, 60) }));
      await new Promise((r) => setTimeout(r, 30));
      const cutoff = new Date().toISOString();
      await new Promise((r) => setTimeout(r, 30));
      await s.ingest(batch({ windows: Array.from({ length: 10 }, (_, i) => windowMsg('a', i)), findings: findings.slice(60) }));
      assert.equal(await s.deleteOlderThan(cutoff, 25), 50);
      assert.equal(await s.deleteOlderThan(cutoff, 25), 5 + 25);
      assert.equal(await s.deleteOlderThan(cutoff, 25), 10);
      assert.equal(await s.deleteOlderThan(cutoff, 25), 0);
      assert.equal(await count(h, 'windows'), 10);
      assert.equal(await count(h, 'findings'), 20);
      assert.deepEqual((await s.windows('a', startOf(0), startOf(100), 100)).map((w) => w.window.start), Array.from({ length: 10 }, (_, i) => startOf(i)));
    }));

    test('ping, and close', () => withStore(backend, async (h) => {
      assert.equal(await h.store.ping(), true);
      await h.store.close();
      assert.equal(await h.store.ping(), false);
      await assert.rejects(h.store.sensors());
      await h.store.close();
    }));

    test('ingest rate: one batch of 1000 windows', (t) => withStore(backend, async (h) => {
      const windows = Array.from({ length: 1000 }, (_, i) => windowMsg('rate', i));
      const findings = Array.from({ length: 1000 }, (_, k) => findingMsg('rate', { window: k, n: k }));
      const bytes = windows.reduce((n, w) => n + JSON.stringify(w).length, 0);
      const t0 = performance.now();
      assert.deepEqual(await h.store.ingest(batch({ windows })), { inserted: 1000, duplicates: 0 });
      const t1 = performance.now();
      assert.deepEqual(await h.store.ingest(batch({ findings })), { inserted: 1000, duplicates: 0 });
      const t2 = performance.now();
      const rate = (ms: number): string => `${Math.round(1000 / (ms / 1000))}/s`;
      // No assertion on speed (machines differ); the figure is printed for comparison.
      t.diagnostic(`${backend.name}: 1000 windows (${(bytes / 1e6).toFixed(1)} MB) in ${(t1 - t0).toFixed(0)} ms = ${rate(t1 - t0)}; 1000 findings in ${(t2 - t1).toFixed(0)} ms = ${rate(t2 - t1)}`);
    }));
  });
}

// ------------------------------------------------------------ backend specifics

describe('store: sqlite file', () => {
  test('a database from before last_heartbeat: the migration dates each sensor\'s heartbeat by its status, no later than its last arrival', async () => {
    const path = join(work, 'v1', 'collector.db');
    const old = await openStore({ databaseUrl: '', sqlitePath: path });
    await old.close();
    // Back to schema version 1, with two sensors: one whose status time is ahead of its arrival, one without a status.
    const db = new Database(path);
    db.exec("DELETE FROM schema_migrations WHERE version > 1; CREATE TABLE s1 AS SELECT id, version, source_kind, source_name, first_seen, last_seen, last_status, last_status_time, last_health_score, last_window_start FROM sensors; DROP TABLE sensors; ALTER TABLE s1 RENAME TO sensors");
    const insert = db.prepare('INSERT INTO sensors (id, version, source_kind, source_name, first_seen, last_seen, last_status, last_status_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
    insert.run('ahead', '1', 'live', 'eth0', '2025-01-01T00:00:00.000000Z', '2025-01-01T00:01:00.000000Z', JSON.stringify(statusMsg('ahead', '2025-01-01T00:03:00.000Z')), '2025-01-01T00:03:00.000000Z');
    insert.run('behind', '1', 'live', 'eth0', '2025-01-01T00:00:00.000000Z', '2025-01-01T00:01:00.000000Z', JSON.stringify(statusMsg('behind', '2025-01-01T00:00:30.000Z')), '2025-01-01T00:00:30.000000Z');
    insert.run('quiet', '1', 'live', 'eth0', '2025-01-01T00:00:00.000000Z', '2025-01-01T00:01:00.000000Z', null, null);
    db.close();
    const store = await openStore({ databaseUrl: '', sqlitePath: path });
    try {
      assert.deepEqual((await store.sensors()).map((r) => [r.id, r.lastHeartbeat]), [
        ['ahead', '2025-01-01T00:01:00.000Z'], ['behind', '2025-01-01T00:00:30.000Z'], ['quiet', null],
      ]);
    } finally {
      await store.close();
    }
  });

  test('openStore creates the directory, uses WAL, and data survives close and reopen', async () => {
    const path = join(work, 'nested', 'deeper', 'collector.db');
    const store = await openStore({ databaseUrl: '', sqlitePath: path });
    assert.equal(store.kind, 'sqlite');
    assert.ok(existsSync(path));
    await store.ingest(batch({ windows: [windowMsg('edge-1', 0)], findings: [findingMsg('edge-1', { window: 0 })], statuses: [statusMsg('edge-1', '2025-01-01T00:00:00.000Z')] }));
    await store.close();
    const db = new Database(path, { readonly: true });
    assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
    db.close();
    const again = await openStore({ databaseUrl: '', sqlitePath: path });
    try {
      assert.equal((await again.windows('edge-1', startOf(0), startOf(1), 10)).length, 1);
      assert.equal((await again.findings({ limit: 10 })).items.length, 1);
      assert.equal((await again.sensor('edge-1'))?.version, '1.0.0');
      assert.deepEqual(await again.ingest(batch({ windows: [windowMsg('edge-1', 0)] })), { inserted: 0, duplicates: 1 });
    } finally {
      await again.close();
    }
  });

  test('a background thread checkpoints the write-ahead log: it stays small under sustained writes, and close removes it', async () => {
    const path = join(work, 'checkpoint', 'collector.db');
    // The writer's own fallback checkpoint starts at 64 MB of log; without the thread the log would grow to all that is written here.
    const store = new SqliteStore(path, { checkpointIntervalMs: 20 });
    await store.migrate();
    const wal = `${path}-wal`;
    const writer = (store as unknown as { db: Database.Database }).db;
    assert.equal(writer.pragma('wal_autocheckpoint', { simple: true }), 16_384, 'the writer only checkpoints itself as a fallback');
    const pad = 'x'.repeat(50_000);
    let written = 0;
    let largestWal = 0;
    try {
      for (let b = 0; b < 40; b++) {
        const findings = Array.from({ length: 20 }, (_, i) => findingMsg('ckpt-1', { window: b, n: i, evidence: { pad } }));
        await store.ingest(batch({ findings }));
        written += findings.length * pad.length;
        largestWal = Math.max(largestWal, statSync(wal).size);
        await new Promise((r) => setTimeout(r, 60));
      }
      assert.ok(written > 35e6, `${written} bytes written`);
      assert.ok(largestWal < 16e6, `the log stayed under 16 MB (largest ${largestWal} bytes) while ${written} bytes were written`);
      assert.equal((await store.findings({ sensor: 'ckpt-1', limit: 1000 })).items.length, 800);
    } finally {
      await store.close();
    }
    assert.equal(existsSync(wal), false, 'the checkpoint thread closed its connection: the last one out removed the log');
  });

  test('times outside four-digit years are clamped, not fatal', async () => {
    assert.equal(normalizeTime('+275760-01-01T00:00:00.000000Z'), '9999-12-31T23:59:59.999999Z');
    assert.equal(normalizeTime('-000001-01-01T00:00:00.000000Z'), '0001-01-01T00:00:00.000000Z');
    assert.equal(normalizeTime('0099-03-01T00:00:00Z'), '0099-03-01T00:00:00.000000Z');
    assert.equal(normalizeTime('2010-07-04'), '2010-07-04T00:00:00.000000Z');
    assert.equal(normalizeTime('2010-07-04T20:24:25.1234567Z'), '2010-07-04T20:24:25.123456Z');
    assert.throws(() => normalizeTime('2010-02-30T00:00:00Z'), RangeError);
    assert.throws(() => normalizeTime('now'), RangeError);
  });

  test('times already in the stored form (the fast path) come out as through the full parse', () => {
    // The same instant written with "+00:00" takes the full parse: both must agree, or both refuse.
    const full = (t: string): string => { try { return normalizeTime(t.replace('Z', '+00:00')); } catch { return 'refused'; } };
    const fast = (t: string): string => { try { return normalizeTime(t); } catch { return 'refused'; } };
    const pad = (n: number, w: number): string => String(n).padStart(w, '0');
    const samples = ['0000-01-01T00:00:00.000000Z', '0001-01-01T00:00:00.000000Z', '9999-12-31T23:59:59.999999Z', '2024-02-29T12:00:00.000001Z',
      '2023-02-29T12:00:00.000000Z', '1900-02-29T00:00:00.000000Z', '2000-02-29T00:00:00.000000Z', '2026-04-31T00:00:00.000000Z',
      '2026-12-31T23:59:60.000000Z', '2026-13-01T00:00:00.000000Z', '2026-00-10T00:00:00.000000Z', '2026-01-00T00:00:00.000000Z', '2026-01-01T24:00:00.000000Z'];
    let seed = 7;
    const next = (n: number): number => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
    for (let i = 0; i < 5000; i++) {
      samples.push(`${pad(next(10000), 4)}-${pad(next(14), 2)}-${pad(next(33), 2)}T${pad(next(26), 2)}:${pad(next(61), 2)}:${pad(next(62), 2)}.${pad(next(1_000_000), 6)}Z`);
    }
    let accepted = 0;
    for (const t of samples) {
      assert.equal(fast(t), full(t), t);
      if (fast(t) === t) accepted++;
    }
    assert.ok(accepted > 1000 && accepted < samples.length, `both kinds were drawn (${accepted} of ${samples.length} already stored form)`);
  });
});

describe('store: postgres connection', { skip: postgresBackend.skip }, () => {
  test('unreachable server: openStore names the URL without its password; ping is false, methods reject', async () => {
    const port = await freePort();
    const url = `postgres://collector:s3cret-pw@127.0.0.1:${port}/pcap`;
    await assert.rejects(openStore({ databaseUrl: url, sqlitePath: join(work, 'unused.db') }), (err: Error) => {
      assert.match(err.message, new RegExp(`postgres://collector@127\\.0\\.0\\.1:${port}/pcap`));
      assert.doesNotMatch(err.message, /s3cret/);
      return true;
    });
    const store = new PostgresStore(url, { connectTimeoutMs: 1000 });
    try {
      assert.equal(await store.ping(), false);
      await assert.rejects(store.ingest(batch({ windows: [windowMsg('a', 0)] })));
    } finally {
      await store.close();
    }
  });

  test('connections killed by the server: no crash, the store carries on', async () => {
    const db = await createTestDatabase();
    const store = new PostgresStore(db.url);
    try {
      await store.migrate();
      await Promise.all([store.ping(), store.ping(), store.ping()]); // several idle pooled connections
      const admin = new pg.Client({ connectionString: db.url });
      await admin.connect();
      await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()');
      await admin.end();
      await new Promise((r) => setTimeout(r, 100));
      // A connection may die under a call (that call rejects; the caller retries); the next ones work.
      let ok = false;
      for (let i = 0; i < 5 && !ok; i++) ok = await store.ping();
      assert.ok(ok);
      assert.deepEqual(await store.ingest(batch({ windows: [windowMsg('a', 0)] })), { inserted: 1, duplicates: 0 });
    } finally {
      await store.close();
      await db.drop();
    }
  });

  test('windows, findings and reports are stored with lz4 compression where the server has it', () => withStore(postgresBackend, async (h) => {
    // Whether this server was built with lz4 (PostgreSQL >= 14 and --with-lz4): setting it fails otherwise.
    const lz4 = await h.sql("SET default_toast_compression = 'lz4'").then(() => true, () => false);
    // A window over TOAST's 2 KB threshold (the real ones are ~25 KB), so it is compressed at all.
    const big = windowMsg('lz4', 0);
    big.window.metrics['padding'] = { text: 'window '.repeat(4096) };
    await h.store.ingest(batch({ windows: [big], findings: [findingMsg('lz4', { window: 0 })] }));
    const [row] = await h.sql('SELECT pg_column_compression(summary) AS method FROM windows');
    assert.equal(row!['method'], lz4 ? 'lz4' : 'pglz');
    const columns = await h.sql(`SELECT attrelid::regclass::text AS tab, attname, attcompression FROM pg_attribute
      WHERE (attrelid, attname) IN (('windows'::regclass, 'summary'), ('findings'::regclass, 'finding'), ('capture_reports'::regclass, 'report')) ORDER BY 1`);
    assert.deepEqual(columns.map((c) => `${String(c['tab'])}.${String(c['attname'])}=${String(c['attcompression'])}`),
      ['capture_reports.report', 'findings.finding', 'windows.summary'].map((c) => `${c}=${lz4 ? 'l' : ''}`));
  }));

  test('openStore on a reachable database migrates it', async () => {
    const db = await createTestDatabase();
    try {
      const store = await openStore({ databaseUrl: db.url, sqlitePath: join(work, 'unused.db') });
      assert.equal(store.kind, 'postgres');
      assert.equal(await store.ping(), true);
      assert.deepEqual(await store.findings({ limit: 1 }), { items: [], nextCursor: null });
      await store.close();
    } finally {
      await db.drop();
    }
  });
});
