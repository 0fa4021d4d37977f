// Unit tests of iam.mjs: parseAuth, classify (every modelled operation),
// authorize (with the policies cdk/lib/functions.ts and the bucket policy of
// cdk/lib/pkgrelay-stack.ts synthesize) and the AWS-shaped denials.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  accessDenied,
  authorize,
  classify,
  globalContext,
  needsBody,
  parseAuth,
  parseCopySource,
  serviceOf,
  unknownAccessKey,
} from '../iam.mjs';

const ACCOUNT = '123456789012';
const REGION = 'eu-west-1';
const PREFIX = 'pkgrelay-t1';
const BUCKET = `${PREFIX}-repo`;
const BUCKET_ARN = `arn:aws:s3:::${BUCKET}`;
const PACKAGES = `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/${PREFIX}-packages`;
const STATE = `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/${PREFIX}-state`;
const SECRET = `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:${PREFIX}-signing-key-AbCdEf`;
const DISTRIBUTION = `arn:aws:cloudfront::${ACCOUNT}:distribution/E2EXAMPLE`;
const ROOT_FILES = ['index.html', 'kiro-repo.deb', 'kiro-archive-keyring.gpg'];

const objects = (...patterns) => patterns.map((p) => `${BUCKET_ARN}/${p}`);
const policy = (...Statement) => ({ Version: '2012-10-17', Statement });
const allow = (Sid, Action, Resource, Condition) => ({ Sid, Effect: 'Allow', Action, Resource, ...(Condition ? { Condition } : {}) });

// The role policies functions.ts synthesizes (resolved for one deployment).
const ROLE_POLICIES = {
  'check-sources': policy(
    allow('ReadStore', 'dynamodb:GetItem', [PACKAGES, STATE]),
    allow('ListStaging', 's3:ListBucket', BUCKET_ARN, { StringLike: { 's3:prefix': ['staging/', 'staging/*'] } }),
    allow('ReadStaging', 's3:GetObject', objects('staging/*')),
  ),
  'download-package': policy(
    allow('ReadStore', 'dynamodb:GetItem', PACKAGES),
    allow('ReadStagingAndPool', 's3:GetObject', objects('staging/*', 'pool/*')),
    allow('WritePool', ['s3:PutObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts'], objects('pool/*')),
    allow('MissingKeysAnswer404', 's3:ListBucket', BUCKET_ARN),
  ),
  'build-index': policy(
    allow('ReadStore', 'dynamodb:Scan', PACKAGES),
    allow('AllocateGeneration', ['dynamodb:GetItem', 'dynamodb:UpdateItem'], STATE),
    allow('WriteByHash', ['s3:GetObject', 's3:PutObject'], objects('dists/*')),
    allow('StageGeneration', 's3:PutObject', objects('generations/*')),
    allow('ReadSigningKey', 'secretsmanager:GetSecretValue', SECRET),
    allow('MissingKeysAnswer404', 's3:ListBucket', BUCKET_ARN),
  ),
  publish: policy(
    allow('PublishGeneration', ['dynamodb:GetItem', 'dynamodb:UpdateItem'], STATE),
    allow('ReadGenerationAndSources', 's3:GetObject', objects('generations/*', 'pool/*', 'dists/*')),
    allow('WritePublicFiles', 's3:PutObject', objects('dists/*', ...ROOT_FILES)),
    allow('MissingKeysAnswer404', 's3:ListBucket', BUCKET_ARN),
  ),
};

// The bucket policy: enforceSSL, minimumTLSVersion 1.2 and the CloudFront grant.
const BUCKET_POLICY = policy(
  {
    Action: 's3:*',
    Condition: { Bool: { 'aws:SecureTransport': 'false' } },
    Effect: 'Deny',
    Principal: { AWS: '*' },
    Resource: [BUCKET_ARN, `${BUCKET_ARN}/*`],
  },
  {
    Action: 's3:*',
    Condition: { NumericLessThan: { 's3:TlsVersion': '1.2' } },
    Effect: 'Deny',
    Principal: { AWS: '*' },
    Resource: [BUCKET_ARN, `${BUCKET_ARN}/*`],
  },
  {
    Sid: 'CloudFrontReadsRepositoryPaths',
    Effect: 'Allow',
    Principal: { Service: 'cloudfront.amazonaws.com' },
    Action: 's3:GetObject',
    Resource: objects('dists/*', 'pool/*', ...ROOT_FILES),
    Condition: { StringEquals: { 'AWS:SourceArn': DISTRIBUTION } },
  },
);

function role(name) {
  const roleName = `${PREFIX}-${name}-role`;
  return {
    kind: 'role',
    name,
    roleArn: `arn:aws:iam::${ACCOUNT}:role/${roleName}`,
    sessionArn: `arn:aws:sts::${ACCOUNT}:assumed-role/${roleName}/${PREFIX}-${name}`,
    identityPolicies: [{ name, policy: ROLE_POLICIES[name] }],
  };
}

const AUTH = (service, key = 'AKIDFUNCTION') => ({
  authorization: `AWS4-HMAC-SHA256 Credential=${key}/20260101/${REGION}/${service}/aws4_request, SignedHeaders=host;x-amz-date, Signature=00`,
});

function s3(method, path, { query = '', headers = {}, body = null } = {}) {
  return classify(
    { method, path, query: new URLSearchParams(query), headers: { ...AUTH('s3'), ...headers }, body },
    { region: REGION, accountId: ACCOUNT, auth: { authType: 'REST-HEADER', signatureVersion: 'AWS4-HMAC-SHA256' } },
  );
}
function json(service, target, body, opts = {}) {
  return classify(
    {
      method: 'POST',
      path: '/',
      query: new URLSearchParams(),
      headers: { ...AUTH(service), 'x-amz-target': target, 'content-type': 'application/x-amz-json-1.0' },
      body: Buffer.from(JSON.stringify(body)),
    },
    { region: REGION, accountId: ACCOUNT, ...opts },
  );
}
const ddb = (op, body) => json('dynamodb', `DynamoDB_20120810.${op}`, body);
const sm = (op, body, opts) => json('secretsmanager', `secretsmanager.${op}`, body, opts);
function sns(form) {
  return classify(
    {
      method: 'POST',
      path: '/',
      query: new URLSearchParams(),
      headers: { ...AUTH('sns'), 'content-type': 'application/x-www-form-urlencoded' },
      body: Buffer.from(new URLSearchParams(form).toString()),
    },
    { region: REGION, accountId: ACCOUNT },
  );
}
const pairs = (c) => c.authorizations.map((a) => [a.action, a.resource]);

