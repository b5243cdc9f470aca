/**
 * Token authentication for the API and the pages. When a token is configured,
 * a request carries it as `Authorization: Bearer <token>` or as the session
 * cookie the login form sets (a hash of the token, HttpOnly, SameSite=Strict,
 * so the token itself never sits in the browser). Comparison is constant-time
 * over fixed-length digests. Failures go to the audit log without the token.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from '../../common/logging.js';

export const SESSION_COOKIE = 'pa_session';

const digest = (text: string): Buffer => createHash('sha256').update(text).digest();

/** The session cookie's value for a token: never the token itself. */
export function sessionValue(token: string): string {
  return createHash('sha256').update(`pcap-analyzer-session\u0000${token}`).digest('hex');
}

/** Constant-time equality of two strings of any length. */
export function safeEqual(given: string, expected: string): boolean {
  return timingSafeEqual(digest(given), digest(expected));
}

/** One cookie from the Cookie header (a few lines: no cookie plugin needed for one value). */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return decodeURIComponent(part.slice(eq + 1).trim());
  }
  return undefined;
}

export interface Authenticator {
  readonly enabled: boolean;
  /** True when the request carries the token (or auth is off). */
  check(request: FastifyRequest): boolean;
  /** Logs a refused request to the audit log and answers 401 (API) or redirects to the login page. */
  refuse(request: FastifyRequest, reply: FastifyReply, api: boolean): FastifyReply;
}

export function createAuthenticator(token: string, audit: Logger): Authenticator {
  const enabled = token !== '';
  const session = enabled ? sessionValue(token) : '';
  return {
    enabled,
    check(request) {
      if (!enabled) return true;
      const header = request.headers.authorization;
      if (header?.startsWith('Bearer ')) return safeEqual(header.slice(7).trim(), token);
      const cookie = readCookie(request.headers.cookie, SESSION_COOKIE);
      return cookie !== undefined && safeEqual(cookie, session);
    },
    refuse(request, reply, api) {
      const presented = request.headers.authorization ? 'bearer' : readCookie(request.headers.cookie, SESSION_COOKIE) ? 'cookie' : 'none';
      audit.warn({ ip: request.ip, method: request.method, path: request.url.split('?')[0], presented }, 'authentication failed');
      if (api) return reply.code(401).header('www-authenticate', 'Bearer').send({ error: 'unauthorized', detail: 'this collector needs its API token: Authorization: Bearer <token>' });
      return reply.redirect(`/login?next=${encodeURIComponent(request.url)}`);
    },
  };
}
