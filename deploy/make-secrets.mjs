#!/usr/bin/env node
/**
 * Creates the secrets docker-compose.yml mounts, and the NATS server's matching
 * authorization, with nothing but Node's own crypto:
 *
 *   deploy/secrets/api_token                  the collector's API token (API_TOKEN_FILE)
 *   deploy/secrets/nats_collector.creds       NATS credentials of the collector
 *   deploy/secrets/nats_sensor_<id>.creds     NATS credentials of one sensor, for each --sensor
 *                                             (default: host, replay, app-sidecar: the compose file's)
 *   deploy/secrets/nats_account.seed          the PCAP account's signing seed (0600, never mounted):
 *                                             lets a later run add sensors without new credentials for all
 *   deploy/nats/auth.conf                     the NATS server's operator, accounts and resolver
 *                                             (public JWTs only; included by deploy/nats/nats.conf)
 *
 * NATS runs in operator (decentralized JWT) mode: a fresh operator signs a system account and
 * the `PCAP` account (JetStream on, with storage, stream and consumer limits), which signs one
 * user per sensor and one for the collector. A sensor's user may publish only on
 * pcap.v1.<sensor>.> and subscribe only to its own reply inboxes (_INBOX.sensor.<sensor>.>): it
 * cannot speak for another sensor, read another client's deliveries, or touch the JetStream API
 * (so agents run with nats.manageStream false; the collector creates and updates the stream).
 * The collector's user may use the JetStream API and acknowledge, subscribe to
 * _INBOX.collector.>, and not publish sensor data. The same files serve Kubernetes:
 * `kubectl create secret generic ... --from-file=...`.
 *
 * Usage: node deploy/make-secrets.mjs [--dir DEPLOY_DIR] [--sensor ID]... [--stream NAME] [--force]
 * Existing files are kept unless --force (new operator, accounts and every credential: then
 * restart nats, the collector and the agents). A sensor without credentials gets them, signed
 * with the kept account seed. Exit 0 on success, 2 on a usage error.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

// --- nkeys: ed25519 keys as NATS writes them (prefix byte, key, CRC-16/XMODEM little-endian, base32) ---
const PREFIX = { seed: 18 << 3, operator: 14 << 3, account: 0, user: 20 << 3 };
const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

function base32(bytes) {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) { out += BASE32[(value >>> (bits - 5)) & 31]; bits -= 5; }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

function crc16(bytes) {
  let crc = 0;
  for (const b of bytes) {
    crc ^= b << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

function withCrc(bytes) {
  const crc = crc16(bytes);
  return base32(Buffer.concat([bytes, Buffer.from([crc & 0xff, crc >> 8])]));
}

const b64url = (buf) => Buffer.from(buf).toString('base64url');

function unbase32(text) {
  const out = [];
  let bits = 0;
  let value = 0;
  for (const ch of text) {
    const v = BASE32.indexOf(ch);
    if (v < 0) throw new Error('not base32');
    value = ((value << 5) | v) & 0xffff;
    bits += 5;
    if (bits >= 8) { out.push((value >>> (bits - 8)) & 0xff); bits -= 8; }
  }
  return Buffer.from(out);
}

/** PKCS#8 DER of an ed25519 private key around its 32 raw bytes (RFC 8410). */
const ED25519_PKCS8 = Buffer.from('302e020100300506032b657004220420', 'hex');

/** An nkey of a kind from its raw private bytes: public key, seed, signer. */
function nkeyFrom(kind, raw) {
  const key = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8, raw]), format: 'der', type: 'pkcs8' });
  const pub = Buffer.from(createPublicKey(key).export({ format: 'jwk' }).x, 'base64url');
  const prefix = PREFIX[kind];
  return {
    publicKey: withCrc(Buffer.concat([Buffer.from([prefix]), pub])),
    seed: withCrc(Buffer.concat([Buffer.from([PREFIX.seed | (prefix >> 5), (prefix & 31) << 3]), raw])),
    sign: (data) => sign(null, Buffer.from(data), key),
  };
}

/** A new ed25519 key pair of a kind (operator, account, user). */
function nkey(kind) {
  const { privateKey } = generateKeyPairSync('ed25519');
  return nkeyFrom(kind, Buffer.from(privateKey.export({ format: 'jwk' }).d, 'base64url'));
}

/** An account nkey from its seed text (as nats_account.seed holds it); throws on anything else. */
function accountFromSeed(text) {
  const bytes = unbase32(text.trim());
  if (bytes.length !== 36 || bytes[0] !== (PREFIX.seed | (PREFIX.account >> 5)) || ((bytes[1] >> 3) !== 0)) throw new Error('not an account seed');
  const crc = crc16(bytes.subarray(0, 34));
  if (bytes[34] !== (crc & 0xff) || bytes[35] !== (crc >> 8)) throw new Error('account seed checksum mismatch');
  return nkeyFrom('account', bytes.subarray(2, 34));
}

