#!/usr/bin/env node
// lp-gateway's launcher (`npx lp-gateway ...`, `npm start`): runs src/cli.ts through tsx in a child
// Node process with the gateway's Node flags (node-flags.js), with this project's own tsx, from any
// working directory. Arguments, stdio, signals and the exit status pass through unchanged.
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GATEWAY_NODE_FLAGS } from './node-flags.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cli = join(root, 'src', 'cli.ts');
// Resolved from this file, so it is the project's tsx whatever the working directory.
const tsx = import.meta.resolve('tsx');

const child = spawn(
  process.execPath,
  [...GATEWAY_NODE_FLAGS, '--import', tsx, cli, ...process.argv.slice(2)],
  {
    stdio: 'inherit',
  },
);

const forwarded = ['SIGINT', 'SIGTERM', 'SIGHUP'];
for (const signal of forwarded) {
  process.on(signal, () => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  });
}

child.on('error', (err) => {
  console.error(`lp-gateway: cannot start ${cli}: ${err.message}`);
  process.exit(1);
});

child.on('exit', (code, signal) => {
  if (signal !== null) {
    // Die of the same signal, so the caller sees what happened to the gateway.
    for (const s of forwarded) process.removeAllListeners(s);
    process.kill(process.pid, signal);
    return;
  }
  process.exit(code ?? 1);
});
