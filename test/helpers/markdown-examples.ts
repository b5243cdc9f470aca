/**
 * The runnable examples of README.md and docs/*.md: fenced shell blocks and the
 * HTML comment before each that says how a test treats it, e.g.
 *
 *   <!-- example: expect-exit=2 expect-line="unknown file format" -->
 *   <!-- example: skip="needs a Kubernetes cluster" -->
 *   <!-- example: covered-by="npm run test:docker" -->
 *   <!-- walkthrough: expect-line="..." -->   (the README's walkthrough, run in order in one shell)
 *
 * and the sandbox the examples run in: a directory laid out like the repository
 * (every top-level entry a symbolic link into it, `../shared` beside it), so
 * the commands run as written from "the repository's root" while the files they
 * write (report.html, spool-demo/) land in a temporary directory.
 */
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { CLI, REPO_ROOT, SHARED_PCAPS } from './paths.js';

export type MarkerKind = 'example' | 'walkthrough';
/** A marker's attributes; any of them may be absent. */
export type MarkerAttrs = Readonly<Partial<Record<string, string>>>;

export interface ShellBlock {
  /** Path relative to the repository, e.g. `docs/agent.md`. */
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  code: string;
  /** The comment before the block, or undefined when it has none. */
  marker: { kind: MarkerKind; attrs: MarkerAttrs } | undefined;
}

const SHELL_LANGS = new Set(['sh', 'bash', 'shell', 'console']);

/** README.md and every docs/*.md, relative to the repository. */
export function markdownFiles(): string[] {
  const docs = readdirSync(join(REPO_ROOT, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`);
  return ['README.md', ...docs];
}

/** `key="value"` pairs (a `\"` inside a value is a quote) of a marker comment. */
export function parseAttrs(text: string): MarkerAttrs {
  const attrs: Record<string, string> = {};
  const re = /([a-z-]+)=(?:"((?:[^"\\]|\\.)*)"|(\S+))/g;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    const key = group(m, 1);
    const quoted = group(m, 2);
    if (key !== undefined) attrs[key] = quoted !== undefined ? quoted.replace(/\\(.)/g, '$1') : group(m, 3) ?? '';
  }
  return attrs;
}

/** A capture group, undefined when it did not take part in the match. */
function group(m: RegExpExecArray, i: number): string | undefined {
  return m[i];
}

/** Every fenced shell block of one Markdown file, with the marker comment right before it (blank lines allowed between). */
export function shellBlocks(file: string): ShellBlock[] {
  const lines = readFileSync(join(REPO_ROOT, file), 'utf8').split('\n');
  const blocks: ShellBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)\s*$/.exec(lines[i]!);
    if (!open) continue;
    let end = i + 1;
    while (end < lines.length && !lines[end]!.startsWith('```')) end++;
    if (SHELL_LANGS.has(open[1]!)) {
      let before = i - 1;
      while (before >= 0 && lines[before]!.trim() === '') before--;
      const comment = before >= 0 ? /^<!--\s*(example|walkthrough)\b:?(.*?)-->\s*$/.exec(lines[before]!) : null;
      blocks.push({
        file,
        line: i + 1,
        code: lines.slice(i + 1, end).join('\n'),
        marker: comment ? { kind: comment[1] as MarkerKind, attrs: parseAttrs(comment[2]!) } : undefined,
      });
    }
    i = end;
  }
  return blocks;
}

export interface Sandbox {
  /** Where the commands run: the repository's layout, writable. */
  root: string;
  /** A directory for $TMPDIR, so `mktemp -d` lands inside the sandbox. */
  tmp: string;
  /** Environment for the commands: `pcap-analyzer` on PATH, no configuration inherited from the test's own environment. */
  env: NodeJS.ProcessEnv;
  base: string;
}

/** Variables that would change what an example does; the examples must run as a newcomer's shell runs them. */
const INHERITED_SETTINGS = /^(NODE_TEST_CONTEXT$|PCAP_ANALYZER_|API_TOKEN|DATABASE_URL$|DATA_DIR$|LOG_LEVEL$|MAX_UPLOAD_SIZE_MB$|MAX_QUEUE_SIZE$|REPORT_TTL_HOURS$|NO_COLOR$)/;

export function makeSandbox(): Sandbox {
  const base = mkdtempSync(join(tmpdir(), 'pa-docs-'));
  const root = join(base, 'repo');
  mkdirSync(root);
  for (const entry of readdirSync(REPO_ROOT)) {
    if (entry === '.git' || entry === 'data') continue;
    symlinkSync(join(REPO_ROOT, entry), join(root, entry));
  }
  symlinkSync(dirname(SHARED_PCAPS), join(base, 'shared'));
  const bin = join(base, 'bin');
  mkdirSync(bin);
  // `pcap-analyzer` as `npm link` would put it on PATH.
  writeFileSync(join(bin, 'pcap-analyzer'), `#!/bin/sh\nexec '${process.execPath}' '${CLI}' "$@"\n`);
  chmodSync(join(bin, 'pcap-analyzer'), 0o755);
  const tmp = join(base, 'tmp');
  mkdirSync(tmp);
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!INHERITED_SETTINGS.test(k)) env[k] = v;
  env['PATH'] = `${bin}:${dirname(process.execPath)}:${process.env['PATH'] ?? '/usr/bin:/bin'}`;
  env['TMPDIR'] = tmp;
  // `npx pcap-analyzer` in this copy made of symlinks (not the repository's own path) installs the
  // directory as a package and runs its `prepare` (tsc) through the links: that rewrote the real
  // repository's dist/ while other test files ran. In the repository itself npx runs the bin as is.
  env['npm_config_ignore_scripts'] = 'true';
  return { root, tmp, env, base };
}

export interface RunResult { code: number | null; signal: NodeJS.Signals | null; output: string; timedOut: boolean }

/**
 * Runs a bash script in the sandbox in a process group of its own, so that
 * whatever it leaves running (a server started with `&`) is stopped with it.
 */
export function runBash(script: string, sandbox: Sandbox, timeoutMs: number): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn('bash', ['-c', script], { cwd: sandbox.root, env: sandbox.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => { output += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { output += d.toString(); });
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; killGroup(child.pid, 'SIGKILL'); }, timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      killGroup(child.pid, 'SIGTERM'); // anything the script started and left behind
      resolve({ code, signal, output, timedOut });
    });
  });
}

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try { process.kill(-pid, signal); } catch { /* the group is gone */ }
}

/** True when some line of the output contains `expected`. */
export function hasLine(output: string, expected: string): boolean {
  return output.split('\n').some((line) => line.includes(expected));
}

/** A command found on PATH (for skipping examples whose tools are missing, with the reason). */
export function onPath(command: string, env: NodeJS.ProcessEnv): boolean {
  return (env['PATH'] ?? '').split(':').some((dir) => {
    try { return readdirSync(dir).includes(command); } catch { return false; }
  });
}
