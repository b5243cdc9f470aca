/**
 * NATS pieces the agent and the collector share: connection options from the
 * config (auth, TLS, reconnects) with the secrets to keep out of logs, the
 * JetStream stream both sides expect, and log-safe text for URLs and errors.
 */
import { accessSync, constants as fsConstants, readFileSync } from 'node:fs';
import { credsAuthenticator, nanos } from '@nats-io/transport-node';
import type { NatsConnection, NodeConnectionOptions } from '@nats-io/transport-node';
import { jetstreamManager, JetStreamApiCodes, JetStreamApiError, StorageType } from '@nats-io/jetstream';
import type { StreamConfig } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import type { NatsConfig } from './config.js';
import { ConfigError } from './errors.js';
import { SUBJECT_FILTER, sensorToken } from './wire.js';

/** Subjects of the stream when `nats.manageStream` is on. */
export const STREAM_SUBJECTS: readonly string[] = [SUBJECT_FILTER];
/** Between connection attempts (ours at start, nats.js's afterwards). */
export const RECONNECT_WAIT_MS = 1000;
/** TCP + handshake of one connection attempt (nats.js default 20 s would hold a start too long). */
const CONNECT_TIMEOUT_MS = 5000;
/** Pings every 15 s, 3 unanswered: a dead connection is noticed in about a minute (default: 4 min). */
const PING_INTERVAL_MS = 15_000;
const MAX_PING_OUT = 3;

/** Reply inboxes of the collector when `nats.inboxPrefix` is empty (deploy/make-secrets.mjs allows it `_INBOX.collector.>`). */
export const COLLECTOR_INBOX_PREFIX = '_INBOX.collector';

/** Reply inboxes of a sensor's agent when `nats.inboxPrefix` is empty (its NATS user may subscribe only below it). */
export function sensorInboxPrefix(sensor: string): string {
  return `_INBOX.sensor.${sensorToken(sensor)}`;
}

/**
 * nats.js options from the config, and the secret strings to keep out of log lines.
 * `inboxPrefix` applies when `nats.inboxPrefix` is empty.
 */
export function buildConnectOptions(nats: NatsConfig, name: string, inboxPrefix: string): { connectOptions: NodeConnectionOptions; secrets: string[] } {
  // nats.js v3 ignores credentials in server URLs (nats://user:pass@host, nats://token@host):
  // strip them, and use the first URL's when the config sets no user, token or creds file.
  const fromUrl = nats.servers.map(urlCredentials).find((c) => c !== undefined);
  const options: NodeConnectionOptions = {
    servers: nats.servers.map(redactUrl),
    name,
    reconnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: RECONNECT_WAIT_MS,
    timeout: CONNECT_TIMEOUT_MS,
    pingInterval: PING_INTERVAL_MS,
    maxPingOut: MAX_PING_OUT,
    inboxPrefix: nats.inboxPrefix || inboxPrefix,
  };
  const secrets = [nats.token, nats.password];
  for (const c of nats.servers.map(urlCredentials)) if (c) secrets.push(c.token ?? '', c.password ?? '');
  if (nats.token) options.token = nats.token;
  if (nats.user) { options.user = nats.user; options.pass = nats.password; }
  if (nats.credsFile) {
    const path = nats.credsFile;
    readable('nats.credsFile', path);
    // Read at each connection attempt, so a rotated creds file is picked up.
    options.authenticator = credsAuthenticator(() => new Uint8Array(readFileSync(path)));
  }
  if (fromUrl && !nats.token && !nats.user && !nats.credsFile) {
    if (fromUrl.token !== undefined) options.token = fromUrl.token;
    else { options.user = fromUrl.user; options.pass = fromUrl.password; }
  }
  if (nats.tls.enabled) {
    const tls: { caFile?: string; certFile?: string; keyFile?: string } = {};
    if (nats.tls.caFile) { readable('nats.tls.caFile', nats.tls.caFile); tls.caFile = nats.tls.caFile; }
    if (nats.tls.certFile) { readable('nats.tls.certFile', nats.tls.certFile); tls.certFile = nats.tls.certFile; }
    if (nats.tls.keyFile) { readable('nats.tls.keyFile', nats.tls.keyFile); tls.keyFile = nats.tls.keyFile; }
    options.tls = tls;
  }
  // Longest first, so a secret containing another is replaced whole.
  return { connectOptions: options, secrets: [...new Set(secrets.filter((x) => x !== ''))].sort((a, b) => b.length - a.length) };
}

/** `user:pass@` or `token@` of a server URL, percent-decoded. */
function urlCredentials(url: string): { user?: string; password?: string; token?: string } | undefined {
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(url)?.[0] ?? '';
  const at = url.lastIndexOf('@'); // as redactUrl: an unencoded @ in a password stays in the userinfo
  if (at <= scheme.length) return undefined;
  const info = url.slice(scheme.length, at);
  const decode = (x: string): string => { try { return decodeURIComponent(x); } catch { return x; } };
  const colon = info.indexOf(':');
  return colon < 0 ? { token: decode(info) } : { user: decode(info.slice(0, colon)), password: decode(info.slice(colon + 1)) };
}

function readable(key: string, path: string): void {
  try {
    accessSync(path, fsConstants.R_OK);
  } catch (err) {
    throw new ConfigError(key, `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  }
}

/** `nats://user:pass@host:4222` -> `nats://host:4222` (also without a scheme). */
export function redactUrl(url: string): string {
  const at = url.lastIndexOf('@');
  if (at < 0) return url;
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(url)?.[0] ?? '';
  return scheme + url.slice(at + 1);
}

export function stripUserinfo(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/)[^\s/@]+@/gi, '$1');
}

export function errorText(err: unknown): string {
  if (err instanceof Error) return err.cause instanceof Error ? `${err.message}: ${err.cause.message}` : err.message;
  return String(err);
}

/** Creates the stream, or updates it when its subjects, max age or duplicate window differ; throws on failure. */
export async function ensureStream(nc: NatsConnection, nats: NatsConfig, log: Logger, timeoutMs: number): Promise<void> {
  const name = nats.stream;
  const wanted: Pick<StreamConfig, 'subjects' | 'max_age' | 'duplicate_window'> = {
    subjects: [...STREAM_SUBJECTS],
    max_age: nanos(nats.maxAgeHours * 3600 * 1000),
    duplicate_window: nanos(nats.duplicateWindowSeconds * 1000),
  };
  const jsm = await jetstreamManager(nc, { timeout: timeoutMs });
  let existing: StreamConfig | undefined;
  try {
    existing = (await jsm.streams.info(name)).config;
  } catch (err) {
    if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound)) throw err;
  }
  const described = { stream: name, subjects: wanted.subjects, maxAgeHours: nats.maxAgeHours, duplicateWindowSeconds: nats.duplicateWindowSeconds };
  if (!existing) {
    await jsm.streams.add({ name, storage: StorageType.File, ...wanted });
    log.info(described, 'stream created');
    return;
  }
  if (existing.storage !== StorageType.File) log.warn({ stream: name, storage: existing.storage }, 'stream does not use file storage (a stream\'s storage cannot be changed)');
  const same = existing.max_age === wanted.max_age && existing.duplicate_window === wanted.duplicate_window
    && existing.subjects.length === wanted.subjects.length && existing.subjects.every((s, i) => s === wanted.subjects[i]);
  if (!same) {
    await jsm.streams.update(name, { ...existing, ...wanted });
    log.info(described, 'stream updated');
  }
}
