// Unit tests of limits.mjs: DynamoDB item sizes (the rules of "DynamoDB item
// sizes and formats"), the 400 KB boundary, UpdateItem application, capacity
// units (the examples of "DynamoDB read and write operations"), S3 key,
// metadata, object and part limits, and the error shapes.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  DYNAMODB_MAX_ITEM_BYTES,
  S3_MAX_PUT_BYTES,
  UpdateInvalid,
  UpdateNotModelled,
  applyUpdate,
  attributeValueSize,
  checkCompleteParts,
  checkDynamoWrite,
  checkS3Request,
  decimalAdd,
  errorResponse,
  itemSize,
  itemTooLargeError,
  numberSize,
  parseUpdateExpression,
  readUnits,
  userMetadataSize,
  writeUnits,
} from '../limits.mjs';

const b64 = (n, fill = 1) => Buffer.alloc(n, fill).toString('base64');
const json = (answer) => JSON.parse(answer.body.toString('utf8'));
const code = (answer) => /<Code>([^<]+)<\/Code>/.exec(answer.body.toString())?.[1];

/** An item of exactly `total` bytes: a string key `pk` and a padding string `d`. */
function itemOf(total, pk = 'k') {
  const base = { pk: { S: pk } };
  const pad = total - itemSize(base) - 'd'.length;
  return { ...base, d: { S: 'x'.repeat(pad) } };
}

describe('DynamoDB item size', () => {
  test('strings: UTF-8 bytes of name and value', () => {
    assert.equal(itemSize({ Name: { S: 'Alice' } }), 4 + 5);
    assert.equal(itemSize({ 'naïve': { S: '日本' } }), 6 + 6, 'multi-byte characters count their UTF-8 bytes');
  });
  test('numbers: 1 byte per two significant digits + 1, leading and trailing zeros trimmed', () => {
    assert.equal(numberSize('7'), 2);
    assert.equal(numberSize('12'), 2);
    assert.equal(numberSize('123'), 3);
    assert.equal(numberSize('-123.45'), 4, '5 significant digits');
    assert.equal(numberSize('0.000123'), 3, 'leading zeros trimmed');
    assert.equal(numberSize('1230000'), 3, 'trailing zeros trimmed');
    assert.equal(numberSize('0'), 1);
    assert.equal(numberSize('1.5E10'), 2);
    assert.equal(itemSize({ Age: { N: '29' } }), 3 + 2);
  });
  test('binary: raw bytes, not base64', () => {
    assert.equal(itemSize({ Blob: { B: b64(300) } }), 4 + 300);
  });
  test('BOOL and NULL: 1 byte', () => {
    assert.equal(itemSize({ ok: { BOOL: true }, n: { NULL: true } }), 2 + 1 + 1 + 1);
  });
  test('List and Map: 3 bytes of overhead and 1 byte per element; empty ones 3 bytes', () => {
    assert.equal(attributeValueSize({ L: [] }), 3);
    assert.equal(attributeValueSize({ M: {} }), 3);
    assert.equal(attributeValueSize({ L: [{ S: 'ab' }, { N: '1' }] }), 3 + (1 + 2) + (1 + 2));
    assert.equal(attributeValueSize({ M: { a: { S: 'xy' }, bb: { BOOL: false } } }), 3 + (1 + 1 + 2) + (1 + 2 + 1));
    // The publication map of the state table (dynamo.rs record_published).
    const published = { M: { generation: { N: '12' }, release_sha256: { S: 'a'.repeat(64) } } };
    assert.equal(itemSize({ suite: { S: 'stable' }, published }), 5 + 6 + 9 + 3 + (1 + 10 + 2) + (1 + 14 + 64));
  });
  test('sets: the sum of their members', () => {
    assert.equal(attributeValueSize({ SS: ['a', 'bc'] }), 3);
    assert.equal(attributeValueSize({ NS: ['1', '123'] }), 2 + 3);
    assert.equal(attributeValueSize({ BS: [b64(10), b64(5)] }), 15);
  });
  test('an unknown type is an error, not a guess', () => {
    assert.throws(() => itemSize({ a: { X: 1 } }), TypeError);
  });
});

