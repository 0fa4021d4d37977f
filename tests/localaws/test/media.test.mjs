// The media stack (issue 14) on localaws, end to end: server.mjs deploys the
// hand-made media template (fixtures/media-template.mjs, the real
// statemachine/media.asl.json inside) into a moto started here, the
// schedule fires the state machine, stub functions (fixtures/media-stub.mjs)
// make the calls the media functions make; then each rule the media stack
// brings is taken apart: KMS (bucket, topic, secret), the schedule's role,
// the names and outputs of the deployment.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { mediaTemplate } from '../fixtures/media-template.mjs';
import { Server, templateArgs } from '../server.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const MOTO_SERVER = path.resolve(HERE, '../../moto_server.py');
const CACHE = process.env.PKGRELAY_CACHE ?? path.join(os.homedir(), '.cache', 'pkgrelay');
const MOTO_PYTHON = process.env.MOTO_PYTHON ?? path.join(CACHE, 'venv-moto-5.2.5', 'bin', 'python');
const STUB = path.resolve(HERE, '../fixtures/media-stub.mjs');
const FUNCTIONS = ['authenticate', 'list-media', 'download-media', 'summarize'];

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
  `AWS4-HMAC-SHA256 Credential=${key}/20260101/us-east-1/${service}/aws4_request, SignedHeaders=host;x-amz-date, Signature=0000`;

