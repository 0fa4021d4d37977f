// iam.mjs on the calls the media functions make (statemachine/media.md):
// each request as the Rust SDK sends it (query parameters, checksum
// headers), its operation, action, resource and condition keys, and the
// decision of the media roles' policies (fixtures/media-template.mjs,
// resolved for one deployment): allowed for the function that makes it,
// denied to one that does not.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Stack } from '../template.mjs';
import { mediaTemplate } from '../fixtures/media-template.mjs';
import { authorize, classify } from '../iam.mjs';

const stack = new Stack(mediaTemplate(), { prefix: 'pkgrelay-t1', stackKey: 'media' });
const fns = stack.functions();
const BUCKET = stack.outputs().MediaBucketName;
const TABLE = stack.outputs().StatusTableName;
const SECRET = stack.outputs().CredentialsSecretArn;
const TABLE_ARN = `arn:aws:dynamodb:us-east-1:123456789012:table/${TABLE}`;
const auth = (service) => `AWS4-HMAC-SHA256 Credential=AKIDX/20260101/us-east-1/${service}/aws4_request, SignedHeaders=host, Signature=0`;

function s3(method, url, headers = {}) {
  const [path, query = ''] = url.split('?');
  return classify({ method, path, query: new URLSearchParams(query), headers: { authorization: auth('s3'), ...headers }, body: null }, { region: 'us-east-1' });
}
function json(service, target, body) {
  return classify(
    { method: 'POST', path: '/', query: new URLSearchParams(), headers: { authorization: auth(service), 'x-amz-target': target }, body: Buffer.from(JSON.stringify(body)) },
    { region: 'us-east-1' },
  );
}
async function may(fn, c) {
  const f = fns[fn];
  return (await authorize(c.authorizations, { principal: { kind: 'role', roleArn: f.roleArn, sessionArn: `arn:aws:sts::123456789012:assumed-role/${f.roleName}/${f.functionName}` }, identityPolicies: f.identityPolicies })).allowed;
}