describe('DynamoDB 400 KB maximum', () => {
  test('409,600 bytes is accepted, 409,601 refused with ValidationException', () => {
    assert.equal(DYNAMODB_MAX_ITEM_BYTES, 409600);
    assert.equal(itemSize(itemOf(409600)), 409600);
    assert.equal(checkDynamoWrite('PutItem', { TableName: 't', Item: itemOf(409600) }), null);
    const r = checkDynamoWrite('PutItem', { TableName: 't', Item: itemOf(409601) });
    assert.equal(r.status, 400);
    assert.deepEqual(json(r), { __type: 'com.amazon.coral.validate#ValidationException', message: 'Item size has exceeded the maximum allowed size' });
    assert.equal(r.headers['content-type'], 'application/x-amz-json-1.0');
  });
  test('BatchWriteItem: one over-size PutRequest rejects the batch', () => {
    const body = (n) => ({ RequestItems: { t: [{ PutRequest: { Item: itemOf(10) } }, { PutRequest: { Item: itemOf(n, 'k2') } }, { DeleteRequest: { Key: {} } }] } });
    assert.equal(checkDynamoWrite('BatchWriteItem', body(409600)), null);
    assert.equal(json(checkDynamoWrite('BatchWriteItem', body(409601))).message, 'Item size has exceeded the maximum allowed size');
  });
  test('TransactWriteItems: TransactionCanceledException with a ValidationError reason for the over-size Put', () => {
    const body = { TransactItems: [{ Put: { TableName: 't', Item: itemOf(100) } }, { Put: { TableName: 't', Item: itemOf(409601, 'k2') } }] };
    const r = checkDynamoWrite('TransactWriteItems', body);
    assert.equal(r.status, 400);
    const doc = json(r);
    assert.equal(doc.__type, 'com.amazonaws.dynamodb.v20120810#TransactionCanceledException');
    assert.deepEqual(doc.CancellationReasons.map((x) => x.Code), ['None', 'ValidationError']);
    assert.match(doc.Message, /\[None, ValidationError\]/);
  });
  test('UpdateItem wording', () => {
    assert.equal(json(itemTooLargeError('update')).message, 'Item size to update has exceeded the maximum allowed size');
  });
});

describe('applyUpdate (UpdateItem checked before forwarding)', () => {
  const key = { suite: { S: 'stable' } };
  test('allocate_generation: SET with if_not_exists and +, reading the item as it was', () => {
    const req = {
      UpdateExpression: 'SET #gen = if_not_exists(#gen, :zero) + :one, #lg = if_not_exists(#gen, :zero) + :one, #lu = :until',
      ExpressionAttributeNames: { '#gen': 'generation', '#lg': 'lease_generation', '#lu': 'lease_until' },
      ExpressionAttributeValues: { ':zero': { N: '0' }, ':one': { N: '1' }, ':until': { N: '1700000300' } },
    };
    const first = applyUpdate(null, key, req);
    assert.deepEqual(first, { ...key, generation: { N: '1' }, lease_generation: { N: '1' }, lease_until: { N: '1700000300' } });
    const second = applyUpdate(first, key, req);
    assert.equal(second.generation.N, '2');
    assert.equal(second.lease_generation.N, '2');
  });
  test('record_published: SET and REMOVE in one expression', () => {
    const old = { ...key, generation: { N: '2' }, lease_generation: { N: '2' }, lease_until: { N: '9' } };
    const next = applyUpdate(old, key, {
      UpdateExpression: 'SET #pub = :p, #pg = :g REMOVE #lg, #lu',
      ExpressionAttributeNames: { '#pub': 'published', '#pg': 'published_generation', '#lg': 'lease_generation', '#lu': 'lease_until' },
      ExpressionAttributeValues: { ':p': { M: { generation: { N: '2' } } }, ':g': { N: '2' } },
    });
    assert.deepEqual(next, { ...key, generation: { N: '2' }, published: { M: { generation: { N: '2' } } }, published_generation: { N: '2' } });
  });
  test('nested paths, list_append, list element removal, minus', () => {
    const old = { ...key, m: { M: { a: { N: '10' }, l: { L: [{ S: 'x' }, { S: 'y' }, { S: 'z' }] } } } };
    const next = applyUpdate(old, key, {
      UpdateExpression: 'SET m.a = m.a - :two, m.l = list_append(m.l, :more), m.b = :s REMOVE m.l[0]',
      ExpressionAttributeValues: { ':two': { N: '2.5' }, ':more': { L: [{ S: 'w' }] }, ':s': { S: 'new' } },
    });
    assert.deepEqual(next.m.M.a, { N: '7.5' });
    assert.deepEqual(next.m.M.l, { L: [{ S: 'y' }, { S: 'z' }, { S: 'w' }] });
    assert.deepEqual(next.m.M.b, { S: 'new' });
  });
  test('ADD and DELETE on numbers and sets; legacy AttributeUpdates', () => {
    const old = { ...key, n: { N: '5' }, tags: { SS: ['a', 'b'] } };
    const next = applyUpdate(old, key, {
      UpdateExpression: 'ADD n :one, fresh :one, tags :t DELETE tags :d',
      ExpressionAttributeValues: { ':one': { N: '1' }, ':t': { SS: ['c'] }, ':d': { SS: ['a'] } },
    });
    assert.deepEqual(next.n, { N: '6' });
    assert.deepEqual(next.fresh, { N: '1' });
    assert.deepEqual(next.tags, { SS: ['b', 'c'] });
    const legacy = applyUpdate(old, key, { AttributeUpdates: { n: { Action: 'ADD', Value: { N: '10' } }, tags: { Action: 'DELETE' } } });
    assert.deepEqual(legacy, { ...key, n: { N: '15' } });
  });
  test('invalid against the item -> UpdateInvalid; syntax not modelled -> UpdateNotModelled', () => {
    assert.throws(() => applyUpdate({}, key, { UpdateExpression: 'SET a = #missing' }), UpdateInvalid);
    assert.throws(() => applyUpdate({}, key, { UpdateExpression: 'SET a = :v', ExpressionAttributeValues: {} }), UpdateInvalid);
    assert.throws(() => applyUpdate({}, key, { UpdateExpression: 'SET a.b = :v', ExpressionAttributeValues: { ':v': { S: 'x' } } }), UpdateInvalid);
    assert.throws(() => applyUpdate({}, key, { UpdateExpression: 'SET a = size(b)' }), UpdateNotModelled);
    assert.throws(() => parseUpdateExpression('SET a = :v;'), UpdateNotModelled);
  });
  test('the resulting size decides: growing an item past 400 KB is caught before forwarding', () => {
    const old = itemOf(300 * 1024);
    const next = applyUpdate(old, { pk: old.pk }, { UpdateExpression: 'SET e = :big', ExpressionAttributeValues: { ':big': { S: 'y'.repeat(100 * 1024) } } });
    assert.equal(itemSize(next), 300 * 1024 + 1 + 100 * 1024);
    assert.ok(itemSize(next) > DYNAMODB_MAX_ITEM_BYTES);
  });
  test('decimal arithmetic is exact', () => {
    assert.equal(decimalAdd('0.1', '0.2'), '0.3');
    assert.equal(decimalAdd('99999999999999999999999999999999999999', '1'), '100000000000000000000000000000000000000');
    assert.equal(decimalAdd('1', '1', -1n), '0');
    assert.equal(decimalAdd('-1.5', '0.25'), '-1.25');
  });
});