describe('parseAuth', () => {
  test('SigV4 Authorization header', () => {
    const a = parseAuth({ headers: AUTH('dynamodb', 'AKIAEXAMPLE'), url: '/' });
    assert.deepEqual(
      { accessKeyId: a.accessKeyId, region: a.region, service: a.service, authType: a.authType },
      { accessKeyId: 'AKIAEXAMPLE', region: REGION, service: 'dynamodb', authType: 'REST-HEADER' },
    );
  });
  test('presigned URL', () => {
    const cred = encodeURIComponent(`AKIAPRESIGN/20260101/us-east-1/s3/aws4_request`);
    const a = parseAuth({ headers: {}, url: `/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=${cred}&X-Amz-Signature=ab` });
    assert.equal(a.accessKeyId, 'AKIAPRESIGN');
    assert.equal(a.region, 'us-east-1');
    assert.equal(a.service, 's3');
    assert.equal(a.authType, 'REST-QUERY-STRING');
  });
  test('unsigned and malformed', () => {
    assert.deepEqual(parseAuth({ headers: {}, url: '/b/k' }), { anonymous: true });
    assert.deepEqual(parseAuth({ headers: { authorization: 'Bearer x' }, url: '/' }), { malformed: true });
    assert.deepEqual(parseAuth({ headers: { authorization: 'AWS4-HMAC-SHA256 SignedHeaders=host' }, url: '/' }), { malformed: true });
  });
});

describe('needsBody / serviceOf', () => {
  test('bodies are read only where classification needs them', () => {
    const q = (s) => new URLSearchParams(s);
    assert.equal(needsBody('PUT', '/b/k', q(''), AUTH('s3')), false, 'PutObject streams');
    assert.equal(needsBody('PUT', '/b/k', q('partNumber=1&uploadId=u'), AUTH('s3')), false, 'UploadPart streams');
    assert.equal(needsBody('POST', '/b/k', q('uploadId=u'), AUTH('s3')), false, 'CompleteMultipartUpload streams');
    assert.equal(needsBody('POST', '/b', q('delete'), AUTH('s3')), true, 'DeleteObjects names its keys in the body');
    assert.equal(needsBody('POST', '/', q(''), { ...AUTH('dynamodb'), 'x-amz-target': 'DynamoDB_20120810.GetItem' }), true);
    assert.equal(needsBody('POST', '/', q(''), { ...AUTH('secretsmanager'), 'x-amz-target': 'secretsmanager.GetSecretValue' }), true);
    assert.equal(needsBody('POST', '/', q(''), AUTH('sns')), true);
    assert.equal(needsBody('PUT', '/b/k', q(''), {}), false, 'anonymous S3');
  });
  test('service from target header, credential scope, else S3', () => {
    assert.equal(serviceOf({ headers: { 'x-amz-target': 'DynamoDB_20120810.Scan' } }), 'dynamodb');
    assert.equal(serviceOf({ headers: AUTH('sns') }), 'sns');
    assert.equal(serviceOf({ headers: {} }), 's3');
    assert.equal(serviceOf({ headers: AUTH('kms') }), 'unknown');
  });
});

