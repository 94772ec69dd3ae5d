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

// From service version 2026-04-06 Azure signs two more lines in a user delegation SAS — the signed request headers
// and query parameters (srh, srq) — after the encryption scope, and so do the official SDKs (the vectors in
// tests/fixtures/storage.json). Azurite 3.35.0 leaves them out for every version from 2025-07-05 and refuses every
// correct link of a later version, so its check gets the two lines, empty as a read link's are (a SAS that binds
// headers or parameters would still be judged without them). Everything else Azurite checks as it is.
const udk = require('azurite/dist/src/blob/authentication/IBlobSASSignatureValues.js');
const azuritesUdkSignature = udk.generateBlobSASSignatureWithUDK;
udk.generateBlobSASSignatureWithUDK = (values, resource, account, key) => {
  if (!(values.version >= '2026-04-06')) {
    return azuritesUdkSignature(values, resource, account, key);
  }
  // Azurite joins the fields with "\n": two more empty lines after the encryption scope's.
  const encryptionScope = `${values.encryptionScope ?? ''}\n\n`;
  return azuritesUdkSignature({ ...values, encryptionScope }, resource, account, key);
};

require('azurite/dist/src/blob/main.js');
