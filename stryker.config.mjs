// Mutation testing (npm run mutate; not part of npm test). Stryker copies the project to a sandbox
// under .stryker-tmp/, puts every mutant of the `mutate` files into the TypeScript sources at once,
// compiles them with tsc (buildCommand) and runs the compiled test files with its tap runner, one
// `node <file>` per test file (node:test prints TAP when its output is not a terminal). A mutant is
// switched on by the __STRYKER_ACTIVE_MUTANT__ environment variable, which the collector, agent and
// analysis children the tests start inherit; scripts/stryker-coverage-hook.cjs adds their coverage to
// the test process's, so each mutant runs only the test files that reach it, fastest first.
// `MUTATE=all npm run mutate` widens the run to the whole of collector/, agent/sensor/, agent/publish/,
// agent/flow/ and common/config.ts (hours on a 2-core machine; incremental, so it can be resumed).

/** The modules the issue names, and the named lines of two analysis modules. */
const FOCUS = [
  'collector/http/auth.ts',
  'collector/uploads/routes.ts',
  'agent/publish/spool.ts',
  'agent/flow/flow-table.ts',
  'agent/sensor/capture-worker.ts',
  'agent/window/window-engine.ts:71',
  'agent/analyzers/tcp.ts:352-354',
];
const WIDE = [
  'collector/**/*.ts',
  'agent/sensor/**/*.ts',
  'agent/publish/**/*.ts',
  'agent/flow/**/*.ts',
  'common/config.ts',
  'agent/window/window-engine.ts:71',
  'agent/analyzers/tcp.ts:352-354',
];

/** Fastest first: a mutant stops at its first failing file. */
const TEST_FILES = [
  'auth', 'config', 'flow-table', 'agent-metrics', 'reload', 'spool', 'publish', 'analyzers-tcp', 'uploads',
  'store', 'collector-web', 'collector', 'agent', 'cli',
].map((name) => `dist/test/${name}.test.js`);

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  packageManager: 'npm',
  plugins: ['@stryker-mutator/tap-runner'],
  testRunner: 'tap',
  tap: {
    testFiles: TEST_FILES,
    nodeArgs: ['--require', './scripts/stryker-coverage-hook.cjs', '--require', '{{hookFile}}', '{{testFile}}'],
    forceBail: true,
  },
  coverageAnalysis: 'perTest',
  buildCommand: 'npx tsc -p tsconfig.json',
  // Mutated files cannot type-check (every mutant is in them at once); tsc still emits them.
  disableTypeChecks: '{agent,collector,common,cli}/**/*.ts',
  mutate: process.env['MUTATE'] === 'all' ? WIDE : FOCUS,
  ignorePatterns: ['dist', 'reports', 'test-artifacts', 'data', 'bench-results.json', '*.log'],
  tempDirName: '.stryker-tmp',
  incremental: true,
  incrementalFile: 'reports/stryker-incremental.json',
  reporters: ['json', 'clear-text', 'progress'],
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  concurrency: 2,
  timeoutMS: 20000,
  thresholds: { high: 90, low: 80, break: null },
};
