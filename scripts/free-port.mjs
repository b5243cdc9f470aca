#!/usr/bin/env node
/**
 * Prints a TCP port that is free on 127.0.0.1 (the kernel picks it), for the
 * README's local walkthrough: `NATS_PORT=$(node scripts/free-port.mjs)`, so a
 * walkthrough never collides with a NATS, collector or agent already running.
 * The port is released before this exits; another program could take it in
 * between, which on a workstation is unlikely enough for a walkthrough.
 */
import { createServer } from 'node:net';

const server = createServer();
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  server.close(() => {
    if (address === null || typeof address === 'string') {
      process.stderr.write('free-port: no TCP address from the kernel; pick a port by hand\n');
      process.exit(2);
    }
    process.stdout.write(`${address.port}\n`);
  });
});
server.on('error', (err) => {
  process.stderr.write(`free-port: cannot listen on 127.0.0.1: ${err.message}; pick a port by hand\n`);
  process.exit(2);
});