describe('the media stack on localaws', () => {
  let moto;
  let server;
  let base;
  let work;
  let d; // the deployment's answer
  const logs = [];

  before(async () => {
    if (!existsSync(MOTO_PYTHON)) throw new Error(`${MOTO_PYTHON} is missing: tests/run installs moto there, or set MOTO_PYTHON`);
    const port = await freePort();
    moto = spawn(MOTO_PYTHON, [MOTO_SERVER, '127.0.0.1', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    moto.stderr.on('data', (c) => {
      stderr = (stderr + c).slice(-4000);
    });
    try {
      await waitFor(`http://127.0.0.1:${port}/moto-api/`, moto, 60);
    } catch (e) {
      throw new Error(`${e.message}\n${stderr}`);
    }
    work = mkdtempSync(path.join(os.tmpdir(), 'localaws-media-test-'));
    const templateFile = path.join(work, 'pkgrelay-dev-media.template.json');
    writeFileSync(templateFile, JSON.stringify(mediaTemplate()));
    const binDir = path.join(work, 'bin');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(binDir);
    for (const f of FUNCTIONS) symlinkSync(STUB, path.join(binDir, f));
    const { templates } = templateArgs([], work);
    assert.deepEqual(templates, { media: templateFile }, '--template-dir finds pkgrelay-dev-<stack>.template.json');
    server = new Server({ motoUrl: `http://127.0.0.1:${port}`, templates, binDir, log: (e) => logs.push(e) });
    base = await server.listen('127.0.0.1', 0);
  });

  after(async () => {
    if (server?.http) {
      server.http.closeAllConnections();
      await new Promise((r) => server.http.close(r));
    }
    server?.runner.close?.();
    if (moto && moto.exitCode === null) {
      const exited = new Promise((r) => moto.once('exit', r));
      process.kill(moto.pid, 'SIGTERM');
      await exited;
    }
    if (work) rmSync(work, { recursive: true, force: true });
  });

  async function admin(method, p, body) {
    const r = await fetch(`${base}/_localaws/${p}`, { method, headers: { 'content-type': 'application/json' }, body: body ? JSON.stringify(body) : undefined });
    const json = await r.json();
    if (!r.ok) throw Object.assign(new Error(`${method} ${p}: ${r.status} ${JSON.stringify(json)}`), { status: r.status, json });
    return json;
  }
  async function sfn(op, body) {
    const r = await fetch(base, { method: 'POST', headers: { 'x-amz-target': `AWSStepFunctions.${op}`, 'content-type': 'application/x-amz-json-1.0', authorization: auth('AKIAPKGRELAYTESTONLY', 'states') }, body: JSON.stringify(body) });
    return r.json();
  }
  async function finished(executionArn) {
    for (let i = 0; i < 600; i++) {
      const e = await sfn('DescribeExecution', { executionArn });
      if (e.status !== 'RUNNING') return e;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`${executionArn} still running`);
  }
  const keyOf = (fn) => (fn === 'media' ? d.state_machine.access_key_id : d.functions[fn].access_key_id);
  function call(key, service, { method = 'POST', p = '/', headers = {}, body } = {}) {
    return fetch(`${base}${p}`, { method, headers: { authorization: auth(key, service), ...headers }, body });
  }
  const secrets = (key, op, body) =>
    call(key, 'secretsmanager', { headers: { 'x-amz-target': `secretsmanager.${op}`, 'content-type': 'application/x-amz-json-1.1' }, body: JSON.stringify(body) });
  const publish = (key, topicArn) =>
    call(key, 'sns', { headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ Action: 'Publish', TopicArn: topicArn, Message: 'hello' }).toString() });
  const denialsSince = async (n) => (await admin('GET', `deployments/${d.id}/denials`)).denials.slice(n);

  test('deploys the media stack: names under the test prefix, outputs, functions, keys, schedule, queue', async () => {
    d = await admin('POST', 'deployments', { stack: 'media', retry_delay_ms: 1 });
    const p = d.prefix;
    assert.match(p, /^pkgrelay-t\d+x\d+$/);
    assert.equal(d.stack, 'media');
    assert.equal(d.stack_name, `${p}-media`);
    assert.deepEqual(Object.keys(d.functions).sort(), [...FUNCTIONS].sort(), 'function name -> binary name');
    assert.equal(d.functions.authenticate.function_name, `${p}-authenticate`);
    assert.equal(d.functions['download-media'].memory_mib, 1024);
    const o = d.outputs;
    assert.equal(o.MediaBucketName, `${p}-media-bucket`);
    assert.equal(o.StatusTableName, `${p}-media-status`);
    assert.equal(o.StateMachineArn, `arn:aws:states:us-east-1:123456789012:stateMachine:${p}-media`);
    assert.match(o.CredentialsSecretArn, new RegExp(`^arn:aws:secretsmanager:us-east-1:123456789012:secret:${p}-media-credentials-\\w{6}$`));
    assert.equal(o.AlertTopicArn, `arn:aws:sns:us-east-1:123456789012:${p}-media-alerts`);
    assert.equal(o.ScheduleName, `${p}-media-daily`);
    assert.equal(o.RepositoryUrl, undefined, 'no CloudFront in the media stack');
    assert.deepEqual(d.cdk_outputs, { 'pkgrelay-dev-media': o });
    assert.equal(d.state_machine_arn, o.StateMachineArn);
    assert.equal(d.functions['list-media'].environment.MEDIA_SECRET_ARN, o.CredentialsSecretArn);
    assert.equal(d.functions['list-media'].environment.MEDIA_BUCKET, o.MediaBucketName);
    const [key] = Object.values(d.kms_keys);
    assert.match(key.arn, /^arn:aws:kms:us-east-1:123456789012:key\/[0-9a-f-]{36}$/);
    assert.deepEqual(d.encrypted.buckets, { [o.MediaBucketName]: key.arn });
    assert.deepEqual(d.encrypted.topics, { [o.AlertTopicArn]: key.arn });
    assert.deepEqual(d.encrypted.secrets, { [o.CredentialsSecretArn]: key.arn });
    const sc = d.schedules[`${p}-media-daily`];
    assert.equal(sc.expression, 'cron(0 2 * * ? *)');
    assert.equal(sc.timezone, 'Europe/Paris');
    assert.equal(sc.target_arn, o.StateMachineArn);
    assert.equal(sc.input, '{"trigger":"schedule"}');
    assert.match(sc.role_arn, new RegExp(`:role/${p}-SchedulerRole$`));
    assert.equal(sc.dead_letter_arn, `arn:aws:sqs:us-east-1:123456789012:${p}-media-schedule-dlq`);
    assert.equal(d.queues.ScheduleDlq.name, `${p}-media-schedule-dlq`);
    // the credentials, as an operator puts them in (the admin: no KMS check)
    const put = await secrets('AKIAPKGRELAYTESTONLY', 'PutSecretValue', { SecretId: o.CredentialsSecretArn, SecretString: '{"kind":"oauth"}' });
    assert.equal(put.status, 200, await put.text());
    await assert.rejects(admin('POST', 'deployments', { stack: 'nope' }), (e) => e.status === 404 && /no template for the stack "nope"/.test(e.json.message));
  });

  test('the schedule fires the state machine as the scheduler would: the whole media definition runs, Distributed Map included', async () => {
    const fired = await admin('POST', `deployments/${d.id}/schedules/${d.outputs.ScheduleName}/fire`, {});
    assert.equal(fired.started, true, JSON.stringify(fired));
    assert.equal(fired.input, '{"trigger":"schedule"}');
    const e = await finished(fired.execution_arn);
    const logs = (await admin('GET', `deployments/${d.id}/logs`)).logs;
    assert.equal(e.status, 'SUCCEEDED', `${JSON.stringify(e)}\n${logs}\n${JSON.stringify(await admin('GET', `deployments/${d.id}/denials`))}`);
    const out = JSON.parse(e.output);
    assert.equal(out.input.trigger, 'schedule');
    assert.equal(out.summary.outcome, 'partial');
    const report = await admin('GET', `executions/report?arn=${encodeURIComponent(fired.execution_arn)}`);
    assert.ok(JSON.stringify(report).includes('NotifyPartial'), 'published to the encrypted alert topic');
    assert.deepEqual((await admin('GET', `deployments/${d.id}/denials`)).denials, [], 'every call of the run allowed');
    const meter = await admin('GET', `deployments/${d.id}/meter`);
    assert.equal(meter.callers['download-media'].s3.byOperation.CompleteMultipartUpload, 2);
    assert.equal(meter.callers.media.sns.publishes, 1);
    const described = (await admin('GET', `deployments/${d.id}/schedules`)).schedules[0];
    assert.equal(described.invocations.at(-1).outcome, 'started');
  });

  test('KMS: the state machine publishing to the encrypted topic needs kms:GenerateDataKey and kms:Decrypt', async () => {
    const topic = d.outputs.AlertTopicArn;
    const n = (await denialsSince(0)).length;
    assert.equal((await publish(keyOf('media'), topic)).status, 200);
    await admin('POST', `deployments/${d.id}/statements`, { role: 'state-machine', sid: 'UseKey', action: 'remove' });
    try {
      const r = await publish(keyOf('media'), topic);
      const text = await r.text();
      assert.equal(r.status, 400, text);
      assert.match(text, /<Code>KMSAccessDenied<\/Code>/);
      assert.match(text, /kms:GenerateDataKey on resource: arn:aws:kms:/);
      const [denial] = await denialsSince(n);
      assert.equal(denial.action, 'kms:GenerateDataKey');
      assert.equal(denial.resource, Object.values(d.kms_keys)[0].arn);
      assert.equal(denial.caller, 'media');
      assert.equal(denial.kms, true);
    } finally {
      await admin('POST', `deployments/${d.id}/statements`, { role: 'media', action: 'restore' });
    }
    assert.equal((await publish(keyOf('media'), topic)).status, 200);
  });

  test('KMS: an SSE-KMS bucket: GetObject needs kms:Decrypt (HEAD does not), PutObject kms:GenerateDataKey', async () => {
    const bucket = d.outputs.MediaBucketName;
    const key = keyOf('download-media');
    const obj = `/${bucket}/media/gopro/kms/x.bin`;
    assert.equal((await call(key, 's3', { method: 'PUT', p: obj, body: 'abc' })).status, 200);
    const n = (await denialsSince(0)).length;
    await admin('POST', `deployments/${d.id}/statements`, { role: 'download-media', sid: 'DecryptWithKey', action: 'remove' });
    try {
      const get = await call(key, 's3', { method: 'GET', p: obj });
      const text = await get.text();
      assert.equal(get.status, 403, text);
      assert.match(text, /<Code>AccessDenied<\/Code>/);
      assert.match(text, /not authorized to perform: kms:Decrypt on resource: arn:aws:kms:[^ ]+ because no identity-based policy allows the kms:Decrypt action/);
      assert.equal((await call(key, 's3', { method: 'HEAD', p: obj })).status, 200, 'HeadObject reads no data: no KMS call');
      assert.equal((await call(key, 's3', { method: 'PUT', p: obj, body: 'abcd' })).status, 200, 'PutObject needs GenerateDataKey only');
      // A multipart upload needs kms:Decrypt too (UploadPart, Complete).
      const created = await call(key, 's3', { method: 'POST', p: `${obj}?uploads` });
      assert.equal(created.status, 200, 'CreateMultipartUpload needs GenerateDataKey only');
      const uploadId = /<UploadId>([^<]+)</.exec(await created.text())[1];
      const part = await call(key, 's3', { method: 'PUT', p: `${obj}?partNumber=1&uploadId=${encodeURIComponent(uploadId)}`, body: 'x' });
      assert.equal(part.status, 403);
      assert.match(await part.text(), /kms:Decrypt/);
      assert.equal((await call(key, 's3', { method: 'DELETE', p: `${obj}?uploadId=${encodeURIComponent(uploadId)}` })).status, 204, 'AbortMultipartUpload: no KMS call');
      const denials = await denialsSince(n);
      assert.deepEqual(denials.map((x) => [x.operation, x.action]), [['GetObject', 'kms:Decrypt'], ['UploadPart', 'kms:Decrypt']]);
    } finally {
      await admin('POST', `deployments/${d.id}/statements`, { role: 'download-media', action: 'restore' });
    }
    await admin('POST', `deployments/${d.id}/statements`, { role: 'download-media', sid: 'EncryptWithKey', action: 'remove' });
    try {
      const put = await call(key, 's3', { method: 'PUT', p: obj, body: 'abc' });
      assert.equal(put.status, 403);
      assert.match(await put.text(), /kms:GenerateDataKey/);
      assert.equal((await call(key, 's3', { method: 'GET', p: obj })).status, 200);
    } finally {
      await admin('POST', `deployments/${d.id}/statements`, { role: 'download-media', action: 'restore' });
    }
  });

  test('KMS: a secret with KmsKeyId: GetSecretValue needs kms:Decrypt, PutSecretValue kms:GenerateDataKey', async () => {
    const secret = d.outputs.CredentialsSecretArn;
    const key = keyOf('authenticate');
    const got = await secrets(key, 'GetSecretValue', { SecretId: secret });
    assert.equal(got.status, 200);
    const { VersionId } = await got.json();
    assert.equal((await secrets(keyOf('list-media'), 'GetSecretValue', { SecretId: secret, VersionId })).status, 200);
    await admin('POST', `deployments/${d.id}/statements`, { role: 'authenticate', sid: 'DecryptWithKey', action: 'remove' });
    try {
      const r = await secrets(key, 'GetSecretValue', { SecretId: secret });
      assert.equal(r.status, 400);
      assert.deepEqual(await r.json(), { __type: 'AccessDeniedException', Message: 'Access to KMS is not allowed' });
    } finally {
      await admin('POST', `deployments/${d.id}/statements`, { role: 'authenticate', action: 'restore' });
    }
    await admin('POST', `deployments/${d.id}/statements`, { role: 'authenticate', sid: 'EncryptWithKey', action: 'remove' });
    try {
      const r = await secrets(key, 'PutSecretValue', { SecretId: secret, SecretString: '{"kind":"oauth"}' });
      assert.equal(r.status, 400);
      const [denial] = (await denialsSince(0)).slice(-1);
      assert.equal(denial.action, 'kms:GenerateDataKey');
      assert.equal((await secrets(key, 'GetSecretValue', { SecretId: secret })).status, 200);
    } finally {
      await admin('POST', `deployments/${d.id}/statements`, { role: 'authenticate', action: 'restore' });
    }
  });

  test('IAM: the media functions\' calls, each allowed by its role and refused to the others', async () => {
    const table = d.outputs.StatusTableName;
    const ddb = (fn, op, body) =>
      call(keyOf(fn), 'dynamodb', { headers: { 'x-amz-target': `DynamoDB_20120810.${op}`, 'content-type': 'application/x-amz-json-1.0' }, body: JSON.stringify(body) });
    const query = { TableName: table, IndexName: 'by-status', KeyConditionExpression: '#s = :s', ExpressionAttributeNames: { '#s': 'status' }, ExpressionAttributeValues: { ':s': { S: 'FAILED' } } };
    assert.equal((await ddb('list-media', 'Query', query)).status, 200);
    const q = await ddb('download-media', 'Query', query);
    assert.equal(q.status, 400);
    assert.match((await q.json()).Message, new RegExp(`dynamodb:Query on resource: arn:aws:dynamodb:us-east-1:123456789012:table/${table}/index/by-status`));
    const batch = { RequestItems: { [table]: { Keys: [{ pk: { S: 'gopro#m1' } }] } } };
    assert.equal((await ddb('list-media', 'BatchGetItem', batch)).status, 200);
    assert.equal((await ddb('download-media', 'BatchGetItem', batch)).status, 400);
    const bucket = d.outputs.MediaBucketName;
    assert.equal((await call(keyOf('download-media'), 's3', { method: 'GET', p: `/${bucket}?uploads&prefix=media%2F` })).status, 200);
    assert.equal((await call(keyOf('summarize'), 's3', { method: 'GET', p: `/${bucket}?uploads` })).status, 403);
    assert.equal((await call(keyOf('summarize'), 's3', { method: 'GET', p: `/${bucket}?list-type=2&prefix=runs%2Fmedia%2F` })).status, 200);
    assert.equal((await call(keyOf('summarize'), 's3', { method: 'GET', p: `/${bucket}?list-type=2&prefix=media%2F` })).status, 403);
    assert.equal((await call(keyOf('list-media'), 's3', { method: 'PUT', p: `/${bucket}/media/x`, body: 'x' })).status, 403);
    assert.equal((await secrets(keyOf('summarize'), 'GetSecretValue', { SecretId: d.outputs.CredentialsSecretArn })).status, 400);
    assert.equal((await secrets(keyOf('list-media'), 'PutSecretValue', { SecretId: d.outputs.CredentialsSecretArn, SecretString: '{}' })).status, 400);
  });

  test('a schedule whose role may not states:StartExecution starts nothing: a denial, and the event on its dead-letter queue', async () => {
    const name = d.outputs.ScheduleName;
    await admin('POST', `deployments/${d.id}/statements`, { role: `schedule:${name}`, sid: 'StartSync', action: 'remove' });
    try {
      const fired = await admin('POST', `deployments/${d.id}/schedules/${name}/fire`, {});
      assert.equal(fired.started, false);
      assert.equal(fired.outcome, 'denied');
      assert.match(fired.error, /is not authorized to perform: states:StartExecution on resource: arn:aws:states:/);
      assert.equal(fired.dead_letter, d.schedules[name].dead_letter_arn);
      const [denial] = (await denialsSince(0)).slice(-1);
      assert.equal(denial.caller, `schedule:${name}`);
      assert.equal(denial.action, 'states:StartExecution');
      const { messages } = await admin('GET', `deployments/${d.id}/dead-letters`);
      assert.equal(messages.at(-1).body, '{"trigger":"schedule"}');
      assert.equal(messages.at(-1).attributes.SCHEDULE_ARN, d.schedules[name].arn);
    } finally {
      await admin('POST', `deployments/${d.id}/statements`, { role: `schedule:${name}`, action: 'restore' });
    }
    const again = await admin('POST', `deployments/${d.id}/schedules/${name}/fire`, { input: { trigger: 'manual' } });
    assert.equal(again.started, true);
    assert.equal((await finished(again.execution_arn)).status, 'SUCCEEDED');
    await assert.rejects(admin('POST', `deployments/${d.id}/schedules/nope/fire`, {}), (e) => e.status === 404);
  });
});