describe('capacity units (on-demand request units)', () => {
  test('reads: 4 KB units, half when eventually consistent, twice when transactional', () => {
    assert.equal(readUnits(3500), 1, 'a 3,500-byte item reads as one 4 KB unit');
    assert.equal(readUnits(3500, { consistent: false }), 0.5);
    assert.equal(readUnits(3500, { transactional: true }), 2);
    assert.equal(readUnits(4096), 1);
    assert.equal(readUnits(4097), 2);
    assert.equal(readUnits(0), 1, 'a read of nothing still costs the minimum');
  });
  test('writes: 1 KB units, twice when transactional', () => {
    assert.equal(writeUnits(500), 1);
    assert.equal(writeUnits(3.5 * 1024), 4);
    assert.equal(writeUnits(1024), 1);
    assert.equal(writeUnits(1025), 2);
    assert.equal(writeUnits(1025, { transactional: true }), 4);
  });
});

describe('S3 limits', () => {
  test('object keys: 1024 UTF-8 bytes accepted, 1025 refused with KeyTooLongError', () => {
    assert.equal(checkS3Request('PutObject', { key: 'k'.repeat(1024), headers: { 'content-length': '1' } }), null);
    const r = checkS3Request('PutObject', { key: 'k'.repeat(1025), headers: { 'content-length': '1' } });
    assert.equal(r.status, 400);
    assert.equal(code(r), 'KeyTooLongError');
    assert.match(r.body.toString(), /<Message>Your key is too long.<\/Message><Size>1025<\/Size><MaxSizeAllowed>1024<\/MaxSizeAllowed>/);
    // 512 two-byte characters are 1024 bytes; one more ASCII byte is too long.
    assert.equal(checkS3Request('CreateMultipartUpload', { key: 'é'.repeat(512) }), null);
    assert.equal(code(checkS3Request('CreateMultipartUpload', { key: `${'é'.repeat(512)}x` })), 'KeyTooLongError');
    assert.equal(code(checkS3Request('CopyObject', { key: 'k'.repeat(1025), headers: {} })), 'KeyTooLongError');
    assert.equal(checkS3Request('GetObject', { key: 'k'.repeat(1025) }), null, 'reads are not refused for the key length');
  });
  test('user metadata: 2048 bytes accepted, 2049 refused with MetadataTooLarge', () => {
    const meta = (n) => ({ 'content-length': '1', 'x-amz-meta-sha256': 'v'.repeat(n - 'sha256'.length) });
    assert.equal(userMetadataSize(meta(2048)), 2048);
    assert.equal(checkS3Request('PutObject', { key: 'k', headers: meta(2048) }), null);
    const r = checkS3Request('PutObject', { key: 'k', headers: meta(2049) });
    assert.equal(r.status, 400);
    assert.equal(code(r), 'MetadataTooLarge');
    assert.equal(code(checkS3Request('CreateMultipartUpload', { key: 'k', headers: meta(2049) })), 'MetadataTooLarge');
    assert.equal(code(checkS3Request('CopyObject', { key: 'k', headers: { ...meta(2049), 'x-amz-metadata-directive': 'REPLACE' } })), 'MetadataTooLarge');
    assert.equal(checkS3Request('CopyObject', { key: 'k', headers: meta(2049) }), null, 'COPY keeps the source metadata');
    assert.equal(userMetadataSize({ 'x-amz-meta-é': 'é', 'content-type': 'x' }), 4);
  });
  test('PutObject: 5 GiB accepted, one byte more EntityTooLarge; no length: 411 MissingContentLength', () => {
    assert.equal(checkS3Request('PutObject', { key: 'k', headers: { 'content-length': String(S3_MAX_PUT_BYTES) } }), null);
    const r = checkS3Request('PutObject', { key: 'k', headers: { 'content-length': String(S3_MAX_PUT_BYTES + 1) } });
    assert.equal(code(r), 'EntityTooLarge');
    assert.match(r.body.toString(), /<MaxSizeAllowed>5368709120<\/MaxSizeAllowed>/);
    assert.equal(code(checkS3Request('PutObject', { key: 'k', headers: { 'x-amz-decoded-content-length': String(S3_MAX_PUT_BYTES + 1), 'content-length': '10' } })), 'EntityTooLarge');
    const missing = checkS3Request('PutObject', { key: 'k', headers: { 'transfer-encoding': 'chunked' } });
    assert.equal(missing.status, 411);
    assert.equal(code(missing), 'MissingContentLength');
  });
  test('parts: numbers 1..10000, at most 5 GiB; all but the last at least 5 MiB', () => {
    const part = (n, size = '1') => checkS3Request('UploadPart', { key: 'k', query: new URLSearchParams(`partNumber=${n}&uploadId=u`), headers: { 'content-length': size } });
    assert.equal(part(1), null);
    assert.equal(part(10000), null);
    for (const n of ['0', '10001', '-1', 'x']) {
      const r = part(n);
      assert.equal(code(r), 'InvalidArgument', n);
      assert.match(r.body.toString(), /Part number must be an integer between 1 and 10000, inclusive/);
    }
    assert.equal(code(part(2, String(5 * 1024 ** 3 + 1))), 'EntityTooLarge');
    const MiB = 1024 * 1024;
    assert.equal(checkCompleteParts([{ partNumber: 1, size: 5 * MiB }, { partNumber: 2, size: 1 }]), null);
    const small = checkCompleteParts([{ partNumber: 1, size: 5 * MiB - 1 }, { partNumber: 2, size: 5 * MiB }]);
    assert.equal(code(small), 'EntityTooSmall');
    assert.match(small.body.toString(), /<PartNumber>1<\/PartNumber>/);
  });
});