// --- JWTs (nats-io/jwt v2: header {typ, alg: ed25519-nkey}, jti = base32 SHA-512/256 of the standard claims) ---
function jwt(issuer, subject, name, nats) {
  const claims = { iat: Math.floor(Date.now() / 1000), iss: issuer.publicKey, name, sub: subject };
  const jti = base32(createHash('sha512-256').update(JSON.stringify(claims)).digest());
  const body = { jti, ...claims, nats: { ...nats, version: 2 } };
  const signed = `${b64url(JSON.stringify({ typ: 'JWT', alg: 'ed25519-nkey' }))}.${b64url(JSON.stringify(body))}`;
  return `${signed}.${b64url(issuer.sign(signed))}`;
}

const UNLIMITED = { subs: -1, data: -1, payload: -1, imports: -1, exports: -1, wildcards: true, conn: -1, leaf: -1 };

function creds(userJwt, seed, role) {
  return `# NATS credentials of the pcap-analyzer ${role}: a secret (it holds the user's private seed).
-----BEGIN NATS USER JWT-----
${userJwt}
------END NATS USER JWT------

************************* IMPORTANT *************************
NKEY Seed printed below can be used to sign and prove identity.
NKEYs are sensitive and should be treated as secrets.

-----BEGIN USER NKEY SEED-----
${seed}
------END USER NKEY SEED------

*************************************************************
`;
}

/** The compose file's sensors (docker-compose.yml: agent, replay, app-sensor). */
export const DEFAULT_SENSORS = ['host', 'replay', 'app-sidecar'];
export const DEFAULT_STREAM = 'PCAP_ANALYZER';
/** Largest message a client may publish (nats.conf's max_payload). */
const MAX_PAYLOAD = 1024 * 1024;
/** The PCAP account's JetStream: file storage under nats.conf's max_file_store (10G; an equal reservation is refused), the one stream and a few consumers. */
const ACCOUNT_JETSTREAM = { mem_storage: 64 * 1024 * 1024, disk_storage: 8 * 1024 * 1024 * 1024, streams: 4, consumer: 16 };

/** A sensor id as its NATS subject token (common/wire.ts sensorToken): no dots, wildcards or spaces. */
export function sensorToken(sensor) {
  return sensor.replace(/[.*>\s]/g, '_') || '_';
}

/** Sensor ids make file names and subjects: letters, digits, '.', '_' and '-' only. */
const SENSOR_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function sensorCredsFile(sensor) {
  return `nats_sensor_${sensorToken(sensor)}.creds`;
}

/** A sensor's user: publishes only its own subjects, subscribes only its own inboxes, no JetStream API. */
function sensorUser(account, sensor) {
  const user = nkey('user');
  const token = sensorToken(sensor);
  const userJwt = jwt(account, user.publicKey, `sensor:${sensor}`, {
    type: 'user', subs: 64, data: -1, payload: MAX_PAYLOAD,
    pub: { allow: [`pcap.v1.${token}.>`] },
    sub: { allow: [`_INBOX.sensor.${token}.>`] },
  });
  return creds(userJwt, user.seed, `sensor ${sensor}`);
}

/** Credentials of one more sensor, signed with the account seed a first run kept. */
export function addSensor(accountSeed, sensor) {
  return sensorUser(accountFromSeed(accountSeed), sensor);
}

