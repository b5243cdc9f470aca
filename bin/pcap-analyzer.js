#!/usr/bin/env node
// Entry point of the `pcap-analyzer` command: runs the compiled CLI (npm install builds it).
import('../dist/cli/main.js').then(
  (cli) => cli.run(),
  (err) => {
    if (err && err.code === 'ERR_MODULE_NOT_FOUND') {
      process.stderr.write('pcap-analyzer: not built yet: run `npm install` (or `npm run build`) in the project folder\n');
      process.exit(2);
    }
    throw err;
  },
);