describe('errorResponse shapes', () => {
  test('S3 XML with request id headers; HEAD without body', () => {
    const r = errorResponse('s3', { status: 503, code: 'SlowDown', message: 'Please reduce your request rate.' });
    assert.equal(r.headers['content-type'], 'application/xml');
    assert.match(r.body.toString(), /^<\?xml version="1.0" encoding="UTF-8"\?>\n<Error><Code>SlowDown<\/Code><Message>Please reduce your request rate.<\/Message><RequestId>/);
    assert.equal(Number(r.headers['content-length']), r.body.length);
    const head = errorResponse('s3', { status: 503, code: 'SlowDown', message: 'x', method: 'HEAD' });
    assert.equal(head.body.length, 0);
    assert.equal(head.headers['content-length'], '0');
  });
  test('DynamoDB JSON types by namespace; Secrets Manager plain codes; SNS ErrorResponse', () => {
    assert.equal(json(errorResponse('dynamodb', { status: 400, code: 'ThrottlingException', message: 'x' })).__type, 'com.amazon.coral.availability#ThrottlingException');
    assert.equal(
      json(errorResponse('dynamodb', { status: 400, code: 'ProvisionedThroughputExceededException', message: 'x' })).__type,
      'com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException',
    );
    const sm = errorResponse('secretsmanager', { status: 400, code: 'ResourceNotFoundException', message: 'nope' });
    assert.deepEqual(json(sm), { __type: 'ResourceNotFoundException', Message: 'nope' });
    assert.equal(sm.headers['content-type'], 'application/x-amz-json-1.1');
    const sns = errorResponse('sns', { status: 500, code: 'InternalError', message: 'x' });
    assert.match(sns.body.toString(), /<Type>Receiver<\/Type><Code>InternalError<\/Code>/);
  });
});
