/**
 * The upload page as a user meets it, on a real collector (child process,
 * SQLite, a private nats-server) allowing 2 uploads a minute, in headless
 * Chromium (skipped when /usr/bin/chromium is absent; .ci/run installs it):
 * a wrong file refused without using up the quota, a capture cut short
 * analyzed with its warning on the page, a curl-style upload without a name
 * told how to name one, and the 429 said once, without a full progress bar.
 * Screenshots in test-artifacts/upload-*.png.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { HEALTH_SCOPE } from '../common/report.js';
import { escapeHtml } from '../common/report-html.js';
import { deferrer, http, startCollector } from './helpers/collector-process.js';
import { startNatsServer } from './helpers/nats-server.js';
import { BAD_PCAPS, REPO_ROOT, SHARED_PCAPS } from './helpers/paths.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = join(REPO_ROOT, 'test-artifacts');
const TRUNCATED = join(BAD_PCAPS, 'truncated_mid_record.pcap');
const HANDSHAKE = join(SHARED_PCAPS, 'ppa_tcp_handshake.pcapng');
const noChromium = existsSync(CHROMIUM) ? false : `${CHROMIUM} is absent (apt-get install chromium; .ci/run installs it)`;

/** Console errors and page errors of one page (a refused upload's failed load is expected and left out by the caller). */
function watch(page: Page): string[] {
  const problems: string[] = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()} (${page.url()})`); });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message} (${page.url()})`));
  return problems;
}

test('the upload page: refusals keep the quota, warnings shown, a nameless upload explained, the wait said once', { skip: noChromium, timeout: 90_000 }, async (t) => {
  const defer = deferrer(t);
  const work = mkdtempSync(join(tmpdir(), 'pa-upload-page-'));
  defer(() => rmSync(work, { recursive: true, force: true }));
  const nats = await startNatsServer();
  defer(() => nats.close());
  const collector = await startCollector(defer, nats.url, join(work, 'collector'), { PCAP_ANALYZER_COLLECTOR_UPLOADS_PER_MINUTE: '2' });
  const base = collector.base;

  // Pages with a health score say what it rates (server-rendered, escaped).
  assert.ok((await http(`${base}/`)).text.includes(escapeHtml(HEALTH_SCOPE)), 'the dashboard names the health score\'s scope');

  mkdirSync(ARTIFACTS, { recursive: true });
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'] });
  defer(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const problems = watch(page);
  const uploadFile = async (file: string): Promise<void> => {
    await page.goto(`${base}/upload`);
    await page.setInputFiles('#file', file);
    await page.click('#upload-button');
  };

  // 1. A wrong file: refused with the API's reason, the progress bar gone.
  const text = join(work, 'notes.txt');
  writeFileSync(text, 'hello, this is text\n'.repeat(10));
  await uploadFile(text);
  await page.waitForSelector('#upload-error:not([hidden])');
  assert.match(await page.textContent('#upload-error') ?? '', /not a capture file.*415.*neither a pcap/);
  assert.equal(await page.isHidden('#upload-status'), true, 'no progress bar left at 100 % for a refused upload');

  // 2. A capture cut short: accepted (the refusal above took none of the 2 uploads), analyzed, its warning on the page.
  await uploadFile(TRUNCATED);
  await page.waitForSelector('#capture[data-status="done"]', { timeout: 30_000 });
  assert.equal(await page.isVisible('#capture-warnings'), true, 'the analysis warnings are shown');
  assert.match(await page.textContent('#capture-warnings') ?? '', /^Warning.*input is cut short: the record at byte offset \d+ is incomplete; analyzed the \d+ complete packets? before it/);
  assert.match(await page.textContent('#capture dl') ?? '', /truncated_mid_record\.pcap/);
  await page.screenshot({ path: join(ARTIFACTS, 'upload-warnings.png'), fullPage: true });

  // 3. curl --data-binary @file without ?name=: accepted (the second upload), and its page says how to name one.
  const curl = await fetch(`${base}/api/captures`, { method: 'POST', body: new Uint8Array(readFileSync(HANDSHAKE)), headers: { 'content-type': 'application/octet-stream' } });
  assert.equal(curl.status, 202, await curl.clone().text());
  const { id } = await curl.json() as { id: string };
  await page.goto(`${base}/captures/${id}`);
  await page.waitForSelector('#capture[data-status="done"]', { timeout: 30_000 });
  assert.match(await page.textContent('#capture dl') ?? '', /File\s*no name given \(name an upload with \?name=FILE, X-Filename or Content-Disposition\)/);
  assert.equal(await page.isHidden('#capture-warnings'), true, 'no warnings, no box');

  // 4. A third upload in the minute: 429, the wait said once, no progress bar.
  await uploadFile(HANDSHAKE);
  await page.waitForSelector('#upload-error:not([hidden])');
  const refusal = await page.textContent('#upload-error') ?? '';
  assert.match(refusal, /^Refused for now \(HTTP 429, too many uploads\): at most 2 uploads per minute per client; retry in \d+ s\.$/);
  assert.equal(refusal.match(/retry in/gi)?.length, 1, `the wait said once: ${refusal}`);
  assert.equal(await page.isHidden('#upload-status'), true);
  await page.screenshot({ path: join(ARTIFACTS, 'upload-429.png'), fullPage: true });
  // The browser logs the refused requests (415, 429) itself; nothing else.
  assert.deepEqual(problems.filter((p) => !/status of (415|429)/.test(p)), []);
});
