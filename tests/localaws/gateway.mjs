// The proxy in front of moto: for each request, who is calling (parseAuth ->
// registry.principalForAccessKey), what it is (iam.classify), whether the
// caller may do it (iam.authorize: the role's identity policies + the resource
// policy), whether AWS would take it (limits.mjs), whether a test wants it to
// fail (FaultList), then moto answers; the answer is metered (Meter).
//
// Object data streams through in both directions (pipe, never buffered): S3
// uploads and downloads can be GiBs. Bodies are buffered only where classify
// or the limits need them (DynamoDB, Secrets Manager and SNS requests and
// answers, S3 DeleteObjects), which AWS caps at a few MB.

import { createHash } from 'node:crypto';
import http from 'node:http';
import { Transform, pipeline } from 'node:stream';
import { KvsError } from './kvs.mjs';
import { authorizeKms, kmsAccessDenied, kmsRequirements } from './kms.mjs';
import {
  DEFAULT_ACCOUNT,
  accessDenied,
  authorize,
  classify,
  missingAuthentication,
  needsBody,
  parseAuth,
  principalArnOf,
  serviceOf,
  unknownAccessKey,
} from './iam.mjs';
import {
  DYNAMODB_MAX_ITEM_BYTES,
  UpdateInvalid,
  UpdateNotModelled,
  applyUpdate,
  checkDynamoWrite,
  checkS3Request,
  errorResponse,
  itemSize,
  itemTooLargeError,
  readUnits,
  s3RequestId,
  transactionTooLargeError,
  writeUnits,
  xmlEscape,
} from './limits.mjs';

// ---------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------

/** Default messages and statuses of the error codes a fault usually names. */
const FAULT_DEFAULTS = {
  SlowDown: { status: 503, message: 'Please reduce your request rate.' },
  InternalError: { status: 500, message: 'We encountered an internal error. Please try again.' },
  ServiceUnavailable: { status: 503, message: 'Service is unable to handle request.' },
  RequestTimeout: { status: 400, message: 'Your socket connection to the server was not read from or written to within the timeout period.' },
  ThrottlingException: { status: 400, message: 'Rate of requests exceeds the allowed throughput.' },
  ProvisionedThroughputExceededException: {
    status: 400,
    message:
      'The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API.',
  },
  RequestLimitExceeded: { status: 400, message: 'Throughput exceeds the current throughput limit for your account.' },
  InternalServerError: { status: 500, message: 'Internal server error' },
  InternalServiceError: { status: 500, message: 'An error occurred on the server side.' },
  Throttling: { status: 400, message: 'Rate exceeded' },
  InternalFailure: { status: 500, message: 'The request processing has failed because of an unknown error, exception or failure.' },
};

const MATCH_FIELDS = ['service', 'operation', 'action', 'principal', 'bucket', 'keyPrefix', 'table', 'deployment'];

/**
 * Injected failures, added by the admin API. A rule:
 * `{ id?, match: { service?, operation?, action?, principal? (function name,
 * 'admin', 'cloudfront', 'anonymous'), bucket?, keyPrefix?, table?, deployment? },
 * respond: { status?, code, message? } | { reset: true } | { delayMs },
 * times = 1 (matching requests it hits; 'always' for every one), skip = 0
 * (matching requests let through first) }`.
 * A rule hits an admin request only when its match names principal 'admin'.
 * `respond` answers in the service's own error shape (S3 XML `SlowDown` 503,
 * `InternalError` 500; DynamoDB JSON `ThrottlingException` /
 * `ProvisionedThroughputExceededException` 400, `InternalServerError` 500), which
 * the SDKs retry; `reset` destroys the client's socket without an answer;
 * `delayMs` holds the request that long and then lets it through (or, with
 * `code`, answers the error after the delay).
 */
export class FaultList {
  constructor() {
    this.rules = [];
    this.seq = 0;
  }

  add(rule) {
    if (!rule || typeof rule !== 'object') throw new TypeError('a fault rule is an object');
    const match = { ...(rule.match ?? {}) };
    for (const k of Object.keys(match)) {
      if (!MATCH_FIELDS.includes(k)) throw new TypeError(`unknown fault match field ${k} (known: ${MATCH_FIELDS.join(', ')})`);
    }
    const respond = { ...(rule.respond ?? {}) };
    if (!respond.reset && !respond.code && respond.delayMs === undefined) {
      throw new TypeError('respond needs code (an error answer), reset: true or delayMs');
    }
    const times = rule.times ?? 1;
    if (!(times === 'always' || (Number.isInteger(times) && times > 0))) throw new TypeError('times is a positive integer or "always"');
    const skip = rule.skip ?? 0;
    if (!(Number.isInteger(skip) && skip >= 0)) throw new TypeError('skip is a non-negative integer');
    const id = rule.id ?? `fault-${++this.seq}`;
    this.rules = this.rules.filter((r) => r.id !== id);
    const stored = { id, match, respond, times, skip, seen: 0, hits: 0 };
    this.rules.push(stored);
    return this.view(stored);
  }

  remove(id) {
    const before = this.rules.length;
    this.rules = this.rules.filter((r) => r.id !== id);
    return this.rules.length !== before;
  }

  clear() {
    this.rules = [];
  }

  view(r) {
    const remaining = r.times === 'always' ? 'always' : Math.max(0, r.times - r.hits);
    return { id: r.id, match: r.match, respond: r.respond, times: r.times, skip: r.skip, seen: r.seen, hits: r.hits, remaining };
  }

  list() {
    return this.rules.map((r) => this.view(r));
  }

  static matches(m, req) {
    if (req.caller === 'admin' && m.principal !== 'admin') return false;
    if (m.service && m.service !== req.service) return false;
    if (m.operation && m.operation !== req.operation) return false;
    if (m.action && !(req.actions ?? []).includes(m.action)) return false;
    if (m.principal && m.principal !== req.caller) return false;
    if (m.bucket && m.bucket !== req.bucket) return false;
    if (m.keyPrefix !== undefined && !(typeof req.key === 'string' && req.key.startsWith(m.keyPrefix))) return false;
    if (m.table && !(req.tables ?? []).some((t) => t === m.table || String(t).endsWith(`:table/${m.table}`))) return false;
    if (m.deployment && m.deployment !== req.deployment) return false;
    return true;
  }

