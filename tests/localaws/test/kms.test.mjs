// kms.mjs: which KMS calls a request makes, and KMS's decision (the key
// policy first, IAM policies only where the key policy delegates to the account).

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { authorizeKms, keyPolicyDelegates, kmsAccessDenied, kmsRequirements } from '../kms.mjs';

const ACCOUNT = '123456789012';
const KEY = `arn:aws:kms:us-east-1:${ACCOUNT}:key/11111111-2222-3333-4444-555555555555`;
const ROLE = `arn:aws:iam::${ACCOUNT}:role/pkgrelay-t1-DownloadMediaRole`;
const SESSION = `arn:aws:sts::${ACCOUNT}:assumed-role/pkgrelay-t1-DownloadMediaRole/pkgrelay-t1-download-media`;
const doc = (...Statement) => ({ Version: '2012-10-17', Statement });
const rootDelegation = { Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${ACCOUNT}:root` }, Action: 'kms:*', Resource: '*' };
const identity = (...actions) => [{ name: 'p', policy: doc({ Effect: 'Allow', Action: actions, Resource: KEY }) }];
const principal = { kind: 'role', roleArn: ROLE, sessionArn: SESSION };

describe('authorizeKms', () => {
  test('a key policy delegating to the account: the identity policy decides', async () => {
    const key = { arn: KEY, policy: doc(rootDelegation) };
    assert.equal((await authorizeKms({ principal, identityPolicies: identity('kms:Decrypt'), key, action: 'kms:Decrypt' })).allowed, true);
    assert.equal((await authorizeKms({ principal, identityPolicies: identity('kms:GenerateDataKey*'), key, action: 'kms:GenerateDataKey' })).allowed, true);
    const no = await authorizeKms({ principal, identityPolicies: identity('kms:Decrypt'), key, action: 'kms:GenerateDataKey' });
    assert.equal(no.allowed, false);
    assert.match(no.reason, /no identity-based policy allows the kms:GenerateDataKey action/);
  });
  test('a key policy that does not delegate: an identity policy grants nothing', async () => {
    const key = { arn: KEY, policy: doc({ Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${ACCOUNT}:role/someone-else` }, Action: 'kms:*', Resource: '*' }) };
    const r = await authorizeKms({ principal, identityPolicies: identity('kms:*'), key, action: 'kms:Decrypt' });
    assert.equal(r.allowed, false);
    assert.match(r.reason, /key policy neither names the caller nor lets IAM policies grant it/);
  });
  test('a key policy naming the role: allowed without any identity policy', async () => {
    const key = { arn: KEY, policy: doc({ Effect: 'Allow', Principal: { AWS: ROLE }, Action: ['kms:Decrypt'], Resource: '*' }) };
    assert.equal((await authorizeKms({ principal, identityPolicies: [], key, action: 'kms:Decrypt' })).allowed, true);
    assert.equal((await authorizeKms({ principal, identityPolicies: [], key, action: 'kms:GenerateDataKey' })).allowed, false);
  });
  test('an explicit deny in the key policy wins; a disabled key refuses', async () => {
    const key = { arn: KEY, policy: doc(rootDelegation, { Effect: 'Deny', Principal: { AWS: '*' }, Action: 'kms:Decrypt', Resource: '*' }) };
    const r = await authorizeKms({ principal, identityPolicies: identity('kms:Decrypt'), key, action: 'kms:Decrypt' });
    assert.equal(r.allowed, false);
    assert.equal(r.explicit, true);
    const off = await authorizeKms({ principal, identityPolicies: identity('kms:Decrypt'), key: { arn: KEY, policy: doc(rootDelegation), enabled: false }, action: 'kms:Decrypt' });
    assert.equal(off.disabled, true);
    assert.equal(kmsAccessDenied({ service: 's3', decision: off }).status, 403);
  });
  test('keyPolicyDelegates', () => {
    assert.equal(keyPolicyDelegates(doc(rootDelegation), 'kms:Decrypt', ACCOUNT), true);
    assert.equal(keyPolicyDelegates(doc({ ...rootDelegation, Principal: { AWS: ACCOUNT }, Action: ['kms:Decrypt'] }), 'kms:Decrypt', ACCOUNT), true);
    assert.equal(keyPolicyDelegates(doc({ ...rootDelegation, Action: ['kms:Describe*'] }), 'kms:Decrypt', ACCOUNT), false);
    assert.equal(keyPolicyDelegates(doc({ ...rootDelegation, Effect: 'Deny' }), 'kms:Decrypt', ACCOUNT), false);
  });
});

