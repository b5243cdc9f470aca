/** The collector as a child process (SQLite in a temporary directory), and plain HTTP to it. */
import type { TestContext } from 'node:test';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, spawnCli, waitFor } from './agent-process.js';

export interface Collector { base: string; output: () => string; stop: () => Promise<void> }

/** Cleanups run last-registered first (the collector stops before its NATS server and data go away). */
export function deferrer(t: TestContext): (fn: () => unknown) => void {
  const stack: Array<() => unknown> = [];
  t.after(async () => { for (const fn of stack.reverse()) await fn(); });
  return (fn) => { stack.push(fn); };
}

/** Starts `pcap-analyzer collector` on a free port and waits for /api/health. */
export async function startCollector(defer: (fn: () => unknown) => void, natsUrl: string, dataDir: string, env: Record<string, string> = {}): Promise<Collector> {
  const port = await freePort();
  const config = join(dataDir, 'collector.yaml');
  mkdirSync(dataDir, { recursive: true });
  // Sensors that sent one status must still count as up while a test checks the pages.
  writeFileSync(config, 'collector:\n  sensorDownSeconds: 3600\n  retentionHours: 0\n');
  // Empty values count as unset: the machine's own settings must not leak into the test.
  const cleared = { API_TOKEN: '', API_TOKEN_FILE: '', DATABASE_URL: '', DATA_DIR: '' };
  const proc = spawnCli(['collector', '--nats', natsUrl, '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir, '--config', config], { env: { ...cleared, ...env } });
  let exitCode: number | null | undefined;
  void proc.exited.then(({ code }) => { exitCode = code; });
  const out = (): string => proc.stdout() + proc.stderr();
  const stop = async (): Promise<void> => {
    if (exitCode !== undefined) return;
    proc.child.kill('SIGTERM');
    const timer = setTimeout(() => proc.child.kill('SIGKILL'), 10_000);
    await proc.exited;
    clearTimeout(timer);
  };
  defer(stop);
  const base = `http://127.0.0.1:${port}`;
  await waitFor('the collector to answer /api/health', async () => {
    if (exitCode !== undefined) throw new Error(`collector exited ${exitCode}:\n${out()}`);
    return (await http(`${base}/api/health`)).status === 200 || undefined;
  }, 20_000, 100);
  return { base, output: out, stop };
}

export interface Answer { status: number; headers: Headers; text: string }

/**
 * A request whose body is always read: a response left unread kept a
 * keep-alive connection busy, and the collector's shutdown waited on it.
 */
export async function http(url: string, init?: RequestInit): Promise<Answer> {
  const res = await fetch(url, init);
  return { status: res.status, headers: res.headers, text: await res.text() };
}

