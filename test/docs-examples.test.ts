/**
 * README.md and docs/*.md keep their promises: every shell example is marked
 * (run, skipped with a reason, or covered by another test), every marked
 * example runs as written with the exit code and a key line of output it
 * claims, every relative link resolves (file and #anchor), and the README's
 * first screen says what the project does, how to run it and where to read on.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { REPO_ROOT, SHARED_PCAPS } from './helpers/paths.js';
import { hasLine, makeSandbox, markdownFiles, onPath, runBash, shellBlocks, type Sandbox, type ShellBlock } from './helpers/markdown-examples.js';

const EXAMPLE_TIMEOUT_MS = 120_000;

const blocks: ShellBlock[] = markdownFiles().flatMap((f) => shellBlocks(f));
const where = (b: ShellBlock): string => `${b.file}:${b.line}`;

test('every shell block of README.md and docs/ is marked: run, skipped with a reason, or covered by a named test', () => {
  assert.ok(blocks.length > 10, `only ${blocks.length} shell blocks found`);
  for (const b of blocks) {
    assert.ok(b.marker, `${where(b)}: a shell block without <!-- example: ... --> before it:\n${b.code}`);
    const a = b.marker.attrs;
    if (b.marker.kind === 'walkthrough') {
      assert.equal(b.file, 'README.md', `${where(b)}: walkthrough steps belong to the README`);
      continue;
    }
    const modes = [a['skip'] !== undefined, a['covered-by'] !== undefined, a['expect-exit'] !== undefined].filter(Boolean).length;
    assert.equal(modes, 1, `${where(b)}: say exactly one of expect-exit, skip="reason", covered-by="test" (${JSON.stringify(a)})`);
    if (a['expect-exit'] !== undefined) {
      assert.match(a['expect-exit'], /^\d+$/, `${where(b)}: expect-exit`);
      assert.ok((a['expect-line'] ?? '').length >= 3, `${where(b)}: a run example names a key line of its output (expect-line)`);
    }
    for (const reason of [a['skip'], a['covered-by']]) if (reason !== undefined) assert.ok(reason.length >= 15, `${where(b)}: say why, in words: "${reason}"`);
  }
});

describe('the examples run as written', () => {
  let sandbox: Sandbox;
  const ran: string[] = [];
  const skipped: string[] = [];
  const covered: string[] = [];
  before(() => { sandbox = makeSandbox(); });
  after(() => {
    const list = (title: string, items: string[]): string => `${title}: ${items.length}${items.length ? `\n  ${items.join('\n  ')}` : ''}`;
    process.stdout.write(`# docs examples\n${[list('run', ran), list('skipped', skipped), list('covered by other tests', covered)].join('\n')}\n`);
    rmSync(sandbox.base, { recursive: true, force: true });
  });

  for (const b of blocks) {
    if (b.marker?.kind !== 'example') continue;
    const a = b.marker.attrs;
    const head = b.code.split('\n')[0]!;
    if (a['skip'] !== undefined) { skipped.push(`${where(b)} ${head}: ${a['skip']}`); continue; }
    if (a['covered-by'] !== undefined) { covered.push(`${where(b)} ${head}: ${a['covered-by']}`); continue; }
    test(`${where(b)}: ${head}`, async (t) => {
      const missing = ['jq', 'gzip', 'curl'].filter((tool) => new RegExp(`\\b${tool}\\b`).test(b.code) && !onPath(tool, sandbox.env));
      if (missing.length) { skipped.push(`${where(b)} ${head}: ${missing.join(', ')} not installed`); t.skip(`${missing.join(', ')} not installed`); return; }
      if (b.code.includes('../shared/') && !existsSync(SHARED_PCAPS)) { skipped.push(`${where(b)}: no ${SHARED_PCAPS}`); t.skip(`no ${SHARED_PCAPS}`); return; }
      const r = await runBash(b.code, sandbox, EXAMPLE_TIMEOUT_MS);
      const shown = `\n--- ${where(b)}\n${b.code}\n--- output (exit ${String(r.code)}${r.timedOut ? ', timed out' : ''})\n${r.output.slice(-3000)}`;
      assert.equal(r.timedOut, false, `timed out${shown}`);
      assert.equal(r.code, Number(a['expect-exit']), `exit code${shown}`);
      assert.ok(hasLine(r.output, a['expect-line']!), `no line with "${a['expect-line']!}"${shown}`);
      assert.doesNotMatch(r.output, /^\s+at .+:\d+:\d+\)?$/m, `a stack trace on the terminal${shown}`);
      ran.push(`${where(b)} ${head}`);
    });
  }
});

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
}

function anchorsOf(file: string): Set<string> {
  const seen = new Map<string, number>();
  const anchors = new Set<string>();
  let fenced = false;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    const h = fenced ? null : /^#{1,6}\s+(.*)$/.exec(line);
    if (!h) continue;
    const base = slug(h[1]!);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  return anchors;
}

/** The relative links of a Markdown file outside code: [text](target). */
function relativeLinks(file: string): Array<{ line: number; target: string }> {
  const links: Array<{ line: number; target: string }> = [];
  let fenced = false;
  readFileSync(join(REPO_ROOT, file), 'utf8').split('\n').forEach((line, i) => {
    if (line.startsWith('```')) { fenced = !fenced; return; }
    if (fenced) return;
    const text = line.replace(/`[^`]*`/g, (code) => (code.includes('](') ? code : '``'));
    for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1]!;
      if (!/^[a-z]+:/i.test(target)) links.push({ line: i + 1, target });
    }
  });
  return links;
}

test('every relative link of README.md and docs/ resolves: the file, and its #anchor to a heading', () => {
  let checked = 0;
  for (const file of markdownFiles()) {
    for (const { line, target } of relativeLinks(file)) {
      const hash = target.indexOf('#');
      const path = hash < 0 ? target : target.slice(0, hash);
      const anchor = hash < 0 ? undefined : target.slice(hash + 1);
      const resolved = path === '' ? join(REPO_ROOT, file) : normalize(join(REPO_ROOT, dirname(file), path));
      assert.ok(resolved.startsWith(REPO_ROOT), `${file}:${line}: ${target} leaves the repository`);
      assert.ok(existsSync(resolved), `${file}:${line}: ${target}: no such file`);
      if (anchor !== undefined) {
        assert.ok(statSync(resolved).isFile() && resolved.endsWith('.md'), `${file}:${line}: ${target}: an anchor into a file that is not Markdown`);
        assert.ok(anchorsOf(resolved).has(anchor), `${file}:${line}: ${target}: no heading with anchor #${anchor} (has: ${[...anchorsOf(resolved)].join(', ')})`);
      }
      checked++;
    }
  }
  assert.ok(checked > 50, `only ${checked} links checked`);
});

