/**
 * Per-sensor NATS identity, as deploy/make-secrets.mjs writes it, on a real
 * nats-server started with the generated authorization (deploy/nats/nats.conf
 * + auth.conf): a sensor's user cannot publish on another sensor's subjects,
 * cannot subscribe to the collector's inboxes (nor to `_INBOX.>`), and cannot
 * create, update or delete the stream; a real agent with its own credentials
 * and `nats.manageStream: false` still gets its windows into a real collector
 * that manages the stream. A sensor added later with the kept account seed
 * works without new credentials for the others.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { connect, credsAuthenticator, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { envName } from '../common/config.js';
import { sensorInboxPrefix } from '../common/nats.js';
import { subjectFor } from '../common/wire.js';
import { freePort, spawnCli, waitFor, type AgentProcess } from './helpers/agent-process.js';
import { REPO_ROOT } from './helpers/paths.js';
import { startNatsServer, type NatsServerHandle } from './helpers/nats-server.js';

const SAMPLE = join(REPO_ROOT, 'test', 'fixtures', 'sample-loopback.pcap');
let work = '';
let nats: NatsServerHandle | undefined;
const procs: AgentProcess[] = [];

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'pa-identity-'));
  mkdirSync(join(work, 'nats'));
  copyFileSync(join(REPO_ROOT, 'deploy', 'nats', 'nats.conf'), join(work, 'nats', 'nats.conf'));
  const made = spawnSync(process.execPath, [join(REPO_ROOT, 'deploy', 'make-secrets.mjs'), '--dir', work, '--sensor', 'alpha', '--sensor', 'beta'], { encoding: 'utf8' });
  assert.equal(made.status, 0, made.stderr);
  nats = await startNatsServer({ args: ['-c', join(work, 'nats', 'nats.conf'), '-m', String(await freePort())] });
});

after(async () => {
  for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) { p.child.kill('SIGKILL'); await p.exited; }
  await nats?.close();
  rmSync(work, { recursive: true, force: true });
});

const credsPath = (name: string): string => join(work, 'secrets', name);

/** A client with a sensor's or the collector's credentials; every async error (permission violations) is collected. */
async function client(creds: string, inboxPrefix: string): Promise<{ nc: NatsConnection; errors: string[] }> {
  const errors: string[] = [];
  const nc = await connect({ servers: nats!.url, authenticator: credsAuthenticator(new Uint8Array(readFileSync(credsPath(creds)))), inboxPrefix });
  void (async () => { for await (const s of nc.status()) if (s.type === 'error') errors.push(String(s.error)); })();
  return { nc, errors };
}

const violation = (errors: string[], what: RegExp): Promise<string> =>
  waitFor(`a permissions violation ${what.source}`, () => errors.find((e) => what.test(e)), 10_000, 20);

test('make-secrets: one credentials file per sensor (0644), the account seed private (0600), usage errors exit 2', () => {
  for (const f of ['nats_sensor_alpha.creds', 'nats_sensor_beta.creds', 'nats_collector.creds']) assert.equal(statSync(credsPath(f)).mode & 0o777, 0o644, f);
  assert.equal(statSync(credsPath('nats_account.seed')).mode & 0o777, 0o600);
  const bad = spawnSync(process.execPath, [join(REPO_ROOT, 'deploy', 'make-secrets.mjs'), '--dir', work, '--sensor', 'a b>'], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--sensor "a b>": letters, digits/);
});