describe('kmsRequirements', () => {
  const lookup = {
    bucketKey: (b) => (b === 'media' ? KEY : null),
    topicKey: (t) => (t.endsWith(':alerts') ? KEY : null),
    secretKey: (s) => (String(s).includes('credentials') ? KEY : null),
  };
  const s3 = (operation, extra = {}) => kmsRequirements({ service: 's3', operation, bucket: 'media', key: 'media/x', authorizations: [], ...extra }, {}, lookup).map((r) => r.action);
  test('S3 with SSE-KMS', () => {
    assert.deepEqual(s3('PutObject'), ['kms:GenerateDataKey']);
    assert.deepEqual(s3('CreateMultipartUpload'), ['kms:GenerateDataKey']);
    assert.deepEqual(s3('UploadPart'), ['kms:GenerateDataKey', 'kms:Decrypt']);
    assert.deepEqual(s3('CompleteMultipartUpload'), ['kms:Decrypt']);
    assert.deepEqual(s3('GetObject'), ['kms:Decrypt']);
    for (const op of ['HeadObject', 'ListParts', 'AbortMultipartUpload', 'ListMultipartUploads', 'DeleteObject', 'ListObjectsV2']) assert.deepEqual(s3(op), [], op);
    assert.deepEqual(s3('CopyObject', { copySource: { bucket: 'media', key: 'a' } }), ['kms:GenerateDataKey', 'kms:Decrypt']);
    assert.deepEqual(kmsRequirements({ service: 's3', operation: 'PutObject', bucket: 'plain', key: 'k', authorizations: [] }, {}, lookup), []);
    const [r] = kmsRequirements({ service: 's3', operation: 'GetObject', bucket: 'media', key: 'media/x', authorizations: [] }, {}, lookup);
    assert.equal(r.keyArn, KEY);
    assert.equal(r.context['kms:ViaService'], 's3.us-east-1.amazonaws.com');
    assert.equal(r.context['kms:EncryptionContext:aws:s3:arn'], 'arn:aws:s3:::media/media/x');
  });
  test('SNS Publish to an encrypted topic; Secrets Manager', () => {
    const sns = kmsRequirements({ service: 'sns', operation: 'Publish', topicArn: 'arn:aws:sns:us-east-1:1:alerts', authorizations: [] }, {}, lookup);
    assert.deepEqual(sns.map((r) => r.action), ['kms:GenerateDataKey', 'kms:Decrypt']);
    const secret = `arn:aws:secretsmanager:us-east-1:${ACCOUNT}:secret:credentials-AbCdEf`;
    const sm = (operation) => kmsRequirements({ service: 'secretsmanager', operation, secretId: secret, authorizations: [{ resource: secret }] }, {}, lookup).map((r) => r.action);
    assert.deepEqual(sm('GetSecretValue'), ['kms:Decrypt']);
    assert.deepEqual(sm('PutSecretValue'), ['kms:GenerateDataKey', 'kms:Decrypt']);
    assert.deepEqual(sm('DescribeSecret'), []);
  });
  test('the answers', () => {
    const decision = { action: 'kms:Decrypt', resource: KEY, reason: 'no identity-based policy allows the kms:Decrypt action' };
    const s3 = kmsAccessDenied({ service: 's3', principalArn: SESSION, decision });
    assert.equal(s3.status, 403);
    assert.match(s3.body.toString(), /<Code>AccessDenied<\/Code>.*kms:Decrypt on resource: arn:aws:kms/s);
    const sm = kmsAccessDenied({ service: 'secretsmanager', principalArn: SESSION, decision });
    assert.equal(sm.status, 400);
    assert.deepEqual(JSON.parse(sm.body), { __type: 'AccessDeniedException', Message: 'Access to KMS is not allowed' });
    const sns = kmsAccessDenied({ service: 'sns', principalArn: SESSION, decision });
    assert.equal(sns.status, 400);
    assert.match(sns.body.toString(), /<Code>KMSAccessDenied<\/Code>/);
  });
});
