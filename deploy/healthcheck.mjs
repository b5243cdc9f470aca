#!/usr/bin/env node
/**
 * The image's HEALTHCHECK, in Node (the image has no curl or wget):
 * `node /app/deploy/healthcheck.mjs [--pid PID]`.
 *
 * It finds the running `pcap-analyzer` process (the only one in the container, or --pid),
 * reads its command, flags and environment from /proc, resolves the configuration exactly as
 * the process did (defaults, --config file, PCAP_ANALYZER_* and legacy variables, --listen),
 * and asks the port it listens on:
 *   agent      GET http://<http.listen>/healthz       (empty http.listen: nothing to ask, healthy)
 *   collector  GET http://<collector.listen>/api/health
 *   other commands (analyze, config): healthy while they run.
 * A wildcard listen address (0.0.0.0, ::) is asked on the loopback. Exit 0 healthy, 1 not,
 * with one line saying why (Docker keeps it in `docker inspect`).
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const TIMEOUT_MS = 4000;
const app = join(dirname(fileURLToPath(import.meta.url)), '..');

/** argv of a process, or undefined when it is gone or unreadable. */
function argvOf(pid) {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a, i, all) => a !== '' || i < all.length - 1);
  } catch { return undefined; }
}

function envOf(pid) {
  try {
    const env = {};
    for (const entry of readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0')) {
      const eq = entry.indexOf('=');
      if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
    }
    return env;
  } catch { return { ...process.env }; }
}

/** The pcap-analyzer node process: the one whose argv runs bin/pcap-analyzer.js. */
function findProcess(pidArg) {
  const pids = pidArg !== undefined ? [pidArg] : readdirSync('/proc').filter((p) => /^\d+$/.test(p) && Number(p) !== process.pid);
  for (const pid of pids) {
    const argv = argvOf(pid);
    const i = argv?.findIndex((a) => a.endsWith('pcap-analyzer.js')) ?? -1;
    if (argv && i >= 0) return { pid, args: argv.slice(i + 1) };
  }
  return undefined;
}

/** The CLI's options that take a value (cli/main.ts), so a value is never taken for the command. */
const VALUED = new Set(['format', 'out', 'config', 'interface', 'bpf', 'replay', 'speed', 'sensor', 'nats', 'listen', 'data-dir', 'database-url', 'workers']);

/** The command and the flags that matter here (--config, --listen; `--flag value` or `--flag=value`). */
function parse(args) {
  const flags = {};
  let command;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(a);
    if (m) {
      const value = m[2] ?? (VALUED.has(m[1]) ? args[++i] : undefined);
      if (m[1] === 'config' || m[1] === 'listen') flags[m[1]] = value;
      continue;
    }
    if (!a.startsWith('-') && command === undefined) command = a;
  }
  return { command, flags };
}

function target(listen) {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(listen);
  if (!m) return undefined;
  let host = m[1] ?? m[2];
  if (host === '0.0.0.0' || host === '') host = '127.0.0.1';
  if (host === '::') host = '::1';
  return `${host.includes(':') ? `[${host}]` : host}:${m[3]}`;
}

async function main() {
  const pidFlag = process.argv.indexOf('--pid');
  const found = findProcess(pidFlag > 0 ? process.argv[pidFlag + 1] : undefined);
  if (!found) return [1, 'no pcap-analyzer process is running'];
  const { command, flags } = parse(found.args);
  if (command !== 'agent' && command !== 'collector') return [0, `${command ?? 'pcap-analyzer'} is running (no HTTP endpoint to ask)`];
  const { resolveConfig } = await import(pathToFileURL(join(app, 'dist', 'common', 'config.js')).href);
  const key = command === 'agent' ? 'http.listen' : 'collector.listen';
  let cwd = process.cwd();
  try { cwd = readlinkSync(`/proc/${found.pid}/cwd`); } catch { /* another user's process: assume ours */ }
  const path = flags.config === undefined ? undefined : resolve(cwd, flags.config);
  const config = resolveConfig({ path, env: envOf(found.pid), overrides: { [key]: flags.listen } });
  const listen = command === 'agent' ? config.http.listen : config.collector.listen;
  if (listen === '') return [0, 'agent running with http.listen empty (no endpoint to ask)'];
  const hostPort = target(listen);
  if (!hostPort) return [1, `cannot read listen address "${listen}"`];
  const url = `http://${hostPort}${command === 'agent' ? '/healthz' : '/api/health'}`;
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS) });
    const body = (await res.text()).trim().slice(0, 300);
    return [res.ok ? 0 : 1, `${url}: ${res.status} ${body}`];
  } catch (err) {
    return [1, `${url}: ${err instanceof Error ? err.cause?.code ?? err.message : String(err)}`];
  }
}

main().then(
  ([code, line]) => { process.stdout.write(`${line}\n`); process.exitCode = code; },
  (err) => { process.stdout.write(`healthcheck failed: ${err instanceof Error ? err.message : String(err)}\n`); process.exitCode = 1; },
);