test('a sensor cannot publish as another, read the collector\'s inbox, or manage the stream; the collector still ingests', async () => {
  // The collector (manages the stream) and an agent of sensor alpha with its own credentials.
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const token = readFileSync(credsPath('api_token'), 'utf8').trim();
  const collector = spawnCli(['collector', '--nats', nats!.url, '--listen', `127.0.0.1:${port}`, '--data-dir', join(work, 'collector')],
    { env: { [envName('nats.credsFile')]: credsPath('nats_collector.creds'), API_TOKEN: token } });
  procs.push(collector);
  await waitFor('the collector and its stream', async () => {
    const health = await (await fetch(`${base}/api/health`)).json() as { nats?: { connected?: boolean } };
    return health.nats?.connected || undefined;
  }, 20_000);

  const agent = spawnCli(['agent', '--replay', SAMPLE, '--sensor', 'alpha', '--nats', nats!.url, '--listen', '', '--data-dir', join(work, 'alpha')],
    { env: { [envName('nats.credsFile')]: credsPath('nats_sensor_alpha.creds'), [envName('nats.manageStream')]: 'false', [envName('shutdown.seconds')]: '20' } });
  procs.push(agent);
  assert.equal((await agent.exited).code, 0, agent.stderr());
  assert.doesNotMatch(agent.stderr(), /Permissions Violation|spooled":[1-9]/i, 'every message acknowledged under the sensor\'s permissions');
  const windows = await waitFor('alpha\'s windows in the collector', async () => {
    const res = await fetch(`${base}/api/sensors/alpha/windows?from=0&to=4000000000`, { headers: { authorization: `Bearer ${token}` } });
    const body = await res.json() as { windows?: unknown[] };
    return (body.windows?.length ?? 0) > 0 ? body.windows : undefined;
  }, 30_000, 200);
  assert.ok(windows.length > 0);

  const alpha = await client('nats_sensor_alpha.creds', sensorInboxPrefix('alpha'));
  try {
    // Its own subject works (the ack comes back on its own inbox).
    const js = jetstream(alpha.nc, { timeout: 3000 });
    const source = { kind: 'replay', name: 'x' };
    const ack = await js.publish(subjectFor('alpha', 'status'), JSON.stringify({ schema: 'pcap-analyzer/status@1', id: 'alpha.s.1.1', sensor: 'alpha', source }), { msgID: 'alpha.s.1.1' });
    assert.equal(ack.stream, 'PCAP_ANALYZER');

    // Another sensor's subject: refused by the server, never stored.
    await assert.rejects(js.publish(subjectFor('beta', 'window'), '{}', { msgID: 'beta.x.w.1' }));
    await violation(alpha.errors, /Permissions Violation for Publish to "pcap\.v1\.beta\.window"/);

    // The collector's deliveries and everyone's inboxes: refused.
    alpha.nc.subscribe('_INBOX.collector.>');
    await violation(alpha.errors, /Permissions Violation for Subscription to "_INBOX\.collector\.>"/);
    alpha.nc.subscribe('_INBOX.>');
    await violation(alpha.errors, /Permissions Violation for Subscription to "_INBOX\.>"/);

    // The JetStream API: no stream info, create, update or delete.
    for (const api of ['$JS.API.STREAM.UPDATE.PCAP_ANALYZER', '$JS.API.STREAM.CREATE.EVIL', '$JS.API.STREAM.DELETE.PCAP_ANALYZER']) {
      await assert.rejects(alpha.nc.request(api, '{}', { timeout: 1000 }));
      await violation(alpha.errors, new RegExp(`Permissions Violation for Publish to "${api.replace(/[.$]/g, '\\$&')}"`));
    }
    await assert.rejects(jetstreamManager(alpha.nc, { timeout: 1000 }));
  } finally {
    await alpha.nc.close();
  }

  // The stream is as the collector made it, and beta's subjects hold nothing.
  const admin = await client('nats_collector.creds', '_INBOX.collector');
  try {
    const jsm = await jetstreamManager(admin.nc);
    const info = await jsm.streams.info('PCAP_ANALYZER', { subjects_filter: 'pcap.v1.beta.>' });
    assert.deepEqual(info.config.subjects, ['pcap.v1.>']);
    assert.equal(Object.keys(info.state.subjects ?? {}).length, 0, 'nothing stored on beta\'s subjects');
    // The collector's user cannot publish sensor data either.
    admin.nc.publish(subjectFor('alpha', 'window'), '{}');
    await violation(admin.errors, /Permissions Violation for Publish to "pcap\.v1\.alpha\.window"/);
  } finally {
    await admin.nc.close();
  }

  // A sensor added later, signed with the kept account seed: its agent connects and publishes.
  const added = spawnSync(process.execPath, [join(REPO_ROOT, 'deploy', 'make-secrets.mjs'), '--dir', work, '--sensor', 'gamma.3'], { encoding: 'utf8' });
  assert.equal(added.status, 0, added.stderr);
  assert.match(added.stdout, /kept .*nats_collector\.creds[\s\S]*wrote .*nats_sensor_gamma_3\.creds/);
  const gamma = await client('nats_sensor_gamma_3.creds', sensorInboxPrefix('gamma.3'));
  try {
    const ack = await jetstream(gamma.nc, { timeout: 3000 }).publish(subjectFor('gamma.3', 'status'), '{}', { msgID: 'gamma_3.s.1' });
    assert.equal(ack.stream, 'PCAP_ANALYZER');
  } finally {
    await gamma.nc.close();
  }

  collector.child.kill('SIGTERM');
  assert.equal((await collector.exited).code, 0, collector.stderr());
  assert.doesNotMatch(collector.stderr(), /Permissions Violation/i, 'the collector\'s permissions cover what it does');
});
