// Unit tests of kvs.mjs (the CloudFront KeyValueStore stand-in) and of the
// CloudFront stand-in's cache behaviors running the mirror's real viewer
// request function (cdk/functions/brew-rewrite.js) over a key value store.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import { startCloudFront } from '../cloudfront.mjs';
import { classify, parseAuth } from '../iam.mjs';
import { KEY_MAX, KeyValueStores, KvsError, STORE_MAX_BYTES, VALUE_MAX, classifyKvs } from '../kvs.mjs';

const ARN = 'arn:aws:cloudfront::123456789012:key-value-store/0b5e1c6e-0000-4000-8000-000000000001';

describe('key value store', () => {
  test('UpdateKeys needs the current ETag and applies all or nothing', () => {
    const kvs = new KeyValueStores();
    const s = kvs.create(ARN, 'names');
    const first = s.etag;
    assert.throws(() => kvs.update(ARN, 'KVSTALE', [{ Key: 'a', Value: '1' }]), (e) => e instanceof KvsError && e.code === 'ConflictException' && e.status === 409);
    kvs.update(ARN, first, [{ Key: 'a', Value: '1' }, { Key: 'b', Value: '2' }]);
    assert.notEqual(s.etag, first);
    assert.deepEqual([...s.data], [['a', '1'], ['b', '2']]);
    // A bad entry refuses the whole batch.
    assert.throws(() => kvs.update(ARN, s.etag, [{ Key: 'c', Value: '3' }, { Key: 'k'.repeat(KEY_MAX + 1), Value: 'x' }]), /ValidationException|at most 512/);
    assert.equal(s.data.has('c'), false);
    assert.throws(() => kvs.update(ARN, s.etag, [{ Key: 'v', Value: 'x'.repeat(VALUE_MAX + 1) }]), /at most 1024/);
    kvs.update(ARN, s.etag, [], [{ Key: 'a' }]);
    assert.deepEqual([...s.data.keys()], ['b']);
  });

  test('a store holds at most 5 MB of keys and values', () => {
    const kvs = new KeyValueStores();
    const s = kvs.create(ARN, 'names');
    const puts = [];
    for (let i = 0; i * 1000 < STORE_MAX_BYTES; i++) puts.push({ Key: `k${String(i).padStart(6, '0')}`, Value: 'v'.repeat(993) });
    assert.throws(() => kvs.update(ARN, s.etag, puts), (e) => e.code === 'ServiceQuotaExceededException');
    assert.equal(s.data.size, 0);
  });

  test('the data plane API: paths, operations, answers', () => {
    const enc = encodeURIComponent(ARN);
    assert.deepEqual(classifyKvs('GET', `/key-value-stores/${enc}`), { operation: 'DescribeKeyValueStore', arn: ARN, key: undefined });
    assert.deepEqual(classifyKvs('POST', `/key-value-stores/${enc}/keys`), { operation: 'UpdateKeys', arn: ARN, key: undefined });
    assert.deepEqual(classifyKvs('PUT', `/key-value-stores/${enc}/keys/a%40b`), { operation: 'PutKey', arn: ARN, key: 'a@b' });
    assert.equal(classifyKvs('DELETE', `/key-value-stores/${enc}`), null);
    const kvs = new KeyValueStores();
    kvs.create(ARN, 'names');
    const d = kvs.serve({ operation: 'DescribeKeyValueStore', arn: ARN }, { headers: {} });
    const etag = d.headers.etag;
    assert.equal(JSON.parse(d.body).ItemCount, 0);
    const u = kvs.serve(
      { operation: 'UpdateKeys', arn: ARN },
      { headers: { 'if-match': etag }, body: Buffer.from(JSON.stringify({ Puts: [{ Key: 'x', Value: 'y' }] })) },
    );
    assert.equal(u.status, 200);
    assert.notEqual(u.headers.etag, etag);
    assert.equal(JSON.parse(u.body).ItemCount, 1);
  });

  test('SigV4A requests are the key value store\'s, authorized on its ARN', () => {
    const headers = {
      authorization: 'AWS4-ECDSA-P256-SHA256 Credential=AKIAFUNCTIONKEY/20261129/cloudfront-keyvaluestore/aws4_request, SignedHeaders=host;x-amz-date;x-amz-region-set, Signature=3045',
      'x-amz-region-set': '*',
      'if-match': 'KV1',
    };
    const auth = parseAuth({ headers, url: '/' });
    assert.equal(auth.accessKeyId, 'AKIAFUNCTIONKEY');
    assert.equal(auth.service, 'cloudfront-keyvaluestore');
    const c = classify(
      { method: 'POST', path: `/key-value-stores/${encodeURIComponent(ARN)}/keys`, query: new URLSearchParams(), headers, body: Buffer.from('{}') },
      { auth },
    );
    assert.equal(c.service, 'cloudfront-keyvaluestore');
    assert.deepEqual(
      c.authorizations.map((a) => [a.action, a.resource]),
      [['cloudfront-keyvaluestore:UpdateKeys', ARN]],
    );
  });
});

describe('CloudFront stand-in: a mirror behavior running brew-rewrite.js', () => {
  const code = readFileSync(new URL('../../../cdk/functions/brew-rewrite.js', import.meta.url), 'utf8').replace(/__PREFIX__/g, 'brew/');
  const hex = 'ab'.repeat(32);

  async function withCloudFront(fn) {
    const kvs = new KeyValueStores();
    const store = kvs.create(ARN, 'names');
    kvs.update(ARN, store.etag, [{ Key: 'brew/bottles/openssl@3-3.5.2.arm64_sonoma.bottle.tar.gz', Value: hex }]);
    const asked = [];
    const cf = await startCloudFront({
      distribution: {
        id: 'E1',
        defaultRootObject: 'index.html',
        behaviors: [
          { pathPattern: 'brew/*', functions: { 'viewer-request': { code, kvsArn: ARN } } },
          { pathPattern: '*', functions: {} },
        ],
      },
      authorize: () => ({ allowed: true }),
      fetchObject: async (key) => {
        asked.push(key);
        return { status: 200, headers: { 'content-type': 'application/octet-stream' }, body: Readable.from([Buffer.from('blob')]) };
      },
      cloudfrontModule: (arn) => kvs.cloudfrontModule(arn),
    });
    try {
      await fn(cf.url, asked);
    } finally {
      await cf.close();
    }
  }

  const get = (url) =>
    new Promise((resolve, reject) => {
      http.get(url, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode));
      }).on('error', reject);
    });

  test('flat names through the store, registry blobs by their digest, the rest unchanged', async () => {
    await withCloudFront(async (base, asked) => {
      assert.equal(await get(`${base}brew/bottles/openssl%403-3.5.2.arm64_sonoma.bottle.tar.gz`), 200);
      assert.equal(await get(`${base}brew/v2/homebrew/core/openssl/3/blobs/sha256:${hex}`), 200);
      assert.equal(await get(`${base}brew/bottles/wget-1.0.arm64_sonoma.bottle.tar.gz`), 200);
      assert.equal(await get(`${base}brew/v2/homebrew/core/openssl/3/manifests/3.5.2`), 200);
      assert.equal(await get(`${base}dists/stable/InRelease`), 200);
      assert.deepEqual(asked, [
        `brew/blobs/sha256/${hex}`,
        `brew/blobs/sha256/${hex}`,
        // Not in the store: S3 answers for the name itself.
        'brew/bottles/wget-1.0.arm64_sonoma.bottle.tar.gz',
        'brew/v2/homebrew/core/openssl/3/manifests/3.5.2',
        'dists/stable/InRelease',
      ]);
    });
  });
});