describe('classify: S3', () => {
  test('GetObject, with versionId GetObjectVersion; HeadObject is s3:GetObject', () => {
    assert.deepEqual(pairs(s3('GET', `/${BUCKET}/dists/stable/InRelease`)), [['s3:GetObject', `${BUCKET_ARN}/dists/stable/InRelease`]]);
    const v = s3('GET', `/${BUCKET}/dists/x`, { query: 'versionId=3HL4kqtJ' });
    assert.equal(v.operation, 'GetObject');
    assert.deepEqual(pairs(v), [['s3:GetObjectVersion', `${BUCKET_ARN}/dists/x`]]);
    const h = s3('HEAD', `/${BUCKET}/pool/a.deb`);
    assert.equal(h.operation, 'HeadObject');
    assert.deepEqual(pairs(h), [['s3:GetObject', `${BUCKET_ARN}/pool/a.deb`]]);
  });

  test('keys are percent-decoded: spaces, + and @; a literal + stays +', () => {
    const c = s3('GET', `/${BUCKET}/pool/main/k/a%20b%2Bc%40d_1.0%7E1_all.deb`);
    assert.equal(c.key, 'pool/main/k/a b+c@d_1.0~1_all.deb');
    assert.equal(c.authorizations[0].resource, `${BUCKET_ARN}/pool/main/k/a b+c@d_1.0~1_all.deb`);
    assert.equal(s3('GET', `/${BUCKET}/pool/a+b`).key, 'pool/a+b');
    assert.equal(s3('GET', `/${BUCKET}/caf%C3%A9`).key, 'café');
    assert.equal(s3('GET', `/${BUCKET}/bad%ZZ`).operation, 'Unknown');
  });

  test('PutObject carries the encryption, storage class and conditional-write keys', () => {
    const c = s3('PUT', `/${BUCKET}/pool/x.deb`, {
      headers: { 'x-amz-server-side-encryption': 'AES256', 'x-amz-storage-class': 'STANDARD', 'if-none-match': '*' },
    });
    assert.equal(c.operation, 'PutObject');
    assert.deepEqual(pairs(c), [['s3:PutObject', `${BUCKET_ARN}/pool/x.deb`]]);
    const ctx = c.authorizations[0].context;
    assert.equal(ctx['s3:x-amz-server-side-encryption'], 'AES256');
    assert.equal(ctx['s3:x-amz-storage-class'], 'STANDARD');
    assert.equal(ctx['s3:if-none-match'], '*');
    assert.equal(ctx['aws:RequestedRegion'], REGION);
    assert.equal(ctx['s3:authType'], 'REST-HEADER');
  });

  test('CopyObject: s3:PutObject on the destination, s3:GetObject on the decoded source', () => {
    const c = s3('PUT', `/${BUCKET}/kiro-repo.deb`, {
      headers: { 'x-amz-copy-source': `${BUCKET}/pool/main/k/kiro-repo_1.0%2Bdfsg%20x%40y_all.deb`, 'x-amz-metadata-directive': 'REPLACE' },
    });
    assert.equal(c.operation, 'CopyObject');
    assert.deepEqual(pairs(c), [
      ['s3:PutObject', `${BUCKET_ARN}/kiro-repo.deb`],
      ['s3:GetObject', `${BUCKET_ARN}/pool/main/k/kiro-repo_1.0+dfsg x@y_all.deb`],
    ]);
    assert.equal(c.authorizations[0].context['s3:x-amz-metadata-directive'], 'REPLACE');
    const v = s3('PUT', `/${BUCKET}/dists/a`, { headers: { 'x-amz-copy-source': `/${BUCKET}/dists/b%3Fc?versionId=v1` } });
    assert.deepEqual(pairs(v)[1], ['s3:GetObjectVersion', `${BUCKET_ARN}/dists/b?c`]);
    assert.deepEqual(parseCopySource('/src-bucket/a/b.txt'), { bucket: 'src-bucket', key: 'a/b.txt', versionId: undefined });
    assert.throws(() => parseCopySource('just-a-bucket'));
  });

  test('multipart: Create/UploadPart/UploadPartCopy/Complete are s3:PutObject; Abort; ListParts; ListMultipartUploads', () => {
    const key = `/${BUCKET}/pool/big.deb`;
    const obj = `${BUCKET_ARN}/pool/big.deb`;
    assert.deepEqual([s3('POST', key, { query: 'uploads' }).operation, ...pairs(s3('POST', key, { query: 'uploads' }))], [
      'CreateMultipartUpload',
      ['s3:PutObject', obj],
    ]);
    const part = s3('PUT', key, { query: 'partNumber=3&uploadId=U1' });
    assert.equal(part.operation, 'UploadPart');
    assert.deepEqual(pairs(part), [['s3:PutObject', obj]]);
    const pc = s3('PUT', key, { query: 'partNumber=1&uploadId=U1', headers: { 'x-amz-copy-source': `${BUCKET}/staging/big.deb` } });
    assert.equal(pc.operation, 'UploadPartCopy');
    assert.deepEqual(pairs(pc), [['s3:PutObject', obj], ['s3:GetObject', `${BUCKET_ARN}/staging/big.deb`]]);
    const done = s3('POST', key, { query: 'uploadId=U1' });
    assert.equal(done.operation, 'CompleteMultipartUpload');
    assert.deepEqual(pairs(done), [['s3:PutObject', obj]]);
    const abort = s3('DELETE', key, { query: 'uploadId=U1' });
    assert.equal(abort.operation, 'AbortMultipartUpload');
    assert.deepEqual(pairs(abort), [['s3:AbortMultipartUpload', obj]]);
    const lp = s3('GET', key, { query: 'uploadId=U1&max-parts=10' });
    assert.equal(lp.operation, 'ListParts');
    assert.deepEqual(pairs(lp), [['s3:ListMultipartUploadParts', obj]]);
    const lmu = s3('GET', `/${BUCKET}`, { query: 'uploads&prefix=pool/' });
    assert.equal(lmu.operation, 'ListMultipartUploads');
    assert.deepEqual(pairs(lmu), [['s3:ListBucketMultipartUploads', BUCKET_ARN]]);
  });

  test('DeleteObject (versionId: DeleteObjectVersion); DeleteObjects: one s3:DeleteObject per key', () => {
    assert.deepEqual(pairs(s3('DELETE', `/${BUCKET}/tmp/x`)), [['s3:DeleteObject', `${BUCKET_ARN}/tmp/x`]]);
    assert.deepEqual(pairs(s3('DELETE', `/${BUCKET}/tmp/x`, { query: 'versionId=v2' })), [['s3:DeleteObjectVersion', `${BUCKET_ARN}/tmp/x`]]);
    const body = Buffer.from(
      '<?xml version="1.0" encoding="UTF-8"?><Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Quiet>true</Quiet>' +
        '<Object><Key>tmp/a &amp; b</Key></Object><Object><Key>tmp/c</Key><VersionId>v9</VersionId></Object></Delete>',
    );
    const c = s3('POST', `/${BUCKET}`, { query: 'delete', body });
    assert.equal(c.operation, 'DeleteObjects');
    assert.deepEqual(pairs(c), [
      ['s3:DeleteObject', `${BUCKET_ARN}/tmp/a & b`],
      ['s3:DeleteObjectVersion', `${BUCKET_ARN}/tmp/c`],
    ]);
  });

  test('ListObjects / ListObjectsV2: s3:ListBucket on the bucket with s3:prefix, s3:delimiter, s3:max-keys', () => {
    const v2 = s3('GET', `/${BUCKET}`, { query: 'list-type=2&prefix=staging%2F&delimiter=%2F&max-keys=100&continuation-token=abc' });
    assert.equal(v2.operation, 'ListObjectsV2');
    assert.deepEqual(pairs(v2), [['s3:ListBucket', BUCKET_ARN]]);
    const ctx = v2.authorizations[0].context;
    assert.equal(ctx['s3:prefix'], 'staging/');
    assert.equal(ctx['s3:delimiter'], '/');
    assert.equal(ctx['s3:max-keys'], '100');
    const v1 = s3('GET', `/${BUCKET}`, { query: 'prefix=dists/&marker=m' });
    assert.equal(v1.operation, 'ListObjects');
    assert.equal(v1.authorizations[0].context['s3:prefix'], 'dists/');
    assert.equal(s3('GET', `/${BUCKET}`, { query: 'list-type=2' }).authorizations[0].context['s3:prefix'], undefined);
    const versions = s3('GET', `/${BUCKET}`, { query: 'versions&prefix=dists/' });
    assert.equal(versions.operation, 'ListObjectVersions');
    assert.deepEqual(pairs(versions), [['s3:ListBucketVersions', BUCKET_ARN]]);
    assert.equal(versions.authorizations[0].context['s3:prefix'], 'dists/');
  });

  test('bucket operations', () => {
    const cases = [
      ['GET', 'location', 'GetBucketLocation', 's3:GetBucketLocation'],
      ['GET', 'policy', 'GetBucketPolicy', 's3:GetBucketPolicy'],
      ['PUT', 'policy', 'PutBucketPolicy', 's3:PutBucketPolicy'],
      ['PUT', 'notification', 'PutBucketNotificationConfiguration', 's3:PutBucketNotification'],
      ['GET', 'versioning', 'GetBucketVersioning', 's3:GetBucketVersioning'],
      ['PUT', 'versioning', 'PutBucketVersioning', 's3:PutBucketVersioning'],
      ['PUT', 'lifecycle', 'PutBucketLifecycleConfiguration', 's3:PutLifecycleConfiguration'],
      ['PUT', '', 'CreateBucket', 's3:CreateBucket'],
      ['HEAD', '', 'HeadBucket', 's3:ListBucket'],
      ['DELETE', '', 'DeleteBucket', 's3:DeleteBucket'],
    ];
    for (const [method, query, op, action] of cases) {
      const c = s3(method, `/${BUCKET}`, { query });
      assert.equal(c.operation, op, `${method} ?${query}`);
      assert.deepEqual(pairs(c), [[action, BUCKET_ARN]], `${method} ?${query}`);
    }
    assert.deepEqual(pairs(s3('GET', '/')), [['s3:ListAllMyBuckets', '*']]);
  });

  test('object tagging', () => {
    assert.deepEqual(pairs(s3('GET', `/${BUCKET}/a`, { query: 'tagging' })), [['s3:GetObjectTagging', `${BUCKET_ARN}/a`]]);
    assert.deepEqual(pairs(s3('GET', `/${BUCKET}/a`, { query: 'tagging&versionId=v' })), [['s3:GetObjectVersionTagging', `${BUCKET_ARN}/a`]]);
    assert.deepEqual(pairs(s3('PUT', `/${BUCKET}/a`, { query: 'tagging' })), [['s3:PutObjectTagging', `${BUCKET_ARN}/a`]]);
    assert.equal(s3('PUT', `/${BUCKET}/a`, { query: 'tagging' }).operation, 'PutObjectTagging');
  });

  test('anything else is an unknown operation, never a guess', () => {
    for (const [method, path, query] of [
      ['GET', `/${BUCKET}`, 'replication'],
      ['PUT', `/${BUCKET}`, 'intelligent-tiering&id=x'],
      ['POST', `/${BUCKET}/k`, 'select&select-type=2'],
      ['GET', `/${BUCKET}/k`, 'torrent'],
      ['PATCH', `/${BUCKET}/k`, ''],
    ]) {
      const c = s3(method, path, { query });
      assert.equal(c.operation, 'Unknown', `${method} ${path}?${query}`);
      assert.deepEqual(c.authorizations, []);
      assert.match(c.unknown, /./);
    }
  });
});

