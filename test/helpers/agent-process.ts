/** Runs `pcap-analyzer agent` as a child process and watches it (exit, logs, HTTP endpoints). */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import type { Report } from '../../common/report.js';
import { CLI } from './paths.js';

export { freePort } from './nats-server.js';

export interface AgentProcess {
  child: ChildProcess;
  /** Everything written so far. */
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>;
}

/** Spawns the agent; `prefix` runs it under another command (e.g. `ip netns exec NS`). */
export function spawnAgent(args: string[], options: { env?: Record<string, string>; prefix?: string[] } = {}): AgentProcess {
  return spawnCli(['agent', ...args], options);
}

/** Spawns `pcap-analyzer <args>` and keeps its output. */
export function spawnCli(args: string[], options: { env?: Record<string, string>; prefix?: string[] } = {}): AgentProcess {
  const argv = [...(options.prefix ?? []), process.execPath, CLI, ...args];
  const started = Date.now();
  const child = spawn(argv[0]!, argv.slice(1), { env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal, ms: Date.now() - started }));
  });
  return { child, stdout: () => out, stderr: () => err, exited };
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 20_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (err) { lastError = err; }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${String(lastError)})` : ''}`);
}

/** Parses Prometheus text into `name{labels}` -> value. */
export function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

/** The value of a metric whose name and labels contain all of `parts` (summed over matches). */
export function metricValue(metrics: Map<string, number>, name: string, ...parts: string[]): number {
  let sum = 0;
  for (const [key, value] of metrics) {
    if ((key === name || key.startsWith(`${name}{`)) && parts.every((p) => key.includes(p))) sum += value;
  }
  return sum;
}

/** Label names that would carry a peer (unbounded series, and addresses leaving the host). */
const ADDRESS_LABELS = /^(ip|ips|addr|address|host|client|server|src|dst|source_ip|port|sport|dport|peer|endpoint)$/i;
const IPV4_OR_PORT = /\b\d{1,3}(?:\.\d{1,3}){3}\b|\[?[0-9a-f]{0,4}:[0-9a-f]{0,4}:[0-9a-f:]*\]?|:\d{1,5}$/i;

/** Every label of a Prometheus text: no address or port in a label name or value. Returns the labels seen. */
export function assertNoAddressLabels(text: string): Array<[string, string]> {
  const seen: Array<[string, string]> = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const labels = /\{(.*)\}/.exec(line)?.[1] ?? '';
    for (const [, name, value] of labels.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
      seen.push([name!, value!]);
      if (ADDRESS_LABELS.test(name!)) throw new Error(`metric label ${name} names a peer: ${line}`);
      if (IPV4_OR_PORT.test(value!)) throw new Error(`metric label ${name}="${value}" holds an address or port: ${line}`);
    }
  }
  return seen;
}

/** `pcap-analyzer analyze FILE --format json --config CONFIG`, parsed: what agent and collector results are compared with. */
export function analyzeJson(file: string, config: string): Report {
  return JSON.parse(execFileSync(process.execPath, [CLI, 'analyze', file, '--format', 'json', '--config', config], { maxBuffer: 64 << 20 }).toString()) as Report;
}
