// A stand-in for the deployment's CloudFront distribution: one port on
// 127.0.0.1 per deployment, GET and HEAD only, as the stack configures it.
//
// What it reproduces:
// - origin access control: every origin request is made as the service
//   principal cloudfront.amazonaws.com with aws:SourceArn = the distribution's
//   ARN, and the synthesized bucket policy decides (no identity policy
//   applies). S3 answers a key the principal may read but that does not exist
//   with 403, not 404, because the policy grants no s3:ListBucket: so does
//   this stand-in, as clients of the real distribution see it;
// - DefaultRootObject for `/`;
// - cache behaviors: the first whose path pattern matches the request path
//   (`*` any characters, `?` one, as CloudFront matches them) decides, else
//   the default behavior;
// - a viewer-request CloudFront Function, when the behavior associates one:
//   its code, from the template, runs in a fresh `node:vm` context with the
//   cloudfront-js-2.0 event shape (request -> request or response); its
//   `import cf from 'cloudfront'` gets `cf.kvs()` over the key value store
//   associated with it (kvs.mjs), as the runtime provides it.
// What it does not: caching (TTLs, invalidations), compression, TLS, custom
// error pages, signed URLs, geo restrictions. tests/README.md lists these.

import http from 'node:http';
import vm from 'node:vm';

const CLOUDFRONT = 'cloudfront.amazonaws.com';

/**
 * Run a CloudFront Function's `handler` on a viewer request. The runtime's
 * one module import (`import cf from 'cloudfront'`) becomes a binding to
 * `cf`; any other import fails, as it would on CloudFront.
 */
async function runViewerRequest(fn, event, cloudfrontModule) {
  const cf = fn.kvsArn && cloudfrontModule ? cloudfrontModule(fn.kvsArn) : { kvs: () => { throw new Error('no key value store is associated with this function'); } };
  const context = vm.createContext({ console: { log: () => {} }, __cf: cf });
  const code = String(fn.code).replace(/^\s*import\s+cf\s+from\s+['"]cloudfront['"];?\s*$/m, 'const cf = __cf;');
  if (/^\s*import\s/m.test(code)) throw new Error('a CloudFront Function may import only the cloudfront module');
  vm.runInContext(`${code}\n;globalThis.__handler = handler;`, context, { timeout: 1000 });
  return await context.__handler(event);
}

/** CloudFront's path pattern match: `*` any run of characters, `?` one; the leading `/` is optional. */
function pathMatches(pattern, path) {
  const re = new RegExp(`^/?${pattern.replace(/^\//, '').replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 's');
  return re.test(path);
}

function cfRequest(req, url) {
  const headers = {};
  for (const [k, v] of Object.entries(req.headers)) headers[k.toLowerCase()] = { value: Array.isArray(v) ? v.join(',') : v };
  const querystring = {};
  for (const [k, v] of url.searchParams) querystring[k] = { value: v };
  return { method: req.method, uri: decodeURIComponent(url.pathname), querystring, headers, cookies: {} };
}

/**
 * Starts the stand-in. `fetchObject(key, {method, headers})` reads the bucket
 * (as the gateway's admin) and resolves with {status, headers, body (stream)}.
 * `authorize(key)` -> {allowed, reason} for s3:GetObject as the distribution.
 */
export function startCloudFront({ distribution, authorize, fetchObject, cloudfrontModule, meter, log = () => {} }) {
  const server = http.createServer(async (req, res) => {
    try {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(403, { 'content-type': 'text/plain' });
        res.end('This distribution is not configured to allow the HTTP request method that was used for this request.');
        return;
      }
      const url = new URL(req.url, 'http://localhost');
      let request = cfRequest(req, url);
      const behavior = (distribution.behaviors ?? [{ pathPattern: '*', functions: distribution.functions }]).find((b) =>
        pathMatches(b.pathPattern, url.pathname),
      );
      const viewerRequest = behavior?.functions?.['viewer-request'];
      if (viewerRequest) {
        const result = await runViewerRequest(viewerRequest, {
          version: '1.0',
          context: { distributionId: distribution.id, eventType: 'viewer-request', requestId: String(Date.now()) },
          viewer: { ip: '127.0.0.1' },
          request,
        }, cloudfrontModule);
        if (result && result.statusCode) {
          const headers = {};
          for (const [k, v] of Object.entries(result.headers ?? {})) headers[k] = v.value;
          res.writeHead(result.statusCode, headers);
          res.end(result.body?.data ?? result.body ?? '');
          return;
        }
        request = result;
      }
      let key = request.uri.replace(/^\//, '');
      if (key === '' && distribution.defaultRootObject) key = distribution.defaultRootObject;
      meter?.('cloudfront', req.method);
      const verdict = authorize(key);
      if (!verdict.allowed) {
        log({ event: 'cloudfront-denied', distribution: distribution.id, key, reason: verdict.reason });
        const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`;
        res.writeHead(403, { 'content-type': 'application/xml', 'x-cache': 'Error from cloudfront' });
        res.end(req.method === 'HEAD' ? undefined : body);
        return;
      }
      const forwarded = {};
      for (const h of ['range', 'if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since']) {
        if (req.headers[h]) forwarded[h] = req.headers[h];
      }
      const upstream = await fetchObject(key, { method: req.method, headers: forwarded });
      // A missing key reads as 403 to a principal without s3:ListBucket.
      const status = upstream.status === 404 ? 403 : upstream.status;
      const headers = { 'x-cache': 'Miss from cloudfront', via: '1.1 localaws (CloudFront)' };
      for (const h of ['content-type', 'content-length', 'etag', 'last-modified', 'cache-control', 'content-range', 'accept-ranges']) {
        if (upstream.headers[h] !== undefined) headers[h] = upstream.headers[h];
      }
      if (status === 403 && upstream.status === 404) {
        delete headers['content-length'];
        res.writeHead(403, { ...headers, 'content-type': 'application/xml' });
        upstream.body.resume();
        res.end(req.method === 'HEAD' ? undefined : '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>');
        return;
      }
      res.writeHead(status, headers);
      if (req.method === 'HEAD') {
        upstream.body.resume();
        res.end();
      } else {
        upstream.body.pipe(res);
      }
    } catch (e) {
      log({ event: 'cloudfront-error', error: String(e?.stack ?? e) });
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`localaws CloudFront stand-in: ${e?.message ?? e}`);
    }
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      resolve({ server, url: `http://127.0.0.1:${port}/`, principal: CLOUDFRONT, close: () => new Promise((r) => server.close(r)) });
    });
  });
}
