// Mutation testing (npm run mutate, scripts/mutate.mjs; not part of npm test). Stryker copies the
// project to a sandbox under .stryker-tmp/, puts every mutant of the `mutate` files into the
// TypeScript sources at once, compiles them with tsc (buildCommand) and runs the compiled test files
// with its tap runner, one `node <file>` per test file (node:test prints TAP when its output is not
// a terminal). A mutant is switched on by the __STRYKER_ACTIVE_MUTANT__ environment variable, which
// the collector, agent and analysis children the tests start inherit; scripts/stryker-coverage-hook.cjs
// adds their coverage to the test process's, so each mutant runs only the test files that reach it.
//
// The modules are mutated in groups (MUTATE_GROUP), each with the test files that exercise it, so a
// surviving mutant costs its own group's tests only. MUTATE=all widens each group to the whole of
// collector/, agent/sensor/, agent/publish/, agent/flow/ and common/config.ts (hours on 2 cores;
// incremental, so an interrupted run resumes where it stopped).

const wide = process.env['MUTATE'] === 'all';

/** Per group: the files to mutate (the modules; `wide` adds the rest) and the test files, fastest first. */
const GROUPS = {
  collector: {
    mutate: wide ? ['collector/**/*.ts'] : ['collector/http/auth.ts', 'collector/uploads/routes.ts'],
    tests: ['auth', 'upload-routes', 'uploads', ...(wide ? ['collector-sweep', 'store', 'collector-web', 'collector'] : [])],
  },
  publish: {
    mutate: wide ? ['agent/publish/**/*.ts'] : ['agent/publish/spool.ts'],
    tests: ['spool', 'publish', ...(wide ? ['agent'] : [])],
  },
  flow: {
    mutate: wide ? ['agent/flow/**/*.ts', 'agent/window/window-engine.ts', 'agent/analyzers/tcp.ts'] : ['agent/flow/flow-table.ts', 'agent/window/window-engine.ts', 'agent/analyzers/tcp.ts'],
    tests: ['flow-table', 'window-counters', 'tcp-vectors', 'analyzers-tcp', ...(wide ? ['reader', 'analyzers-traffic'] : [])],
  },
  sensor: {
    mutate: wide ? ['agent/sensor/**/*.ts'] : ['agent/sensor/capture-worker.ts'],
    tests: ['agent-metrics', 'reload', 'agent-replay', 'agent', ...(wide ? ['cli'] : [])],
  },
  ...(wide ? { config: { mutate: ['common/config.ts'], tests: ['config', 'cli'] } } : {}),
};

const group = process.env['MUTATE_GROUP'] ?? 'collector';
const chosen = GROUPS[group];
if (!chosen) throw new Error(`MUTATE_GROUP ${group}: not one of ${Object.keys(GROUPS).join(', ')}`);
// MUTATE_TESTS=a,b: only these test files (a quicker, lower bound on the score while iterating).
if (process.env['MUTATE_TESTS']) chosen.tests = process.env['MUTATE_TESTS'].split(',');
// MUTATE_FILES=a.ts,b.ts: only these of the group's files (one module's score without the others' mutants).
if (process.env['MUTATE_FILES']) chosen.mutate = process.env['MUTATE_FILES'].split(',');

export const groups = Object.keys(GROUPS);

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  packageManager: 'npm',
  plugins: ['@stryker-mutator/tap-runner'],
  testRunner: 'tap',
  tap: {
    testFiles: chosen.tests.map((name) => `dist/test/${name}.test.js`),
    nodeArgs: ['--require', './scripts/stryker-coverage-hook.cjs', '--require', '{{hookFile}}', '{{testFile}}'],
    forceBail: true,
  },
  coverageAnalysis: 'perTest',
  buildCommand: 'npx tsc -p tsconfig.json',
  // Mutated files cannot type-check (every mutant is in them at once); tsc still emits them.
  disableTypeChecks: '{agent,collector,common,cli}/**/*.ts',
  mutate: chosen.mutate,
  ignorePatterns: ['dist', 'reports', 'test-artifacts', 'data', 'bench-results.json', '*.log'],
  tempDirName: '.stryker-tmp',
  incremental: true,
  incrementalFile: `reports/mutation/${group}${wide ? '-all' : ''}.incremental.json`,
  reporters: ['json', 'clear-text', 'progress'],
  jsonReporter: { fileName: `reports/mutation/${group}${wide ? '-all' : ''}.json` },
  // MUTATE_CONCURRENCY=1 on a machine shared with other work.
  concurrency: Number(process.env['MUTATE_CONCURRENCY'] ?? 2),
  // MUTATE_TIMEOUT_MS: the slack over a test file's own time before a mutant counts as timed out (an
  // endless loop); 20 s suits the process-starting suites, a few seconds the in-process ones.
  timeoutMS: Number(process.env['MUTATE_TIMEOUT_MS'] ?? 20000),
  dryRunTimeoutMinutes: 20,
  thresholds: { high: 90, low: 80, break: null },
};