describe('classify: DynamoDB', () => {
  const T = `${PREFIX}-packages`;
  test('single-table operations on the table ARN', () => {
    for (const op of ['GetItem', 'PutItem', 'UpdateItem', 'DeleteItem', 'Query', 'Scan', 'DescribeTable', 'CreateTable']) {
      const c = ddb(op, { TableName: T, Key: { package_id: { S: 'a' } } });
      assert.equal(c.service, 'dynamodb');
      assert.equal(c.operation, op);
      assert.deepEqual(pairs(c), [[`dynamodb:${op}`, PACKAGES]]);
    }
    const ret = ddb('UpdateItem', { TableName: T, ReturnValues: 'UPDATED_NEW' });
    assert.equal(ret.authorizations[0].context['dynamodb:ReturnValues'], 'UPDATED_NEW');
  });
  test('Query and Scan on an index name the index', () => {
    assert.deepEqual(pairs(ddb('Query', { TableName: T, IndexName: 'package-name-index' })), [
      ['dynamodb:Query', `${PACKAGES}/index/package-name-index`],
    ]);
    assert.deepEqual(pairs(ddb('Scan', { TableName: T, IndexName: 'package-name-index' })), [
      ['dynamodb:Scan', `${PACKAGES}/index/package-name-index`],
    ]);
  });
  test('BatchGetItem / BatchWriteItem: one authorization per table', () => {
    const g = ddb('BatchGetItem', { RequestItems: { [T]: { Keys: [] }, [`${PREFIX}-state`]: { Keys: [] } } });
    assert.deepEqual(pairs(g), [['dynamodb:BatchGetItem', PACKAGES], ['dynamodb:BatchGetItem', STATE]]);
    const w = ddb('BatchWriteItem', { RequestItems: { [T]: [{ PutRequest: { Item: {} } }] } });
    assert.deepEqual(pairs(w), [['dynamodb:BatchWriteItem', PACKAGES]]);
  });
  test('TransactWriteItems / TransactGetItems: the item action per entry, with dynamodb:EnclosingOperation', () => {
    const w = ddb('TransactWriteItems', {
      TransactItems: [
        { Put: { TableName: T, Item: {} } },
        { Update: { TableName: `${PREFIX}-state`, Key: {}, UpdateExpression: 'SET a = :a' } },
        { Delete: { TableName: T, Key: {} } },
        { ConditionCheck: { TableName: `${PREFIX}-state`, Key: {}, ConditionExpression: 'attribute_exists(a)' } },
      ],
    });
    assert.deepEqual(pairs(w), [
      ['dynamodb:PutItem', PACKAGES],
      ['dynamodb:UpdateItem', STATE],
      ['dynamodb:DeleteItem', PACKAGES],
      ['dynamodb:ConditionCheckItem', STATE],
    ]);
    assert.equal(w.authorizations[0].context['dynamodb:EnclosingOperation'], 'TransactWriteItems');
    const g = ddb('TransactGetItems', { TransactItems: [{ Get: { TableName: T, Key: {} } }] });
    assert.deepEqual(pairs(g), [['dynamodb:GetItem', PACKAGES]]);
  });
  test('ListTables is on *; unknown targets and bad JSON are unknown operations', () => {
    assert.deepEqual(pairs(ddb('ListTables', {})), [['dynamodb:ListTables', '*']]);
    assert.equal(ddb('ExecuteStatement', { Statement: 'SELECT * FROM t' }).operation, 'Unknown');
    const bad = classify(
      {
        method: 'POST',
        path: '/',
        query: new URLSearchParams(),
        headers: { ...AUTH('dynamodb'), 'x-amz-target': 'DynamoDB_20120810.GetItem' },
        body: Buffer.from('{not json'),
      },
      {},
    );
    assert.equal(bad.operation, 'Unknown');
  });
});

