/**
 * `npm run test:docker`: the image built and the compose stack run under a real Docker engine
 * (issue 15). Root only; run by .ci/run after `npm test` (not part of `npm test`'s glob).
 *
 * Two runs of one private dockerd (Debian's docker.io), sharing a data root under a temporary
 * directory:
 *   A. in the host's network namespace with no bridge and no iptables (`--bridge=none
 *      --iptables=false`): it only builds (`--network host`, to reach Debian's archive and the npm
 *      registry) and runs the fresh-machine check (`--network host`). It adds nothing to the
 *      host's network.
 *   B. in a network namespace the test creates (`ip netns add`), with `--iptables=true`: its
 *      bridges, NAT and isolation rules exist only in that namespace. The compose stack runs here.
 *      Nothing in it has a route off the machine; the test reaches it with `ip netns exec`.
 *
 * Steps (each a test, in order):
 *   1. deploy/make-base-images.sh: Debian bookworm minbase (debootstrap) as debian:bookworm-minbase,
 *      node:20-bookworm-slim from it plus this machine's Node 20 and npm, a NATS image from Debian's
 *      nats-server; and a probe image (node base + iproute2) for the network checks.
 *   2. `docker build` of the Dockerfile (runtime and dev targets), the machine's CA bundle in the
 *      context as build-ca.crt (deps stage only); asserts that no file of the runtime image holds
 *      the machine's own CA, and that the image is under 300 MB (printed).
 *   3. fresh machine: in a container of the bare node base image (no libpcap-dev, no compiler), a
 *      clean copy of the repository runs the README's first command; the report is printed; live
 *      capture there fails with one line saying what to install.
 *   4. engine B; `docker-compose --profile replay up` (NATS, collector, the host-network agent
 *      capturing a bridge of this namespace, the replay agent on a shared capture); every service
 *      becomes `healthy` by the image's HEALTHCHECK command.
 *   5. windows and findings reach the collector's API (token from deploy/make-secrets.mjs).
 *   6. agent: uid 10001, read-only root, effective capabilities = NET_RAW; collector: none.
 *   7. live capture: traffic between two containers on a test network is counted by the agent.
 *   8. backend is internal: a container on it cannot reach a listener on another test network,
 *      not even with a route through the engine's gateway, while the listener answers from its
 *      own network and from the engine's namespace; the host's iptables carry none of it.
 *   9. docker-compose.dev.yml: the collector starts from the dev stage and restarts after a
 *      source file is edited (tsc --watch + node --watch-path).
 * Everything (containers, networks, volumes, engine, namespace, mounts, temp dir) is removed in
 * `after`, also when a step failed.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  appendFileSync, chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { DOCKER_CLI, DockerEngine, mountsUnder, ok, run, sleep } from '../helpers/docker-engine.js';
import { REPO_ROOT, SHARED_PCAPS } from '../helpers/paths.js';

const ID = randomBytes(3).toString('hex');
const PROJECT = `pcapdk${ID}`;
const DEV_PROJECT = `pcapdkdev${ID}`;
const NETNS = `pcapdk-${ID}`;
const IMAGE = 'pcap-analyzer:latest';
const DEV_IMAGE = 'pcap-analyzer:dev';
const NODE_IMAGE = 'node:20-bookworm-slim';
const NATS_IMAGE = `pcap-analyzer-test/nats:debian`;
const PROBE_IMAGE = `pcap-analyzer-test/probe:${ID}`;
const CAPTURE = 'ppa_synscan.pcapng';
const MAX_IMAGE_BYTES = 300e6;
const CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';
const isRoot = process.getuid?.() === 0;

const started = Date.now();
let tmp = '';
let repo = '';
let engine: DockerEngine | undefined;
let netnsMade = false;
const composeProjects: { dir: string; files: string[]; name: string }[] = [];

function log(line: string): void {
  process.stdout.write(`docker-test: ${line} (+${((Date.now() - started) / 1000).toFixed(0)} s)\n`);
}

/** The files of a clean clone of the working tree: tracked and not ignored (no .git, node_modules, dist, secrets). */
async function cleanCopy(dest: string): Promise<void> {
  const list = await ok('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: REPO_ROOT });
  for (const rel of new Set(list.split('\0').filter(Boolean))) {
    const src = join(REPO_ROOT, rel);
    if (!existsSync(src)) continue; // deleted in the working tree
    mkdirSync(dirname(join(dest, rel)), { recursive: true });
    cpSync(src, join(dest, rel), { verbatimSymlinks: true });
  }
}

function requireEngine(): DockerEngine {
  assert.ok(engine, 'no Docker engine (an earlier step failed)');
  return engine;
}

/** A request from inside engine B's network namespace (where the published ports are). */
async function nsFetch(url: string, token?: string): Promise<{ status: number; body: string }> {
  const script = `const [u, t] = process.argv.slice(1);
fetch(u, { headers: t ? { authorization: 'Bearer ' + t } : {}, signal: AbortSignal.timeout(10000) }).then(
  async (r) => process.stdout.write(JSON.stringify({ status: r.status, body: await r.text() })),
  (e) => process.stdout.write(JSON.stringify({ status: 0, body: String(e.cause?.code ?? e) })));`;
  const out = await ok('ip', ['netns', 'exec', NETNS, process.execPath, '-e', script, url, token ?? '']);
  return JSON.parse(out) as { status: number; body: string };
}

async function compose(project: { dir: string; files: string[]; name: string }, args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const e = requireEngine();
  const fileArgs = project.files.flatMap((f) => ['-f', f]);
  return ok('docker-compose', ['--ansi', 'never', '-p', project.name, ...fileArgs, ...args], { cwd: project.dir, env: { ...e.env, ...env }, timeoutMs: 600_000 });
}

/** The last `lines` log lines of a compose project's services (all when none are named), or why they could not be read. */
async function composeLogs(project: { dir: string; files: string[]; name: string } | undefined, lines: number, services: string[] = []): Promise<string> {
  if (!project) return '';
  return compose(project, ['logs', '--tail', String(lines), ...services]).catch((x: unknown) => String(x));
}

/** Container id of a compose service. */
async function containerOf(project: string, service: string): Promise<string> {
  const e = requireEngine();
  const id = (await e.docker(['ps', '-aq', '--filter', `label=com.docker.compose.project=${project}`, '--filter', `label=com.docker.compose.service=${service}`])).trim();
  assert.ok(id !== '', `no container for ${project}/${service}`);
  return id.split('\n')[0]!;
}

/** /proc/<pid>/status of the pcap-analyzer node process in a container, as key → value. */
async function nodeProcessStatus(container: string): Promise<Map<string, string>> {
  const script = `const fs = require('fs');
for (const p of fs.readdirSync('/proc').filter((d) => /^\\d+$/.test(d))) {
  let argv; try { argv = fs.readFileSync('/proc/' + p + '/cmdline', 'utf8').split('\\0'); } catch { continue; }
  if (argv.some((a) => a.endsWith('pcap-analyzer.js')) && Number(p) !== process.pid) { process.stdout.write(fs.readFileSync('/proc/' + p + '/status', 'utf8')); break; }
}`;
  const text = await requireEngine().docker(['exec', container, 'node', '-e', script]);
  assert.ok(text.includes('CapEff'), `no pcap-analyzer process found in ${container}`);
  return new Map(text.split('\n').filter((l) => l.includes(':')).map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]));
}

