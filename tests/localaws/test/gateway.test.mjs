// gateway.mjs: FaultList and Meter on their own, then the gateway end to end
// in front of a real moto server (started here on a free 127.0.0.1 port from
// the venv tests/run installs, stopped by its PID).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { FaultList, Meter, createGateway, s3PricingTier } from '../gateway.mjs';
import { itemSize } from '../limits.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const MOTO_SERVER = path.resolve(HERE, '../../moto_server.py');
const CACHE = process.env.PKGRELAY_CACHE ?? path.join(os.homedir(), '.cache', 'pkgrelay');
const MOTO_PYTHON = process.env.MOTO_PYTHON ?? path.join(CACHE, 'venv-moto-5.2.5', 'bin', 'python');

// ---------------------------------------------------------------------------
// FaultList and Meter
// ---------------------------------------------------------------------------

describe('FaultList', () => {
  const req = (over = {}) => ({ service: 's3', operation: 'GetObject', actions: ['s3:GetObject'], caller: 'publish', bucket: 'b', key: 'dists/x', tables: [], ...over });

  test('hits exactly `times` matching requests after `skip`', () => {
    const f = new FaultList();
    f.add({ id: 'slow', match: { service: 's3', operation: 'GetObject' }, respond: { code: 'SlowDown' }, times: 2, skip: 1 });
    const hits = [1, 2, 3, 4, 5].map(() => f.take(req()));
    assert.deepEqual(hits.map((h) => h?.id ?? null), [null, 'slow', 'slow', null, null]);
    assert.deepEqual(f.list().map(({ id, seen, hits: n, remaining }) => ({ id, seen, hits: n, remaining })), [{ id: 'slow', seen: 3, hits: 2, remaining: 0 }]);
  });
  test('matches on action, principal, bucket, key prefix, table; admin only when named', () => {
    const f = new FaultList();
    f.add({ id: 'pool', match: { action: 's3:GetObject', keyPrefix: 'pool/', bucket: 'b' }, respond: { code: 'InternalError' }, times: 'always' });
    f.add({ id: 'tbl', match: { table: 'state', principal: 'publish' }, respond: { code: 'ThrottlingException' }, times: 'always' });
    assert.equal(f.take(req({ key: 'dists/x' })), null);
    assert.equal(f.take(req({ key: 'pool/a' })).id, 'pool');
    assert.equal(f.take(req({ key: 'pool/a', bucket: 'other' })), null);
    assert.equal(f.take(req({ key: 'pool/a', caller: 'admin' })), null, 'a rule not naming admin spares the admin');
    const ddb = { service: 'dynamodb', operation: 'UpdateItem', actions: ['dynamodb:UpdateItem'], tables: ['pkgrelay-t-state'], caller: 'publish' };
    assert.equal(f.take({ ...ddb, tables: ['arn:aws:dynamodb:us-east-1:123456789012:table/state'] }).id, 'tbl');
    assert.equal(f.take({ ...ddb, caller: 'build-index', tables: ['state'] }), null);
    f.add({ id: 'adm', match: { principal: 'admin' }, respond: { reset: true } });
    assert.equal(f.take(req({ caller: 'admin' })).id, 'adm');
    assert.equal(f.take(req({ caller: 'admin' })), null, 'times defaults to 1');
    f.clear();
    assert.deepEqual(f.list(), []);
  });
  test('rejects malformed rules', () => {
    const f = new FaultList();
    assert.throws(() => f.add({ match: { nope: 1 }, respond: { code: 'SlowDown' } }), /unknown fault match field/);
    assert.throws(() => f.add({ match: {}, respond: {} }), /respond needs/);
    assert.throws(() => f.add({ match: {}, respond: { code: 'SlowDown' }, times: 0 }), /times/);
  });
});

describe('Meter', () => {
  test('S3 pricing tiers', () => {
    assert.equal(s3PricingTier('PutObject'), 'tier1');
    assert.equal(s3PricingTier('CopyObject'), 'tier1');
    assert.equal(s3PricingTier('CompleteMultipartUpload'), 'tier1');
    assert.equal(s3PricingTier('ListObjectsV2'), 'tier1');
    assert.equal(s3PricingTier('GetObject'), 'tier2');
    assert.equal(s3PricingTier('HeadObject'), 'tier2');
    assert.equal(s3PricingTier('GetBucketLocation'), 'tier2');
    assert.equal(s3PricingTier('DeleteObject'), 'free');
    assert.equal(s3PricingTier('AbortMultipartUpload'), 'free');
  });
  test('per caller and totals; reset', () => {
    const m = new Meter();
    m.record({ caller: 'publish', service: 's3', operation: 'CopyObject', method: 'PUT', status: 200, outcome: 'served', bytesIn: 0, bytesOut: 200 });
    m.record({ caller: 'publish', service: 's3', operation: 'GetObject', method: 'GET', status: 503, outcome: 'fault' });
    m.record({ caller: 'admin', service: 's3', operation: 'GetObject', method: 'GET', status: 200, outcome: 'served', bytesOut: 10 });
    m.record({ caller: 'build-index', service: 'dynamodb', operation: 'Scan', status: 200, outcome: 'served', readUnits: 3 });
    m.recordDenial({ kind: 'denied', action: 's3:GetObject' });
    const s = m.snapshot();
    assert.deepEqual(s.callers.publish.s3.byOperation, { CopyObject: 1, GetObject: 1 });
    assert.equal(s.callers.publish.s3.tier1, 1);
    assert.equal(s.callers.publish.s3.tier2, 0, 'an injected fault is not a billed request');
    assert.equal(s.callers.publish.s3.faults, 1);
    assert.equal(s.totals.s3.requests, 3);
    assert.equal(s.totals.s3.bytesOut, 210);
    assert.equal(s.totals.s3.byStatus['5xx'], 1);
    assert.equal(s.totals.dynamodb.readRequestUnits, 3);
    assert.equal(s.totals.dynamodb.scans, 1);
    assert.equal(m.denials().length, 1);
    m.reset();
    assert.deepEqual(m.snapshot(), { callers: {}, totals: {}, denials: 0 });
  });
});

