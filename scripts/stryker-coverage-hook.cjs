// Stryker's tap runner learns which test file covers which mutant from the test process alone; the
// collector, the agent, its capture worker and the analysis children run in processes and threads
// the test starts. During Stryker's dry run this hook, preloaded in the test process (stryker.config.mjs
// tap.nodeArgs), passes itself on through NODE_OPTIONS; every descendant writes the mutants it ran
// into a folder at exit, and the test process adds them to its own coverage before Stryker's hook
// reports it. Mutants reach descendants through the environment.
//
// Stryker ends a test process at its first failing test (tap.forceBail) with SIGTERM: its `after`
// hooks never run, so the collectors, agents and nats-servers the test started would be left
// running, one set per killed mutant. At exit the test process SIGKILLs every process it started.
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { threadId } = require('node:worker_threads');

const DIR_VARIABLE = 'STRYKER_DESCENDANT_COVERAGE_DIR';
const namespace = process.env.STRYKER_NAMESPACE || '__stryker__';

/** The mutant ids this thread ran, with hit counts. */
function ownCoverage() {
  const coverage = globalThis[namespace] && globalThis[namespace].mutantCoverage;
  if (!coverage) return {};
  const hits = { ...coverage.static };
  for (const perTest of Object.values(coverage.perTest || {})) {
    for (const [id, count] of Object.entries(perTest)) hits[id] = (hits[id] || 0) + count;
  }
  return hits;
}

/** Pids of this process's descendants, read from /proc (children before grandchildren). */
function descendants(root) {
  const children = new Map();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      // pid (comm) state ppid ...: comm may hold blanks and parentheses, so split after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push(Number(name));
    } catch {
      // The process ended while we looked.
    }
  }
  const out = [];
  for (let i = 0, queue = [root]; i < queue.length; i++) {
    for (const child of children.get(queue[i]) || []) { out.push(child); queue.push(child); }
  }
  return out;
}

const isTestProcess = process.env.STRYKER_HOOK_TEST_PROCESS === undefined;
if (isTestProcess) {
  process.env.STRYKER_HOOK_TEST_PROCESS = String(process.pid);
  process.on('exit', () => {
    for (const pid of descendants(process.pid)) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
    }
  });
}

if (process.env.STRYKER_DRY_RUN === 'true') {
  const inherited = process.env[DIR_VARIABLE];
  if (isTestProcess) {
    // The test process: collect what the descendants write.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stryker-descendants-'));
    process.env[DIR_VARIABLE] = dir;
    process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS || ''} --require ${JSON.stringify(__filename)}`.trim();
    // Registered before Stryker's hook (loaded after this one), so it runs first at exit.
    process.on('exit', () => {
      const ns = globalThis[namespace] || (globalThis[namespace] = {});
      const coverage = ns.mutantCoverage || (ns.mutantCoverage = { static: {}, perTest: {} });
      coverage.static = coverage.static || {};
      for (const name of fs.readdirSync(dir)) {
        try {
          const hits = JSON.parse(fs.readFileSync(path.join(dir, name), 'utf8'));
          for (const [id, count] of Object.entries(hits)) coverage.static[id] = (coverage.static[id] || 0) + count;
        } catch {
          // A descendant killed mid-write: its coverage is lost, the mutants it ran count as not covered.
        }
      }
      fs.rmSync(dir, { recursive: true, force: true });
    });
  } else {
    process.on('exit', () => {
      const hits = ownCoverage();
      if (Object.keys(hits).length === 0) return;
      try {
        fs.writeFileSync(path.join(inherited, `${process.pid}-${threadId}.json`), JSON.stringify(hits));
      } catch {
        // The test process already exited and removed the folder.
      }
    });
  }
}