/** Everything NATS needs, freshly generated. */
export function natsMaterial({ sensors = DEFAULT_SENSORS, stream = DEFAULT_STREAM, now = new Date() } = {}) {
  const operator = nkey('operator');
  const system = nkey('account');
  const account = nkey('account');
  const collector = nkey('user');
  const operatorJwt = jwt(operator, operator.publicKey, 'pcap-analyzer', { type: 'operator', system_account: system.publicKey });
  const systemJwt = jwt(operator, system.publicKey, 'SYS', { type: 'account', limits: UNLIMITED, default_permissions: { pub: {}, sub: {} } });
  const accountJwt = jwt(operator, account.publicKey, 'PCAP', {
    type: 'account',
    limits: { ...UNLIMITED, ...ACCOUNT_JETSTREAM },
    // A user without permissions of its own may do nothing.
    default_permissions: { pub: { deny: ['>'] }, sub: { deny: ['>'] } },
  });
  // The collector manages the stream and its durable consumer, reads and acknowledges; it cannot publish sensor data.
  const collectorJwt = jwt(account, collector.publicKey, 'collector', {
    type: 'user', subs: -1, data: -1, payload: MAX_PAYLOAD,
    pub: {
      allow: [
        '$JS.API.INFO', `$JS.API.STREAM.*.${stream}`, `$JS.API.CONSUMER.*.${stream}`, `$JS.API.CONSUMER.*.${stream}.>`,
        `$JS.API.CONSUMER.DURABLE.CREATE.${stream}.*`, `$JS.API.CONSUMER.MSG.NEXT.${stream}.*`, `$JS.ACK.${stream}.>`,
      ],
    },
    sub: { allow: ['_INBOX.collector.>'] },
  });
  const authConf = `# NATS authorization for docker-compose.yml, written by deploy/make-secrets.mjs on ${now.toISOString()}.
# Operator mode with a memory resolver: these JWTs are public (signed claims, no secret);
# the matching user secrets are deploy/secrets/nats_collector.creds and nats_sensor_<id>.creds.
operator: ${operatorJwt}
system_account: ${system.publicKey}
resolver: MEMORY
resolver_preload: {
  ${system.publicKey}: ${systemJwt}
  ${account.publicKey}: ${accountJwt}
}
`;
  return {
    authConf,
    accountSeed: `${account.seed}\n`,
    collectorCreds: creds(collectorJwt, collector.seed, 'collector'),
    sensorCreds: new Map(sensors.map((s) => [s, sensorUser(account, s)])),
  };
}

function main() {
  let args;
  try {
    args = parseArgs({ options: {
      dir: { type: 'string' }, sensor: { type: 'string', multiple: true }, stream: { type: 'string' },
      force: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
    } });
  } catch (err) {
    process.stderr.write(`make-secrets: ${err.message}\n`);
    return 2;
  }
  const usage = 'Usage: node deploy/make-secrets.mjs [--dir DEPLOY_DIR] [--sensor ID]... [--stream NAME] [--force]\n';
  if (args.values.help) { process.stdout.write(usage); return 0; }
  const sensors = args.values.sensor ?? DEFAULT_SENSORS;
  for (const s of sensors) {
    if (!SENSOR_ID.test(s)) { process.stderr.write(`make-secrets: --sensor ${JSON.stringify(s)}: letters, digits, '.', '_' and '-' only (at most 128)\n${usage}`); return 2; }
  }
  const stream = args.values.stream ?? DEFAULT_STREAM;
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(stream)) { process.stderr.write(`make-secrets: --stream ${JSON.stringify(stream)}: letters, digits, '_' and '-' only\n${usage}`); return 2; }
  const dir = resolve(args.values.dir ?? dirname(fileURLToPath(import.meta.url)));
  const secrets = join(dir, 'secrets');
  mkdirSync(secrets, { recursive: true });
  mkdirSync(join(dir, 'nats'), { recursive: true });
  // Compose bind-mounts each secret file as it is: the files must be readable by the container's
  // user (uid 10001), so they are 0644 inside a directory only their owner can enter. The
  // account seed is mounted nowhere: 0600.
  chmodSync(secrets, 0o700);
  const force = args.values.force === true;
  const write = (path, text, mode = 0o644) => { writeFileSync(path, text, { mode }); chmodSync(path, mode); process.stdout.write(`wrote ${path}\n`); };
  const keep = (path) => process.stdout.write(`kept ${path}\n`);

  const token = join(secrets, 'api_token');
  if (force || !existsSync(token)) write(token, `${randomBytes(32).toString('hex')}\n`);
  else keep(token);

  const shared = { auth: join(dir, 'nats', 'auth.conf'), account: join(secrets, 'nats_account.seed'), collector: join(secrets, 'nats_collector.creds') };
  const sensorPath = (s) => join(secrets, sensorCredsFile(s));
  if (force || !Object.values(shared).every((f) => existsSync(f))) {
    // These belong together: a new operator invalidates every earlier credential.
    const m = natsMaterial({ sensors, stream });
    write(shared.auth, m.authConf);
    write(shared.account, m.accountSeed, 0o600);
    write(shared.collector, m.collectorCreds);
    for (const [s, text] of m.sensorCreds) write(sensorPath(s), text);
    return 0;
  }
  for (const f of Object.values(shared)) keep(f);
  const seed = readFileSync(shared.account, 'utf8');
  for (const s of sensors) {
    if (existsSync(sensorPath(s))) { keep(sensorPath(s)); continue; }
    try {
      write(sensorPath(s), addSensor(seed, s));
    } catch (err) {
      process.stderr.write(`make-secrets: ${shared.account}: ${err.message}; run with --force for new credentials\n`);
      return 2;
    }
  }
  return 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) process.exitCode = main();
