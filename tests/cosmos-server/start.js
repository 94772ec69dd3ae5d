'use strict';
// A Cosmos DB NoSQL API server for the handler's tests: @vercel/cosmosdb-server@1.0.1 over plain HTTP on
// 127.0.0.1, with the gaps bridged that azure_data_cosmos 1.0.0 runs into (numbered below).
// Usage: node start.js [PORT]   (or COSMOS_PORT=...; 0 = pick a free port)
// Prints exactly one stdout line "listening 127.0.0.1:PORT" once ready. Everything is kept in memory.
// COSMOS_SERVER_DEBUG=1 logs "METHOD URL -> STATUS" to stderr, one line per request (tests count them).
// COSMOS_MULTI_REGION_WRITES=1 advertises an account that takes writes in two regions.
const { AsyncLocalStorage } = require('async_hooks');
const LIB = '@vercel/cosmosdb-server/lib/';
const { createHttpServer } = require('@vercel/cosmosdb-server');
const routes = require(LIB + 'routes');
const Documents = require(LIB + 'account/documents').default;
const pkHeader = require(LIB + 'utils/get-partition-from-header');
const H = (name) => require(LIB + 'handler/' + name).default;
const readMeta = H('read-meta');
const readPkRanges = H('read-partition-key-ranges');
const readDocument = H('read-document');
const queryDocuments = H('query-documents');
const documentWrites = [H('create-document'), H('replace-document'), H('upsert-document')];
// Cosmos DB refuses items over 2 MB with 413; the handler must quarantine such events.
const MAX_ITEM_BYTES = 2 * 1024 * 1024;

const HOST = '127.0.0.1';

// Faults for the tests' fault campaign, off by default. POST /_test/faults with rates in [0, 1] for
// {"throttle": 429, "unavailable": 503, "timeout": 408, "lostResponse": the write happens, the answer is lost};
// GET /_test/faults returns the rates and how many of each were injected.
const faults = { rates: { throttle: 0, unavailable: 0, timeout: 0, lostResponse: 0 }, injected: {} };
const FAULT_STATUS = { throttle: [429, 'TooManyRequests'], unavailable: [503, 'ServiceUnavailable'], timeout: [408, 'RequestTimeout'] };
async function faultsHandler(account, req, res) {
  if (req.method === 'POST') {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    Object.assign(faults.rates, JSON.parse(Buffer.concat(chunks).toString() || '{}'));
  }
  return { rates: faults.rates, injected: faults.injected };
}
function injectFault(req, res) {
  for (const [kind, [status, code]] of Object.entries(FAULT_STATUS)) {
    if (Math.random() < faults.rates[kind]) {
      faults.injected[kind] = (faults.injected[kind] || 0) + 1;
      req.resume();
      res.statusCode = status;
      if (status === 429) res.setHeader('x-ms-retry-after-ms', '20');
      return { code, message: `injected ${kind}` };
    }
  }
  return undefined;
}
const PORT = Number(process.argv[2] || process.env.COSMOS_PORT || 0);
const DEBUG = !!process.env.COSMOS_SERVER_DEBUG;
const MULTI_REGION_WRITES = !!process.env.COSMOS_MULTI_REGION_WRITES;
const NOT_FOUND = { code: 'NotFound', message: 'Entity with the specified id does not exist in the system.' };

// Parsed partition-key value of the request (undefined if absent/unparsable).
function requestPk(req, fallback) {
  const raw = pkHeader.default(req);
  if (!raw || raw === '[{}]') return undefined;
  try { return pkHeader.parsePartitionKey(raw, fallback); } catch (_) { return undefined; }
}

// Gap 6 (found while probing): the server ignores x-ms-documentdb-partitionkey on
// queries, so a partition-scoped query would see every partition. Scope it here.
const als = new AsyncLocalStorage();
const origQuery = Documents.prototype.query;
Documents.prototype.query = function (params, opts) {
  const scope = als.getStore();
  if (!scope || scope.pk === undefined) return origQuery.call(this, params, opts);
  const all = this._data;
  this._data = new Map([...all].filter(([, it]) => this._getPartition(it.read()) === scope.pk));
  try { return origQuery.call(this, params, opts); } finally { this._data = all; }
};

function wrap(handler) {
  const inner = wrapGap(handler);
  if (!isDocumentOperation(handler)) return inner;
  return async (account, req, res, params) => {
    const fault = injectFault(req, res);
    if (fault) return fault;
    const body = await inner(account, req, res, params);
    if (req.method !== 'GET' && Math.random() < faults.rates.lostResponse) {
      faults.injected.lostResponse = (faults.injected.lostResponse || 0) + 1;
      req.socket.destroy(); // the operation happened; the client never hears of it
    }
    return body;
  };
}

