/**
 * The collector's token authentication in its real app (buildApp with the web
 * pages, a real SQLite store), driven by Fastify's inject: the bearer token,
 * the session cookie the login form sets (a random server-side session),
 * wrong, expired and revoked cookies, the audit line of a refusal (never the
 * token), and the cookie parser's edges.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { DEFAULT_CONFIG } from '../common/config.js';
import { createLogger } from '../common/logging.js';
import { buildApp } from '../collector/http/app.js';
import { createAuthenticator, fingerprint, readCookie, safeEqual, Sessions, SESSION_COOKIE } from '../collector/http/auth.js';
import { CollectorMetrics } from '../collector/metrics.js';
import { openStore } from '../collector/store/index.js';
import type { Store } from '../collector/store/types.js';
import { webRoutes } from '../collector/web/routes.js';

const TOKEN = 'correct-horse-battery';

interface Harness { app: FastifyInstance; store: Store; dir: string; logLines: () => Array<Record<string, unknown>> }
const harnesses: Harness[] = [];
after(async () => {
  for (const h of harnesses) {
    await h.app.close();
    await h.store.close();
    rmSync(h.dir, { recursive: true, force: true });
  }
});

async function collectorApp(token: string): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'pcap-auth-'));
  const store = await openStore({ databaseUrl: '', sqlitePath: join(dir, 'auth.db') });
  let text = '';
  const destination = new Writable({ write(chunk: Buffer, _enc, done) { text += chunk.toString(); done(); } });
  const logger = createLogger({ ...DEFAULT_CONFIG.logging, level: 'info' }, { destination });
  const config = DEFAULT_CONFIG.collector;
  const app = await buildApp({
    config, token, store, version: 'test', startedAt: Date.now(), dataDir: dir, logger, metrics: new CollectorMetrics('test'),
    ingest: () => ({ connected: false, pending: 0, committed: 0, rejected: 0, lastError: '' }),
    queue: () => ({ active: 0, waiting: 0, max: 1 }),
    plugins: [(auth) => async (instance) => webRoutes(instance, { store, config, version: 'test', auth })],
  });
  const h = { app, store, dir, logLines: () => text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
  harnesses.push(h);
  return h;
}

test('auth: the bearer token and the login cookie open the API; a wrong or missing one is refused', async () => {
  const { app, logLines } = await collectorApp(TOKEN);
  const sensors = (headers: Record<string, string>) => app.inject({ method: 'GET', url: '/api/sensors?x=1', headers });

  assert.equal((await sensors({ authorization: `Bearer ${TOKEN}` })).statusCode, 200);
  assert.equal((await sensors({ authorization: `Bearer   ${TOKEN}  ` })).statusCode, 200, 'blanks around the token are trimmed');
  assert.equal((await sensors({ authorization: 'Bearer wrong' })).statusCode, 401);
  assert.equal((await sensors({ authorization: `Bearer ${TOKEN}x` })).statusCode, 401);
  assert.equal((await sensors({ authorization: `Basic ${TOKEN}` })).statusCode, 401, 'only the Bearer scheme carries the token');

  // The login form sets the session cookie; it opens the API, a different value does not.
  const login = await app.inject({ method: 'POST', url: '/login', payload: { token: TOKEN, next: '/' } });
  assert.equal(login.statusCode, 303);
  const setCookie = String(login.headers['set-cookie']);
  const value = new RegExp(`^${SESSION_COOKIE}=([A-Za-z0-9_-]{43});`).exec(setCookie)?.[1];
  assert.ok(value, `a random 32-byte session id: ${setCookie}`);
  assert.ok(!setCookie.includes(TOKEN), 'the cookie is not the token');
  assert.equal((await sensors({ cookie: `${SESSION_COOKIE}=${value}` })).statusCode, 200);
  assert.equal((await sensors({ cookie: `theme=dark; ${SESSION_COOKIE}=${value}; other=1` })).statusCode, 200);
  const other = `${value.slice(0, -1)}${value.endsWith('A') ? 'B' : 'A'}`;
  assert.equal((await sensors({ cookie: `${SESSION_COOKIE}=${other}` })).statusCode, 401, 'a session cookie one digit off');
  assert.equal((await sensors({ cookie: `${SESSION_COOKIE}=${TOKEN}` })).statusCode, 401, 'the token itself is not a session');
  assert.equal((await sensors({ cookie: `${SESSION_COOKIE}=` })).statusCode, 401);
  assert.equal((await sensors({ cookie: `x${SESSION_COOKIE}=${value}` })).statusCode, 401, 'another cookie whose name ends the same');
  assert.equal((await sensors({})).statusCode, 401);

  // A refusal: 401 with a Bearer challenge and a JSON reason for the API; an audit line without the token.
  const refused = await sensors({ authorization: `Bearer not-${TOKEN}-at-all` });
  assert.equal(refused.headers['www-authenticate'], 'Bearer');
  assert.deepEqual(refused.json(), { error: 'unauthorized', detail: 'this collector needs its API token: Authorization: Bearer <token>' });
  for (const l of logLines()) assert.ok(!JSON.stringify(l).includes(TOKEN) && !JSON.stringify(l).includes(value), 'no log line holds the token or a session id');

  // Logout revokes the session: the same cookie no longer opens anything.
  const logout = await app.inject({ method: 'POST', url: '/logout', headers: { cookie: `${SESSION_COOKIE}=${value}` } });
  assert.equal(logout.statusCode, 303);
  assert.equal((await sensors({ cookie: `${SESSION_COOKIE}=${value}` })).statusCode, 401, 'a revoked session');
});

test('auth: a page without the token is refused with the way to the login form and back', async () => {
  const { app } = await collectorApp(TOKEN);
  const r = await app.inject({ method: 'GET', url: '/sensors/alpha?from=1&to=2' });
  assert.equal(r.statusCode, 401);
  assert.ok(r.body.includes(`/login?next=${encodeURIComponent('/sensors/alpha?from=1&amp;to=2').replace(/%26amp%3B/g, '%26')}`) || r.body.includes('/login?next=%2Fsensors%2Falpha%3Ffrom%3D1%26to%3D2'), r.body);
  assert.equal((await app.inject({ method: 'GET', url: '/api/health' })).statusCode, 200, 'health is open');
});

test('auth: with no token configured every request passes', async () => {
  const { app } = await collectorApp('');
  assert.equal((await app.inject({ method: 'GET', url: '/api/sensors' })).statusCode, 200);
  assert.equal((await app.inject({ method: 'GET', url: '/api/sensors', headers: { authorization: 'Bearer anything', cookie: `${SESSION_COOKIE}=junk` } })).statusCode, 200);
});

test('auth: sessions expire and are revoked; constant-time comparison; the cookie parser', () => {
  const sessions = new Sessions(1000, 2);
  const a = sessions.create(0);
  assert.match(a.id, /^[A-Za-z0-9_-]{43}$/);
  assert.equal(a.maxAgeSeconds, 1);
  assert.equal(sessions.valid(a.id, 999), true);
  assert.equal(sessions.valid(a.id, 1000), false, 'expired at its expiry');
  assert.equal(sessions.size, 0, 'an expired session is forgotten');
  const b = sessions.create(0);
  const c = sessions.create(0);
  const d = sessions.create(0);
  assert.equal(sessions.size, 2, 'at most max sessions');
  assert.equal(sessions.valid(b.id, 1), false, 'the oldest went first');
  assert.equal(sessions.valid(c.id, 1), true);
  assert.equal(sessions.revoke(d.id), true);
  assert.equal(sessions.revoke(d.id), false);
  assert.equal(sessions.valid(d.id, 1), false);
  assert.notEqual(b.id, c.id);
  assert.equal(new Sessions(100).create(0).maxAgeSeconds, 1, 'never less than a second');
  assert.equal(new Sessions(7_200_000).create(0).maxAgeSeconds, 7200);

  assert.match(fingerprint('x'), /^[0-9a-f]{8}$/);
  assert.notEqual(fingerprint('x'), fingerprint('y'));
  assert.equal(safeEqual('abc', 'abc'), true);
  assert.equal(safeEqual('abc', 'abd'), false);
  assert.equal(safeEqual('abc', 'abcd'), false, 'different lengths compare without throwing');
  assert.equal(safeEqual('', ''), true);

  assert.equal(readCookie(undefined, 'a'), undefined);
  assert.equal(readCookie('', 'a'), undefined);
  assert.equal(readCookie('a=1', 'a'), '1');
  assert.equal(readCookie('b=2; a=1', 'a'), '1');
  assert.equal(readCookie('  a = x%20y ;b=2', 'a'), 'x y', 'names and values are trimmed, values decoded');
  assert.equal(readCookie('=1; a=2', 'a'), '2', 'a part with no name is skipped');
  assert.equal(readCookie('a', 'a'), undefined, 'a part with no "=" is no cookie');
  assert.equal(readCookie('ab=1', 'a'), undefined);
  assert.equal(readCookie('a=1=2', 'a'), '1=2');
  assert.equal(readCookie('a=%E0%A4%A', 'a'), undefined, 'bad percent-encoding is no cookie');
});

test('auth: what identify() says for each kind of request; the login token check; the failure limit per client', () => {
  const request = (headers: Record<string, string>, ip = '192.0.2.1'): FastifyRequest => ({ headers, ip }) as unknown as FastifyRequest;
  const off = createAuthenticator({ token: '', sessionTtlHours: 1, authFailuresPerMinute: 2 });
  assert.equal(off.enabled, false);
  assert.deepEqual(off.identify(request({ authorization: 'Bearer x' })), { ok: true, principal: 'anonymous' });
  assert.equal(off.tokenMatches(''), false, 'no token: no login');
  assert.equal(off.tokenMatches('x'), false);

  const auth = createAuthenticator({ token: TOKEN, sessionTtlHours: 1, authFailuresPerMinute: 2 });
  assert.equal(auth.enabled, true);
  assert.deepEqual(auth.identify(request({ authorization: `Bearer ${TOKEN}` })), { ok: true, principal: `token:${fingerprint(TOKEN)}` });
  assert.deepEqual(auth.identify(request({ authorization: `bearer ${TOKEN}` })), { ok: true, principal: `token:${fingerprint(TOKEN)}` }, 'the scheme in any case');
  assert.deepEqual(auth.identify(request({ authorization: 'Bearer wrong' })), { ok: false, principal: `token:${fingerprint('wrong')}`, presented: 'bearer' });
  assert.deepEqual(auth.identify(request({ authorization: `xBearer ${TOKEN}` })), { ok: false, principal: 'none', presented: 'none' }, 'the scheme starts the header');
  assert.deepEqual(auth.identify(request({})), { ok: false, principal: 'none', presented: 'none' });
  assert.deepEqual(auth.identify(request({ cookie: `${SESSION_COOKIE}=%E0%A4%A` })), { ok: false, principal: 'none', presented: 'cookie' }, 'an unreadable session cookie');
  assert.deepEqual(auth.identify(request({ cookie: 'other=1' })), { ok: false, principal: 'none', presented: 'none' });
  const session = auth.sessions.create();
  assert.deepEqual(auth.identify(request({ cookie: `${SESSION_COOKIE}=${session.id}` })), { ok: true, principal: `session:${fingerprint(session.id)}` });
  assert.deepEqual(auth.identify(request({ cookie: `${SESSION_COOKIE}=nope` })), { ok: false, principal: `session:${fingerprint('nope')}`, presented: 'cookie' });
  assert.equal(auth.tokenMatches(TOKEN), true);
  assert.equal(auth.tokenMatches(`${TOKEN} `), false);

  const a = request({}, '192.0.2.7');
  const b = request({}, '192.0.2.8');
  assert.equal(auth.blockedFor(a), 0);
  auth.failed(a);
  assert.equal(auth.blockedFor(a), 0, 'one failure of two allowed');
  auth.failed(a);
  const wait = auth.blockedFor(a);
  assert.ok(wait >= 59 && wait <= 60, `blocked for ${wait} s`);
  assert.equal(auth.blockedFor(b), 0, 'another client is not blocked');
  assert.equal(readCookie('=1', ''), undefined, 'a part with no name never matches, not even an empty name');
});
