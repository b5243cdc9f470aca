/**
 * A private Docker engine for test/docker/stack.test.ts: Debian's dockerd with its data root,
 * exec root, socket and pid file under a temporary directory, in its own mount namespace, and
 * optionally in a network namespace the test made (so its bridges and iptables rules live
 * there, never on the host's network). Commands run asynchronously so the test runner's
 * timers keep working during long builds.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface RunResult { code: number | null; stdout: string; stderr: string }
export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Killed (SIGKILL) after this long; default 10 minutes. */
  timeoutMs?: number;
  input?: string;
}

/** Runs a command to its end, capturing its output (never throws for a non-zero exit). */
export function run(cmd: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: options.env ?? process.env, cwd: options.cwd, stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (b: Buffer) => out.push(b));
    child.stderr?.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 600_000);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
    if (child.stdin) {
      child.stdin.on('error', () => { /* the command exited without reading its input: its exit code tells */ });
      child.stdin.end(options.input);
    }
  });
}

/** Runs a command and returns its stdout; throws with its output when it fails. */
export async function ok(cmd: string, args: string[], options: RunOptions = {}): Promise<string> {
  const r = await run(cmd, args, options);
  if (r.code !== 0) {
    const tail = (s: string): string => s.split('\n').slice(-40).join('\n');
    throw new Error(`${cmd} ${args.join(' ')} exited ${String(r.code)}\n--- stdout\n${tail(r.stdout)}\n--- stderr\n${tail(r.stderr)}`);
  }
  return r.stdout;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Debian's docker CLI (the engine's own version) when installed, else whatever `docker` is. */
export const DOCKER_CLI = existsSync('/usr/bin/docker') ? '/usr/bin/docker' : 'docker';
export const DOCKERD = existsSync('/usr/sbin/dockerd') ? '/usr/sbin/dockerd' : 'dockerd';

export class DockerEngine {
  readonly socket: string;
  private child: ChildProcess | undefined;
  private exited: Promise<void> | undefined;

  /** root: the temporary directory (data/, exec/, docker.sock, dockerd.pid, dockerd-N.log). */
  constructor(readonly root: string, readonly netns?: string) {
    this.socket = join(root, 'docker.sock');
  }

  get env(): NodeJS.ProcessEnv {
    return { ...process.env, DOCKER_HOST: `unix://${this.socket}`, DOCKER_BUILDKIT: '0', COMPOSE_DOCKER_CLI_BUILD: '0' };
  }

  docker(args: string[], options: RunOptions = {}): Promise<string> {
    return ok(DOCKER_CLI, args, { ...options, env: { ...this.env, ...options.env } });
  }

  dockerRun(args: string[], options: RunOptions = {}): Promise<RunResult> {
    return run(DOCKER_CLI, args, { ...options, env: { ...this.env, ...options.env } });
  }

  /** Starts dockerd; iptables only makes sense in a network namespace of the test's own. */
  async start(opts: { iptables: boolean; storageDriver?: string; log: string }): Promise<void> {
    const args = [
      `--storage-driver=${opts.storageDriver ?? 'overlay2'}`,
      `--iptables=${String(opts.iptables)}`, '--ip6tables=false',
      '--data-root', join(this.root, 'data'), '--exec-root', join(this.root, 'exec'),
      '-H', `unix://${this.socket}`, '--pidfile', join(this.root, 'dockerd.pid'),
    ];
    // Outside a namespace of its own there is no bridge at all: nothing is added to the host's network.
    if (!this.netns) args.push('--bridge=none');
    const fd = openSync(opts.log, 'a');
    // Its own mount namespace (`unshare --mount`): the overlay mounts die with the process. In a
    // network namespace, sysfs is mounted anew (so /sys/class/net shows that namespace's
    // interfaces, as `ip netns exec` does) with the cgroup hierarchy bound back under it (which
    // `ip netns exec` would hide: dockerd then refuses to start, "Devices cgroup isn't mounted").
    const mountNs = ['unshare', '--mount', '--propagation', 'slave'];
    const [cmd, cmdArgs] = this.netns
      ? ['nsenter', [`--net=/run/netns/${this.netns}`, ...mountNs, 'sh', '-c',
        'set -e; d=$(mktemp -d); mount --rbind /sys/fs/cgroup "$d"; mount -t sysfs sysfs /sys; mount --rbind "$d" /sys/fs/cgroup; umount -l "$d"; rmdir "$d"; exec "$@"',
        'dockerd', DOCKERD, ...args]]
      : [mountNs[0]!, [...mountNs.slice(1), DOCKERD, ...args]];
    const child = spawn(cmd, cmdArgs, { stdio: ['ignore', fd, fd], detached: false });
    closeSync(fd);
    this.child = child;
    this.exited = new Promise((resolve) => child.on('exit', () => resolve()));
    const deadline = Date.now() + 90_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`dockerd exited ${child.exitCode}:\n${readFileSync(opts.log, 'utf8').slice(-3000)}`);
      const r = await run(DOCKER_CLI, ['version', '--format', '{{.Server.Version}}'], { env: this.env, timeoutMs: 10_000 });
      if (r.code === 0) return;
      if (Date.now() > deadline) throw new Error(`dockerd did not answer in 90 s:\n${readFileSync(opts.log, 'utf8').slice(-3000)}`);
      await sleep(500);
    }
  }

  /** Stops dockerd (SIGTERM, then SIGKILL after 40 s); containers still running are stopped by it. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const killed = await Promise.race([this.exited?.then(() => false), sleep(40_000).then(() => true)]);
    if (killed) {
      child.kill('SIGKILL');
      await this.exited;
    }
    this.child = undefined;
  }
}

/** Mount points at or under a directory, deepest first (to unmount before removing it). */
export function mountsUnder(dir: string): string[] {
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  return readFileSync('/proc/mounts', 'utf8').split('\n')
    .map((l) => (l.split(' ')[1] ?? '').replace(/\\040/g, ' '))
    .filter((m) => m === dir || m.startsWith(prefix))
    .sort((a, b) => b.length - a.length);
}
