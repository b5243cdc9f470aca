/**
 * The upload routes and analysis queue on a real Fastify server with a real
 * SQLite store in a temp dir, as the upload tests use them; every server
 * started is closed (and its dir removed) by `closeUploadServers`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { DEFAULT_CONFIG, type CollectorConfig } from '../../common/config.js';
import { openStore } from '../../collector/store/index.js';
import type { Store } from '../../collector/store/types.js';
import { AnalysisQueue } from '../../collector/uploads/queue.js';
import { uploadRoutes } from '../../collector/uploads/routes.js';

export interface UploadServer { url: string; port: number; dir: string; store: Store; queue: AnalysisQueue; app: FastifyInstance; config: CollectorConfig }

const servers: UploadServer[] = [];

export interface UploadServerOptions {
  /** Temp dir name prefix. */
  prefix: string;
  /** Run the queue's recovery before serving (as the collector does at start). */
  recover?: boolean;
  /** Log the queue's warnings (debugging). */
  logWarnings?: boolean;
  /** Where the app's log goes, at level info (a test reads it back). */
  logStream?: { write(line: string): void };
}

export async function startUploadServer(options: UploadServerOptions, overrides: Partial<CollectorConfig> = {}): Promise<UploadServer> {
  const dir = mkdtempSync(join(tmpdir(), options.prefix));
  const config: CollectorConfig = { ...DEFAULT_CONFIG.collector, uploadsPerMinute: 1000, maxQueueSize: 50, ...overrides };
  const store = await openStore({ databaseUrl: '', sqlitePath: join(dir, 'test.db') });
  const app = Fastify({ logger: options.logStream ? { level: 'info', stream: options.logStream } : options.logWarnings ? { level: 'warn' } : false });
  const queue = new AnalysisQueue({ store, config, dataDir: dir, logger: app.log });
  if (options.recover) await queue.recover();
  await app.register(uploadRoutes, { store, queue, config, dataDir: dir, logger: app.log });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as AddressInfo).port;
  const server = { url: `http://127.0.0.1:${port}`, port, dir, store, queue, app, config };
  servers.push(server);
  return server;
}

export async function closeUploadServers(): Promise<void> {
  for (const s of servers.splice(0)) {
    await s.app.close();
    await s.queue.close();
    await s.store.close();
    rmSync(s.dir, { recursive: true, force: true });
  }
}
