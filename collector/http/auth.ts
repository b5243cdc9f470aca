/**
 * Token authentication for the API and the pages. When a token is configured,
 * a request carries it as `Authorization: Bearer <token>`, or carries the
 * session cookie the login form sets: a random session id the collector keeps
 * in memory until it expires (`collector.sessionTtlHours`) or logout revokes
 * it, so the token itself never sits in the browser and a stolen cookie dies
 * with its session. Token comparison is constant-time over fixed-length
 * digests. Failed logins and failed bearer tokens are rate limited per client
 * (429 with Retry-After); every refusal is audited (see audit.ts).
 *
 * A request's principal (who, in the audit log) is `token:<fp>`,
 * `session:<fp>` or `anonymous`, where <fp> is the first 8 hex digits of the
 * SHA-256 of the token or session id: enough to tell principals apart, useless
 * to replay.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { RateLimiter, clientKey } from './rate-limit.js';

export const SESSION_COOKIE = 'pa_session';
/** Sessions kept at most; the oldest go first (a login flood cannot grow memory). */
const MAX_SESSIONS = 10_000;
/** Clients tracked by the failure limiter at most. */
const LIMITER_CLIENTS = 10_000;

const digest = (text: string): Buffer => createHash('sha256').update(text).digest();

/** First 8 hex digits of the SHA-256 of a secret: names it in logs without revealing it. */
export function fingerprint(secret: string): string {
  return digest(secret).toString('hex').slice(0, 8);
}

/** Constant-time equality of two strings of any length. */
export function safeEqual(given: string, expected: string): boolean {
  return timingSafeEqual(digest(given), digest(expected));
}

/**
 * One cookie from the Cookie header (a few lines: no cookie plugin needed for
 * one value). A value that is not valid percent-encoding is no cookie at all.
 */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) {
      try { return decodeURIComponent(part.slice(eq + 1).trim()); } catch { return undefined; }
    }
  }
  return undefined;
}

/** Server-side login sessions: random ids, kept hashed, each with its own expiry. */
export class Sessions {
  /** sha256(id) hex -> expiry (epoch ms); Map order is creation order. */
  private readonly byHash = new Map<string, number>();

  constructor(private readonly ttlMs: number, private readonly max = MAX_SESSIONS) {}

  /** A new session; returns its id (the cookie's value) and its lifetime in seconds. */
  create(now = Date.now()): { id: string; maxAgeSeconds: number } {
    const id = randomBytes(32).toString('base64url');
    this.byHash.set(digest(id).toString('hex'), now + this.ttlMs);
    while (this.byHash.size > this.max) this.byHash.delete(this.byHash.keys().next().value!);
    return { id, maxAgeSeconds: Math.max(1, Math.floor(this.ttlMs / 1000)) };
  }

  /** True for a live session; an expired one is forgotten. */
  valid(id: string, now = Date.now()): boolean {
    const key = digest(id).toString('hex');
    const expires = this.byHash.get(key);
    if (expires === undefined) return false;
    if (expires > now) return true;
    this.byHash.delete(key);
    return false;
  }

  /** Ends a session (logout); false when there was none. */
  revoke(id: string): boolean {
    return this.byHash.delete(digest(id).toString('hex'));
  }

  get size(): number { return this.byHash.size; }
}

/** What a request presented, and who it is when that was valid. */
export type Identity =
  | { ok: true; principal: string }
  | { ok: false; principal: string; presented: 'bearer' | 'cookie' | 'none' };

export interface AuthenticatorOptions {
  /** The API token; '' turns authentication off. */
  token: string;
  sessionTtlHours: number;
  authFailuresPerMinute: number;
}

export interface Authenticator {
  readonly enabled: boolean;
  readonly sessions: Sessions;
  /** Who the request is (token, live session, or anonymous when auth is off), or what it presented. */
  identify(request: FastifyRequest): Identity;
  /** True when the login form's token is the API token. */
  tokenMatches(given: string): boolean;
  /** Seconds this client must wait before its next login or bearer attempt (0: go ahead). */
  blockedFor(request: FastifyRequest): number;
  /** Counts a failed login or bearer token of this client. */
  failed(request: FastifyRequest): void;
}

export function createAuthenticator(options: AuthenticatorOptions): Authenticator {
  const { token } = options;
  const enabled = token !== '';
  const sessions = new Sessions(options.sessionTtlHours * 3600_000);
  const failures = new RateLimiter(options.authFailuresPerMinute, 60_000, LIMITER_CLIENTS);
  const tokenPrincipal = `token:${fingerprint(token)}`;
  return {
    enabled,
    sessions,
    identify(request) {
      if (!enabled) return { ok: true, principal: 'anonymous' };
      const header = request.headers.authorization;
      if (header !== undefined && /^bearer /i.test(header)) {
        const given = header.slice(7).trim();
        return safeEqual(given, token) ? { ok: true, principal: tokenPrincipal } : { ok: false, principal: `token:${fingerprint(given)}`, presented: 'bearer' };
      }
      const cookie = readCookie(request.headers.cookie, SESSION_COOKIE);
      if (cookie === undefined) return { ok: false, principal: 'none', presented: request.headers.cookie?.includes(`${SESSION_COOKIE}=`) ? 'cookie' : 'none' };
      const principal = `session:${fingerprint(cookie)}`;
      return sessions.valid(cookie) ? { ok: true, principal } : { ok: false, principal, presented: 'cookie' };
    },
    tokenMatches: (given) => enabled && safeEqual(given, token),
    blockedFor: (request) => failures.retryAfter(clientKey(request.ip), Date.now()),
    failed(request) { failures.hit(clientKey(request.ip), Date.now()); },
  };
}