describe('the media functions\' calls in IAM terms', () => {
  const key = `media/gopro/m1/GX010001.MP4`;
  const obj = `/${BUCKET}/${key}`;
  const objArn = `arn:aws:s3:::${BUCKET}/${key}`;
  const cases = [
    // [operation, request, action, resource, allowed to, denied to]
    ['CreateMultipartUpload', s3('POST', `${obj}?uploads&x-id=CreateMultipartUpload`, { 'x-amz-checksum-algorithm': 'CRC64NVME', 'x-amz-checksum-type': 'FULL_OBJECT' }), 's3:PutObject', objArn, 'download-media', 'summarize'],
    ['UploadPart', s3('PUT', `${obj}?x-id=UploadPart&partNumber=3&uploadId=abc`, { 'x-amz-checksum-crc64nvme': 'AAAAAAAAAAA=', 'x-amz-sdk-checksum-algorithm': 'CRC64NVME', 'content-encoding': 'aws-chunked' }), 's3:PutObject', objArn, 'download-media', 'list-media'],
    ['ListParts', s3('GET', `${obj}?x-id=ListParts&uploadId=abc&max-parts=1000&part-number-marker=2`), 's3:ListMultipartUploadParts', objArn, 'download-media', 'summarize'],
    ['CompleteMultipartUpload', s3('POST', `${obj}?uploadId=abc&x-id=CompleteMultipartUpload`, { 'x-amz-checksum-crc64nvme': 'AAAAAAAAAAA=', 'x-amz-checksum-type': 'FULL_OBJECT' }), 's3:PutObject', objArn, 'download-media', 'summarize'],
    ['AbortMultipartUpload', s3('DELETE', `${obj}?uploadId=abc&x-id=AbortMultipartUpload`), 's3:AbortMultipartUpload', objArn, 'download-media', 'list-media'],
    ['ListMultipartUploads', s3('GET', `/${BUCKET}?uploads&prefix=media%2Fgopro%2Fm1%2F&max-uploads=100&encoding-type=url`), 's3:ListBucketMultipartUploads', `arn:aws:s3:::${BUCKET}`, 'download-media', 'summarize'],
    ['HeadObject', s3('HEAD', `${obj}?partNumber=1`), 's3:GetObject', objArn, 'download-media', 'list-media'],
    ['GetObject', s3('GET', `/${BUCKET}/runs/media/x/results/manifest.json?x-id=GetObject`, { 'x-amz-checksum-mode': 'ENABLED', range: 'bytes=0-99' }), 's3:GetObject', `arn:aws:s3:::${BUCKET}/runs/media/x/results/manifest.json`, 'summarize', 'download-media'],
    ['PutObject', s3('PUT', `/${BUCKET}/runs/media/x/items.json?x-id=PutObject`, { 'x-amz-checksum-crc64nvme': 'AAAAAAAAAAA=', 'content-type': 'application/json' }), 's3:PutObject', `arn:aws:s3:::${BUCKET}/runs/media/x/items.json`, 'list-media', 'download-media'],
    ['GetSecretValue', json('secretsmanager', 'secretsmanager.GetSecretValue', { SecretId: SECRET, VersionId: 'v-1' }), 'secretsmanager:GetSecretValue', SECRET, 'list-media', 'summarize'],
    ['PutSecretValue', json('secretsmanager', 'secretsmanager.PutSecretValue', { SecretId: SECRET, SecretString: '{}' }), 'secretsmanager:PutSecretValue', SECRET, 'authenticate', 'list-media'],
    ['BatchGetItem', json('dynamodb', 'DynamoDB_20120810.BatchGetItem', { RequestItems: { [TABLE]: { Keys: [{ pk: { S: 'gopro#m1' } }] } } }), 'dynamodb:BatchGetItem', TABLE_ARN, 'list-media', 'download-media'],
    ['GetItem', json('dynamodb', 'DynamoDB_20120810.GetItem', { TableName: TABLE, Key: { pk: { S: 'gopro#m1' } }, ConsistentRead: true }), 'dynamodb:GetItem', TABLE_ARN, 'download-media', 'summarize'],
    ['PutItem', json('dynamodb', 'DynamoDB_20120810.PutItem', { TableName: TABLE, Item: { pk: { S: 'gopro#m1' } }, ConditionExpression: 'attribute_not_exists(pk)' }), 'dynamodb:PutItem', TABLE_ARN, 'list-media', 'authenticate'],
    ['UpdateItem', json('dynamodb', 'DynamoDB_20120810.UpdateItem', { TableName: TABLE, Key: { pk: { S: 'gopro#m1' } }, UpdateExpression: 'SET #s = :s', ReturnValues: 'ALL_NEW' }), 'dynamodb:UpdateItem', TABLE_ARN, 'download-media', 'summarize'],
    ['Query', json('dynamodb', 'DynamoDB_20120810.Query', { TableName: TABLE, IndexName: 'by-status', KeyConditionExpression: '#s = :s' }), 'dynamodb:Query', `${TABLE_ARN}/index/by-status`, 'list-media', 'download-media'],
  ];
  for (const [operation, c, action, resource, allowedTo, deniedTo] of cases) {
    test(`${operation}: ${action} on ${resource.replace(/.*:(table|secret)\//, '')}; ${allowedTo} may, ${deniedTo} may not`, async () => {
      assert.equal(c.unknown, undefined, c.unknown);
      assert.equal(c.operation, operation);
      assert.deepEqual(c.authorizations.map((a) => [a.action, a.resource]), [[action, resource]]);
      assert.equal(await may(allowedTo, c), true, `${allowedTo} ${operation}`);
      assert.equal(await may(deniedTo, c), false, `${deniedTo} ${operation}`);
    });
  }
  test('condition keys the media calls carry', () => {
    const get = cases.find(([op]) => op === 'GetSecretValue')[1];
    assert.equal(get.authorizations[0].context['secretsmanager:VersionId'], 'v-1');
    const update = cases.find(([op]) => op === 'UpdateItem')[1];
    assert.equal(update.authorizations[0].context['dynamodb:ReturnValues'], 'ALL_NEW');
    const list = cases.find(([op]) => op === 'ListMultipartUploads')[1];
    assert.equal(list.bucket, BUCKET);
  });
});