// ---------------------------------------------------------------------------
// End to end against moto
// ---------------------------------------------------------------------------

const ACCOUNT = '123456789012';
const REGION = 'us-east-1';
const PREFIX = 'pkgrelay-gw';
const BUCKET = `${PREFIX}-repo`;
const BUCKET_ARN = `arn:aws:s3:::${BUCKET}`;
const PACKAGES = `${PREFIX}-packages`;
const STATE = `${PREFIX}-state`;
const PACKAGES_ARN = `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/${PACKAGES}`;
const STATE_ARN = `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/${STATE}`;
const DISTRIBUTION = `arn:aws:cloudfront::${ACCOUNT}:distribution/EGATEWAYTEST`;
const TOPIC = `arn:aws:sns:${REGION}:${ACCOUNT}:${PREFIX}-failure`;
const policy = (...Statement) => ({ Version: '2012-10-17', Statement });
const objects = (...p) => p.map((x) => `${BUCKET_ARN}/${x}`);

const ROLE_POLICIES = {
  'check-sources': policy(
    { Sid: 'ReadStore', Effect: 'Allow', Action: 'dynamodb:GetItem', Resource: [PACKAGES_ARN, STATE_ARN] },
    { Sid: 'ListStaging', Effect: 'Allow', Action: 's3:ListBucket', Resource: BUCKET_ARN, Condition: { StringLike: { 's3:prefix': ['staging/', 'staging/*'] } } },
    { Sid: 'ReadStaging', Effect: 'Allow', Action: 's3:GetObject', Resource: objects('staging/*') },
  ),
  'download-package': policy(
    { Sid: 'ReadStore', Effect: 'Allow', Action: 'dynamodb:GetItem', Resource: PACKAGES_ARN },
    { Sid: 'ReadStagingAndPool', Effect: 'Allow', Action: 's3:GetObject', Resource: objects('staging/*', 'pool/*') },
    { Sid: 'WritePool', Effect: 'Allow', Action: ['s3:PutObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts'], Resource: objects('pool/*') },
    { Sid: 'MissingKeysAnswer404', Effect: 'Allow', Action: 's3:ListBucket', Resource: BUCKET_ARN },
  ),
  'record-metadata': policy(
    { Sid: 'WriteStore', Effect: 'Allow', Action: ['dynamodb:GetItem', 'dynamodb:PutItem'], Resource: PACKAGES_ARN },
    { Sid: 'RaiseRecordedMark', Effect: 'Allow', Action: 'dynamodb:UpdateItem', Resource: STATE_ARN },
  ),
  'build-index': policy(
    { Sid: 'ReadStore', Effect: 'Allow', Action: 'dynamodb:Scan', Resource: PACKAGES_ARN },
    { Sid: 'AllocateGeneration', Effect: 'Allow', Action: ['dynamodb:GetItem', 'dynamodb:UpdateItem'], Resource: STATE_ARN },
    { Sid: 'WriteByHash', Effect: 'Allow', Action: ['s3:GetObject', 's3:PutObject'], Resource: objects('dists/*') },
    { Sid: 'MissingKeysAnswer404', Effect: 'Allow', Action: 's3:ListBucket', Resource: BUCKET_ARN },
  ),
  publish: policy(
    { Sid: 'PublishGeneration', Effect: 'Allow', Action: ['dynamodb:GetItem', 'dynamodb:UpdateItem'], Resource: STATE_ARN },
    { Sid: 'ReadGenerationAndSources', Effect: 'Allow', Action: 's3:GetObject', Resource: objects('generations/*', 'pool/*', 'dists/*') },
    { Sid: 'WritePublicFiles', Effect: 'Allow', Action: 's3:PutObject', Resource: objects('dists/*', 'index.html') },
  ),
};
const BUCKET_POLICY = policy(
  { Action: 's3:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } }, Effect: 'Deny', Principal: { AWS: '*' }, Resource: [BUCKET_ARN, `${BUCKET_ARN}/*`] },
  {
    Sid: 'CloudFrontReadsRepositoryPaths',
    Effect: 'Allow',
    Principal: { Service: 'cloudfront.amazonaws.com' },
    Action: 's3:GetObject',
    Resource: objects('dists/*', 'pool/*', 'index.html'),
    Condition: { StringEquals: { 'AWS:SourceArn': DISTRIBUTION } },
  },
);

/** A stand-in for server.mjs's Registry (README: "Registry (shared between modules)"). */
class TestRegistry {
  constructor() {
    this.faults = new FaultList();
    this.meters = new Map();
    this.keys = new Map([['AKIDADMIN', { kind: 'admin' }]]);
    for (const name of Object.keys(ROLE_POLICIES)) {
      const roleName = `${PREFIX}-${name}`;
      this.keys.set(`AKID-${name}`, {
        kind: 'role',
        deploymentId: 'dep1',
        name,
        roleArn: `arn:aws:iam::${ACCOUNT}:role/${roleName}`,
        sessionArn: `arn:aws:sts::${ACCOUNT}:assumed-role/${roleName}/${PREFIX}-${name}`,
        identityPolicies: [{ name, policy: ROLE_POLICIES[name] }],
      });
    }
    // The CloudFront stand-in's key: the service principal with the distribution as aws:SourceArn.
    this.keys.set('AKIDCLOUDFRONT', { kind: 'service', service: 'cloudfront.amazonaws.com', sourceArn: DISTRIBUTION, sourceAccount: ACCOUNT });
  }
  principalForAccessKey(key) {
    return this.keys.get(key) ?? null;
  }
  resourcePolicy(service, arn) {
    return service === 's3' && arn === BUCKET_ARN ? BUCKET_POLICY : undefined;
  }
  deploymentForResource(service, arn) {
    return String(arn).includes(PREFIX) ? 'dep1' : null;
  }
  meter(id) {
    if (!this.meters.has(id)) this.meters.set(id, new Meter());
    return this.meters.get(id);
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

async function waitFor(url, child, seconds) {
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`moto exited with ${child.exitCode}`);
    try {
      const r = await fetch(url);
      await r.arrayBuffer();
      if (r.ok) return;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${url} did not answer within ${seconds} s`);
}

const auth = (key, service) =>
  `AWS4-HMAC-SHA256 Credential=${key}/20260101/${REGION}/${service}/aws4_request, SignedHeaders=host;x-amz-date, Signature=0000`;

describe('gateway in front of moto', () => {
  let moto;
  let motoUrl;
  let registry;
  let gateway;
  let server;
  let base;
  const logs = [];

  before(async () => {
    if (!existsSync(MOTO_PYTHON)) {
      throw new Error(
        `${MOTO_PYTHON} is missing: tests/run installs moto there (python3 -m venv …; pip install 'moto[server]==5.2.5'), or set MOTO_PYTHON`,
      );
    }
    const port = await freePort();
    moto = spawn(MOTO_PYTHON, [MOTO_SERVER, '127.0.0.1', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    moto.stderr.on('data', (d) => {
      stderr = (stderr + d).slice(-4000);
    });
    motoUrl = `http://127.0.0.1:${port}`;
    try {
      await waitFor(`${motoUrl}/moto-api/`, moto, 60);
    } catch (e) {
      throw new Error(`${e.message}\n${stderr}`);
    }
    registry = new TestRegistry();
    gateway = createGateway({ motoUrl, registry, log: (entry) => logs.push(entry) });
    server = http.createServer((req, res) => gateway.handle(req, res));
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${server.address().port}`;

    // The deployment's resources, made by the admin through the gateway.
    assert.equal((await s3('PUT', `/${BUCKET}`, 'AKIDADMIN')).status, 200);
    for (const [table, key] of [[PACKAGES, 'package_id'], [STATE, 'suite']]) {
      const r = await ddb('CreateTable', {
        TableName: table,
        KeySchema: [{ AttributeName: key, KeyType: 'HASH' }],
        AttributeDefinitions: [{ AttributeName: key, AttributeType: 'S' }],
        BillingMode: 'PAY_PER_REQUEST',
      }, 'AKIDADMIN');
      assert.equal(r.status, 200, await r.text());
    }
    registry.meter('dep1').reset();
  });

  after(async () => {
    if (server) {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
    gateway?.agent.destroy();
    if (moto && moto.exitCode === null) {
      const exited = new Promise((r) => moto.once('exit', r));
      process.kill(moto.pid, 'SIGTERM');
      await exited;
    }
  });

  function s3(method, urlPath, key, { body, headers = {} } = {}) {
    const h = { ...headers };
    if (key) h.authorization = auth(key, 's3');
    return fetch(`${base}${urlPath}`, { method, headers: h, body });
  }
  function ddb(op, body, key) {
    return fetch(`${base}/`, {
      method: 'POST',
      headers: { authorization: auth(key, 'dynamodb'), 'x-amz-target': `DynamoDB_20120810.${op}`, 'content-type': 'application/x-amz-json-1.0' },
      body: JSON.stringify(body),
    });
  }
  function secrets(op, body, key) {
    return fetch(`${base}/`, {
      method: 'POST',
      headers: { authorization: auth(key, 'secretsmanager'), 'x-amz-target': `secretsmanager.${op}`, 'content-type': 'application/x-amz-json-1.1' },
      body: JSON.stringify(body),
    });
  }
  const code = (xml) => /<Code>([^<]+)<\/Code>/.exec(xml)?.[1];

  test('an allowed PutObject/GetObject round trip; a key with spaces, + and @', async () => {
    const key = `/${BUCKET}/pool/main/k/kiro_1.0%2Bdfsg%20x%40y_all.deb`;
    const put = await s3('PUT', key, 'AKID-download-package', { body: 'deb bytes', headers: { 'x-amz-meta-sha256': 'ab' } });
    assert.equal(put.status, 200, await put.text());
    const get = await s3('GET', key, 'AKID-publish');
    assert.equal(get.status, 200);
    assert.equal(await get.text(), 'deb bytes');
    assert.equal(get.headers.get('x-amz-meta-sha256'), 'ab');
    // moto stored it under the decoded key.
    const list = await (await s3('GET', `/${BUCKET}?list-type=2&prefix=pool/main/k/`, 'AKIDADMIN')).text();
    assert.match(list, /<Key>pool\/main\/k\/kiro_1.0\+dfsg x@y_all.deb<\/Key>/);
  });

  test('a denied GetObject answers AWS 403 XML naming action and resource, and is listed', async () => {
    await s3('PUT', `/${BUCKET}/generations/stable/1/manifest.json`, 'AKIDADMIN', { body: '{}' });
    const r = await s3('GET', `/${BUCKET}/generations/stable/1/manifest.json`, 'AKID-check-sources');
    assert.equal(r.status, 403);
    assert.equal(r.headers.get('content-type'), 'application/xml');
    const xml = await r.text();
    assert.equal(code(xml), 'AccessDenied');
    assert.ok(
      xml.includes(
        `User: arn:aws:sts::${ACCOUNT}:assumed-role/${PREFIX}-check-sources/${PREFIX}-check-sources is not authorized to perform: s3:GetObject on resource: "${BUCKET_ARN}/generations/stable/1/manifest.json" because no identity-based policy allows the s3:GetObject action`,
      ),
      xml,
    );
    const d = registry.meter('dep1').denials().at(-1);
    assert.equal(d.kind, 'denied');
    assert.equal(d.caller, 'check-sources');
    assert.equal(d.action, 's3:GetObject');
    assert.equal(d.resource, `${BUCKET_ARN}/generations/stable/1/manifest.json`);
    assert.deepEqual(d.identityPolicies, ['check-sources']);
    assert.equal(logs.at(-1).kind, 'denied', 'and logged as one JSON line');
  });

  test('a denied HeadObject answers 403 without a body', async () => {
    const r = await s3('HEAD', `/${BUCKET}/staging/x.deb`, 'AKID-build-index');
    assert.equal(r.status, 403);
    assert.equal((await r.arrayBuffer()).byteLength, 0);
    assert.equal(r.headers.get('content-length'), '0');
  });

  test('a missing key: 404 with s3:ListBucket on the bucket, else 403 (as S3 answers)', async () => {
    const withList = await s3('HEAD', `/${BUCKET}/pool/missing.deb`, 'AKID-download-package');
    assert.equal(withList.status, 404, 'download-package has MissingKeysAnswer404');
    const getWithList = await s3('GET', `/${BUCKET}/pool/missing.deb`, 'AKID-download-package');
    assert.equal(getWithList.status, 404);
    assert.equal(code(await getWithList.text()), 'NoSuchKey');
    // check-sources may list staging/ only: the prefix condition does not apply to this check.
    const noList = await s3('GET', `/${BUCKET}/staging/missing.deb`, 'AKID-check-sources');
    assert.equal(noList.status, 403);
    assert.match(await noList.text(), /s3:ListBucket on resource: "arn:aws:s3:::pkgrelay-gw-repo"/);
    const headNoList = await s3('HEAD', `/${BUCKET}/staging/missing.deb`, 'AKID-check-sources');
    assert.equal(headNoList.status, 403);
    assert.equal((await headNoList.arrayBuffer()).byteLength, 0);
    const cf = await s3('GET', `/${BUCKET}/dists/missing`, 'AKIDCLOUDFRONT');
    assert.equal(cf.status, 403, 'CloudFront gets 403 for a missing key: the bucket policy grants it no ListBucket');
    await cf.arrayBuffer();
    assert.equal((await s3('HEAD', `/${BUCKET}/dists/missing`, 'AKIDADMIN')).status, 404);
  });

  test('ListObjectsV2 under the s3:prefix condition', async () => {
    const ok = await s3('GET', `/${BUCKET}?list-type=2&prefix=staging%2F`, 'AKID-check-sources');
    assert.equal(ok.status, 200, await ok.text());
    const no = await s3('GET', `/${BUCKET}?list-type=2&prefix=dists%2F`, 'AKID-check-sources');
    assert.equal(no.status, 403);
    assert.match(await no.text(), /s3:ListBucket on resource: "arn:aws:s3:::pkgrelay-gw-repo"/);
  });

  test('CopyObject needs s3:GetObject on the source', async () => {
    await s3('PUT', `/${BUCKET}/staging/src.deb`, 'AKIDADMIN', { body: 'x' });
    const r = await s3('PUT', `/${BUCKET}/index.html`, 'AKID-publish', { headers: { 'x-amz-copy-source': `${BUCKET}/staging/src.deb` } });
    assert.equal(r.status, 403);
    assert.match(await r.text(), /s3:GetObject on resource: "arn:aws:s3:::pkgrelay-gw-repo\/staging\/src.deb"/);
    await s3('PUT', `/${BUCKET}/dists/by-hash/ab`, 'AKIDADMIN', { body: 'idx' });
    const ok = await s3('PUT', `/${BUCKET}/dists/stable/Release`, 'AKID-publish', { headers: { 'x-amz-copy-source': `${BUCKET}/dists/by-hash/ab` } });
    assert.equal(ok.status, 200, await ok.text());
  });

  test('the bucket policy decides for CloudFront and anonymous callers', async () => {
    await s3('PUT', `/${BUCKET}/dists/stable/InRelease`, 'AKIDADMIN', { body: 'signed' });
    const cf = await s3('GET', `/${BUCKET}/dists/stable/InRelease`, 'AKIDCLOUDFRONT');
    assert.equal(cf.status, 200);
    assert.equal(await cf.text(), 'signed');
    const cfStaging = await s3('GET', `/${BUCKET}/staging/src.deb`, 'AKIDCLOUDFRONT');
    assert.equal(cfStaging.status, 403);
    await cfStaging.arrayBuffer();
    const anon = await s3('GET', `/${BUCKET}/dists/stable/InRelease`, null);
    assert.equal(anon.status, 403);
    assert.match(await anon.text(), /<Message>Access Denied<\/Message>/);
    const snap = registry.meter('dep1').snapshot();
    assert.ok(snap.callers.cloudfront.s3.requests >= 2);
    assert.ok(snap.callers.anonymous.s3.denied >= 1);
  });

  test('unknown access keys and unknown operations', async () => {
    const r = await s3('GET', `/${BUCKET}/dists/x`, 'AKIDNOBODY');
    assert.equal(r.status, 403);
    assert.equal(code(await r.text()), 'InvalidAccessKeyId');
    const d = await ddb('GetItem', { TableName: PACKAGES, Key: { package_id: { S: 'x' } } }, 'AKIDNOBODY');
    assert.equal(d.status, 400);
    assert.equal((await d.json()).__type, 'com.amazon.coral.service#UnrecognizedClientException');
    const unknown = await s3('GET', `/${BUCKET}?replication`, 'AKID-publish');
    assert.equal(unknown.status, 403);
    assert.match(await unknown.text(), /localaws does not know this operation/);
    const admin = await s3('GET', `/${BUCKET}?replication`, 'AKIDADMIN');
    assert.notEqual(admin.status, 403, 'the admin gets unknown operations through to moto');
    await admin.arrayBuffer();
  });

  test('DeleteObjects: allowed keys are deleted, the others reported as AccessDenied in the result', async () => {
    registry.keys.set('AKID-cleaner', {
      kind: 'role',
      deploymentId: 'dep1',
      name: 'cleaner',
      roleArn: `arn:aws:iam::${ACCOUNT}:role/cleaner`,
      sessionArn: `arn:aws:sts::${ACCOUNT}:assumed-role/cleaner/cleaner`,
      identityPolicies: [{ name: 'cleaner', policy: policy({ Effect: 'Allow', Action: 's3:DeleteObject', Resource: objects('tmp/*') }) }],
    });
    for (const k of ['tmp/a & b', 'tmp/c', 'dists/keep']) await s3('PUT', `/${BUCKET}/${encodeURIComponent(k)}`, 'AKIDADMIN', { body: 'x' });
    const del = (keys, quiet) =>
      s3('POST', `/${BUCKET}?delete`, 'AKID-cleaner', {
        body: `<Delete>${quiet ? '<Quiet>true</Quiet>' : ''}${keys.map((k) => `<Object><Key>${k.replace('&', '&amp;')}</Key></Object>`).join('')}</Delete>`,
        headers: { 'content-md5': 'ignored' },
      });
    const r = await del(['tmp/a & b', 'dists/keep', 'tmp/c']);
    assert.equal(r.status, 200);
    const xml = await r.text();
    assert.match(xml, /<Deleted><Key>tmp\/a &amp; b<\/Key>/);
    assert.match(xml, /<Deleted><Key>tmp\/c<\/Key>/);
    assert.match(xml, /<Error><Key>dists\/keep<\/Key><Code>AccessDenied<\/Code><Message>Access Denied<\/Message><\/Error>/);
    assert.equal((await s3('HEAD', `/${BUCKET}/dists/keep`, 'AKIDADMIN')).status, 200, 'the denied key is still there');
    assert.equal((await s3('HEAD', `/${BUCKET}/tmp/c`, 'AKIDADMIN')).status, 404);
    const none = await del(['dists/keep'], true);
    assert.equal(none.status, 200);
    assert.match(await none.text(), /<DeleteResult[^>]*><Error><Key>dists\/keep<\/Key><Code>AccessDenied<\/Code>/);
    assert.equal((await s3('HEAD', `/${BUCKET}/dists/keep`, 'AKIDADMIN')).status, 200);
    assert.equal(registry.meter('dep1').denials().at(-1).resource, `${BUCKET_ARN}/dists/keep`);
  });

  test('S3 limits: key length and metadata as AWS answers them; EntityTooSmall from moto', async () => {
    const long = await s3('PUT', `/${BUCKET}/pool/${'k'.repeat(1020)}`, 'AKID-download-package', { body: 'x' });
    assert.equal(long.status, 400);
    assert.equal(code(await long.text()), 'KeyTooLongError');
    const fits = await s3('PUT', `/${BUCKET}/pool/${'k'.repeat(1019)}`, 'AKID-download-package', { body: 'x' });
    assert.equal(fits.status, 200, 'a 1024-byte key is stored');
    await fits.arrayBuffer();
    const meta = await s3('PUT', `/${BUCKET}/pool/meta`, 'AKID-download-package', { body: 'x', headers: { 'x-amz-meta-a': 'v'.repeat(2048) } });
    assert.equal(meta.status, 400);
    assert.equal(code(await meta.text()), 'MetadataTooLarge');
    assert.equal((await s3('HEAD', `/${BUCKET}/pool/meta`, 'AKIDADMIN')).status, 404, 'nothing was written');
    // Parts below 5 MiB: moto answers EntityTooSmall itself, passed through unchanged.
    const key = `/${BUCKET}/pool/multi.deb`;
    const created = await (await s3('POST', `${key}?uploads`, 'AKID-download-package')).text();
    const uploadId = /<UploadId>([^<]+)<\/UploadId>/.exec(created)[1];
    const etags = [];
    for (const n of [1, 2]) {
      const p = await s3('PUT', `${key}?partNumber=${n}&uploadId=${encodeURIComponent(uploadId)}`, 'AKID-download-package', { body: 'p'.repeat(100) });
      assert.equal(p.status, 200);
      etags.push(p.headers.get('etag'));
    }
    const bad = await s3('PUT', `${key}?partNumber=0&uploadId=${encodeURIComponent(uploadId)}`, 'AKID-download-package', { body: 'p' });
    assert.equal(code(await bad.text()), 'InvalidArgument');
    const xml = `<CompleteMultipartUpload>${etags.map((e, i) => `<Part><PartNumber>${i + 1}</PartNumber><ETag>${e}</ETag></Part>`).join('')}</CompleteMultipartUpload>`;
    const done = await s3('POST', `${key}?uploadId=${encodeURIComponent(uploadId)}`, 'AKID-download-package', { body: xml });
    assert.equal(done.status, 400);
    assert.equal(code(await done.text()), 'EntityTooSmall');
    const abort = await s3('DELETE', `${key}?uploadId=${encodeURIComponent(uploadId)}`, 'AKID-download-package');
    assert.equal(abort.status, 204);
  });

  test('an upload without Content-Length is refused with 411 MissingContentLength', async () => {
    const status = await new Promise((resolve, reject) => {
      const u = new URL(`${base}/${BUCKET}/pool/chunked`);
      const r = http.request(
        { host: u.hostname, port: u.port, method: 'PUT', path: u.pathname, headers: { authorization: auth('AKID-download-package', 's3'), 'transfer-encoding': 'chunked' } },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode));
        },
      );
      r.on('error', reject);
      r.end('abc');
    });
    assert.equal(status, 411);
  });

  test('a DynamoDB PutItem of 400 KB + 1 byte is refused with ValidationException; nothing is written', async () => {
    const item = { package_id: { S: 'big#1#all' } };
    item.d = { S: 'x'.repeat(409601 - itemSize(item) - 1) };
    assert.equal(itemSize(item), 409601);
    const r = await ddb('PutItem', { TableName: PACKAGES, Item: item }, 'AKID-record-metadata');
    assert.equal(r.status, 400);
    assert.deepEqual(await r.json(), { __type: 'com.amazon.coral.validate#ValidationException', message: 'Item size has exceeded the maximum allowed size' });
    const g = await ddb('GetItem', { TableName: PACKAGES, Key: { package_id: { S: 'big#1#all' } }, ConsistentRead: true }, 'AKIDADMIN');
    assert.deepEqual(await g.json(), {}, 'no item');
    assert.equal(registry.meter('dep1').denials().at(-1).kind, 'refused');
    // Below 400 KB (and below moto's own limit of 405,000 bytes) the write goes through.
    item.d = { S: 'x'.repeat(404000 - itemSize({ package_id: item.package_id }) - 1) };
    const ok = await ddb('PutItem', { TableName: PACKAGES, Item: item }, 'AKID-record-metadata');
    assert.equal(ok.status, 200, await ok.text());
  });

  test('an UpdateItem that would grow the item past 400 KB is refused before it reaches moto', async () => {
    const key = { suite: { S: 'big' } };
    const put = await ddb('PutItem', { TableName: STATE, Item: { ...key, a: { S: 'x'.repeat(300 * 1024) } } }, 'AKIDADMIN');
    assert.equal(put.status, 200);
    const r = await ddb(
      'UpdateItem',
      { TableName: STATE, Key: key, UpdateExpression: 'SET #b = :b', ExpressionAttributeNames: { '#b': 'b' }, ExpressionAttributeValues: { ':b': { S: 'y'.repeat(100 * 1024) } } },
      'AKID-publish',
    );
    assert.equal(r.status, 400);
    assert.equal((await r.json()).message, 'Item size to update has exceeded the maximum allowed size');
    const g = await (await ddb('GetItem', { TableName: STATE, Key: key, ConsistentRead: true }, 'AKIDADMIN')).json();
    assert.deepEqual(Object.keys(g.Item).sort(), ['a', 'suite'], 'the item is unchanged');
  });

  test('TransactWriteItems (dynamo.rs insert): per-item authorization, moto\'s cancellation passes through, over-size Put refused', async () => {
    const entry = (id, extra = {}) => ({ package_id: { S: id }, sha256: { S: 'ab' }, ...extra });
    const tx = (item) => ({
      TransactItems: [
        { Put: { TableName: PACKAGES, Item: item, ConditionExpression: 'attribute_not_exists(package_id)', ReturnValuesOnConditionCheckFailure: 'ALL_OLD' } },
        { Update: { TableName: STATE, Key: { suite: { S: 'stable' } }, UpdateExpression: 'ADD #rec :one', ExpressionAttributeNames: { '#rec': 'recorded' }, ExpressionAttributeValues: { ':one': { N: '1' } } } },
      ],
    });
    const ok = await ddb('TransactWriteItems', tx(entry('tx#1#all')), 'AKID-record-metadata');
    assert.equal(ok.status, 200, await ok.text());
    const again = await ddb('TransactWriteItems', tx(entry('tx#1#all')), 'AKID-record-metadata');
    assert.equal(again.status, 400);
    const cancelled = await again.json();
    assert.match(cancelled.__type, /TransactionCanceledException$/);
    assert.equal(cancelled.CancellationReasons[0].Code, 'ConditionalCheckFailed');
    const denied = await ddb('TransactWriteItems', tx(entry('tx#2#all')), 'AKID-download-package');
    assert.equal(denied.status, 400);
    assert.match((await denied.json()).Message, /dynamodb:PutItem on resource: .*table\/pkgrelay-gw-packages/);
    const big = entry('tx#3#all');
    big.d = { S: 'x'.repeat(409601 - itemSize(big) - 1) };
    const over = await ddb('TransactWriteItems', tx(big), 'AKID-record-metadata');
    assert.equal(over.status, 400);
    const doc = await over.json();
    assert.deepEqual(doc.CancellationReasons.map((r) => r.Code), ['ValidationError', 'None']);
    const state = await (await ddb('GetItem', { TableName: STATE, Key: { suite: { S: 'stable' } }, ConsistentRead: true }, 'AKIDADMIN')).json();
    assert.deepEqual(state.Item.recorded, { N: '1' }, 'neither the refused nor the cancelled transaction raised the mark');
  });

  test('DynamoDB denials, and units metered as on-demand mode bills them', async () => {
    registry.meter('dep1').reset();
    const denied = await ddb('GetItem', { TableName: PACKAGES, Key: { package_id: { S: 'x' } } }, 'AKID-build-index');
    assert.equal(denied.status, 400);
    const body = await denied.json();
    assert.equal(body.__type, 'com.amazon.coral.service#AccessDeniedException');
    assert.match(body.Message, new RegExp(`dynamodb:GetItem on resource: ${PACKAGES_ARN} because no identity-based policy allows`));
    const item = { package_id: { S: 'kiro#1#amd64' } };
    item.d = { S: 'z'.repeat(3584 - itemSize(item) - 1) }; // 3.5 KB
    assert.equal((await ddb('PutItem', { TableName: PACKAGES, Item: item }, 'AKID-record-metadata')).status, 200);
    assert.equal((await ddb('GetItem', { TableName: PACKAGES, Key: { package_id: item.package_id }, ConsistentRead: true }, 'AKID-record-metadata')).status, 200);
    assert.equal((await ddb('GetItem', { TableName: PACKAGES, Key: { package_id: item.package_id } }, 'AKID-download-package')).status, 200);
    const scan = await ddb('Scan', { TableName: PACKAGES, ConsistentRead: true }, 'AKID-build-index');
    assert.equal(scan.status, 200);
    const scanned = (await scan.json()).Items.reduce((a, i) => a + itemSize(i), 0);
    const gen = await ddb(
      'UpdateItem',
      {
        TableName: STATE,
        Key: { suite: { S: 'stable' } },
        UpdateExpression: 'SET #gen = if_not_exists(#gen, :zero) + :one',
        ExpressionAttributeNames: { '#gen': 'generation' },
        ExpressionAttributeValues: { ':zero': { N: '0' }, ':one': { N: '1' } },
        ReturnValues: 'UPDATED_NEW',
      },
      'AKID-build-index',
    );
    assert.deepEqual((await gen.json()).Attributes.generation, { N: '1' });
    const s = registry.meter('dep1').snapshot().callers;
    assert.equal(s['record-metadata'].dynamodb.writeRequestUnits, 4, '3.5 KB put: 4 write units');
    assert.equal(s['record-metadata'].dynamodb.readRequestUnits, 1, 'strongly consistent 3.5 KB read: 1 unit');
    assert.equal(s['download-package'].dynamodb.readRequestUnits, 0.5, 'eventually consistent: half');
    assert.equal(s['build-index'].dynamodb.scans, 1);
    assert.equal(s['build-index'].dynamodb.denied, 1);
    assert.equal(s['build-index'].dynamodb.readRequestUnits, Math.ceil(scanned / 4096));
    assert.equal(s['build-index'].dynamodb.writeRequestUnits, 1);
  });

  test('Secrets Manager and SNS answers in their own shapes', async () => {
    const created = await secrets('CreateSecret', { Name: `${PREFIX}-signing-key`, SecretString: 'armored' }, 'AKIDADMIN');
    assert.equal(created.status, 200);
    const { ARN } = await created.json();
    const denied = await secrets('GetSecretValue', { SecretId: ARN }, 'AKID-publish');
    assert.equal(denied.status, 400);
    const body = await denied.json();
    assert.equal(body.__type, 'AccessDeniedException');
    assert.match(body.Message, /secretsmanager:GetSecretValue on resource: arn:aws:secretsmanager:/);
    const sns = await fetch(`${base}/`, {
      method: 'POST',
      headers: { authorization: auth('AKID-publish', 'sns'), 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ Action: 'Publish', TopicArn: TOPIC, Message: 'hi', Version: '2010-03-31' }).toString(),
    });
    assert.equal(sns.status, 403);
    assert.match(await sns.text(), /<Code>AuthorizationError<\/Code><Message>User: .* is not authorized to perform: SNS:Publish on resource: arn:aws:sns:/);
  });

  test('an injected 503 SlowDown hits exactly `times` requests, and the Meter counts them', async () => {
    await s3('PUT', `/${BUCKET}/dists/stable/Release`, 'AKIDADMIN', { body: 'release' });
    registry.meter('dep1').reset();
    registry.faults.add({ id: 'slow', match: { service: 's3', operation: 'GetObject', principal: 'publish', keyPrefix: 'dists/' }, respond: { code: 'SlowDown' }, times: 2 });
    const admin = await s3('GET', `/${BUCKET}/dists/stable/Release`, 'AKIDADMIN');
    assert.equal(admin.status, 200, 'a rule that does not name the admin spares it');
    await admin.arrayBuffer();
    const statuses = [];
    for (let i = 0; i < 4; i++) {
      const r = await s3('GET', `/${BUCKET}/dists/stable/Release`, 'AKID-publish');
      const text = await r.text();
      statuses.push(r.status);
      if (r.status === 503) {
        assert.equal(code(text), 'SlowDown');
        assert.match(text, /<Message>Please reduce your request rate.<\/Message>/);
      } else assert.equal(text, 'release');
    }
    assert.deepEqual(statuses, [503, 503, 200, 200]);
    assert.deepEqual(registry.faults.list().map((f) => [f.id, f.hits, f.remaining]), [['slow', 2, 0]]);
    const s3m = registry.meter('dep1').snapshot().callers.publish.s3;
    assert.equal(s3m.requests, 4);
    assert.equal(s3m.byOperation.GetObject, 4);
    assert.equal(s3m.faults, 2);
    assert.equal(s3m.byStatus['5xx'], 2);
    assert.equal(s3m.tier2, 2, 'the faults are not billed GETs');
    assert.equal(s3m.bytesOut, 2 * 'release'.length);
    assert.equal(registry.meter('dep1').snapshot().callers.admin.s3.tier2, 1);
    assert.deepEqual(registry.meter('dep1').denials().map((d) => [d.kind, d.faultId]), [['fault', 'slow'], ['fault', 'slow']]);
    registry.faults.clear();
  });

  test('DynamoDB faults in DynamoDB shape; a reset closes the socket', async () => {
    registry.faults.add({ match: { table: STATE, principal: 'publish' }, respond: { code: 'ThrottlingException' } });
    const r = await ddb('GetItem', { TableName: STATE, Key: { suite: { S: 'stable' } } }, 'AKID-publish');
    assert.equal(r.status, 400);
    assert.deepEqual(await r.json(), { __type: 'com.amazon.coral.availability#ThrottlingException', message: 'Rate of requests exceeds the allowed throughput.' });
    registry.faults.add({ match: { service: 'dynamodb', operation: 'UpdateItem' }, respond: { code: 'InternalServerError' } });
    const ise = await ddb('UpdateItem', { TableName: STATE, Key: { suite: { S: 'x' } }, UpdateExpression: 'SET a = :a', ExpressionAttributeValues: { ':a': { S: '1' } } }, 'AKID-publish');
    assert.equal(ise.status, 500);
    assert.equal((await ise.json()).__type, 'com.amazonaws.dynamodb.v20120810#InternalServerError');
    registry.faults.add({ match: { service: 's3', principal: 'publish' }, respond: { reset: true } });
    await assert.rejects(s3('GET', `/${BUCKET}/dists/stable/Release`, 'AKID-publish'));
    const after = await s3('GET', `/${BUCKET}/dists/stable/Release`, 'AKID-publish');
    assert.equal(after.status, 200);
    await after.arrayBuffer();
    registry.faults.clear();
  });

  test('a 50 MiB PutObject/GetObject streams through without being buffered', async (t) => {
    // The gateway runs in its own process so that its peak RSS is its own; a
    // timer there runs the GC often, so that the peak shows live memory rather
    // than garbage V8 has not collected yet. Buffering the body would hold 50 MiB.
    const gatewayUrl = new URL('../gateway.mjs', import.meta.url).href;
    const child = spawn(
      process.execPath,
      [
        '--expose-gc',
        '--input-type=module',
        '-e',
        `
import http from 'node:http';
import { createGateway, FaultList, Meter } from ${JSON.stringify(gatewayUrl)};
const policy = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: ['s3:GetObject', 's3:PutObject'], Resource: '${BUCKET_ARN}/pool/*' }] };
const meter = new Meter();
const registry = {
  faults: new FaultList(),
  principalForAccessKey: (k) => k === 'AKID-download-package'
    ? { kind: 'role', deploymentId: 'dep1', name: 'download-package', roleArn: 'arn:aws:iam::${ACCOUNT}:role/dp', sessionArn: 'arn:aws:sts::${ACCOUNT}:assumed-role/dp/dp', identityPolicies: [{ name: 'dp', policy }] }
    : null,
  resourcePolicy: () => undefined,
  deploymentForResource: () => 'dep1',
  meter: () => meter,
};
const gateway = createGateway({ motoUrl: process.env.MOTO_URL, registry, log: () => {} });
setInterval(() => globalThis.gc(), 20).unref();
const server = http.createServer(gateway.handle);
server.listen(0, '127.0.0.1', () => console.log('PORT ' + server.address().port));
process.stdin.on('data', () => console.log('METER ' + JSON.stringify(meter.snapshot().totals.s3)));
`,
      ],
      { env: { ...process.env, MOTO_URL: motoUrl }, stdio: ['pipe', 'pipe', 'inherit'] },
    );
    try {
      let out = '';
      const lines = [];
      child.stdout.on('data', (d) => {
        out += d;
        let i;
        while ((i = out.indexOf('\n')) >= 0) {
          lines.push(out.slice(0, i));
          out = out.slice(i + 1);
        }
      });
      const waitLine = async (prefix) => {
        for (let t = 0; t < 600; t++) {
          const l = lines.find((x) => x.startsWith(prefix));
          if (l) return l.slice(prefix.length);
          await new Promise((r) => setTimeout(r, 50));
        }
        throw new Error(`no ${prefix} line from the gateway process`);
      };
      const port = Number(await waitLine('PORT '));
      const peakMiB = () => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))[1]) / 1024;
      const SIZE = 50 * 1024 * 1024;
      const transfer = (method, key, size) =>
        new Promise((resolve, reject) => {
          const headers = { authorization: auth('AKID-download-package', 's3') };
          if (size !== undefined) headers['content-length'] = String(size);
          const r = http.request({ host: '127.0.0.1', port, method, path: `/${BUCKET}/${key}`, headers }, (res) => {
            const hash = createHash('sha256');
            let n = 0;
            res.on('data', (c) => {
              hash.update(c);
              n += c.length;
            });
            res.on('end', () => resolve({ status: res.statusCode, bytes: n, sha256: hash.digest('hex') }));
            res.on('error', reject);
          });
          r.on('error', reject);
          if (size === undefined) return r.end();
          const chunk = Buffer.alloc(1024 * 1024);
          let sent = 0;
          const pump = () => {
            while (sent < size) {
              chunk.fill(sent / chunk.length);
              sent += chunk.length;
              if (!r.write(chunk)) return r.once('drain', pump);
            }
            r.end();
          };
          pump();
        });
      const expected = createHash('sha256');
      for (let i = 0; i < SIZE / (1024 * 1024); i++) expected.update(Buffer.alloc(1024 * 1024, i));
      // Warm up (loads iam-simulate's data), then measure the peak.
      assert.equal((await transfer('PUT', 'pool/warm', 1024 * 1024)).status, 200);
      assert.equal((await transfer('GET', 'pool/warm')).status, 200);
      const before = peakMiB();
      const put = await transfer('PUT', 'pool/big.deb', SIZE);
      assert.equal(put.status, 200);
      const get = await transfer('GET', 'pool/big.deb');
      assert.equal(get.status, 200);
      assert.equal(get.bytes, SIZE);
      assert.equal(get.sha256, expected.digest('hex'), 'the bytes came back unchanged');
      const growth = peakMiB() - before;
      t.diagnostic(`gateway peak RSS ${before.toFixed(1)} MiB before, +${growth.toFixed(1)} MiB after moving 50 MiB up and down`);
      assert.ok(growth < 25, `the gateway's peak RSS grew by ${growth.toFixed(1)} MiB moving 2 x 50 MiB (must stay far below 50)`);
      child.stdin.write('\n');
      const s3m = JSON.parse(await waitLine('METER '));
      assert.equal(s3m.bytesIn, SIZE + 1024 * 1024);
      assert.equal(s3m.bytesOut, SIZE + 1024 * 1024);
    } finally {
      const exited = new Promise((r) => child.once('exit', r));
      process.kill(child.pid, 'SIGTERM');
      await exited;
    }
  });
});