const documentHandlers = new Set([readDocument, queryDocuments, ...documentWrites, H('delete-document'), H('read-documents'), H('patch-document')]);
function isDocumentOperation(handler) {
  return documentHandlers.has(handler);
}

function wrapGap(handler) {
  if (handler === readMeta) {
    // Gap 2: account document advertises https:// locations; SDK follows them. Advertise the address the
    // client used (its Host header), so that a test proxy in front of the server stays in the path.
    return async (account, req, res, params) => {
      const body = JSON.parse(JSON.stringify(await handler(account, req, res, params)));
      const endpoint = `http://${req.headers.host || `${HOST}:${server.address().port}`}/`;
      for (const loc of [...(body.writableLocations || []), ...(body.readableLocations || [])]) {
        loc.databaseAccountEndpoint = endpoint;
      }
      if (MULTI_REGION_WRITES) {
        // An account with multi-region writes: two write regions, both served here.
        body.enableMultipleWriteLocations = true;
        body.writableLocations = ['West Europe', 'North Europe'].map((name) => ({ name, databaseAccountEndpoint: endpoint }));
        body.readableLocations = body.writableLocations;
      }
      return body;
    };
  }
  if (handler === readPkRanges) {
    // Gap 1: partition-key-range id is numeric; SDK requires a string.
    return async (...args) => {
      const body = await handler(...args);
      if (body && Array.isArray(body.PartitionKeyRanges)) {
        body.PartitionKeyRanges = body.PartitionKeyRanges.map((r) => ({ ...r, id: String(r.id) }));
      }
      return body;
    };
  }
  if (handler === readDocument) {
    // Gap 4: missing doc -> 500 (TypeError in the handler); answer 404.
    // Bonus: If-None-Match: <etag>|* on a point read -> 304 like real Cosmos.
    return async (account, req, res, params) => {
      const coll = account.database(params.dbId).collection(params.collId);
      if (coll.read()) {
        const doc = coll.document(params.docId, requestPk(req, params.docId)).read();
        if (!doc) { res.statusCode = 404; return { ...NOT_FOUND }; }
        const inm = req.headers['if-none-match'];
        if (inm && (inm === '*' || inm === doc._etag)) { res.statusCode = 304; return {}; }
      }
      return handler(account, req, res, params);
    };
  }
  if (documentWrites.includes(handler)) {
    // Gap 7 (the item size limit): the server stores items of any size.
    return async (account, req, res, params) => {
      if (Number(req.headers['content-length'] || 0) > MAX_ITEM_BYTES) {
        req.resume();
        res.statusCode = 413;
        return { code: 'RequestEntityTooLarge', message: 'Request size is too large' };
      }
      return handler(account, req, res, params);
    };
  }
  if (handler === queryDocuments) {
    return (account, req, res, params) => als.run({ pk: requestPk(req) }, () => handler(account, req, res, params));
  }
  return handler;
}

const origRoute = routes.default;
routes.default = (req) => {
  if (req.url.startsWith('/_test/faults')) return [{}, faultsHandler];
  const r = origRoute(req);
  return r ? [r[0], wrap(r[1])] : r;
};

// Gap 3: keep-alive (the lib sends "connection: close" unless keepAlive is set).
const server = createHttpServer({ keepAlive: true });
server.keepAliveTimeout = 120000; // > reqwest's 90 s pool idle timeout: avoid reuse races
server.headersTimeout = 121000;

server.prependListener('request', (req, res) => {
  // Gap 5: SDK sends no cross-partition header; the server 400s without it.
  const isQuery = req.method === 'POST' && (
    String(req.headers['x-ms-documentdb-isquery']).toLowerCase() === 'true' ||
    req.headers['content-type'] === 'application/query+json');
  if (isQuery && !req.headers['x-ms-documentdb-query-enablecrosspartition']) {
    req.headers['x-ms-documentdb-query-enablecrosspartition'] = 'true';
  }
  if (DEBUG) res.on('finish', () => process.stderr.write(`${req.method} ${req.url} -> ${res.statusCode}\n`));
});

if (DEBUG) server.on('connection', () => process.stderr.write('new connection\n'));

server.on('error', (error) => {
  process.stderr.write(`cannot listen on ${HOST}:${PORT}: ${error.message}\n`);
  process.exit(1);
});
server.listen(PORT, HOST, () => {
  process.stdout.write(`listening ${HOST}:${server.address().port}\n`);
});

let stopping = false;
function shutdown() {
  if (stopping) return;
  stopping = true;
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
// The test harness holds stdin open; when it exits, however it exits, the server goes too.
process.stdin.on('end', shutdown);
process.stdin.on('error', shutdown);
process.stdin.resume();
