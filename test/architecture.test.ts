/**
 * Imports follow the packet: common <- capture <- decode <- core (packet time,
 * types the window stage and analyzers share) <- flow <- analyzers
 * <- window <- pipeline <- analyze / publish <- sensor <- collector <- cli.
 * A module imports only from its own stage or earlier ones; the collector
 * uses the analysis through its one public entry point (agent/index.ts); no
 * module takes part in an import cycle. Read from the TypeScript sources.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { REPO_ROOT } from './helpers/paths.js';

/** Stage of a source file (path relative to the repository, without extension), lower runs earlier. */
const STAGES: ReadonlyArray<readonly [RegExp, number, string]> = [
  [/^common\//, 0, 'common'],
  [/^agent\/capture\//, 1, 'capture'],
  [/^agent\/decode\//, 2, 'decode'],
  [/^agent\/core\//, 2.5, 'core'],
  [/^agent\/flow\//, 3, 'flow'],
  [/^agent\/analyzers\//, 4, 'analyzers'],
  [/^agent\/window\//, 5, 'window'],
  [/^agent\/pipeline$/, 6, 'pipeline'],
  [/^agent\/shard\//, 6.5, 'shard'],
  [/^agent\/analyze\//, 7, 'analyze'],
  [/^agent\/publish\//, 7, 'publish'],
  [/^agent\/index$/, 8, 'agent entry'],
  [/^agent\/(sensor|tools)\//, 8, 'sensor'],
  [/^collector\//, 9, 'collector'],
  [/^cli\//, 10, 'cli'],
];

function stageOf(path: string): readonly [number, string] {
  for (const [re, rank, name] of STAGES) if (re.test(path)) return [rank, name];
  throw new Error(`${path}: no stage (add it to test/architecture.test.ts)`);
}

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** Relative imports of a file (static, dynamic and type-only), as repository paths without extension. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/(?:from|import)\s*\(?\s*'(\.[^']+)'/g)) {
    out.push(relative(REPO_ROOT, resolve(dirname(file), m[1]!)).replace(/\.js$/, ''));
  }
  return out;
}

const graph = new Map<string, string[]>();
for (const top of ['cli', 'agent', 'collector', 'common']) {
  for (const file of sources(join(REPO_ROOT, top))) graph.set(relative(REPO_ROOT, file).replace(/\.ts$/, ''), importsOf(file));
}

test('imports run one way: no module imports a later stage, nor a sibling stage', () => {
  const wrong: string[] = [];
  for (const [from, targets] of graph) {
    const [rank, stage] = stageOf(from);
    for (const to of targets) {
      const [toRank, toStage] = stageOf(to);
      if (toRank > rank || (toRank === rank && toStage !== stage)) wrong.push(`${from} (${stage}) imports ${to} (${toStage})`);
    }
  }
  assert.deepEqual(wrong, []);
});

test('the collector uses the analysis only through agent/index.ts', () => {
  const wrong: string[] = [];
  for (const [from, targets] of graph) {
    if (!from.startsWith('collector/')) continue;
    for (const to of targets) if (to.startsWith('agent/') && to !== 'agent/index') wrong.push(`${from} imports ${to}`);
  }
  assert.deepEqual(wrong, []);
});

test('no import cycles', () => {
  const cycles: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (m: string): void => {
    state.set(m, 'open');
    stack.push(m);
    for (const to of graph.get(m) ?? []) {
      if (state.get(to) === 'open') cycles.push([...stack.slice(stack.indexOf(to)), to].join(' -> '));
      else if (!state.has(to)) visit(to);
    }
    stack.pop();
    state.set(m, 'done');
  };
  for (const m of graph.keys()) if (!state.has(m)) visit(m);
  assert.deepEqual(cycles, []);
});