async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) { last = err; }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await sleep(2000);
  }
}

/** Lines of base64 that only the machine's locally added CAs have (Node's bundled roots are Mozilla's). */
function localCaMarkers(): string[] {
  const dir = '/usr/local/share/ca-certificates';
  if (!existsSync(dir)) return [];
  const markers: string[] = [];
  for (const f of readdirSync(dir, { recursive: true }).map(String).filter((n) => n.endsWith('.crt'))) {
    const lines = readFileSync(join(dir, f), 'utf8').split('\n').map((l) => l.trim()).filter((l) => /^[A-Za-z0-9+/=]{64}$/.test(l));
    if (lines.length > 4) markers.push(lines[lines.length - 3]!);
  }
  return markers;
}

describe('Docker: image, compose stack, fresh machine (private dockerd)', { skip: isRoot ? false : 'needs root (dockerd, network namespaces)' }, () => {
  let imageBytes = 0;
  let probeNet = '';
  let probeSubnet = '';
  let listenerIp = '';
  let apiToken = '';
  const hostIptablesBefore: string[] = [];

  before(async () => {
    tmp = mkdtempSync('/tmp/pcap-docker-test.');
    repo = join(tmp, 'repo');
    await cleanCopy(repo);
    hostIptablesBefore.push((await run('iptables-save', [])).stdout);
    engine = new DockerEngine(join(tmp, 'engine'));
    mkdirSync(engine.root, { recursive: true });
    log(`engine A (host network namespace, --bridge=none --iptables=false) in ${engine.root}`);
    await engine.start({ iptables: false, log: join(tmp, 'dockerd-a.log') });
  });

  after(async () => {
    const e = engine;
    if (e) {
      for (const p of composeProjects.reverse()) {
        await run('docker-compose', ['--ansi', 'never', '-p', p.name, ...p.files.flatMap((f) => ['-f', f]), 'down', '-v', '--remove-orphans', '-t', '5'],
          { cwd: p.dir, env: e.env, timeoutMs: 180_000 }).catch(() => undefined);
      }
      const ids = (await e.dockerRun(['ps', '-aq'])).stdout.split('\n').filter(Boolean);
      if (ids.length) await e.dockerRun(['rm', '-f', '-v', ...ids]);
      if (probeNet) await e.dockerRun(['network', 'rm', probeNet]);
      await e.dockerRun(['volume', 'prune', '-f']);
      await e.stop();
    }
    if (netnsMade) await run('ip', ['netns', 'delete', NETNS]);
    if (tmp) {
      for (const m of mountsUnder(tmp)) await run('umount', ['-l', m]);
      rmSync(tmp, { recursive: true, force: true });
    }
    log(`cleaned up; whole docker test ${((Date.now() - started) / 1000).toFixed(0)} s`);
  });

  test('1. base images from Debian packages and this machine\'s Node 20 (deploy/make-base-images.sh)', { timeout: 900_000 }, async () => {
    const e = requireEngine();
    const out = await ok('bash', [join(repo, 'deploy', 'make-base-images.sh'), '--node-image', NODE_IMAGE, '--nats-image', NATS_IMAGE],
      { env: { ...e.env, DOCKER: DOCKER_CLI }, timeoutMs: 900_000 });
    log(out.trim().split('\n').join('; '));
    assert.match(await e.docker(['run', '--rm', NODE_IMAGE, 'node', '--version']), /^v20\./);
    assert.match(await e.docker(['run', '--rm', NATS_IMAGE, 'nats-server', '--version']), /nats-server: v2\./);
    // The bare base: no compiler, no libpcap headers (what the fresh-machine check relies on).
    const bare = await e.dockerRun(['run', '--rm', NODE_IMAGE, 'sh', '-c', 'command -v gcc g++ cc make python3; ls /usr/include/pcap.h']);
    assert.equal(bare.stdout.trim(), '', `the bare node image has build tools: ${bare.stdout}`);
    const ctx = join(tmp, 'probe-ctx');
    mkdirSync(ctx);
    writeFileSync(join(ctx, 'Dockerfile'), `FROM ${NODE_IMAGE}\nRUN apt-get update && apt-get install -y --no-install-recommends iproute2 && rm -rf /var/lib/apt/lists/*\n`);
    await e.docker(['build', '-q', '--network', 'host', '-t', PROBE_IMAGE, ctx], { timeoutMs: 300_000 });
  });

  test('2. the Dockerfile builds (runtime, dev); the CA stays in the build stages; the image is under 300 MB', { timeout: 1_500_000 }, async () => {
    const e = requireEngine();
    copyFileSync(CA_BUNDLE, join(repo, 'build-ca.crt'));
    try {
      const t0 = Date.now();
      await e.docker(['build', '--network', 'host', '--build-arg', `NODE_IMAGE=${NODE_IMAGE}`, '--target', 'runtime', '-t', IMAGE, repo], { timeoutMs: 1_200_000 });
      log(`runtime image built in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
      const t1 = Date.now();
      await e.docker(['build', '--network', 'host', '--build-arg', `NODE_IMAGE=${NODE_IMAGE}`, '--target', 'dev', '-t', DEV_IMAGE, repo], { timeoutMs: 600_000 });
      log(`dev image built in ${((Date.now() - t1) / 1000).toFixed(0)} s`);
    } finally {
      rmSync(join(repo, 'build-ca.crt'), { force: true });
    }
    imageBytes = Number((await e.docker(['image', 'inspect', '--format', '{{.Size}}', IMAGE])).trim());
    log(`image ${IMAGE}: ${(imageBytes / 1e6).toFixed(1)} MB (${imageBytes} bytes)`);
    assert.ok(imageBytes > 50e6 && imageBytes < MAX_IMAGE_BYTES, `image size ${imageBytes} bytes, limit ${MAX_IMAGE_BYTES}`);
    const config = JSON.parse(await e.docker(['image', 'inspect', '--format', '{{json .Config}}', IMAGE])) as { User: string; Healthcheck?: { Test: string[] } };
    assert.equal(config.User, 'pcap');
    assert.deepEqual(config.Healthcheck?.Test, ['CMD', 'node', '/app/deploy/healthcheck.mjs']);
    // No file of the runtime image holds the CA the build used: not build-ca.crt, and no
    // file anywhere contains a line of the machine's locally added CAs.
    const markers = localCaMarkers();
    const grepArgs = markers.flatMap((m) => ['-e', m]);
    const script = `find / -xdev -name 'build-ca.crt' 2>/dev/null; ${markers.length ? `grep -rlF ${grepArgs.map((a) => `'${a}'`).join(' ')} / --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev 2>/dev/null` : 'true'}`;
    const found = await e.dockerRun(['run', '--rm', '--user', '0', '--entrypoint', 'sh', IMAGE, '-c', script]);
    assert.equal(found.stdout.trim(), '', `the runtime image holds the build's CA: ${found.stdout}`);
    log(`runtime image checked for the build CA (${markers.length} local CA marker line(s)): absent`);
  });

  test('3. fresh machine: the README\'s first command in the bare Node image; live capture says what to install', { timeout: 900_000 }, async () => {
    const e = requireEngine();
    const readme = readFileSync(join(repo, 'README.md'), 'utf8');
    const quick = readme.slice(readme.indexOf('## Quick start'));
    const first = /^(npm ci && npx pcap-analyzer analyze \S+)$/m.exec(quick)?.[1];
    assert.ok(first, 'README: no `npm ci && npx pcap-analyzer analyze FILE` in Quick start');
    const src = join(tmp, 'fresh');
    await cleanCopy(src);
    const t0 = Date.now();
    const r = await e.dockerRun([
      'run', '--rm', '--network', 'host', '-v', `${src}:/src:ro`, '-v', `${CA_BUNDLE}:/etc/ssl/certs/ca-certificates.crt:ro`,
      '-e', 'NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt', '-e', 'NO_COLOR=1', NODE_IMAGE,
      'bash', '-c', `cp -a /src /work && cd /work && ${first} && echo '=== live' && (npx pcap-analyzer agent --interface eth0 --nats nats://127.0.0.1:9 2>&1; echo "exit $?")`,
    ], { timeoutMs: 900_000 });
    log(`fresh-machine run ${((Date.now() - t0) / 1000).toFixed(0)} s, exit ${String(r.code)}`);
    assert.equal(r.code, 0, `${first} failed:\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-3000)}`);
    const [install, live = ''] = r.stdout.split('=== live\n');
    process.stdout.write(`${install!.split('\n').filter((l) => l.trim() !== '').slice(-25).map((l) => `  | ${l}`).join('\n')}\n`);
    assert.match(install!, /packets/i, 'the analysis printed no report');
    const lines = live.trim().split('\n');
    assert.match(lines[lines.length - 1]!, /^exit [1-9]/, `live capture did not fail: ${live}`);
    const errorLines = lines.filter((l) => /pcap module/.test(l));
    assert.equal(errorLines.length, 1, `expected one line about the pcap module:\n${live}`);
    assert.match(errorLines[0]!, /apt-get install libpcap-dev.*npm install pcap/);
    log(`live capture there: ${errorLines[0]!}`);
  });

  test('4. compose (replay profile) under engine B in its own network namespace; every service healthy by the image HEALTHCHECK', { timeout: 600_000 }, async () => {
    let e = requireEngine();
    await e.stop();
    await ok('ip', ['netns', 'add', NETNS]);
    netnsMade = true;
    await ok('ip', ['netns', 'exec', NETNS, 'ip', 'link', 'set', 'lo', 'up']);
    e = new DockerEngine(e.root, NETNS);
    engine = e;
    log(`engine B in network namespace ${NETNS}, --iptables=true`);
    await e.start({ iptables: true, log: join(tmp, 'dockerd-b.log') });

    // A network of the test's own, with a listener: the agent captures its bridge (step 7),
    // and the backend's isolation is checked against it (step 8).
    probeNet = `${PROJECT}_probe`;
    await e.docker(['network', 'create', '--driver', 'bridge', probeNet]);
    const netId = (await e.docker(['network', 'inspect', '--format', '{{.Id}}', probeNet])).trim();
    probeSubnet = (await e.docker(['network', 'inspect', '--format', '{{(index .IPAM.Config 0).Subnet}}', probeNet])).trim();
    const bridge = `br-${netId.slice(0, 12)}`;
    await e.docker(['run', '-d', '--no-healthcheck', '--name', `${PROJECT}_listener`, '--network', probeNet, '--entrypoint', 'node', IMAGE, '-e',
      "require('net').createServer((s) => { s.on('error', () => {}); s.end('pong\\n'); }).listen(7000)"]);
    listenerIp = (await e.docker(['inspect', '--format', `{{(index .NetworkSettings.Networks "${probeNet}").IPAddress}}`, `${PROJECT}_listener`])).trim();
    log(`probe network ${probeNet} ${probeSubnet} on ${bridge}; listener ${listenerIp}:7000`);

    await ok(process.execPath, [join(repo, 'deploy', 'make-secrets.mjs')], { cwd: repo });
    apiToken = readFileSync(join(repo, 'deploy', 'secrets', 'api_token'), 'utf8').trim();
    copyFileSync(join(SHARED_PCAPS, CAPTURE), join(repo, 'captures', CAPTURE));
    chmodSync(join(repo, 'captures', CAPTURE), 0o644);
    // The image's own HEALTHCHECK command (read from the image) for our services, checked every 3 s
    // instead of 30 s; the NATS image built from Debian (no registry here).
    const hc = JSON.parse(await e.docker(['image', 'inspect', '--format', '{{json .Config.Healthcheck.Test}}', IMAGE])) as string[];
    const hcYaml = `{test: ${JSON.stringify(hc)}, interval: 3s, timeout: 5s, retries: 3, start_period: 60s}`;
    writeFileSync(join(repo, 'docker-compose.test.yml'), `services:
  nats: {image: ${NATS_IMAGE}, healthcheck: {interval: 3s}}
  collector: {healthcheck: ${hcYaml}}
  agent: {healthcheck: ${hcYaml}}
  replay: {healthcheck: ${hcYaml}}
`);
    const project = { dir: repo, files: ['docker-compose.yml', 'docker-compose.test.yml'], name: PROJECT };
    composeProjects.push(project);
    const env = { CAPTURE_INTERFACE: bridge, CAPTURE_BPF: 'tcp port 7000', REPLAY_LOOP: 'true', PCAP_IMAGE: IMAGE };
    const t0 = Date.now();
    await compose(project, ['--profile', 'replay', 'up', '-d', '--no-build'], env);
    const services = ['nats', 'collector', 'agent', 'replay'];
    const status = await waitFor('every service healthy', 240_000, async () => {
      const s = new Map<string, string>();
      for (const svc of services) s.set(svc, (await e.docker(['inspect', '--format', '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}', await containerOf(PROJECT, svc)])).trim());
      return [...s.values()].every((v) => v === 'healthy') ? s : undefined;
    }).catch(async (err: unknown) => {
      throw new Error(`${String(err)}\n${await composeLogs(project, 30)}`);
    });
    log(`healthy after ${((Date.now() - t0) / 1000).toFixed(0)} s: ${[...status].map(([k, v]) => `${k}=${v}`).join(' ')}`);
    for (const svc of ['collector', 'agent', 'replay']) {
      const c = await containerOf(PROJECT, svc);
      const used = JSON.parse(await e.docker(['inspect', '--format', '{{json .Config.Healthcheck.Test}}', c])) as string[];
      assert.deepEqual(used, hc, `${svc} is not checked by the image's HEALTHCHECK`);
      const last = (await e.docker(['inspect', '--format', '{{with .State.Health}}{{(index .Log (len .Log | add -1)).Output}}{{end}}', c]).catch(() => '')).trim();
      if (last) log(`${svc} health: ${last}`);
      // The compose file's own health check (a fetch of the same path) passes too.
      const composeHc = /node", "-e", "([^"]+)"/.exec(readFileSync(join(repo, 'docker-compose.yml'), 'utf8').split(`\n  ${svc}:`)[1] ?? '')?.[1];
      if (composeHc) assert.equal((await e.dockerRun(['exec', c, 'node', '-e', composeHc])).code, 0, `${svc}: docker-compose.yml's health check fails`);
    }
  });

  test('5. windows and findings reach the collector and its API (token from the secrets)', { timeout: 300_000 }, async () => {
    assert.ok(apiToken, 'no API token (step 4 failed)');
    const unauth = await nsFetch('http://127.0.0.1:8000/api/sensors');
    assert.equal(unauth.status, 401, 'the API answers without its token');
    // A probe that finds nothing yet throws what it saw, so a timeout says it; the services' logs follow.
    const withLogs = async (err: unknown): Promise<never> => {
      const logs = await composeLogs(composeProjects.find((p) => p.name === PROJECT), 40, ['replay', 'collector', 'nats']);
      const sensors = await nsFetch('http://127.0.0.1:8000/api/sensors', apiToken).catch((x: unknown) => ({ status: 0, body: String(x) }));
      throw new Error(`${String(err)}\n/api/sensors: ${sensors.status} ${sensors.body.slice(0, 1000)}\n${logs}`);
    };
    const windows = await waitFor('windows of sensor replay', 180_000, async () => {
      const r = await nsFetch('http://127.0.0.1:8000/api/sensors/replay/windows', apiToken);
      if (r.status !== 200) throw new Error(`HTTP ${r.status}: ${r.body.slice(0, 300)}`);
      const body = JSON.parse(r.body) as { windows?: unknown[] } | unknown[];
      const list = Array.isArray(body) ? body : body.windows ?? [];
      if (!list.length) throw new Error(`no windows yet: ${r.body.slice(0, 300)}`);
      return list;
    }).catch(withLogs);
    const findings = await waitFor('findings of sensor replay', 180_000, async () => {
      const r = await nsFetch('http://127.0.0.1:8000/api/findings?sensor=replay&limit=1000', apiToken);
      if (r.status !== 200) throw new Error(`HTTP ${r.status}: ${r.body.slice(0, 300)}`);
      const body = JSON.parse(r.body) as { findings?: { type: string }[] };
      if (!body.findings?.length) throw new Error(`no findings yet: ${r.body.slice(0, 300)}`);
      return body.findings;
    }).catch(withLogs);
    const types = [...new Set(findings.map((f) => f.type))];
    log(`collector API: ${windows.length} window(s), ${findings.length} finding(s) of sensor replay: ${types.join(', ')}`);
    const sensors = await nsFetch('http://127.0.0.1:8000/api/sensors', apiToken);
    assert.equal(sensors.status, 200);
    assert.match(sensors.body, /"replay"/);
  });

  test('6. agent: uid 10001, read-only root, effective capabilities NET_RAW only; collector: none', { timeout: 120_000 }, async () => {
    const e = requireEngine();
    for (const svc of ['agent', 'collector', 'replay']) {
      const c = await containerOf(PROJECT, svc);
      const st = await nodeProcessStatus(c);
      assert.match(st.get('Uid') ?? '', /^10001\s+10001\s+10001\s+10001$/, `${svc} uid`);
      assert.equal((await e.docker(['inspect', '--format', '{{.HostConfig.ReadonlyRootfs}}', c])).trim(), 'true', `${svc} read-only root`);
      // As root in the container (owner of /app), so only the read-only mount can refuse it.
      const write = await e.dockerRun(['exec', '--user', '0', c, 'sh', '-c', 'echo x > /app/probe-write']);
      assert.notEqual(write.code, 0, `${svc} could write its root filesystem`);
      assert.match(write.stderr, /Read-only file system/);
      const capEff = BigInt(`0x${st.get('CapEff') ?? 'x'}`);
      const expected = svc === 'agent' ? 1n << 13n : 0n; // CAP_NET_RAW is bit 13
      assert.equal(capEff, expected, `${svc} CapEff ${st.get('CapEff')}`);
      log(`${svc}: Uid ${st.get('Uid')?.split(/\s+/)[0]}, CapEff ${st.get('CapEff')}, CapBnd ${st.get('CapBnd')}, read-only root`);
    }
  });

  test('7. the agent captures live on an interface of its network namespace', { timeout: 180_000 }, async () => {
    const e = requireEngine();
    assert.ok(listenerIp, 'no listener (step 4 failed)');
    const packets = async (): Promise<number> => {
      const r = await nsFetch('http://127.0.0.1:9465/metrics');
      const m = /^pcap_analyzer_capture_received_total(?:\{[^}]*\})? (\d+(?:\.\d+)?)/m.exec(r.body);
      assert.ok(m, `no pcap_analyzer_capture_received_total in the agent's metrics:\n${r.body.slice(0, 500)}`);
      return Number(m[1]);
    };
    const before = await packets();
    // 20 connections between two containers of the probe network (each at least 6 packets).
    const client = `const net = require('net'); let n = 0; const one = () => new Promise((ok, ko) => { const s = net.connect(7000, process.argv[1]); let d = ''; s.on('data', (b) => d += b); s.on('end', () => d.startsWith('pong') ? ok() : ko(new Error(d))); s.on('error', ko); });
(async () => { for (let i = 0; i < 20; i++) { await one(); n++; } console.log('connections', n); })().catch((e) => { console.error(e.message); process.exit(1); });`;
    const out = await e.docker(['run', '--rm', '--network', probeNet, '--entrypoint', 'node', IMAGE, '-e', client, listenerIp]);
    assert.match(out, /connections 20/);
    const after = await waitFor('the agent to count the probe packets', 90_000, async () => {
      const n = await packets();
      return n - before >= 120 ? n : undefined;
    });
    log(`agent on the probe bridge: capture_received_total ${before} -> ${after}`);
  });

  test('8. the backend network is internal (and the host\'s iptables untouched)', { timeout: 180_000 }, async () => {
    const e = requireEngine();
    assert.ok(listenerIp, 'no listener (step 4 failed)');
    const backend = `${PROJECT}_backend`;
    const info = JSON.parse(await e.docker(['network', 'inspect', '--format', '{{json .}}', backend])) as { Internal: boolean; IPAM: { Config: { Subnet: string; Gateway?: string }[] } };
    assert.equal(info.Internal, true);
    const gateway = info.IPAM.Config[0]?.Gateway ?? '';
    const connect = `const s = require('net').connect(7000, process.argv[1]); s.setTimeout(4000, () => { console.log('timeout'); process.exit(3); });
s.on('data', (b) => { console.log('reached', String(b).trim()); process.exit(0); }); s.on('error', (e) => { console.log(e.code); process.exit(2); });`;
    // Controls: the listener answers on its own network, and from the engine's namespace (routed through its bridge).
    const own = await e.docker(['run', '--rm', '--network', probeNet, PROBE_IMAGE, 'node', '-e', connect, listenerIp]);
    assert.match(own, /reached pong/);
    const fromNs = await run('ip', ['netns', 'exec', NETNS, process.execPath, '-e', connect, listenerIp]);
    assert.match(fromNs.stdout, /reached pong/, 'the listener is not reachable from the engine namespace');
    // From the backend: no route at all...
    const plain = await e.dockerRun(['run', '--rm', '--network', backend, PROBE_IMAGE, 'node', '-e', connect, listenerIp]);
    assert.notEqual(plain.code, 0, `a backend container reached ${listenerIp}: ${plain.stdout}`);
    // ...and with a route through the backend's gateway, the engine's isolation rules drop it.
    assert.ok(gateway, 'the backend network has no gateway address');
    const routed = await e.dockerRun(['run', '--rm', '--network', backend, '--cap-add', 'NET_ADMIN', PROBE_IMAGE, 'sh', '-c',
      `ip route add ${probeSubnet} via ${gateway} && ip route get ${listenerIp} && node -e "${connect.replace(/"/g, '\\"')}" ${listenerIp}`]);
    assert.notEqual(routed.code, 0, `a backend container with a route via ${gateway} reached ${listenerIp}: ${routed.stdout}`);
    assert.match(routed.stdout, new RegExp(`${listenerIp.replace(/\./g, '\\.')} via ${gateway.replace(/\./g, '\\.')}`), `the route was not used: ${routed.stdout}${routed.stderr}`);
    log(`backend ${info.IPAM.Config[0]?.Subnet}: as started -> ${plain.stdout.trim() || plain.stderr.trim()}; routed via ${gateway} -> ${routed.stdout.trim().split('\n').pop()}`);
    const rules = await ok('ip', ['netns', 'exec', NETNS, 'iptables-save']);
    assert.match(rules, /DOCKER-ISOLATION/, 'no isolation rules in the engine namespace');
    const hostNow = (await run('iptables-save', [])).stdout;
    const ours = (t: string): string[] => t.split('\n').filter((l) => /DOCKER|br-[0-9a-f]{12}/.test(l));
    assert.deepEqual(ours(hostNow), ours(hostIptablesBefore[0] ?? ''), 'the host\'s iptables changed');
  });

  test('9. docker-compose.dev.yml: the dev stage starts and reloads on a source change', { timeout: 600_000 }, async () => {
    const e = requireEngine();
    // The dev override publishes the same host ports (4222, 8000): the replay project goes first.
    const main = composeProjects.find((p) => p.name === PROJECT);
    if (main) await compose(main, ['down', '-v', '--remove-orphans', '-t', '10']);
    const devDir = join(tmp, 'dev');
    await cleanCopy(devDir);
    await ok(process.execPath, [join(devDir, 'deploy', 'make-secrets.mjs')], { cwd: devDir });
    writeFileSync(join(devDir, 'docker-compose.test.yml'), `services:\n  nats: {image: ${NATS_IMAGE}, healthcheck: {interval: 3s}}\n`);
    const project = { dir: devDir, files: ['docker-compose.yml', 'docker-compose.dev.yml', 'docker-compose.test.yml'], name: DEV_PROJECT };
    composeProjects.push(project);
    await compose(project, ['up', '-d', '--no-build', 'collector']);
    const c = await containerOf(DEV_PROJECT, 'collector');
    assert.equal((await e.docker(['inspect', '--format', '{{.Config.Image}}', c])).trim(), DEV_IMAGE);
    const logs = async (): Promise<string> => { const r = await e.dockerRun(['logs', c]); return r.stdout + r.stderr; };
    const count = (text: string, re: RegExp): number => (text.match(re) ?? []).length;
    const LISTENING = /listening/gi;
    const RESTARTING = /Restarting '/g;
    const COMPILED = /Watching for file changes/g;
    // Settled: tsc --watch finished its first pass (which rewrites dist, so node restarts once),
    // and the collector listens after it; nothing new in the log for 5 s.
    let previous = '';
    const settled = await waitFor('the dev collector to compile, listen and settle', 300_000, async () => {
      const t = await logs();
      const ready = count(t, COMPILED) > 0 && count(t, LISTENING) > 0 && t === previous;
      previous = t;
      if (ready) return t;
      await sleep(3000);
      return undefined;
    }).catch(async (err: unknown) => { throw new Error(`${String(err)}\n${(await logs()).slice(-3000)}`); });
    const before = { restarts: count(settled, RESTARTING), listening: count(settled, LISTENING), compiled: count(settled, COMPILED) };
    const t0 = Date.now();
    appendFileSync(join(devDir, 'common', 'errors.ts'), `\nexport const DEV_RELOAD_MARK = '${ID}';\n`);
    const text = await waitFor('a recompile and a restart after the source change', 240_000, async () => {
      const t = await logs();
      return count(t, COMPILED) > before.compiled && count(t, RESTARTING) > before.restarts && count(t, LISTENING) > before.listening ? t : undefined;
    }).catch(async (err: unknown) => { throw new Error(`${String(err)}\n${(await logs()).slice(-3000)}`); });
    const restartLine = text.split('\n').filter((l) => l.includes("Restarting '")).pop()?.trim() ?? '';
    log(`dev collector recompiled and restarted ${((Date.now() - t0) / 1000).toFixed(0)} s after the edit (restarts ${before.restarts} -> ${count(text, RESTARTING)}): ${restartLine}`);
    const mark = await e.docker(['exec', c, 'grep', '-c', ID, '/app/dist/common/errors.js']);
    assert.equal(mark.trim(), '1', 'the recompiled file does not hold the edit');
  });
});
