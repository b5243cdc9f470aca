import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createLogger, redactAddresses } from '../common/logging.js';

function capture(): { lines: () => Array<Record<string, unknown>>; stream: Writable } {
  const chunks: string[] = [];
  const stream = new Writable({ write(chunk: Buffer, _enc, cb) { chunks.push(chunk.toString()); cb(); } });
  return { stream, lines: () => chunks.join('').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>) };
}

test('redaction replaces IPv4, IPv6 and MAC addresses but leaves times and numbers', () => {
  assert.equal(redactAddresses('10.1.2.3:443 -> [2001:db8::7]:53 via aa:bb:cc:dd:ee:ff at 12:30:45, 3.5 s, fe80::1%eth0'),
    '[ip]:443 -> [[ip]]:53 via [mac] at 12:30:45, 3.5 s, [ip]%eth0');
  assert.equal(redactAddresses('version 1.2.3 took 0.25 s'), 'version 1.2.3 took 0.25 s');
});

test('logging.redact: true scrubs messages, fields and errors; false leaves them', () => {
  const on = capture();
  const log = createLogger({ level: 'info', redact: true }, { destination: on.stream });
  log.info({ peer: '192.168.7.9', nested: { mac: '00:11:22:33:44:55' }, count: 3 }, 'flow from %s', '10.0.0.1');
  log.warn({ err: new Error('connect to 172.16.0.4 refused') }, 'publish failed');
  const [first, second] = on.lines();
  assert.equal(first!['msg'], 'flow from [ip]');
  assert.equal(first!['peer'], '[ip]');
  assert.deepEqual(first!['nested'], { mac: '[mac]' });
  assert.equal(first!['count'], 3);
  assert.doesNotMatch(JSON.stringify(second), /172\.16/);
  assert.match(JSON.stringify(second), /connect to \[ip\] refused/);
  const off = capture();
  createLogger({ level: 'info', redact: false }, { destination: off.stream }).info({ peer: '192.168.7.9' }, 'x');
  assert.equal(off.lines()[0]!['peer'], '192.168.7.9');
});
