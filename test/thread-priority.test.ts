/**
 * lowerThreadPriority (live capture's analysis workers): lowers the nice
 * value of the calling thread only, as /proc shows it, and leaves the
 * process's other threads (the capture thread) where they were.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readlinkSync } from 'node:fs';
import { Worker } from 'node:worker_threads';

/** A thread's nice value from /proc/<pid>/task/<tid>/stat (field 19). */
function niceOf(tid: number): number {
  const stat = readFileSync(`/proc/${process.pid}/task/${tid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
}

const ownTid = (): number => Number(/task\/(\d+)$/.exec(readlinkSync('/proc/thread-self'))![1]);

test('lowerThreadPriority: the calling thread runs 10 nice levels lower, the main thread does not change', { skip: process.platform !== 'linux' }, async () => {
  const mainBefore = niceOf(ownTid());
  const module = new URL('../agent/core/thread-limits.js', import.meta.url).href;
  const worker = new Worker(`
    const { parentPort } = require('node:worker_threads');
    const { readlinkSync } = require('node:fs');
    import(${JSON.stringify(module)}).then(({ lowerThreadPriority }) => {
      const ok = lowerThreadPriority(10);
      parentPort.postMessage({ ok, tid: Number(/task\\/(\\d+)$/.exec(readlinkSync('/proc/thread-self'))[1]) });
      setTimeout(() => {}, 2000);
    });
  `, { eval: true });
  try {
    const { ok, tid } = await new Promise<{ ok: boolean; tid: number }>((resolve, reject) => { worker.once('message', resolve); worker.once('error', reject); });
    assert.equal(ok, true);
    assert.notEqual(tid, ownTid());
    assert.equal(niceOf(tid), Math.min(19, mainBefore + 10));
    assert.equal(niceOf(ownTid()), mainBefore);
  } finally {
    await worker.terminate();
  }
});