  /**
   * The rule that hits this request, if any (counting it), else null. `req`:
   * `{ service, operation, actions, caller, bucket, key, tables, deployment }`.
   */
  take(req) {
    for (const r of this.rules) {
      if (!FaultList.matches(r.match, req)) continue;
      if (r.times !== 'always' && r.hits >= r.times) continue;
      r.seen += 1;
      if (r.seen <= r.skip) continue;
      r.hits += 1;
      return this.view(r);
    }
    return null;
  }
}

// ---------------------------------------------------------------------------
// Meter
// ---------------------------------------------------------------------------

/**
 * S3's request price tiers ("Amazon S3 pricing", Requests & data retrievals):
 * tier 1 "PUT, COPY, POST, LIST requests", tier 2 "GET, SELECT, and all other
 * requests", free: "DELETE and CANCEL requests". DeleteObjects (a POST naming
 * keys to delete) is counted free with the deletes (unconfirmed).
 */
export function s3PricingTier(operation, method = 'GET') {
  if (/^(Delete|Abort)/.test(operation)) return 'free';
  if (/^(Put|Create|Copy|Complete|Upload|List|Restore)/.test(operation)) return 'tier1';
  if (/^(Get|Head)/.test(operation)) return 'tier2';
  const m = String(method).toUpperCase();
  if (m === 'PUT' || m === 'POST') return 'tier1';
  if (m === 'DELETE') return 'free';
  return 'tier2';
}

function emptyService(service) {
  const base = { requests: 0, byOperation: {}, byStatus: {}, denied: 0, refused: 0, faults: 0 };
  if (service === 's3') return { ...base, tier1: 0, tier2: 0, free: 0, bytesIn: 0, bytesOut: 0 };
  if (service === 'dynamodb') return { ...base, readRequestUnits: 0, writeRequestUnits: 0, scans: 0 };
  if (service === 'sns') return { ...base, publishes: 0, publishRequestsBilled: 0 };
  return base;
}

function addInto(target, e) {
  target.requests += 1;
  target.byOperation[e.operation] = (target.byOperation[e.operation] ?? 0) + 1;
  // A reset connection has no status: counted as "reset".
  const cls = e.status ? `${String(e.status)[0]}xx` : 'reset';
  target.byStatus[cls] = (target.byStatus[cls] ?? 0) + 1;
  if (e.outcome === 'denied') target.denied += 1;
  if (e.outcome === 'refused') target.refused += 1;
  if (e.outcome === 'fault') target.faults += 1;
  if (e.service === 's3') {
    // Injected faults (answers AWS would not bill as a served request) and
    // resets stay out of the tiers; denials and refusals are billed as
    // requests (S3 bills same-account 4xx answers).
    if (e.outcome !== 'fault') target[s3PricingTier(e.operation, e.method)] += 1;
    target.bytesIn += e.bytesIn ?? 0;
    target.bytesOut += e.bytesOut ?? 0;
  } else if (e.service === 'dynamodb') {
    target.readRequestUnits += e.readUnits ?? 0;
    target.writeRequestUnits += e.writeUnits ?? 0;
    if (e.operation === 'Scan') target.scans += 1;
  } else if (e.service === 'sns') {
    target.publishes += e.publishes ?? 0;
    target.publishRequestsBilled += e.publishRequestsBilled ?? 0;
  }
}

/**
 * What one deployment's traffic would cost, counted per caller (function name,
 * 'admin', 'cloudfront', 'anonymous') and service: S3 requests by operation and
 * price tier, bytes in and out; DynamoDB read/write request units as on-demand
 * mode bills them and the number of Scans; Secrets Manager API calls; SNS
 * publishes. Plus the denials, limit refusals and injected faults of the
 * deployment (denials()).
 */
export class Meter {
  constructor() {
    this.reset();
  }

  reset() {
    this.callers = {};
    this.denialList = [];
  }

  record(e) {
    const caller = (this.callers[e.caller] ??= {});
    const svc = (caller[e.service] ??= emptyService(e.service));
    addInto(svc, e);
  }

  recordDenial(d) {
    this.denialList.push(d);
  }

  denials() {
    return this.denialList.map((d) => ({ ...d }));
  }

  snapshot() {
    const callers = JSON.parse(JSON.stringify(this.callers));
    const totals = {};
    for (const services of Object.values(callers)) {
      for (const [service, s] of Object.entries(services)) {
        const t = (totals[service] ??= emptyService(service));
        for (const [k, v] of Object.entries(s)) {
          if (typeof v === 'number') t[k] += v;
          else for (const [kk, vv] of Object.entries(v)) t[k][kk] = (t[k][kk] ?? 0) + vv;
        }
      }
    }
    return { callers, totals, denials: this.denialList.length };
  }
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer',
  'upgrade', 'expect', 'host',
]);

class Counter extends Transform {
  constructor() {
    super();
    this.bytes = 0;
  }
  _transform(chunk, _enc, cb) {
    this.bytes += chunk.length;
    cb(null, chunk);
  }
}