describe('classify: Secrets Manager and SNS', () => {
  test('SecretId resolved through resolveSecretArn (name, full or partial ARN)', () => {
    const resolveSecretArn = (id) => (id === `${PREFIX}-signing-key` || SECRET.startsWith(id) ? SECRET : undefined);
    for (const id of [`${PREFIX}-signing-key`, SECRET, SECRET.slice(0, -7)]) {
      const c = sm('GetSecretValue', { SecretId: id }, { resolveSecretArn });
      assert.deepEqual(pairs(c), [['secretsmanager:GetSecretValue', SECRET]], id);
      assert.equal(c.authorizations[0].context['secretsmanager:SecretId'], id);
    }
    assert.deepEqual(pairs(sm('PutSecretValue', { SecretId: SECRET, SecretString: 'x' })), [['secretsmanager:PutSecretValue', SECRET]]);
    assert.deepEqual(pairs(sm('DescribeSecret', { SecretId: SECRET })), [['secretsmanager:DescribeSecret', SECRET]]);
    const create = sm('CreateSecret', { Name: 'new-secret' });
    assert.deepEqual(pairs(create), [['secretsmanager:CreateSecret', `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:new-secret`]]);
    assert.equal(create.authorizations[0].context['secretsmanager:Name'], 'new-secret');
  });
  test('SNS Publish, CreateTopic, Subscribe on the topic ARN', () => {
    const topic = `arn:aws:sns:${REGION}:${ACCOUNT}:${PREFIX}-failure`;
    assert.deepEqual(pairs(sns({ Action: 'Publish', TopicArn: topic, Message: 'x', Version: '2010-03-31' })), [['sns:Publish', topic]]);
    assert.deepEqual(pairs(sns({ Action: 'CreateTopic', Name: `${PREFIX}-failure` })), [['sns:CreateTopic', topic]]);
    const sub = sns({ Action: 'Subscribe', TopicArn: topic, Protocol: 'email', Endpoint: 'ops@example.com' });
    assert.deepEqual(pairs(sub), [['sns:Subscribe', topic]]);
    assert.equal(sub.authorizations[0].context['sns:Protocol'], 'email');
    assert.equal(sns({ Action: 'ConfirmSubscription', TopicArn: topic }).operation, 'Unknown');
  });
});

describe('globalContext', () => {
  test('role session keys; aws:SecureTransport is "true" on the loopback hop', () => {
    const now = new Date('2026-03-01T12:00:00.000Z');
    const ctx = globalContext(role('publish'), { accountId: ACCOUNT, region: REGION, now });
    assert.equal(ctx['aws:SecureTransport'], 'true');
    assert.equal(ctx['aws:SourceIp'], '127.0.0.1');
    assert.equal(ctx['aws:PrincipalArn'], `arn:aws:iam::${ACCOUNT}:role/${PREFIX}-publish-role`);
    assert.equal(ctx['aws:PrincipalAccount'], ACCOUNT);
    assert.equal(ctx['aws:PrincipalType'], 'AssumedRole');
    assert.match(ctx['aws:userid'], new RegExp(`^AROA[A-Z0-9]+:${PREFIX}-publish$`));
    assert.equal(ctx['aws:RequestedRegion'], REGION);
    assert.equal(ctx['aws:CurrentTime'], '2026-03-01T12:00:00Z');
    assert.equal(ctx['aws:EpochTime'], String(now.getTime() / 1000));
    const cf = globalContext({ kind: 'service', service: 'cloudfront.amazonaws.com', sourceArn: DISTRIBUTION }, { accountId: ACCOUNT });
    assert.equal(cf['aws:SourceArn'], DISTRIBUTION);
    assert.equal(cf['aws:PrincipalIsAWSService'], 'true');
  });
});