test('README: under 250 lines; its first screen says what it does, how to run it and where to read on', () => {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const lines = readme.split('\n');
  assert.ok(lines.length < 250, `README.md has ${lines.length} lines`);
  const screen = lines.slice(0, 40).join('\n');
  assert.match(screen, /^# PCAP Analyzer\n/);
  assert.match(screen, /network sensor/i, 'what it is');
  for (const command of ['analyze', 'agent', 'collector']) assert.ok(screen.includes(`\`${command}\``), `the first screen names the ${command} command`);
  assert.match(screen, /^npm ci && npx pcap-analyzer analyze \S+$/m, 'how to run it: the install-and-analyze line');
  assert.match(screen, /\]\(docs\//, 'where to read on: a link into docs/');
  assert.match(screen, /\]\(#local-walkthrough\)/, 'where to read on: the walkthrough');
  assert.match(screen, /^## Contents$/m, 'a table of contents');
});

test('README: the table of contents lists every section, in order', () => {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const sections = [...readme.matchAll(/^## (.+)$/gm)].map((m) => m[1]!).filter((h) => h !== 'Contents');
  const contents = readme.split('\n## Contents\n')[1]!.split('\n## ')[0]!;
  const listed = [...contents.matchAll(/\[([^\]]+)\]\(#([^)]+)\)/g)].map((m) => m[2]!);
  assert.deepEqual(listed, sections.map(slug));
  for (const s of ['Quick start', 'Local walkthrough', 'Configuration', 'CLI reference', 'Troubleshooting']) assert.ok(sections.includes(s), `README has no "## ${s}"`);
});
