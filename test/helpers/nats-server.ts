/**
 * A private nats-server (JetStream on) for tests: a free port on 127.0.0.1 (or a
 * given test address) and
 * a temporary store directory, never the machine's own server on 4222.
 * `stop()` then `start()` brings it back on the same port and store, so a test
 * can take NATS away for a while and check nothing is lost.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const NATS_SERVER_BIN = '/usr/sbin/nats-server';
const READY_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 10_000;

export interface NatsServerOptions {
  /** Address to listen on (default 127.0.0.1), e.g. a test network's address. */
  host?: string;
  /** Extra command-line arguments, e.g. `['--auth', token]` or `['--user', u, '--pass', p]`. */
  args?: string[];
  binary?: string;
}

export interface NatsServerHandle {
  /** `nats://<host>:<port>`. */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly storeDir: string;
  readonly running: boolean;
  /** The server's process id while it runs (the bench reads its CPU time). */
  readonly pid: number | undefined;
  /** Starts the server again on the same port and store (after `stop()`). */
  start(): Promise<void>;
  /** SIGTERM, then waits for the process to exit. */
  stop(): Promise<void>;
  /** Stops the server and removes its store. */
  close(): Promise<void>;
}

const live = new Set<ChildProcess>();
process.once('exit', () => { for (const child of live) child.kill('SIGKILL'); });

/** A port nothing listens on right now (bind to 0, read it, close). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('no port assigned'))));
    });
  });
}

class NatsServer implements NatsServerHandle {
  private child: ChildProcess | undefined;
  private stderr = '';

  constructor(readonly host: string, readonly port: number, readonly storeDir: string, private readonly binary: string, private readonly extraArgs: string[]) {}

  get url(): string { return `nats://${this.host.includes(':') ? `[${this.host}]` : this.host}:${this.port}`; }
  get running(): boolean { return this.child !== undefined; }
  get pid(): number | undefined { return this.child?.pid; }

  async start(): Promise<void> {
    if (this.child) return;
    this.stderr = '';
    const child = spawn(this.binary, ['-js', '-a', this.host, '-p', String(this.port), '-sd', this.storeDir, ...this.extraArgs], { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => { this.stderr = (this.stderr + chunk).slice(-4000); });
    this.child = child;
    live.add(child);
    child.once('exit', () => { live.delete(child); if (this.child === child) this.child = undefined; });
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      if (this.child !== child) throw new Error(`nats-server exited at start (port ${this.port}):\n${this.stderr}`);
      if (await accepts(this.host, this.port)) return;
      if (Date.now() > deadline) {
        await this.stop();
        throw new Error(`nats-server did not accept connections on port ${this.port} within ${READY_TIMEOUT_MS} ms:\n${this.stderr}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
  }

  async close(): Promise<void> {
    await this.stop();
    rmSync(this.storeDir, { recursive: true, force: true });
  }
}

/** Spawns `nats-server -js` on a free port with a fresh store directory; resolves once it accepts connections. */
export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServerHandle> {
  const binary = options.binary ?? NATS_SERVER_BIN;
  if (!existsSync(binary)) throw new Error(`nats-server not found at ${binary}: install it (Debian: apt-get install nats-server) to run the NATS tests`);
  const host = options.host ?? '127.0.0.1';
  const server = new NatsServer(host, await freePort(host), mkdtempSync(join(tmpdir(), 'pa-nats-')), binary, options.args ?? []);
  try {
    await server.start();
  } catch (err) {
    rmSync(server.storeDir, { recursive: true, force: true });
    throw err;
  }
  return server;
}

function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port });
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => { socket.destroy(); resolve(false); });
  });
}