describe('authorize (policies as functions.ts and the stack synthesize them)', () => {
  const opts = (name) => ({
    principal: role(name),
    identityPolicies: role(name).identityPolicies,
    resourcePolicyFor: (arn) => (arn.startsWith(BUCKET_ARN) ? BUCKET_POLICY : undefined),
    accountId: ACCOUNT,
    region: REGION,
  });

  test('check-sources: ListBucket with an s3:prefix StringLike condition allows staging/, denies dists/ and no prefix', async () => {
    const list = (query) => s3('GET', `/${BUCKET}`, { query }).authorizations;
    assert.deepEqual(await authorize(list('list-type=2&prefix=staging/'), opts('check-sources')), { allowed: true });
    assert.deepEqual(await authorize(list('list-type=2&prefix=staging/sub/'), opts('check-sources')), { allowed: true });
    const dists = await authorize(list('list-type=2&prefix=dists/'), opts('check-sources'));
    assert.equal(dists.allowed, false);
    assert.equal(dists.action, 's3:ListBucket');
    assert.equal(dists.resource, BUCKET_ARN);
    assert.equal(dists.reason, 'no identity-based policy allows the s3:ListBucket action');
    assert.equal((await authorize(list('list-type=2'), opts('check-sources'))).allowed, false);
  });

  test('check-sources: GetObject on arn:aws:s3:::bucket/staging/* only', async () => {
    const get = (key) => s3('GET', `/${BUCKET}/${key}`).authorizations;
    assert.equal((await authorize(get('staging/kiro-repo_1.0_all.deb'), opts('check-sources'))).allowed, true);
    const r = await authorize(get('pool/a.deb'), opts('check-sources'));
    assert.deepEqual([r.allowed, r.action, r.resource], [false, 's3:GetObject', `${BUCKET_ARN}/pool/a.deb`]);
    // A key with a literal * is not a pattern: staging/* grants it, a narrower grant would not.
    assert.equal((await authorize(get('staging/%2A'), opts('check-sources'))).allowed, true);
    assert.equal((await authorize(get('pool/%2A'), opts('check-sources'))).allowed, false);
  });

  test('download-package writes pool/ only; publish copies pool -> root file and by-hash -> dists', async () => {
    const put = (key) => s3('PUT', `/${BUCKET}/${key}`).authorizations;
    assert.equal((await authorize(put('pool/main/k/kiro/kiro_1_amd64.deb'), opts('download-package'))).allowed, true);
    assert.equal((await authorize(put('dists/stable/InRelease'), opts('download-package'))).allowed, false);
    const copy = (to, from) => s3('PUT', `/${BUCKET}/${to}`, { headers: { 'x-amz-copy-source': `${BUCKET}/${from}` } }).authorizations;
    assert.equal((await authorize(copy('kiro-repo.deb', 'pool/main/k/kiro-repo/kiro-repo_1_all.deb'), opts('publish'))).allowed, true);
    assert.equal((await authorize(copy('dists/stable/Release', 'dists/stable/by-hash/SHA256/ab'), opts('publish'))).allowed, true);
    const stagingSource = await authorize(copy('kiro-repo.deb', 'staging/x.deb'), opts('publish'));
    assert.deepEqual([stagingSource.allowed, stagingSource.action, stagingSource.resource], [false, 's3:GetObject', `${BUCKET_ARN}/staging/x.deb`]);
    const stagingDest = await authorize(copy('staging/x.deb', 'pool/a.deb'), opts('publish'));
    assert.deepEqual([stagingDest.allowed, stagingDest.action], [false, 's3:PutObject']);
  });

  test('build-index: Scan of the packages table, the signing key; not GetItem on packages', async () => {
    assert.equal((await authorize(ddb('Scan', { TableName: `${PREFIX}-packages` }).authorizations, opts('build-index'))).allowed, true);
    assert.equal((await authorize(ddb('UpdateItem', { TableName: `${PREFIX}-state` }).authorizations, opts('build-index'))).allowed, true);
    const g = await authorize(ddb('GetItem', { TableName: `${PREFIX}-packages` }).authorizations, opts('build-index'));
    assert.deepEqual([g.allowed, g.action, g.resource], [false, 'dynamodb:GetItem', PACKAGES]);
    const secret = sm('GetSecretValue', { SecretId: SECRET }).authorizations;
    assert.equal((await authorize(secret, opts('build-index'))).allowed, true);
    assert.equal((await authorize(secret, opts('publish'))).allowed, false);
  });

  test('the bucket policy denies aws:SecureTransport=false explicitly (and the loopback hop counts as secure)', async () => {
    const auths = s3('GET', `/${BUCKET}/staging/a`).authorizations;
    assert.equal((await authorize(auths, opts('check-sources'))).allowed, true);
    const insecure = auths.map((a) => ({ ...a, context: { ...a.context, 'aws:SecureTransport': 'false' } }));
    const r = await authorize(insecure, opts('check-sources'));
    assert.equal(r.allowed, false);
    assert.equal(r.explicit, true);
    assert.equal(r.policyType, 'resource');
    assert.equal(r.reason, 'explicit deny in a resource-based policy');
    const oldTls = auths.map((a) => ({ ...a, context: { ...a.context, 's3:TlsVersion': '1.0' } }));
    assert.equal((await authorize(oldTls, opts('check-sources'))).explicit, true);
  });

  test('an explicit deny in an identity policy names its statement', async () => {
    const denyPool = { name: 'deny', policy: policy({ Sid: 'NoPool', Effect: 'Deny', Action: 's3:*', Resource: `${BUCKET_ARN}/pool/*` }) };
    const r = await authorize(s3('GET', `/${BUCKET}/pool/a`).authorizations, {
      ...opts('download-package'),
      identityPolicies: [...role('download-package').identityPolicies, denyPool],
    });
    assert.deepEqual([r.allowed, r.explicit, r.statementId, r.reason], [false, true, 'NoPool', 'explicit deny in an identity-based policy']);
  });

  test('the CloudFront service principal reads the repository paths of its own distribution only', async () => {
    const cf = (sourceArn) => ({
      principal: { kind: 'service', service: 'cloudfront.amazonaws.com', sourceArn },
      resourcePolicyFor: () => BUCKET_POLICY,
      accountId: ACCOUNT,
    });
    const get = (key) => s3('GET', `/${BUCKET}/${key}`).authorizations;
    assert.equal((await authorize(get('dists/stable/InRelease'), cf(DISTRIBUTION))).allowed, true);
    assert.equal((await authorize(get('index.html'), cf(DISTRIBUTION))).allowed, true);
    const other = await authorize(get('dists/stable/InRelease'), cf(`arn:aws:cloudfront::${ACCOUNT}:distribution/EOTHER`));
    assert.deepEqual([other.allowed, other.reason], [false, 'no resource-based policy allows the s3:GetObject action']);
    assert.equal((await authorize(get('staging/x.deb'), cf(DISTRIBUTION))).allowed, false);
    assert.equal((await authorize(get('dists/x'), { ...cf(DISTRIBUTION), principal: { kind: 'anonymous' } })).allowed, false);
  });

  test('principals may also be given as a session ARN string or with a context of their own', async () => {
    const get = s3('GET', `/${BUCKET}/staging/a`).authorizations;
    const viaString = await authorize(get, { ...opts('check-sources'), principal: role('check-sources').sessionArn });
    assert.equal(viaString.allowed, true);
    const cf = { kind: 'service', name: 'cloudfront', principal: 'cloudfront.amazonaws.com', context: { 'aws:SourceArn': DISTRIBUTION, 'aws:SourceAccount': ACCOUNT } };
    const dists = s3('GET', `/${BUCKET}/dists/x`).authorizations;
    assert.equal((await authorize(dists, { principal: cf, resourcePolicyFor: () => BUCKET_POLICY })).allowed, true);
    const other = { ...cf, context: { 'aws:SourceArn': `arn:aws:cloudfront::${ACCOUNT}:distribution/EOTHER` } };
    assert.equal((await authorize(dists, { principal: other, resourcePolicyFor: () => BUCKET_POLICY })).allowed, false);
  });

  test('an action iam-simulate does not know is denied, with its validation error', async () => {
    const r = await authorize([{ action: 's3:FrobnicateObject', resource: `${BUCKET_ARN}/pool/a`, context: {} }], opts('download-package'));
    assert.equal(r.allowed, false);
    assert.match(r.reason, /invalid\.action/);
    assert.equal((await authorize([], opts('publish'))).allowed, false, 'no authorization is no allow');
  });

  test('iam-simulate knows every action/resource pair classify produces (an allow-all role is allowed)', async () => {
    const everything = { principal: role('publish'), identityPolicies: [{ name: 'all', policy: policy(allow('All', '*', '*')) }], accountId: ACCOUNT, region: REGION };
    const key = `/${BUCKET}/pool/a.deb`;
    const copy = { 'x-amz-copy-source': `${BUCKET}/dists/b` };
    const requests = [
      s3('GET', key), s3('GET', key, { query: 'versionId=v' }), s3('HEAD', key), s3('PUT', key), s3('PUT', key, { headers: copy }),
      s3('PUT', key, { headers: { 'x-amz-copy-source': `${BUCKET}/dists/b?versionId=v` } }),
      s3('POST', key, { query: 'uploads' }), s3('PUT', key, { query: 'partNumber=1&uploadId=u' }),
      s3('PUT', key, { query: 'partNumber=1&uploadId=u', headers: copy }), s3('POST', key, { query: 'uploadId=u' }),
      s3('DELETE', key, { query: 'uploadId=u' }), s3('GET', key, { query: 'uploadId=u' }), s3('GET', `/${BUCKET}`, { query: 'uploads' }),
      s3('DELETE', key), s3('DELETE', key, { query: 'versionId=v' }),
      s3('POST', `/${BUCKET}`, { query: 'delete', body: Buffer.from('<Delete><Object><Key>a</Key></Object><Object><Key>b</Key><VersionId>v</VersionId></Object></Delete>') }),
      s3('GET', `/${BUCKET}`, { query: 'list-type=2&prefix=a/&delimiter=/&max-keys=5' }), s3('GET', `/${BUCKET}`, { query: 'prefix=a' }),
      s3('GET', `/${BUCKET}`, { query: 'versions' }), s3('GET', `/${BUCKET}`, { query: 'location' }), s3('GET', `/${BUCKET}`, { query: 'policy' }),
      s3('PUT', `/${BUCKET}`, { query: 'policy' }), s3('DELETE', `/${BUCKET}`, { query: 'policy' }), s3('GET', key, { query: 'tagging' }),
      s3('PUT', key, { query: 'tagging' }), s3('DELETE', key, { query: 'tagging' }), s3('PUT', `/${BUCKET}`), s3('HEAD', `/${BUCKET}`),
      s3('DELETE', `/${BUCKET}`), s3('PUT', `/${BUCKET}`, { query: 'notification' }), s3('GET', `/${BUCKET}`, { query: 'notification' }),
      s3('PUT', `/${BUCKET}`, { query: 'versioning' }), s3('PUT', `/${BUCKET}`, { query: 'lifecycle' }), s3('PUT', `/${BUCKET}`, { query: 'encryption' }),
      s3('PUT', `/${BUCKET}`, { query: 'publicAccessBlock' }), s3('PUT', `/${BUCKET}`, { query: 'ownershipControls' }), s3('GET', '/'),
      ...['GetItem', 'PutItem', 'UpdateItem', 'DeleteItem', 'Query', 'Scan', 'DescribeTable', 'CreateTable', 'DeleteTable', 'UpdateTable',
        'DescribeTimeToLive', 'UpdateTimeToLive', 'DescribeContinuousBackups', 'UpdateContinuousBackups'].map((op) => ddb(op, { TableName: `${PREFIX}-packages` })),
      ddb('Query', { TableName: `${PREFIX}-packages`, IndexName: 'package-name-index' }), ddb('ListTables', {}),
      ddb('BatchGetItem', { RequestItems: { [`${PREFIX}-packages`]: {} } }), ddb('BatchWriteItem', { RequestItems: { [`${PREFIX}-packages`]: [] } }),
      ddb('TransactWriteItems', { TransactItems: [{ Put: { TableName: 'a' } }, { Update: { TableName: 'a' } }, { Delete: { TableName: 'a' } }, { ConditionCheck: { TableName: 'a' } }] }),
      ddb('TransactGetItems', { TransactItems: [{ Get: { TableName: 'a' } }] }), ddb('TagResource', { ResourceArn: PACKAGES }),
      ...['GetSecretValue', 'PutSecretValue', 'DescribeSecret', 'UpdateSecret', 'DeleteSecret', 'TagResource'].map((op) => sm(op, { SecretId: SECRET })),
      sm('CreateSecret', { Name: 'x' }), sm('ListSecrets', {}),
      sns({ Action: 'Publish', TopicArn: `arn:aws:sns:${REGION}:${ACCOUNT}:t` }), sns({ Action: 'CreateTopic', Name: 't' }),
      sns({ Action: 'Subscribe', TopicArn: `arn:aws:sns:${REGION}:${ACCOUNT}:t` }), sns({ Action: 'ListTopics' }),
    ];
    for (const c of requests) {
      assert.notEqual(c.operation, 'Unknown', c.unknown);
      const r = await authorize(c.authorizations, everything);
      assert.equal(r.allowed, true, `${c.service} ${c.operation}: ${JSON.stringify(r)}`);
    }
  });

  test('every authorization of a request must be allowed', async () => {
    const objectsXml = Buffer.from('<Delete><Object><Key>pool/a</Key></Object><Object><Key>dists/b</Key></Object></Delete>');
    const del = s3('POST', `/${BUCKET}`, { query: 'delete', body: objectsXml }).authorizations;
    const onlyPool = { name: 'p', policy: policy(allow('DelPool', 's3:DeleteObject', objects('pool/*'))) };
    const r = await authorize(del, { ...opts('publish'), identityPolicies: [onlyPool] });
    assert.deepEqual([r.allowed, r.resource], [false, `${BUCKET_ARN}/dists/b`]);
  });
});

