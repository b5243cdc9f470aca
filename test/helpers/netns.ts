/**
 * A private test network built from network namespaces, so live-capture tests
 * replay traffic without touching any real interface:
 *
 *   sendNs [vs] ==veth== [vc] captureNs [vr] ==veth== [pa<pid>r] root namespace
 *          no addresses, IPv6 off         10.a.b.2/30            10.a.b.1/30
 *
 * The vs/vc pair carries only what a test sends (no addresses and IPv6
 * disabled, so the kernels add nothing of their own). The vr pair lets a
 * process in captureNs reach a server in the root namespace on rootAddress,
 * and the test reach it on nsAddress.
 */
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';

export interface RunResult { status: number | null; stdout: string; stderr: string }

export interface TestNetwork {
  sendNs: string;
  captureNs: string;
  /** Interface in sendNs (replay onto it). */
  sendIf: string;
  /** Interface in captureNs (capture on it). */
  captureIf: string;
  /** Root-namespace end of the link to captureNs. */
  rootIf: string;
  /** Interface in captureNs on the link to the root namespace. */
  nsIf: string;
  /** Address of the root namespace on rootIf, reachable from captureNs. */
  rootAddress: string;
  /** Address of captureNs on nsIf, reachable from the root namespace. */
  nsAddress: string;
  /** Spawns `ip netns exec NS argv...`. */
  exec(ns: string, argv: string[], options?: SpawnOptions): ChildProcess;
  /** Runs `ip netns exec NS argv...` to completion. */
  run(ns: string, argv: string[], timeoutMs?: number): RunResult;
  /** Deletes both namespaces (and with them their veths); idempotent. */
  cleanup(): void;
}

const MTU = 9000;

function sh(argv: string[], timeoutMs = 10_000): RunResult {
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', timeout: timeoutMs });
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- spawnSync gives null output when the process could not start
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? (r.error ? String(r.error) : '') };
}