function readBody(req, limit) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > limit) {
        reject(Object.assign(new Error(`request body over ${limit} bytes`), { tooLarge: true }));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function callerName(principal) {
  if (!principal) return 'unknown';
  if (principal.kind === 'admin') return 'admin';
  if (principal.kind === 'anonymous') return 'anonymous';
  if (principal.name) return principal.name;
  if (principal.kind === 'service') return String(principal.service ?? principal.principal).split('.')[0];
  return String(principal.roleArn ?? 'role').split('/').pop();
}

const bucketArnOf = (arn) => {
  const m = /^arn:aws:s3:::([^/]+)/.exec(arn);
  return m ? `arn:aws:s3:::${m[1]}` : arn;
};
const tableArnOf = (arn) => String(arn).replace(/\/index\/.*$/, '');

/** The ARN that holds the resource policy (and names the deployment) of a resource. */
function policyHolder(service, arn) {
  if (service === 's3') return bucketArnOf(arn);
  if (service === 'dynamodb') return tableArnOf(arn);
  return arn;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function defaultLog(entry) {
  process.stderr.write(`${JSON.stringify(entry)}\n`);
}

// ---------------------------------------------------------------------------
// The gateway
// ---------------------------------------------------------------------------

/**
 * `createGateway({ motoUrl, registry, log, accountId?, resolveSecretArn?, bodyLimit? })`
 * -> `{ handle(req, res), denials(deploymentId?), faults, agent }`. `registry`
 * implements the README's Registry (principalForAccessKey, resourcePolicy,
 * deploymentForResource, faults, meter; optionally resolveSecretArn(secretId)
 * and denial(deploymentId, entry)). `log(entry)` receives one plain object
 * (`event: 'denied' | 'refused' | 'fault' | 'unknown-key' | …`, principal,
 * action, resource, reason, …) per denial, refusal, injected fault or unknown
 * key, for the caller to write as one JSON line (the default writes it to stderr).
 */
export function createGateway({
  motoUrl,
  registry,
  log = defaultLog,
  accountId = DEFAULT_ACCOUNT,
  resolveSecretArn,
  bodyLimit = 32 * 1024 * 1024,
} = {}) {
  if (!motoUrl) throw new TypeError('createGateway needs motoUrl');
  if (!registry) throw new TypeError('createGateway needs a registry');
  const moto = new URL(motoUrl);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const faults = registry.faults ?? new FaultList();
  const allDenials = [];
  const resolveSecret = resolveSecretArn ?? ((id) => registry.resolveSecretArn?.(id));

  function note(entry, meter) {
    const line = { time: new Date().toISOString(), event: entry.kind, ...entry };
    allDenials.push(line);
    if (allDenials.length > 10000) allDenials.shift();
    meter?.recordDenial(line);
    try {
      if (line.deployment) registry.denial?.(line.deployment, line);
      log(line);
    } catch {
      // a failing logger or registry hook must not fail the request
    }
  }

  /** One request to moto with a buffered body; resolves { status, headers, body }. */
  function motoCall({ method, path, headers, body }, retried = false) {
    return new Promise((resolve, reject) => {
      const h = { ...headers, host: headers.host ?? moto.host };
      delete h['transfer-encoding'];
      h['content-length'] = String(body ? body.length : 0);
      const up = http.request(
        { protocol: moto.protocol, hostname: moto.hostname, port: moto.port, method, path, headers: h, agent },
        (upRes) => {
          const chunks = [];
          upRes.on('data', (c) => chunks.push(c));
          upRes.on('end', () => resolve({ status: upRes.statusCode, headers: upRes.headers, body: Buffer.concat(chunks) }));
          upRes.on('error', reject);
        },
      );
      up.on('error', (e) => {
        // An idle keep-alive socket moto closed: safe to send a buffered request again.
        if (!retried && up.reusedSocket && (e.code === 'ECONNRESET' || e.code === 'EPIPE')) {
          motoCall({ method, path, headers, body }, true).then(resolve, reject);
        } else reject(e);
      });
      up.end(body ?? undefined);
    });
  }

  function dynamoCall(op, payload, authHeaders) {
    return motoCall({
      method: 'POST',
      path: '/',
      headers: {
        'content-type': 'application/x-amz-json-1.0',
        'x-amz-target': `DynamoDB_20120810.${op}`,
        authorization: authHeaders.authorization,
        'x-amz-date': authHeaders['x-amz-date'] ?? '',
        host: authHeaders.host,
      },
      body: Buffer.from(JSON.stringify(payload)),
    });
  }

  /** The stored item (strongly consistent), or null; undefined when moto cannot tell (e.g. no such table). */
  async function fetchItem(table, key, authHeaders) {
    const r = await dynamoCall('GetItem', { TableName: table, Key: key, ConsistentRead: true }, authHeaders);
    if (r.status !== 200) return undefined;
    return JSON.parse(r.body.toString('utf8')).Item ?? null;
  }

  async function restoreItem(table, key, old, authHeaders) {
    if (old) await dynamoCall('PutItem', { TableName: table, Item: old }, authHeaders);
    else await dynamoCall('DeleteItem', { TableName: table, Key: key }, authHeaders);
  }

  function send(res, req, answer, { bodyPending }) {
    const headers = { ...answer.headers };
    if (bodyPending) {
      // The request body was never read. A small one is drained so the
      // connection can be kept; a large or chunked one is not worth reading:
      // the connection closes after the answer (as S3 does on early errors).
      const len = Number(req.headers['content-length']);
      if (Number.isFinite(len) && len <= 64 * 1024 * 1024) req.resume();
      else headers.connection = 'close';
    }
    res.writeHead(answer.status, headers);
    res.end(answer.body);
  }

  async function handle(req, res) {
    const method = String(req.method).toUpperCase();
    const rawUrl = req.url ?? '/';
    const qi = rawUrl.indexOf('?');
    const path = qi >= 0 ? rawUrl.slice(0, qi) : rawUrl;
    const query = new URLSearchParams(qi >= 0 ? rawUrl.slice(qi + 1) : '');
    const headers = req.headers;
    const auth = parseAuth(req);
    const service = serviceOf({ headers, query });
    let bodyPending = method !== 'GET' && method !== 'HEAD';
    const answer = (a) => send(res, req, a, { bodyPending });

    try {
      // 1. Who.
      let principal;
      if (auth.malformed) {
        const a =
          service === 's3'
            ? errorResponse('s3', { status: 400, code: 'AuthorizationHeaderMalformed', message: 'The authorization header is malformed.', method })
            : errorResponse(service === 'secretsmanager' ? 'secretsmanager' : 'dynamodb', {
                status: 400,
                code: 'IncompleteSignatureException',
                message: 'Authorization header requires a Credential parameter.',
              });
        note({ kind: 'malformed-auth', service, method, path, reason: 'Authorization header without a SigV4 credential scope' });
        return answer(a);
      }
      if (auth.anonymous) {
        if (service !== 's3') {
          note({ kind: 'unsigned', service, method, path, reason: 'unsigned request to a service that requires a signature' });
          return answer(missingAuthentication(service));
        }
        principal = { kind: 'anonymous' };
      } else {
        principal = await registry.principalForAccessKey(auth.accessKeyId);
        if (!principal) {
          note({ kind: 'unknown-key', service, method, path, accessKeyId: auth.accessKeyId, reason: 'access key unknown to localaws' });
          return answer(unknownAccessKey(service === 'unknown' ? 'dynamodb' : service, auth.accessKeyId, method));
        }
      }
      const caller = callerName(principal);
      const principalArn = principalArnOf(principal);
      const isAdmin = principal.kind === 'admin';

      // 2. What.
      let body = null;
      if (needsBody(method, path, query, headers)) {
        try {
          body = await readBody(req, bodyLimit);
        } catch (e) {
          if (!e.tooLarge) throw e;
          bodyPending = false;
          return answer(errorResponse(service === 's3' ? 's3' : service === 'sns' ? 'sns' : service === 'secretsmanager' ? 'secretsmanager' : 'dynamodb', {
            status: 413,
            code: 'RequestEntityTooLarge',
            message: 'Request must be smaller than the service allows',
            method,
          }));
        }
        bodyPending = false;
      }
      const c = classify({ method, path, query, headers, body }, { auth, region: auth.region, accountId, resolveSecretArn: resolveSecret });
      const primaryArn =
        c.service === 's3'
          ? c.bucket
            ? `arn:aws:s3:::${c.bucket}`
            : null
          : c.authorizations[0] && c.authorizations[0].resource !== '*'
            ? policyHolder(c.service, c.authorizations[0].resource)
            : null;
      let deployment = principal.deploymentId ?? null;
      if (!deployment && primaryArn) deployment = (await registry.deploymentForResource?.(c.service, primaryArn)) ?? null;
      const meter = deployment ? registry.meter?.(deployment) ?? null : null;
      const first = c.authorizations[0];
      const base = {
        deployment,
        caller,
        principal: principalArn,
        service: c.service,
        operation: c.operation,
        method,
        path,
      };
      const meterEntry = { caller, service: c.service, operation: c.operation, method, bytesIn: 0, bytesOut: 0 };
      const finish = (status, outcome, extra = {}) => {
        meter?.record({ ...meterEntry, status, outcome, ...extra });
      };

      // 3. Unknown operations: only the admin gets them through.
      if (c.unknown && !isAdmin) {
        const reason = `localaws does not know this operation (${c.unknown}); it denies what it cannot classify — teach iam.mjs classify`;
        const a = accessDenied({
          service: c.service === 'unknown' ? 'dynamodb' : c.service,
          method,
          principalArn,
          action: `${c.service}:${c.operation}`,
          resource: primaryArn ?? path,
          reason,
        });
        note({ kind: 'unknown-operation', ...base, action: null, resource: primaryArn, reason, status: a.status }, meter);
        finish(a.status, 'denied');
        return answer(a);
      }

      // 4. May the caller do it? (DeleteObjects is judged key by key at step 7, as S3 does.)
      const perKey = !isAdmin && c.operation === 'DeleteObjects';
      if (!isAdmin && !perKey) {
        const policies = new Map();
        for (const a of c.authorizations) {
          if (a.resource === '*' || policies.has(a.resource)) continue;
          policies.set(a.resource, await registry.resourcePolicy?.(c.service, policyHolder(c.service, a.resource)));
        }
        const decision = await authorize(c.authorizations, {
          principal,
          identityPolicies: principal.identityPolicies ?? [],
          resourcePolicyFor: (arn) => policies.get(arn),
          accountId,
          region: c.region,
        });
        if (!decision.allowed) {
          const a = accessDenied({
            service: c.service,
            operation: c.operation,
            method,
            principalArn,
            action: decision.action,
            resource: decision.resource,
            reason: decision.reason,
            explicit: decision.explicit,
            messageResource: c.service === 'secretsmanager' ? c.secretId : undefined,
          });
          note(
            {
              kind: 'denied',
              ...base,
              action: decision.action,
              resource: decision.resource,
              reason: decision.reason,
              explicit: decision.explicit,
              policyType: decision.policyType,
              statementId: decision.statementId,
              policyName: decision.policyName,
              identityPolicies: (principal.identityPolicies ?? []).map((p) => p.name),
              status: a.status,
            },
            meter,
          );
          finish(a.status, 'denied');
          return answer(a);
        }
      }

      // 4b. The KMS calls the service makes for the caller (SSE-KMS bucket,
      // encrypted topic or secret): the key policy and the caller's policies decide.
      if (!isAdmin && registry.kms) {
        for (const need of kmsRequirements(c, headers, registry.kms, { region: c.region, accountId })) {
          const key = await registry.kms.key(need.keyArn);
          const decision = key
            ? await authorizeKms({ principal, identityPolicies: principal.identityPolicies ?? [], key, action: need.action, context: need.context, accountId, region: c.region })
            : { allowed: false, action: need.action, resource: need.keyArn, reason: `the KMS key ${need.keyArn} does not exist in this account`, explicit: false };
          if (decision.allowed) continue;
          const a = kmsAccessDenied({ service: c.service, method, principalArn, decision });
          note(
            {
              kind: 'denied',
              ...base,
              action: decision.action,
              resource: decision.resource,
              reason: `${decision.reason} (KMS, called by ${c.service} for ${c.operation})`,
              explicit: decision.explicit,
              policyType: decision.policyType,
              statementId: decision.statementId,
              identityPolicies: (principal.identityPolicies ?? []).map((p) => p.name),
              kms: true,
              status: a.status,
            },
            meter,
          );
          finish(a.status, 'denied');
          return answer(a);
        }
      }

      // 5. Would AWS take it?
      const refuse = (a, reason) => {
        note({ kind: 'refused', ...base, action: first?.action ?? null, resource: first?.resource ?? null, reason, status: a.status }, meter);
        finish(a.status, 'refused');
        return answer(a);
      };
      let dynamo = null; // state for DynamoDB metering and the UpdateItem check
      if (c.service === 's3') {
        const a = checkS3Request(c.operation, { key: c.key, headers, query, method });
        if (a) return refuse(a, `${a.status} ${/<Code>([^<]+)</.exec(a.body.toString())?.[1] ?? ''}`.trim());
      } else if (c.service === 'dynamodb') {
        dynamo = await dynamoPrecheck(c, headers);
        if (dynamo.refusal) return refuse(dynamo.refusal, JSON.parse(dynamo.refusal.body).message ?? JSON.parse(dynamo.refusal.body).Message);
      }

      // 6. Should it fail anyway?
      const fault = faults.take({
        service: c.service,
        operation: c.operation,
        actions: c.authorizations.map((a) => a.action),
        caller,
        bucket: c.bucket ?? undefined,
        key: c.key ?? undefined,
        tables: c.tables ?? [],
        deployment,
      });
      if (fault) {
        const r = fault.respond;
        if (r.delayMs) await sleep(r.delayMs);
        if (r.reset) {
          note({ kind: 'fault', ...base, faultId: fault.id, action: first?.action, resource: first?.resource, reason: 'connection reset (injected)' }, meter);
          finish(0, 'fault');
          req.socket.destroy();
          return;
        }
        if (r.code) {
          const d = FAULT_DEFAULTS[r.code] ?? {};
          const shape = c.service === 'unknown' ? 'dynamodb' : c.service;
          const a = errorResponse(shape, { status: r.status ?? d.status ?? 500, code: r.code, message: r.message ?? d.message ?? r.code, method });
          note({ kind: 'fault', ...base, faultId: fault.id, action: first?.action, resource: first?.resource, reason: `injected ${a.status} ${r.code}`, status: a.status }, meter);
          finish(a.status, 'fault');
          return answer(a);
        }
      }

      // 7. moto answers: streamed both ways unless the body was read above.
      // CloudFront KeyValueStore is not in moto: kvs.mjs answers.
      if (c.service === 'cloudfront-keyvaluestore') {
        let a;
        try {
          a = registry.kvs.serve(c.kvs, { headers, body });
        } catch (e) {
          if (!(e instanceof KvsError)) throw e;
          a = errorResponse('cloudfront-keyvaluestore', { status: e.status, code: e.code, message: e.message, method });
          a.headers['x-amzn-errortype'] = e.code;
          note({ kind: 'refused', ...base, action: first?.action ?? null, resource: first?.resource ?? null, reason: `${e.code}: ${e.message}`, status: a.status }, meter);
        }
        finish(a.status, a.status < 300 ? 'served' : 'refused', { bytesIn: body?.length ?? 0, bytesOut: a.body.length });
        return answer(a);
      }
      if (body === null) {
        // S3 answers a GetObject/HeadObject of a missing key with 404 only to a
        // caller that may s3:ListBucket the bucket; to others with 403
        // AccessDenied ("If the object you request doesn't exist, the error that
        // Amazon S3 returns depends on whether you also have the s3:ListBucket
        // permission", GetObject/HeadObject API reference). The condition keys of
        // ListObjects (s3:prefix…) are not part of that check.
        const replace =
          !isAdmin && (c.operation === 'GetObject' || c.operation === 'HeadObject')
            ? async (status) => {
                if (status !== 404) return null;
                const bucketArn = `arn:aws:s3:::${c.bucket}`;
                const list = [{ action: 's3:ListBucket', resource: bucketArn, context: { 'aws:RequestedRegion': c.region } }];
                const bucketPolicy = await registry.resourcePolicy?.('s3', bucketArn);
                const decision = await authorize(list, {
                  principal,
                  identityPolicies: principal.identityPolicies ?? [],
                  resourcePolicyFor: () => bucketPolicy,
                  accountId,
                  region: c.region,
                });
                if (decision.allowed) return null;
                const a = accessDenied({
                  service: 's3',
                  method,
                  principalArn,
                  action: decision.action,
                  resource: decision.resource,
                  reason: decision.reason,
                  explicit: decision.explicit,
                });
                note(
                  {
                    kind: 'denied',
                    ...base,
                    action: decision.action,
                    resource: decision.resource,
                    reason: `the key does not exist and ${decision.reason}: S3 answers 403 instead of 404`,
                    explicit: decision.explicit,
                    statementId: decision.statementId,
                    identityPolicies: (principal.identityPolicies ?? []).map((p) => p.name),
                    status: a.status,
                  },
                  meter,
                );
                return a;
              }
            : null;
        await forwardStreaming({ req, res, method, rawUrl, finish, replace });
        return;
      }
      if (perKey) return await deleteObjectsPartly({ c, res, headers, body, principal, base, meter, finish, rawUrl });
      const up = await motoCall({ method, path: rawUrl, headers: forwardHeaders(headers), body: body ?? Buffer.alloc(0) });
      if (c.service === 'dynamodb' && up.status === 200 && dynamo?.postCheck) {
        const refused = await dynamoPostCheck(c, dynamo, headers);
        if (refused) return refuse(refused, 'item over 400 KB after the update (checked after forwarding; the old item was restored)');
      }
      const units = c.service === 'dynamodb' ? await dynamoUnits(c, dynamo, up, headers) : {};
      const sns = c.service === 'sns' && up.status === 200 ? snsPublishes(c) : {};
      if (c.service === 'sns' && up.status === 200 && c.operation === 'Publish' && deployment) {
        registry.snsPublished?.(deployment, c.topicArn, c.form.get('Subject'), c.form.get('Message'));
      }
      sendUpstream(res, up);
      finish(up.status, 'served', { bytesIn: body?.length ?? 0, bytesOut: up.body.length, ...units, ...sns });
    } catch (e) {
      const a = errorResponse(service === 's3' || service === 'unknown' ? 's3' : service, {
        status: 500,
        code: service === 'dynamodb' ? 'InternalServerError' : service === 's3' ? 'InternalError' : 'InternalFailure',
        message: `localaws gateway: ${e.message}`,
        method,
      });
      try {
        log({ time: new Date().toISOString(), event: 'gateway-error', kind: 'gateway-error', service, method, path, error: String(e.stack ?? e) });
      } catch {
        // ignore
      }
      if (!res.headersSent) answer(a);
      else res.destroy(e);
    }
  }

  /**
   * DeleteObjects for a caller that may delete only some of the keys: S3 deletes
   * those and reports `<Error><Key/><Code>AccessDenied</Code><Message>Access
   * Denied</Message></Error>` for each other key in its 200 DeleteResult (errors
   * are reported in Quiet mode too). The body sent to moto names the allowed
   * keys only (checksum headers of the original body are dropped, Content-MD5
   * recomputed); when no key is allowed moto is not asked at all.
   */
  async function deleteObjectsPartly({ c, res, headers, body, principal, base, meter, finish, rawUrl }) {
    const bucketPolicy = await registry.resourcePolicy?.('s3', `arn:aws:s3:::${c.bucket}`);
    const allowed = [];
    const denied = [];
    for (let i = 0; i < c.objects.length; i++) {
      const decision = await authorize([c.authorizations[i]], {
        principal,
        identityPolicies: principal.identityPolicies ?? [],
        resourcePolicyFor: () => bucketPolicy,
        accountId,
        region: c.region,
      });
      if (decision.allowed) allowed.push(c.objects[i]);
      else {
        denied.push(c.objects[i]);
        note(
          {
            kind: 'denied',
            ...base,
            action: decision.action,
            resource: decision.resource,
            reason: `${decision.reason} (reported per key in the DeleteObjects result)`,
            explicit: decision.explicit,
            statementId: decision.statementId,
            identityPolicies: (principal.identityPolicies ?? []).map((p) => p.name),
            status: 200,
          },
          meter,
        );
      }
    }
    const xmlOf = (o) =>
      `<Object><Key>${xmlEscape(o.key)}</Key>${o.versionId ? `<VersionId>${xmlEscape(o.versionId)}</VersionId>` : ''}</Object>`;
    const errors = denied
      .map(
        (o) =>
          `<Error><Key>${xmlEscape(o.key)}</Key>${o.versionId ? `<VersionId>${xmlEscape(o.versionId)}</VersionId>` : ''}<Code>AccessDenied</Code><Message>Access Denied</Message></Error>`,
      )
      .join('');
    let up;
    if (!denied.length) {
      up = await motoCall({ method: 'POST', path: rawUrl, headers: forwardHeaders(headers), body });
    } else if (allowed.length) {
      const quiet = /<Quiet>\s*true\s*<\/Quiet>/i.test(body.toString('utf8'));
      const xml = Buffer.from(
        `<?xml version="1.0" encoding="UTF-8"?><Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${quiet ? '<Quiet>true</Quiet>' : ''}${allowed.map(xmlOf).join('')}</Delete>`,
      );
      const h = forwardHeaders(headers);
      for (const k of Object.keys(h)) if (k.startsWith('x-amz-checksum-') || k === 'x-amz-sdk-checksum-algorithm' || k === 'x-amz-trailer' || k === 'content-encoding' || k === 'x-amz-decoded-content-length') delete h[k];
      if (h['content-md5']) h['content-md5'] = createHash('md5').update(xml).digest('base64');
      if (h['x-amz-content-sha256'] && h['x-amz-content-sha256'] !== 'UNSIGNED-PAYLOAD') h['x-amz-content-sha256'] = createHash('sha256').update(xml).digest('hex');
      up = await motoCall({ method: 'POST', path: rawUrl, headers: h, body: xml });
    } else {
      up = {
        status: 200,
        headers: { 'content-type': 'application/xml', 'x-amz-request-id': s3RequestId() },
        body: Buffer.from('<?xml version="1.0" encoding="UTF-8"?>\n<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"></DeleteResult>'),
      };
    }
    if (up.status === 200 && errors) {
      const text = up.body.toString('utf8');
      const at = text.lastIndexOf('</DeleteResult>');
      const merged = at >= 0 ? text.slice(0, at) + errors + text.slice(at) : text.replace(/<DeleteResult([^>]*)\/>/, `<DeleteResult$1>${errors}</DeleteResult>`);
      up = { ...up, body: Buffer.from(merged, 'utf8') };
    }
    sendUpstream(res, up);
    finish(up.status, denied.length ? 'denied' : 'served', { bytesIn: body.length, bytesOut: up.body.length });
  }

  function forwardHeaders(headers) {
    const out = {};
    for (const [k, v] of Object.entries(headers)) if (!HOP_BY_HOP.has(k)) out[k] = v;
    if (headers.host) out.host = headers.host; // moto tells path-style from virtual-host style by Host
    return out;
  }

  function sendUpstream(res, up) {
    const h = {};
    for (const [k, v] of Object.entries(up.headers)) {
      if (k === 'connection' || k === 'keep-alive' || k === 'transfer-encoding') continue;
      h[k] = v;
    }
    h['content-length'] = String(up.body.length);
    res.writeHead(up.status, h);
    res.end(up.body);
  }

  /** Pipes the request to moto and moto's answer back, counting bytes, buffering nothing. */
  function forwardStreaming({ req, res, method, rawUrl, finish, replace }) {
    return new Promise((resolve) => {
      const h = forwardHeaders(req.headers);
      const inCount = new Counter();
      const outCount = new Counter();
      let done = false;
      const end = (status, outcome) => {
        if (done) return;
        done = true;
        finish(status, outcome, { bytesIn: inCount.bytes, bytesOut: outCount.bytes });
        resolve();
      };
      const up = http.request(
        { protocol: moto.protocol, hostname: moto.hostname, port: moto.port, method, path: rawUrl, headers: h, agent },
        async (upRes) => {
          // An answer the gateway replaces (S3's 403 for a missing key): moto's is dropped.
          const replacement = replace ? await replace(upRes.statusCode) : null;
          if (replacement) {
            upRes.resume();
            res.writeHead(replacement.status, replacement.headers);
            res.end(replacement.body);
            res.once('finish', () => end(replacement.status, 'denied'));
            return;
          }
          const rh = {};
          for (const [k, v] of Object.entries(upRes.headers)) {
            if (k === 'connection' || k === 'keep-alive') continue;
            rh[k] = v;
          }
          // With content-length Node sends it as is; without, Node chunks the answer.
          if (rh['content-length'] !== undefined) delete rh['transfer-encoding'];
          res.writeHead(upRes.statusCode, rh);
          pipeline(upRes, outCount, res, (err) => end(upRes.statusCode, err ? 'aborted' : 'served'));
        },
      );
      up.on('error', (e) => {
        if (!res.headersSent) {
          const a = errorResponse('s3', { status: 500, code: 'InternalError', message: `localaws gateway: moto: ${e.message}`, method });
          res.writeHead(a.status, { ...a.headers, connection: 'close' });
          res.end(a.body);
        } else res.destroy(e);
        end(500, 'aborted');
      });
      pipeline(req, inCount, up, (err) => {
        if (err) up.destroy(err);
      });
    });
  }

  // ----- DynamoDB: sizes before forwarding, units after -----

  async function dynamoPrecheck(c, headers) {
    const state = { old: new Map() };
    const body = c.body ?? {};
    const fixed = checkDynamoWrite(c.operation, body);
    if (fixed) return { refusal: fixed };
    const keyId = (table, key) => `${table}\u0000${JSON.stringify(key)}`;
    const load = async (table, key) => {
      const id = keyId(table, key);
      if (!state.old.has(id)) state.old.set(id, await fetchItem(table, key, headers));
      return state.old.get(id);
    };
    state.load = load;
    state.keyId = keyId;
    if (c.operation === 'PutItem' && body.TableName && body.Item) {
      // The old item only for metering (a write bills max(old, new)); the key
      // attributes are those of the table's schema, which only the stored
      // item can tell: DescribeTable would be one more call, so the key is
      // taken from the table's key schema when moto knows the table.
      const key = await keyOf(body.TableName, body.Item, headers, state);
      if (key) state.putOld = await load(body.TableName, key);
    }
    if (c.operation === 'DeleteItem' && body.TableName && body.Key) state.deleteOld = await load(body.TableName, body.Key);
    if (c.operation === 'UpdateItem' && body.TableName && body.Key) {
      const old = await load(body.TableName, body.Key);
      state.updateOld = old;
      if (old !== undefined) {
        try {
          const next = applyUpdate(old, body.Key, body);
          state.updateNew = next;
          // UpdateItem's check: the item the update leaves (the pre-check:
          // nothing is forwarded when it would be over 400 KB).
          if (itemSize(next) > DYNAMODB_MAX_ITEM_BYTES) return { refusal: itemTooLargeError('update') };
        } catch (e) {
          if (e instanceof UpdateNotModelled) state.postCheck = [{ table: body.TableName, key: body.Key, old }];
          else if (!(e instanceof UpdateInvalid)) throw e;
          // UpdateInvalid: DynamoDB refuses the update itself; moto answers it.
        }
      }
    }
    if (c.operation === 'TransactWriteItems') {
      const items = body.TransactItems ?? [];
      const over = [];
      const post = [];
      state.transactOld = [];
      for (let i = 0; i < items.length; i++) {
        const [kind] = Object.keys(items[i]);
        const e = items[i][kind];
        let key = e.Key;
        if (kind === 'Put') key = await keyOf(e.TableName, e.Item, headers, state);
        const old = key ? await load(e.TableName, key) : undefined;
        state.transactOld.push(old);
        if (kind === 'Update' && old !== undefined) {
          try {
            if (itemSize(applyUpdate(old, e.Key, e)) > DYNAMODB_MAX_ITEM_BYTES) over.push(i);
          } catch (err) {
            if (err instanceof UpdateNotModelled) post.push(i);
            else if (!(err instanceof UpdateInvalid)) throw err;
          }
        }
      }
      if (over.length) return { refusal: transactionTooLargeError(over, items.length) };
      if (post.length) {
        // Check after forwarding; restore every item the transaction wrote if one is over.
        state.postCheck = items
          .map((t, i) => {
            const [kind] = Object.keys(t);
            const e = t[kind];
            if (kind === 'ConditionCheck') return null;
            return { table: e.TableName, key: kind === 'Put' ? null : e.Key, item: kind === 'Put' ? e.Item : null, old: state.transactOld[i], index: i };
          })
          .filter(Boolean);
        state.postCheckTransaction = items.length;
      }
    }
    return state;
  }

  const keySchemas = new Map();
  async function keyOf(table, item, headers, state) {
    if (!keySchemas.has(table)) {
      const r = await dynamoCall('DescribeTable', { TableName: table }, headers);
      if (r.status !== 200) return null;
      keySchemas.set(table, JSON.parse(r.body.toString('utf8')).Table.KeySchema.map((k) => k.AttributeName));
    }
    const names = keySchemas.get(table);
    const key = {};
    for (const n of names) {
      if (!item?.[n]) return null;
      key[n] = item[n];
    }
    return key;
  }

  async function dynamoPostCheck(c, state, headers) {
    const targets = state.postCheck;
    let over = [];
    for (const t of targets) {
      const key = t.key ?? (await keyOf(t.table, t.item, headers, state));
      if (!key) continue;
      const now = await fetchItem(t.table, key, headers);
      if (now && itemSize(now) > DYNAMODB_MAX_ITEM_BYTES) over.push(t.index ?? 0);
    }
    if (!over.length) return null;
    for (const t of targets) {
      const key = t.key ?? (await keyOf(t.table, t.item, headers, state));
      if (key && t.old !== undefined) await restoreItem(t.table, key, t.old, headers);
    }
    return state.postCheckTransaction ? transactionTooLargeError(over, state.postCheckTransaction) : itemTooLargeError('update');
  }

  /**
   * Read/write request units of a DynamoDB answer, as on-demand mode bills them:
   * - GetItem: ceil(item / 4 KB), half when eventually consistent; the size of
   *   the whole stored item even with a projection (the item is fetched again).
   * - Query/Scan: the items of the page, summed, / 4 KB rounded up (AWS bills the
   *   items read before a FilterExpression and whole items under a projection;
   *   only the returned items are seen here, so a filtered or projected read is
   *   under-counted).
   * - PutItem / UpdateItem / DeleteItem: ceil(max(old, new) / 1 KB) with the
   *   stored item read before the write; a failed condition still bills.
   * - BatchGetItem: per item; BatchWriteItem: per item from the request (the new
   *   item for puts, 1 unit for deletes: old items are not read), unprocessed
   *   items excluded. Transactions: twice the units of each item.
   */
  async function dynamoUnits(c, state, up, headers) {
    const body = c.body ?? {};
    const conditionFailed = up.status === 400 && /ConditionalCheckFailed/.test(up.body.toString('utf8'));
    if (up.status !== 200 && !conditionFailed) return {};
    let res = {};
    try {
      res = up.body.length ? JSON.parse(up.body.toString('utf8')) : {};
    } catch {
      return {};
    }
    const consistent = body.ConsistentRead === true;
    const sizeOr0 = (i) => (i ? itemSize(i) : 0);
    switch (c.operation) {
      case 'GetItem': {
        let size = sizeOr0(res.Item);
        if (res.Item && (body.ProjectionExpression || body.AttributesToGet)) {
          const full = await fetchItem(body.TableName, body.Key, headers);
          if (full) size = itemSize(full);
        }
        return { readUnits: readUnits(size, { consistent }) };
      }
      case 'Query':
      case 'Scan': {
        const total = (res.Items ?? []).reduce((a, i) => a + itemSize(i), 0);
        return { readUnits: readUnits(total, { consistent }) };
      }
      case 'PutItem': {
        const size = conditionFailed ? sizeOr0(state?.putOld) : Math.max(sizeOr0(state?.putOld), itemSize(body.Item ?? {}));
        return { writeUnits: writeUnits(size) };
      }
      case 'UpdateItem': {
        let next = state?.updateNew;
        if (!next && !conditionFailed && body.TableName && body.Key) next = await fetchItem(body.TableName, body.Key, headers);
        const size = conditionFailed ? sizeOr0(state?.updateOld) : Math.max(sizeOr0(state?.updateOld), sizeOr0(next));
        return { writeUnits: writeUnits(size) };
      }
      case 'DeleteItem':
        return { writeUnits: writeUnits(sizeOr0(state?.deleteOld)) };
      case 'BatchGetItem': {
        let units = 0;
        for (const [table, items] of Object.entries(res.Responses ?? {})) {
          const c2 = body.RequestItems?.[table]?.ConsistentRead === true;
          for (const i of items) units += readUnits(itemSize(i), { consistent: c2 });
        }
        return { readUnits: units };
      }
      case 'BatchWriteItem': {
        let units = 0;
        for (const [table, reqs] of Object.entries(body.RequestItems ?? {})) {
          const unprocessed = res.UnprocessedItems?.[table]?.length ?? 0;
          const processed = reqs.slice(0, reqs.length - unprocessed);
          for (const r of processed) units += r.PutRequest ? writeUnits(itemSize(r.PutRequest.Item)) : 1;
        }
        return { writeUnits: units };
      }
      case 'TransactGetItems': {
        let units = 0;
        for (const r of res.Responses ?? []) units += readUnits(sizeOr0(r.Item), { transactional: true });
        return { readUnits: units };
      }
      case 'TransactWriteItems': {
        if (conditionFailed) return {};
        let units = 0;
        (body.TransactItems ?? []).forEach((t, i) => {
          const [kind] = Object.keys(t);
          const old = state?.transactOld?.[i];
          let size = sizeOr0(old);
          if (kind === 'Put') size = Math.max(size, itemSize(t[kind].Item));
          if (kind === 'Update' && old !== undefined) {
            try {
              size = Math.max(size, itemSize(applyUpdate(old, t[kind].Key, t[kind])));
            } catch {
              // not modelled: old size only
            }
          }
          units += writeUnits(size, { transactional: true });
        });
        return { writeUnits: units };
      }
      default:
        return {};
    }
  }

  /**
   * SNS bills publishes per 64 KB chunk of payload ("each 64 KB chunk of
   * published data is billed as 1 request"); PublishBatch per message.
   */
  function snsPublishes(c) {
    if (c.operation === 'Publish') {
      const bytes = Buffer.byteLength(c.form.get('Message') ?? '', 'utf8');
      return { publishes: 1, publishRequestsBilled: Math.max(1, Math.ceil(bytes / 65536)) };
    }
    if (c.operation === 'PublishBatch') {
      let n = 0;
      let billed = 0;
      for (const [k, v] of c.form.entries()) {
        if (/^PublishBatchRequestEntries\.member\.\d+\.Message$/.test(k)) {
          n += 1;
          billed += Math.max(1, Math.ceil(Buffer.byteLength(v, 'utf8') / 65536));
        }
      }
      return { publishes: n, publishRequestsBilled: billed };
    }
    return {};
  }

  function denials(deploymentId) {
    return deploymentId ? allDenials.filter((d) => d.deployment === deploymentId) : [...allDenials];
  }

  return { handle, denials, faults, agent };
}
