/**
 * `pcap-analyzer collector`: opens the store (migrating it), starts ingest
 * from the agents' JetStream stream, serves the API, pages and /metrics, and
 * sweeps expired uploads and old windows in small batches. SIGTERM/SIGINT
 * finish the batch in hand, stop the HTTP server and close the store.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join, resolve as resolvePath } from 'node:path';
import { resolveConfig, type Config, type ConfigSources } from '../common/config.js';
import { ConfigError, UsageError } from '../common/errors.js';
import { createLogger, type Logger } from '../common/logging.js';
import { parseListen } from '../common/address.js';
import { buildApp } from './http/app.js';
import { Ingestor } from './ingest/ingest.js';
import { CollectorMetrics } from './metrics.js';
import { openStore } from './store/index.js';
import type { Store } from './store/types.js';
import { AnalysisQueue } from './uploads/queue.js';
import { uploadRoutes } from './uploads/routes.js';
import { sweepExpired } from './uploads/expiry.js';
import { webRoutes } from './web/routes.js';

export interface CollectorOptions {
  sources: ConfigSources;
  version: string;
  logger?: Logger;
}

/** Rows removed per retention or expiry batch: small, so ingest never waits long on a lock. */
const SWEEP_BATCH = 1000;
const SWEEP_EVERY_MS = 30_000;

/** The API token: collector.apiToken, or the first line of collector.apiTokenFile (a Docker secret). */
export function resolveToken(config: Readonly<Config>): string {
  const c = config.collector;
  if (c.apiToken) return c.apiToken;
  if (!c.apiTokenFile) return '';
  try {
    const token = readFileSync(c.apiTokenFile, 'utf8').split('\n')[0]!.trim();
    if (!token) throw new ConfigError('collector.apiTokenFile', `${c.apiTokenFile} is empty`);
    return token;
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError('collector.apiTokenFile', `cannot read ${c.apiTokenFile}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

async function sweep(store: Store, dataDir: string, retentionHours: number, log: Logger, metrics: CollectorMetrics): Promise<void> {
  try {
    const now = new Date();
    let expired = 0;
    for (let n = SWEEP_BATCH; n === SWEEP_BATCH;) { n = await sweepExpired(store, dataDir, now.toISOString(), SWEEP_BATCH); expired += n; }
    let deleted = 0;
    if (retentionHours > 0) {
      const before = new Date(now.getTime() - retentionHours * 3600_000).toISOString();
      for (let n = SWEEP_BATCH; n > 0;) {
        n = await store.deleteOlderThan(before, SWEEP_BATCH);
        deleted += n;
        await new Promise((r) => setImmediate(r)); // let ingest and requests in between batches
      }
      metrics.retentionDeleted.inc(deleted);
    }
    if (expired || deleted) log.info({ expiredUploads: expired, oldRows: deleted }, 'swept');
  } catch (err) {
    log.warn({ err: err instanceof Error ? err.message : String(err) }, 'sweep failed; will retry');
  }
}

export async function runCollector(options: CollectorOptions): Promise<number> {
  const config = resolveConfig(options.sources);
  const c = config.collector;
  const { host, port } = parseListen(c.listen);
  const token = resolveToken(config);
  const log = options.logger ?? createLogger(config.logging, { bindings: { service: 'collector' } });
  const dataDir = resolvePath(config.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const store = await openStore({ databaseUrl: c.databaseUrl, sqlitePath: join(dataDir, 'pcap_analyzer.db') });
  log.info({ database: store.kind, auth: token ? 'token' : 'off' }, 'store ready');
  const metrics = new CollectorMetrics(options.version);

  const ingest = new Ingestor(config.nats, c.consumer, c.batchSize, c.ackWaitSeconds, store, log.child({ component: 'ingest' }), {
    onCommitted(counts, duplicates, seconds, batch) {
      for (const [kind, n] of Object.entries(counts)) if (n) metrics.ingested.inc({ kind }, n);
      if (duplicates) metrics.duplicates.inc(duplicates);
      metrics.dbWriteSeconds.observe(seconds);
      metrics.onFindings(batch.findings);
    },
    onRejected(reason) { metrics.rejected.inc({ reason }); },
  });
  const queue = new AnalysisQueue({ store, config: c, dataDir, logger: log.child({ component: 'uploads' }), onOutcome: (outcome) => metrics.analyses.inc({ outcome }) });
  await queue.recover();

  const app = await buildApp({
    config: c, token, store, version: options.version, startedAt: Date.now(), dataDir, logger: log, metrics,
    ingest: () => ingest.stats(),
    queue: () => queue.stats(),
    plugins: [
      { plugin: async (instance) => uploadRoutes(instance, { store, queue, config: c, dataDir, logger: log.child({ component: 'uploads' }) }), api: true },
      { plugin: async (instance) => webRoutes(instance, { store, config: c, version: options.version, token }), api: false },
    ],
  });
  try {
    await app.listen({ host, port });
  } catch (err) {
    await store.close();
    throw new UsageError(`collector.listen ${c.listen}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  log.info({ listen: c.listen }, 'collector listening');
  ingest.start();

  let sweeping: Promise<void> = sweep(store, dataDir, c.retentionHours, log, metrics);
  const sweeper = setInterval(() => { sweeping = sweeping.then(() => sweep(store, dataDir, c.retentionHours, log, metrics)); }, SWEEP_EVERY_MS);

  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals): void => { log.info({ signal }, 'stopping'); resolve(); };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  clearInterval(sweeper);
  await ingest.stop();
  await app.close();
  await queue.close();
  await sweeping;
  await store.close();
  log.info('stopped');
  return 0;
}