function must(argv: string[]): string {
  const r = sh(argv);
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed (${r.status}): ${r.stderr.trim()}`);
  return r.stdout;
}

let available: boolean | undefined;

/** True when running as root and `ip netns` can create a namespace (tests skip otherwise). */
export function netnsAvailable(): boolean {
  if (available !== undefined) return available;
  if (process.getuid?.() !== 0) return (available = false);
  const probe = `pa${process.pid}probe`;
  available = sh(['ip', 'netns', 'add', probe]).status === 0;
  if (available) sh(['ip', 'netns', 'del', probe]);
  return available;
}

/** Why netnsAvailable() is false, for a test's skip reason. */
export function netnsUnavailableReason(): string {
  return process.getuid?.() !== 0 ? 'needs root (network namespaces)' : '`ip netns add` does not work here (needs CAP_SYS_ADMIN)';
}

/** Deterministic per-pid /30 inside 10.100.0.0/16..10.199.0.0/16, so parallel runs do not clash. */
function subnetFor(pid: number): { root: string; ns: string } {
  const a = 100 + (Math.floor(pid / 16384) % 100);
  const b = Math.floor(pid / 64) % 256;
  const c = (pid % 64) * 4;
  return { root: `10.${a}.${b}.${c + 1}`, ns: `10.${a}.${b}.${c + 2}` };
}

function killNamespaceProcesses(ns: string): void {
  // `ip netns del` only drops the name: the namespace (and its veths) live on while a process
  // runs in it. These are processes the tests started there.
  const pids = sh(['ip', 'netns', 'pids', ns]).stdout.split(/\s+/).filter(Boolean).map(Number);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}

function waitUp(...links: [string[], string][]): void {
  const deadline = Date.now() + 5000;
  for (const [ip, dev] of links) {
    for (;;) {
      const state = sh([...ip, '-br', 'link', 'show', dev]).stdout.trim().split(/\s+/)[1];
      if (state === 'UP') break;
      if (Date.now() > deadline) throw new Error(`${dev} did not come up (state ${state})`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
    }
  }
}

/** Builds the network; on any failure removes what it made and throws. */
export function createTestNetwork(): TestNetwork {
  const tag = `pa${process.pid}`;
  const sendNs = `${tag}s`;
  const captureNs = `${tag}c`;
  const rootIf = `${tag}r`;
  const { root: rootAddress, ns: nsAddress } = subnetFor(process.pid);
  let cleaned = false;

  const signalHandlers: [NodeJS.Signals, () => void][] = [];
  const cleanup = (): void => {
    if (cleaned) return;
    cleaned = true;
    process.removeListener('exit', cleanup);
    for (const [sig, handler] of signalHandlers) process.removeListener(sig, handler);
    for (const ns of [sendNs, captureNs]) {
      killNamespaceProcesses(ns);
      sh(['ip', 'netns', 'del', ns]);
    }
    // Normally gone with captureNs; removes it if the namespace was kept alive by a straggler.
    if (sh(['ip', 'link', 'show', rootIf]).status === 0) sh(['ip', 'link', 'del', rootIf]);
  };
  // A crashed test still removes its namespaces (spawnSync works in an exit handler).
  process.on('exit', cleanup);
  // A signal's default action skips 'exit' handlers: clean up, then die of the signal as before.
  // Where something already handles the signal (e.g. a runner that calls process.exit), 'exit' covers it.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    if (process.listenerCount(sig) > 0) continue;
    const handler = (): void => {
      cleanup();
      process.kill(process.pid, sig);
    };
    signalHandlers.push([sig, handler]);
    process.on(sig, handler);
  }

  try {
    const taken = must(['ip', '-4', '-o', 'addr', 'show']);
    for (const addr of [rootAddress, nsAddress]) {
      if (taken.includes(` ${addr}/`)) throw new Error(`test address ${addr} is already in use here`);
    }

    for (const ns of [sendNs, captureNs]) {
      must(['ip', 'netns', 'add', ns]);
      // Before any link exists or goes up, so no interface ever sends router
      // solicitations, MLD reports or DAD probes onto the capture link.
      must(['ip', 'netns', 'exec', ns, 'sysctl', '-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1']);
      must(['ip', 'netns', 'exec', ns, 'sysctl', '-q', '-w', 'net.ipv6.conf.default.disable_ipv6=1']);
      must(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    }

    // Created directly inside the namespaces: nothing appears in the root namespace.
    must(['ip', '-n', captureNs, 'link', 'add', 'vc', 'mtu', String(MTU), 'type', 'veth',
      'peer', 'name', 'vs', 'mtu', String(MTU), 'netns', sendNs]);
    must(['ip', '-n', sendNs, 'link', 'set', 'vs', 'up']);
    must(['ip', '-n', captureNs, 'link', 'set', 'vc', 'up']);

    must(['ip', 'link', 'add', rootIf, 'type', 'veth', 'peer', 'name', 'vr', 'netns', captureNs]);
    // The root namespace keeps IPv6 on; quiet this test-only interface anyway.
    sh(['sysctl', '-q', '-w', `net.ipv6.conf.${rootIf}.disable_ipv6=1`]);
    must(['ip', 'addr', 'add', `${rootAddress}/30`, 'dev', rootIf]);
    must(['ip', 'link', 'set', rootIf, 'up']);
    must(['ip', '-n', captureNs, 'addr', 'add', `${nsAddress}/30`, 'dev', 'vr']);
    must(['ip', '-n', captureNs, 'link', 'set', 'vr', 'up']);
    // Carrier comes up asynchronously (linkwatch, up to ~1 s); wait so the first test does not race it.
    waitUp([['ip', '-n', sendNs], 'vs'], [['ip', '-n', captureNs], 'vc'], [['ip', '-n', captureNs], 'vr'], [['ip'], rootIf]);
  } catch (err) {
    cleanup();
    throw err;
  }

  return {
    sendNs,
    captureNs,
    sendIf: 'vs',
    captureIf: 'vc',
    rootIf,
    nsIf: 'vr',
    rootAddress,
    nsAddress,
    exec: (ns, argv, options = {}) => spawn('ip', ['netns', 'exec', ns, ...argv], options),
    run: (ns, argv, timeoutMs = 30_000) => sh(['ip', 'netns', 'exec', ns, ...argv], timeoutMs),
    cleanup,
  };
}
