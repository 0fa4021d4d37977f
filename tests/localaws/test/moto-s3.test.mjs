// tests/moto_server.py's S3 patches (checksums, multipart completion,
// streamed GETs), driven by boto3 from moto's venv
// (fixtures/moto_s3_check.py) against a moto started here.

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const MOTO_SERVER = path.resolve(HERE, '../../moto_server.py');
const CHECK = path.resolve(HERE, '../fixtures/moto_s3_check.py');
const CACHE = process.env.PKGRELAY_CACHE ?? path.join(os.homedir(), '.cache', 'pkgrelay');
const MOTO_PYTHON = process.env.MOTO_PYTHON ?? path.join(CACHE, 'venv-moto-5.2.5', 'bin', 'python');

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

describe('moto_server.py: S3 at media sizes', () => {
  let moto;
  let found;
  let base;
  before(async () => {
    const port = await freePort();
    moto = spawn(MOTO_PYTHON, [MOTO_SERVER, '127.0.0.1', String(port)], { stdio: 'ignore' });
    for (let i = 0; i < 300; i++) {
      try {
        if ((await fetch(`http://127.0.0.1:${port}/moto-api/`)).ok) break;
      } catch {
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    base = `http://127.0.0.1:${port}`;
    found = JSON.parse(execFileSync(MOTO_PYTHON, [CHECK, `http://127.0.0.1:${port}`], { encoding: 'utf8', timeout: 120000 }));
  });
  after(async () => {
    if (moto && moto.exitCode === null) {
      const exited = new Promise((r) => moto.once('exit', r));
      process.kill(moto.pid, 'SIGTERM');
      await exited;
    }
  });

  test('CRC-64/NVME is the real one (awscrt in the venv)', () => {
    assert.equal(found.crc64nvme_check_value, '0xae8b14860a799888');
  });
  test('PutObject and UploadPart: a wrong x-amz-checksum-crc64nvme is 400 BadDigest and stores nothing', () => {
    assert.deepEqual(found.put_bad, { code: 'BadDigest', status: 400, message: 'The CRC64NVME you specified did not match the calculated checksum.' });
    assert.equal(found.put_bad_stored, false);
    assert.equal(found.put_default, true);
    assert.equal(found.part_bad.code, 'BadDigest');
    assert.deepEqual(found.list_parts, [[1, 5242880], [2, 1234567]], 'the refused part was not stored');
    assert.deepEqual(found.list_parts_checksums, [true, true], 'ListParts names each part\'s CRC-64/NVME');
    assert.equal(found.list_parts_algorithm, 'CRC64NVME');
  });
  test('aws-chunked with a trailer checksum (the Rust SDK\'s shape)', () => {
    assert.deepEqual(found.chunked_good, { status: 200, code: null, stored: true });
    assert.deepEqual(found.chunked_bad, { status: 400, code: 'BadDigest', stored: false });
  });
  test('CompleteMultipartUpload checks the full-object CRC-64/NVME and names it', () => {
    assert.equal(found.complete_bad.code, 'BadDigest');
    assert.equal(found.complete_bad.status, 400);
    assert.deepEqual(found.upload_kept_after_bad_complete, ['big'], 'the upload stays: the client may complete again');
    assert.equal(found.complete_checksum, true);
    assert.equal(found.complete_type, 'FULL_OBJECT');
    assert.match(found.complete_etag, /^"[0-9a-f]{32}-2"$/);
  });
  test('the assembled object: GetObject (streamed), Range, HEAD, checksum on request', () => {
    assert.equal(found.get_whole, true);
    assert.equal(found.get_length, 5242880 + 1234567);
    assert.equal(found.get_checksum, true);
    assert.equal(found.get_range, true);
    assert.equal(found.get_range_header, 'bytes 5242870-5242890/6477447');
    assert.equal(found.head_length, 6477447);
    assert.deepEqual(found.head_checksum, [true, 'FULL_OBJECT'], 'HeadObject with checksum mode: the full-object CRC-64/NVME');
  });
  test('a large upload in progress does not hold the lock: other requests are answered meanwhile', async () => {
    const auth = 'AWS4-HMAC-SHA256 Credential=AKIAPKGRELAYTESTONLY/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0';
    const size = 20 * 1024 * 1024;
    const u = new URL(`${base}/moto-s3-check/slow-upload`);
    const put = http.request({ host: u.hostname, port: u.port, path: u.pathname, method: 'PUT', headers: { authorization: auth, 'content-length': size } });
    const answered = new Promise((resolve, reject) => {
      put.on('response', (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode));
      });
      put.on('error', reject);
    });
    put.write(Buffer.alloc(1024 * 1024, 1));
    await new Promise((r) => setTimeout(r, 300));
    const started = Date.now();
    const r = await fetch(`${base}/moto-s3-check/small`, { headers: { authorization: auth } });
    assert.equal(r.status, 200);
    assert.equal(await r.text(), 'hello');
    assert.ok(Date.now() - started < 2000, `a GetObject waited ${Date.now() - started} ms behind an unfinished upload`);
    put.end(Buffer.alloc(size - 1024 * 1024, 2));
    assert.equal(await answered, 200);
    const back = Buffer.from(await (await fetch(`${base}/moto-s3-check/slow-upload`, { headers: { authorization: auth } })).arrayBuffer());
    assert.equal(back.length, size);
    assert.equal(back[0], 1);
    assert.equal(back[size - 1], 2);
  });
  test('ListMultipartUploads, AbortMultipartUpload', () => {
    assert.deepEqual(found.list_uploads, ['big']);
    assert.deepEqual(found.uploads_after_abort, []);
  });
});
