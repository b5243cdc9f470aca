#!/usr/bin/env node
// `npm run mutate [-- GROUP...]`: runs Stryker once per group of stryker.config.mjs (all groups by
// default), then merges the groups' JSON reports into reports/mutation/mutation.json and prints the
// mutation score of each file: killed + timed out over all mutants but the ignored ones.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
process.chdir(root);
const { groups } = await import(join(root, 'stryker.config.mjs'));
const wanted = process.argv.slice(2);
for (const g of wanted) if (!groups.includes(g)) { console.error(`mutate: no group ${g} (groups: ${groups.join(', ')})`); process.exit(2); }
const run = wanted.length > 0 ? wanted : groups;
const suffix = process.env['MUTATE'] === 'all' ? '-all' : '';

// The sandbox sits two levels below the project (.stryker-tmp/sandbox-X), so the tests' ../shared
// must be found beside .stryker-tmp/.
mkdirSync('.stryker-tmp', { recursive: true });
if (!existsSync('.stryker-tmp/shared')) symlinkSync('../../shared', '.stryker-tmp/shared');
mkdirSync('reports/mutation', { recursive: true });

const started = Date.now();
let failed = false;
for (const group of run) {
  const t0 = Date.now();
  console.log(`\n=== mutate: group ${group} ===`);
  const r = spawnSync('npx', ['stryker', 'run', 'stryker.config.mjs'], { stdio: 'inherit', env: { ...process.env, MUTATE_GROUP: group } });
  console.log(`=== mutate: group ${group} took ${((Date.now() - t0) / 60000).toFixed(1)} min (exit ${r.status}) ===`);
  if (r.status !== 0) failed = true;
}

// One report over every group that has run (a group not run this time keeps its last report).
const merged = { schemaVersion: '2', thresholds: { high: 90, low: 80 }, files: {} };
for (const group of groups) {
  const path = `reports/mutation/${group}${suffix}.json`;
  if (!existsSync(path)) continue;
  const report = JSON.parse(readFileSync(path, 'utf8'));
  merged.schemaVersion = report.schemaVersion;
  Object.assign(merged.files, report.files);
}
writeFileSync('reports/mutation/mutation.json', JSON.stringify(merged));

const DETECTED = new Set(['Killed', 'Timeout']);
console.log('\nmutation score per file (killed + timed out / all but ignored):');
for (const [file, { mutants }] of Object.entries(merged.files).sort()) {
  const counted = mutants.filter((m) => m.status !== 'Ignored');
  const detected = counted.filter((m) => DETECTED.has(m.status)).length;
  const survived = counted.filter((m) => m.status === 'Survived').length;
  const uncovered = counted.filter((m) => m.status === 'NoCoverage').length;
  const score = counted.length ? (100 * detected) / counted.length : 100;
  console.log(`  ${score.toFixed(1).padStart(5)} %  ${file}  (${detected}/${counted.length}; survived ${survived}, no coverage ${uncovered})`);
}
console.log(`\nmutate: ${run.join(', ')} in ${((Date.now() - started) / 60000).toFixed(1)} min; report reports/mutation/mutation.json`);
process.exit(failed ? 1 : 0);
