/**
 * `pcap-analyzer collector`: opens the store (migrating it), starts ingest
 * from the agents' JetStream stream, serves the API, pages and /metrics, and
 * sweeps expired uploads and old windows in small batches. SIGTERM/SIGINT
 * finish the batch in hand, stop the HTTP server and close the store.
 *
 * Secure by default: listening beyond loopback without an API token is
 * refused at start (exit 2) unless `collector.allowAnonymous` says it is meant,
 * and then every start logs a warning.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join, resolve as resolvePath } from 'node:path';
import { resolveConfig, type CollectorConfig, type Config, type ConfigSources } from '../common/config.js';
import { ConfigError, UsageError, fsReason, listenReason } from '../common/errors.js';
import { ensureDataDir } from '../common/data-dir.js';
import { createLogger, type Logger } from '../common/logging.js';
import { parseListen } from '../common/address.js';
import { buildApp, type AppDeps } from './http/app.js';
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
    throw new ConfigError('collector.apiTokenFile', `cannot read ${c.apiTokenFile}: ${fsReason(err)}; check API_TOKEN_FILE (collector.apiTokenFile)`);
  }
}

/** True for addresses only this host can reach: 127.0.0.0/8, ::1, localhost. */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  return /^::ffff:127\./.test(h);
}

/** The one-line reason a collector must not start this way, or null. */
export function anonymousRefusal(host: string, token: string, allowAnonymous: boolean): string | null {
  if (token || allowAnonymous || isLoopback(host)) return null;
  return `collector.listen ${host} is not a loopback address and no API token is set: set API_TOKEN (or API_TOKEN_FILE), or set collector.allowAnonymous: true to serve without authentication`;
}

async function sweep(store: Store, dataDir: string, retentionHours: number, log: Logger, metrics: CollectorMetrics, queue: AnalysisQueue): Promise<void> {
  try {
    const now = new Date();
    let expired = 0;
    for (let n = SWEEP_BATCH; n === SWEEP_BATCH;) { n = await sweepExpired(store, dataDir, now.toISOString(), SWEEP_BATCH, queue, log); expired += n; }
    let deleted = 0;
    if (retentionHours > 0) {
      const before = new Date(now.getTime() - retentionHours * 3600_000).toISOString();
      for (let n = SWEEP_BATCH; n > 0;) {
        n = await store.deleteOlderThan(before, SWEEP_BATCH);
        deleted += n;
        await new Promise((r) => setImmediate(r)); // let ingest and requests in between batches
      }
      const sensors = await store.deleteSensorsSeenBefore(before, SWEEP_BATCH);
      metrics.forgetSensors(sensors);
      deleted += sensors.length;
      metrics.retentionDeleted.inc(deleted);
    }
    if (expired || deleted) log.info({ expiredUploads: expired, oldRows: deleted }, 'swept');
  } catch (err) {
    log.warn({ err: err instanceof Error ? err.message : String(err) }, 'sweep failed; will retry');
  }
}

/** The routes besides the API proper: uploads and pages (what the collector serves; tests list them). */
export function collectorPlugins(o: { store: Store; queue: AnalysisQueue; config: CollectorConfig; dataDir: string; logger: Logger; version: string }): NonNullable<AppDeps['plugins']> {
  return [
    () => async (instance) => uploadRoutes(instance, { store: o.store, queue: o.queue, config: o.config, dataDir: o.dataDir, logger: o.logger.child({ component: 'uploads' }) }),
    (auth) => async (instance) => webRoutes(instance, { store: o.store, config: o.config, version: o.version, auth }),
  ];
}

export async function runCollector(options: CollectorOptions): Promise<number> {
  const config = resolveConfig(options.sources);
  const c = config.collector;
  const { host, port } = parseListen(c.listen);
  const token = resolveToken(config);
  const refusal = anonymousRefusal(host, token, c.allowAnonymous);
  if (refusal) throw new UsageError(refusal);
  const log = options.logger ?? createLogger(config.logging, { bindings: { service: 'collector' } });
  if (!token && !isLoopback(host)) log.warn({ listen: c.listen }, 'collector.allowAnonymous: serving the API, pages and uploads WITHOUT authentication on a non-loopback address');
  const dataDir = resolvePath(config.dataDir);
  ensureDataDir(dataDir, { mode: 0o700 });
  const store = await openStore({
    databaseUrl: c.databaseUrl,
    sqlitePath: join(dataDir, 'pcap_analyzer.db'),
    onCheckpointError: (err) => log.warn({ err }, 'store: background SQLite checkpoint failed; commits checkpoint inline'),
  });
  log.info({ database: store.kind, auth: token ? 'token' : 'off' }, 'store ready');
  const metrics = new CollectorMetrics(options.version, c.maxSensorSeries);

  const ingest = new Ingestor(config.nats, c, store, log.child({ component: 'ingest' }), {
    onCommitted(counts, duplicates, seconds, batch) {
      for (const [kind, n] of Object.entries(counts)) if (n) metrics.ingested.inc({ kind }, n);
      if (duplicates) metrics.duplicates.inc(duplicates);
      metrics.dbWriteSeconds.observe(seconds);
      metrics.onFindings(batch.findings);
    },
    onRejected(reason) { metrics.rejected.inc({ reason }); },
    onClamped(kind) { metrics.clamped.inc({ kind }); metrics.rejected.inc({ reason: 'time_clamped' }); },
  });
  const queue = new AnalysisQueue({
    store, config: c, dataDir, logger: log.child({ component: 'uploads' }), onOutcome: (outcome) => metrics.analyses.inc({ outcome }),
    // The analyses read the same configuration file (analyzer thresholds) as this collector.
    ...(options.sources.path ? { configPath: resolvePath(options.sources.path) } : {}),
  });
  await queue.recover();

  const app = await buildApp({
    config: c, analysis: config, token, store, version: options.version, startedAt: Date.now(), dataDir, logger: log, metrics,
    ingest: () => ingest.stats(),
    queue: () => queue.stats(),
    plugins: collectorPlugins({ store, queue, config: c, dataDir, logger: log, version: options.version }),
  });
  try {
    await app.listen({ host, port });
  } catch (err) {
    await store.close();
    throw new UsageError(`collector.listen ${c.listen}: ${listenReason(err)}; choose another --listen (collector.listen)`);
  }
  log.info({ listen: c.listen }, 'collector listening');
  ingest.start();

  let sweeping: Promise<void> = sweep(store, dataDir, c.retentionHours, log, metrics, queue);
  const sweeper = setInterval(() => { sweeping = sweeping.then(() => sweep(store, dataDir, c.retentionHours, log, metrics, queue)); }, SWEEP_EVERY_MS);

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