describe('accessDenied: AWS-shaped answers', () => {
  const principalArn = role('check-sources').sessionArn;
  test('S3: 403 XML AccessDenied naming action and quoted resource; HEAD without body; anonymous', () => {
    const a = accessDenied({
      service: 's3',
      method: 'GET',
      principalArn,
      action: 's3:GetObject',
      resource: `${BUCKET_ARN}/pool/a`,
      reason: 'no identity-based policy allows the s3:GetObject action',
    });
    assert.equal(a.status, 403);
    assert.equal(a.headers['content-type'], 'application/xml');
    const xml = a.body.toString();
    assert.match(xml, /<Error><Code>AccessDenied<\/Code>/);
    assert.ok(
      xml.includes(
        `<Message>User: ${principalArn} is not authorized to perform: s3:GetObject on resource: "${BUCKET_ARN}/pool/a" because no identity-based policy allows the s3:GetObject action</Message>`,
      ),
      xml,
    );
    assert.match(xml, /<RequestId>[0-9A-F]{16}<\/RequestId>/);
    assert.equal(a.headers['x-amz-request-id'].length, 16);
    const explicit = accessDenied({ service: 's3', principalArn, action: 's3:GetObject', resource: 'r', reason: 'explicit deny in a resource-based policy', explicit: true });
    assert.match(explicit.body.toString(), /on resource: "r" with an explicit deny in a resource-based policy<\/Message>/);
    const head = accessDenied({ service: 's3', method: 'HEAD', principalArn, action: 's3:GetObject', resource: 'r', reason: 'x' });
    assert.equal(head.status, 403);
    assert.equal(head.body.length, 0);
    const anon = accessDenied({ service: 's3', principalArn: 'anonymous', action: 's3:GetObject', resource: 'r', reason: 'x' });
    assert.match(anon.body.toString(), /<Message>Access Denied<\/Message>/);
  });
  test('DynamoDB: 400 AccessDeniedException JSON', () => {
    const a = accessDenied({
      service: 'dynamodb',
      principalArn,
      action: 'dynamodb:GetItem',
      resource: PACKAGES,
      reason: 'no identity-based policy allows the dynamodb:GetItem action',
    });
    assert.equal(a.status, 400);
    assert.equal(a.headers['content-type'], 'application/x-amz-json-1.0');
    assert.deepEqual(JSON.parse(a.body), {
      __type: 'com.amazon.coral.service#AccessDeniedException',
      Message: `User: ${principalArn} is not authorized to perform: dynamodb:GetItem on resource: ${PACKAGES} because no identity-based policy allows the dynamodb:GetItem action`,
    });
  });
  test('Secrets Manager: 400 AccessDeniedException JSON naming the SecretId given', () => {
    const a = accessDenied({
      service: 'secretsmanager',
      principalArn,
      action: 'secretsmanager:GetSecretValue',
      resource: SECRET,
      messageResource: 'my-secret',
      reason: 'no identity-based policy allows the secretsmanager:GetSecretValue action',
    });
    assert.equal(a.status, 400);
    assert.equal(a.headers['content-type'], 'application/x-amz-json-1.1');
    const doc = JSON.parse(a.body);
    assert.equal(doc.__type, 'AccessDeniedException');
    assert.match(doc.Message, /on resource: my-secret because/);
  });
  test('SNS: 403 AuthorizationError XML', () => {
    const topic = `arn:aws:sns:${REGION}:${ACCOUNT}:t`;
    const a = accessDenied({ service: 'sns', principalArn, action: 'sns:Publish', resource: topic, reason: 'no identity-based policy allows the sns:Publish action' });
    assert.equal(a.status, 403);
    const xml = a.body.toString();
    assert.match(xml, /<ErrorResponse xmlns="http:\/\/sns.amazonaws.com\/doc\/2010-03-31\/"><Error><Type>Sender<\/Type><Code>AuthorizationError<\/Code>/);
    assert.ok(xml.includes(`perform: SNS:Publish on resource: ${topic} because no identity-based policy allows the SNS:Publish action`), xml);
  });
  test('unknown access keys', () => {
    const s = unknownAccessKey('s3', 'AKIDNOPE');
    assert.equal(s.status, 403);
    assert.match(s.body.toString(), /<Code>InvalidAccessKeyId<\/Code>.*<AWSAccessKeyId>AKIDNOPE<\/AWSAccessKeyId>/s);
    const d = unknownAccessKey('dynamodb', 'AKIDNOPE');
    assert.equal(d.status, 400);
    assert.equal(JSON.parse(d.body).__type, 'com.amazon.coral.service#UnrecognizedClientException');
    assert.equal(JSON.parse(unknownAccessKey('secretsmanager', 'x').body).__type, 'UnrecognizedClientException');
    assert.match(unknownAccessKey('sns', 'x').body.toString(), /InvalidClientTokenId/);
  });
});
