/**
 * The audit log: one pino line per state-changing request (upload, delete,
 * login, logout) and per refused authentication, marked `"audit": true` so it
 * can be routed apart from the operational log. Each line says who
 * (`principal`, see auth.ts), from where (`ip`), what (`action`, `target`) and
 * how it ended (`outcome`, with the HTTP `status`).
 *
 * Routes declare their action in their route config (`config: { audit:
 * 'upload' }`); an onResponse hook writes the line once the status is known,
 * so no return path of a handler can skip it. A handler may name its target
 * (`request.auditTarget`), e.g. the id it just created.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Logger } from '../../common/logging.js';

export type AuditAction = 'upload' | 'delete' | 'login' | 'logout' | 'authenticate';
export type AuditOutcome = 'success' | 'failure' | 'denied' | 'rate-limited';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** This route changes state: audit every request to it. */
    audit?: AuditAction;
  }
  interface FastifyRequest {
    /** Who made the request (auth.ts); set by the authentication hook. */
    principal: string;
    /** What the request acted on, when the route knows better than its path. */
    auditTarget: string;
    /** Set by the authentication hook on a refused request. */
    auditAction: AuditAction | null;
  }
}

export function outcomeOf(status: number): AuditOutcome {
  if (status === 401 || status === 403) return 'denied';
  if (status === 429) return 'rate-limited';
  return status < 400 ? 'success' : 'failure';
}

export function registerAudit(app: FastifyInstance, logger: Logger): void {
  const audit = logger.child({ audit: true });
  app.decorateRequest('principal', 'none');
  app.decorateRequest('auditTarget', '');
  app.decorateRequest('auditAction', null);
  app.addHook('onResponse', async (request: FastifyRequest, reply) => {
    const action = request.auditAction ?? request.routeOptions.config.audit;
    if (!action) return;
    const outcome = outcomeOf(reply.statusCode);
    const line = {
      principal: request.principal,
      ip: request.ip,
      action,
      target: request.auditTarget || request.url.split('?')[0]!.slice(0, 200),
      outcome,
      status: reply.statusCode,
      reqId: request.id,
    };
    if (outcome === 'success') audit.info(line, `${action} ${outcome}`);
    else audit.warn(line, `${action} ${outcome}`);
  });
}
