// Azurite's Blob service on 127.0.0.1 for the handler's tests (tests/support/azurite.rs starts one per test).
//
// Usage: node start.js PORT LOCATION [memory|disk]. Azurite keeps blobs in memory (on disk under LOCATION with
// `disk`), accepts any API version and unknown headers, and sends no telemetry. With AZURITE_CERT and AZURITE_KEY
// (PEM files) it serves HTTPS and also takes Microsoft Entra ID bearer tokens (`--oauth basic`). It prints
// "Azurite Blob service successfully listens on http://127.0.0.1:PORT" once ready, then one access-log line per
// request (which the test support counts), and exits when its stdin closes: the test process holds it open, so the
// server never outlives the test, however the test ends.
'use strict';

const [port, location, persistence] = process.argv.slice(2);
if (!port || !location) {
  console.error('usage: node start.js PORT LOCATION [disk]');
  process.exit(2);
}
process.argv = [
  process.argv[0],
  'azurite-blob',
  '--blobHost', '127.0.0.1',
  '--blobPort', port,
  '--skipApiVersionCheck',
  '--loose',
  '--disableTelemetry',
  ...(persistence === 'disk' ? ['--location', location] : ['--inMemoryPersistence']),
  ...(process.env.AZURITE_CERT
    ? ['--cert', process.env.AZURITE_CERT, '--key', process.env.AZURITE_KEY, '--oauth', 'basic']
    : []),
];
// Whatever Azurite writes beside its data stays in the test's folder.
process.chdir(location);

const shutdown = () => process.exit(0);
process.stdin.on('end', shutdown);
process.stdin.on('error', shutdown);
process.stdin.resume();

require('azurite/dist/src/blob/main.js');
