/**
 * The ingest loop with the store's concurrent writers (a real nats-server, real
 * SQLite and PostgreSQL): PostgreSQL commits two batches at once, SQLite one;
 * either way every message is stored once, the sensor row keeps the newest
 * window whatever order the commits finish in, and nothing stays unacknowledged.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { DEFAULT_CONFIG } from '../common/config.js';
import { createLogger } from '../common/logging.js';
import { WINDOW_SCHEMA, subjectFor, type WindowMessage } from '../common/wire.js';
import type { WindowSummary } from '../common/report.js';
import { Ingestor } from '../collector/ingest/ingest.js';
import { PostgresStore, openStore } from '../collector/store/index.js';
import type { IngestBatch, IngestResult, Store } from '../collector/store/types.js';
import { waitFor } from './helpers/agent-process.js';
import { startNatsServer } from './helpers/nats-server.js';
import { createTestDatabase, postgresAvailable } from './helpers/postgres.js';

const SENSOR = 'writers';
const TOTAL = 4000;

/** `store`, with the most ingest calls seen running at once. */
function counting(store: Store): { store: Store; most: () => number } {
  let running = 0;
  let most = 0;
  const wrapped: Store = Object.create(store) as Store;
  wrapped.ingest = async (batch: IngestBatch): Promise<IngestResult> => {
    most = Math.max(most, ++running);
    try {
      return await store.ingest(batch);
    } finally {
      running--;
    }
  };
  return { store: wrapped, most: () => most };
}

async function ingestAll(store: Store): Promise<{ most: number; committed: number }> {
  const nats = await startNatsServer();
  const watched = counting(store);
  const natsConfig = { ...DEFAULT_CONFIG.nats, servers: [nats.url] };
  // Small batches, so that many commits follow one another while messages keep coming.
  const settings = { ...DEFAULT_CONFIG.collector, batchSize: 50 };
  const ingestor = new Ingestor(natsConfig, settings, watched.store, createLogger({ ...DEFAULT_CONFIG.logging, level: 'silent' }), {
    onCommitted: () => undefined, onRejected: () => undefined, onClamped: () => undefined,
  });
  const nc = await connect({ servers: nats.url });
  try {
    ingestor.start();
    const jsm = await jetstreamManager(nc);
    await waitFor('the stream', async () => { await jsm.streams.info(natsConfig.stream); return true; }, 10_000, 50);
    const js = jetstream(nc);
    const base = Date.UTC(2026, 0, 1) / 1000;
    const time = (s: number): string => new Date(s * 1000).toISOString().replace('.000Z', '.000000Z');
    const acks: Array<Promise<unknown>> = [];
    for (let i = 0; i < TOTAL; i++) {
      const window: WindowSummary = { start: time(base + i), end: time(base + i + 1), packets: i, bytes: i, flows: { active: 1, new: 1, closed: 0 }, outOfOrderTimestamps: 0, metrics: {}, healthScore: i % 100, counters: {} };
      const msg: WindowMessage = { schema: WINDOW_SCHEMA, id: `${SENSOR}.w.${i}`, sensor: SENSOR, source: { kind: 'replay', name: 'synthetic' }, window };
      acks.push(js.publish(subjectFor(SENSOR, 'window'), JSON.stringify(msg)));
    }
    await Promise.all(acks);
    await waitFor('every message committed', () => (ingestor.stats().committed >= TOTAL ? true : undefined), 60_000, 50);
    await ingestor.stop();
    const stats = ingestor.stats();
    const windows = await store.windows(SENSOR, time(base), time(base + TOTAL), TOTAL + 1);
    assert.deepEqual(windows.map((w) => w.window.packets), Array.from({ length: TOTAL }, (_, i) => i), 'every window stored once');
    const sensor = await store.sensor(SENSOR);
    assert.equal(sensor?.lastHealthScore, (TOTAL - 1) % 100, 'the sensor row has the newest window, whatever order the commits ended in');
    const info = await jsm.consumers.info(natsConfig.stream, settings.consumer);
    assert.equal(info.num_ack_pending, 0, 'nothing left unacknowledged');
    assert.equal(info.num_pending, 0);
    return { most: watched.most(), committed: stats.committed };
  } finally {
    await ingestor.stop();
    await nc.drain();
    await nats.close();
  }
}

test('PostgreSQL: two batches commit at once, never more; every message once', async (t) => {
  const reason = await postgresAvailable();
  if (reason !== false) { t.skip(reason); return; }
  const db = await createTestDatabase();
  const store = new PostgresStore(db.url);
  try {
    await store.migrate();
    assert.equal(store.writers, 2);
    const { most, committed } = await ingestAll(store);
    assert.equal(committed, TOTAL);
    assert.equal(most, 2, 'batches overlapped, two at most');
  } finally {
    await store.close();
    await db.drop();
  }
});

test('SQLite: one batch at a time; every message once', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pa-writers-'));
  const store = await openStore({ databaseUrl: '', sqlitePath: join(dir, 'db.sqlite') });
  try {
    await store.migrate();
    const { most, committed } = await ingestAll(store);
    assert.equal(committed, TOTAL);
    assert.equal(most, 1);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
