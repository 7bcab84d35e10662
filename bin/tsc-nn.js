#!/usr/bin/env node
// Entry point: runs the compiled CLI (npm ci builds it through the `prepare` script).
const path = require('node:path');
const fs = require('node:fs');
const cli = path.join(__dirname, '..', 'dist', 'tools', 'cli.js');
if (!fs.existsSync(cli)) {
  console.error('tsc-nn: not built yet; run `npm run build` in ' + path.dirname(__dirname));
  process.exit(1);
}
// Source maps make traced nodes point at the TypeScript lines of built-in models.
process.setSourceMapsEnabled(true);
require(cli).main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (e) => { console.error('tsc-nn: internal error (please report it):', e); process.exitCode = 2; },
);
