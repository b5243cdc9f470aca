/**
 * The agent's own small HTTP endpoint: /metrics for Prometheus, /healthz
 * (the process answers) and /readyz (capturing, and publishing or spooling
 * within limits). Node's http module is enough for three read-only routes.
 */
import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';
import { parseListen } from '../../common/address.js';
import { UsageError, listenReason } from '../../common/errors.js';

export interface Readiness {
  ready: boolean;
  /** Why not ready (empty when ready). */
  reasons: string[];
  state: string;
}


export async function startHttp(listen: string, registry: Registry, readiness: () => Readiness): Promise<Server> {
  const { host, port } = parseListen(listen);
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const json = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(`${JSON.stringify(body)}\n`);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') { json(405, { error: 'method not allowed' }); return; }
    if (path === '/metrics') {
      registry.metrics().then(
        (text) => { res.writeHead(200, { 'content-type': registry.contentType }).end(text); },
        (err: unknown) => { json(500, { error: 'metrics failed', detail: String(err) }); },
      );
    } else if (path === '/healthz') {
      json(200, { status: 'ok' });
    } else if (path === '/readyz') {
      const r = readiness();
      json(r.ready ? 200 : 503, { status: r.ready ? 'ready' : 'not ready', state: r.state, reasons: r.reasons });
    } else {
      json(404, { error: 'not found', detail: 'try /metrics, /healthz or /readyz' });
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(new UsageError(`http.listen ${listen}: ${listenReason(err)}; choose another --listen (http.listen), or empty to serve none`));
    });
    server.listen(port, host, () => resolve());
  });
  return server;
}
