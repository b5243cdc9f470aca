/**
 * The README's local walkthrough, run as a newcomer runs it: its blocks
 * (marked `<!-- walkthrough ... -->`) in order, in one bash, from a directory
 * laid out like the repository, with a real nats-server, the agent replaying a
 * shared capture and a collector on SQLite. Nothing in the text is substituted:
 * the README picks its own free ports (scripts/free-port.mjs) and scratch
 * directory (`mktemp -d`, under this test's TMPDIR). Each step's exit code and
 * the line the README promises are checked, then what the API returned against
 * the capture's manifest.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, SHARED_PCAPS, readTsv } from './helpers/paths.js';
import { hasLine, makeSandbox, onPath, runBash, shellBlocks, type Sandbox } from './helpers/markdown-examples.js';

const steps = shellBlocks('README.md').filter((b) => b.marker?.kind === 'walkthrough');
const missingTool = ['nats-server', 'curl', 'jq'].find((tool) => !onPath(tool, process.env));
const capture = /^CAPTURE=(\S+)$/m.exec(steps[0]?.code ?? '')?.[1];
const skip = missingTool !== undefined ? `${missingTool} is not installed (the README says to install it)`
  : !existsSync(SHARED_PCAPS) ? `no shared captures at ${SHARED_PCAPS}` : false;

let sandbox: Sandbox;
before(() => { sandbox = makeSandbox(); });
after(() => { rmSync(sandbox.base, { recursive: true, force: true }); });

test('the walkthrough has its steps: analyze, NATS, agent replay, collector, API, stop', () => {
  const code = steps.map((s) => s.code).join('\n');
  assert.ok(steps.length >= 6, `${steps.length} walkthrough blocks`);
  assert.match(code, /pcap-analyzer analyze "\$CAPTURE"/);
  assert.match(code, /nats-server -js /);
  assert.match(code, /pcap-analyzer agent --replay "\$CAPTURE"/);
  assert.match(code, /pcap-analyzer collector /);
  assert.match(code, /curl .*\/api\/reports\/demo\?from=/);
  assert.match(code, /^kill /m);
  assert.ok(capture, 'step 0 sets CAPTURE=<a capture file>');
  // The README tells the reader that replayed data sits at packet time, beside the range it queries.
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  assert.match(readme.split('## Local walkthrough')[1]!.split('\n## ')[0]!, /Replayed data sits at packet time/);
});

test('the README walkthrough runs as written: each step exits 0 and prints its line; the API has the replayed capture', { skip, timeout: 300_000 }, async () => {
  const outDir = join(sandbox.base, 'steps');
  // Each block runs in the same shell (variables and background jobs carry over); its output and
  // exit code go to files, and the first failing step ends the script.
  // Job control on, as in a terminal (each background job its own process group, which step 6
  // signals); a failing step ends the script, and the trap stops what earlier steps started.
  const script = ['set -m', `trap 'for j in $(jobs -p); do kill -- -"$j"; done 2>/dev/null' EXIT`, `mkdir -p '${outDir}'`, ...steps.map((s, i) => [
    '{',
    s.code,
    `} > '${outDir}/${i}.out' 2>&1`,
    `rc=$?; echo "$rc" > '${outDir}/${i}.rc'; [ "$rc" -eq 0 ] || exit 90`,
  ].join('\n'))].join('\n');
  const r = await runBash(script, sandbox, 240_000);
  const out = (i: number): string => (existsSync(join(outDir, `${i}.out`)) ? readFileSync(join(outDir, `${i}.out`), 'utf8') : '');
  const rc = (i: number): string => (existsSync(join(outDir, `${i}.rc`)) ? readFileSync(join(outDir, `${i}.rc`), 'utf8').trim() : 'not run');
  const report = steps.map((s, i) => `--- step ${i} (README.md:${s.line}), exit ${rc(i)}\n${s.code}\n--- output\n${out(i).slice(-2500)}`).join('\n');
  assert.equal(r.timedOut, false, `the walkthrough did not finish\n${report}`);
  steps.forEach((s, i) => {
    assert.equal(rc(i), '0', `step ${i} failed\n${report}`);
    const expected = s.marker?.attrs['expect-line'];
    if (expected !== undefined) assert.ok(hasLine(out(i), expected), `step ${i}: no line with "${expected}"\n${report}`);
  });
  assert.equal(r.code, 0, `the script ended with ${String(r.code)}\n${report}`);

  // What the steps printed is the capture's: the agent got every message acknowledged, and the
  // API's sensor, findings and range report hold the replayed packets at their own (2010) time.
  const all = steps.map((_, i) => out(i)).join('\n');
  assert.match(all, /"acknowledged":true/, 'the agent stopped with everything acknowledged');
  const manifest = readTsv(readFileSync(join(SHARED_PCAPS, 'MANIFEST.tsv'), 'utf8')).find((row) => row['file'] === capture!.split('/').pop());
  assert.ok(manifest, `${capture!} is not in MANIFEST.tsv`);
  const packets = Number(manifest['packets']);
  const api = out(steps.findIndex((s) => s.code.includes('/api/reports/demo')));
  assert.match(api, /"id": "demo"/);
  assert.match(api, /"state": "finished"/);
  assert.match(api, new RegExp(`"packets": ${packets}\\b`), `the range report around the capture's own time holds its ${packets} packets`);

  // The scratch directory is where the README said, with what each step put there.
  const scratch = readdirSync(sandbox.tmp);
  assert.equal(scratch.length, 1, `one mktemp directory under TMPDIR: ${scratch.join(', ')}`);
  for (const made of ['nats', 'agent', 'collector']) assert.ok(existsSync(join(sandbox.tmp, scratch[0]!, made)), `$WORK/${made}`);

  // Step 6 stopped everything it started: no process still names $WORK (the collector under npx included).
  const left = spawnSync('pgrep', ['-fa', join(sandbox.tmp, scratch[0]!)], { encoding: 'utf8' });
  assert.equal(left.stdout, '', `still running after step 6:\n${left.stdout}`);
});
