import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { SpillList } from '../agent/analyze/spill-list.js';

test('a spill list keeps order across the move to disk, multi-byte text included, and cleans up', () => {
  const list = new SpillList<{ i: number; s: string }>(10);
  const items = Array.from({ length: 50_000 }, (_, i) => ({ i, s: `window ${i} → ${'é'.repeat(i % 7)} ✓` }));
  for (const item of items.slice(0, 10)) list.push(item);
  assert.equal(list.spilled, false);
  for (const item of items.slice(10)) list.push(item);
  assert.equal(list.spilled, true);
  assert.equal(list.length, 50_000);
  assert.deepEqual([...list], items, 'read back whole and in order (lines cross the 1 MiB read pieces)');
  assert.deepEqual([...list].length, 50_000, 'iterable more than once');
  const file = (list as unknown as { file: string }).file;
  list.dispose();
  assert.equal(existsSync(file), false);
});

test('a small spill list stays in memory', () => {
  const list = new SpillList<number>(10);
  for (let i = 0; i < 10; i++) list.push(i);
  assert.equal(list.spilled, false);
  assert.deepEqual([...list], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  list.dispose();
});
