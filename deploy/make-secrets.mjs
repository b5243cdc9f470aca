#!/usr/bin/env node
/**
 * Creates the secrets docker-compose.yml mounts, and the NATS server's matching
 * authorization, with nothing but Node's own crypto:
 *
 *   deploy/secrets/api_token             the collector's API token (API_TOKEN_FILE)
 *   deploy/secrets/nats_agent.creds      NATS credentials of the agents (nats.credsFile)
 *   deploy/secrets/nats_collector.creds  NATS credentials of the collector
 *   deploy/nats/auth.conf                the NATS server's operator, accounts and resolver
 *                                        (public JWTs only; included by deploy/nats/nats.conf)
 *
 * NATS runs in operator (decentralized JWT) mode: a fresh operator signs a system account and
 * the `PCAP` account (JetStream enabled), which signs two users. The agent user may publish
 * on pcap.v1.> and manage the stream; the collector user may read it through JetStream and may
 * not publish sensor data. The operator and account seeds are not kept: to rotate or add
 * credentials, run again with --force (then restart nats, the collector and the agents). The
 * same files serve Kubernetes: `kubectl create secret generic ... --from-file=...`.
 *
 * Usage: node deploy/make-secrets.mjs [--dir DEPLOY_DIR] [--force]
 * Existing files are kept unless --force. Exit 0 on success, 2 on a usage error.
 */
import { createHash, createPrivateKey, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
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

/** A new ed25519 key pair of a kind (operator, account, user): public key, seed, signer. */
function nkey(kind) {
  const { privateKey } = generateKeyPairSync('ed25519');
  const jwk = privateKey.export({ format: 'jwk' });
  const raw = Buffer.from(jwk.d, 'base64url');
  const pub = Buffer.from(jwk.x, 'base64url');
  const prefix = PREFIX[kind];
  const key = createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d: jwk.d, x: jwk.x }, format: 'jwk' });
  return {
    publicKey: withCrc(Buffer.concat([Buffer.from([prefix]), pub])),
    seed: withCrc(Buffer.concat([Buffer.from([PREFIX.seed | (prefix >> 5), (prefix & 31) << 3]), raw])),
    sign: (data) => sign(null, Buffer.from(data), key),
  };
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

/** Everything NATS needs, freshly generated. */
export function natsMaterial(now = new Date()) {
  const operator = nkey('operator');
  const system = nkey('account');
  const account = nkey('account');
  const agent = nkey('user');
  const collector = nkey('user');
  const operatorJwt = jwt(operator, operator.publicKey, 'pcap-analyzer', { type: 'operator', system_account: system.publicKey });
  const systemJwt = jwt(operator, system.publicKey, 'SYS', { type: 'account', limits: UNLIMITED, default_permissions: { pub: {}, sub: {} } });
  const accountJwt = jwt(operator, account.publicKey, 'PCAP', {
    type: 'account',
    limits: { ...UNLIMITED, mem_storage: -1, disk_storage: -1, streams: -1, consumer: -1 },
    default_permissions: { pub: {}, sub: {} },
  });
  const user = (key, name, pub) => jwt(account, key.publicKey, name, {
    type: 'user', subs: -1, data: -1, payload: -1,
    pub: { allow: pub }, sub: { allow: ['_INBOX.>'] },
  });
  // The agent publishes windows, findings and heartbeats, and creates or updates the stream.
  const agentJwt = user(agent, 'agent', ['pcap.v1.>', '$JS.API.INFO', '$JS.API.STREAM.INFO.*', '$JS.API.STREAM.CREATE.*', '$JS.API.STREAM.UPDATE.*', '$JS.API.STREAM.NAMES']);
  // The collector reads through its durable consumer and acknowledges; it cannot publish sensor data.
  const collectorJwt = user(collector, 'collector', ['$JS.API.>', '$JS.ACK.>']);
  const authConf = `# NATS authorization for docker-compose.yml, written by deploy/make-secrets.mjs on ${now.toISOString()}.
# Operator mode with a memory resolver: these JWTs are public (signed claims, no secret);
# the matching user secrets are deploy/secrets/nats_agent.creds and nats_collector.creds.
operator: ${operatorJwt}
system_account: ${system.publicKey}
resolver: MEMORY
resolver_preload: {
  ${system.publicKey}: ${systemJwt}
  ${account.publicKey}: ${accountJwt}
}
`;
  return { authConf, agentCreds: creds(agentJwt, agent.seed, 'agent'), collectorCreds: creds(collectorJwt, collector.seed, 'collector') };
}

function main() {
  let args;
  try {
    args = parseArgs({ options: { dir: { type: 'string' }, force: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
  } catch (err) {
    process.stderr.write(`make-secrets: ${err.message}\n`);
    return 2;
  }
  if (args.values.help) { process.stdout.write('Usage: node deploy/make-secrets.mjs [--dir DEPLOY_DIR] [--force]\n'); return 0; }
  const dir = resolve(args.values.dir ?? dirname(fileURLToPath(import.meta.url)));
  const secrets = join(dir, 'secrets');
  mkdirSync(secrets, { recursive: true });
  mkdirSync(join(dir, 'nats'), { recursive: true });
  // Compose bind-mounts each secret file as it is: the files must be readable by the container's
  // user (uid 10001), so they are 0644 inside a directory only their owner can enter.
  chmodSync(secrets, 0o700);
  const force = args.values.force === true;
  const write = (path, text) => { writeFileSync(path, text, { mode: 0o644 }); chmodSync(path, 0o644); process.stdout.write(`wrote ${path}\n`); };

  const token = join(secrets, 'api_token');
  if (force || !existsSync(token)) write(token, `${randomBytes(32).toString('hex')}\n`);
  else process.stdout.write(`kept ${token}\n`);

  const files = { auth: join(dir, 'nats', 'auth.conf'), agent: join(secrets, 'nats_agent.creds'), collector: join(secrets, 'nats_collector.creds') };
  if (force || !Object.values(files).every((f) => existsSync(f))) {
    // The three belong together: a new operator invalidates every earlier credential.
    const m = natsMaterial();
    write(files.auth, m.authConf);
    write(files.agent, m.agentCreds);
    write(files.collector, m.collectorCreds);
  } else {
    for (const f of Object.values(files)) process.stdout.write(`kept ${f}\n`);
  }
  return 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) process.exitCode = main();
