// The synthesized templates themselves (cdk/cdk.out.dev, which tests/run
// synthesizes before these tests; skipped when it is absent): each stack of
// the app deploys, under a test prefix, with what the gateway enforces for it.
// PKGRELAY_TEMPLATE_DIR points elsewhere (another checkout's cdk.out.dev).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Server, templateArgs } from '../server.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const DIR = process.env.PKGRELAY_TEMPLATE_DIR ?? path.resolve(HERE, '../../../cdk/cdk.out.dev');
const MOTO_SERVER = path.resolve(HERE, '../../moto_server.py');
const CACHE = process.env.PKGRELAY_CACHE ?? path.join(os.homedir(), '.cache', 'pkgrelay');
const MOTO_PYTHON = process.env.MOTO_PYTHON ?? path.join(CACHE, 'venv-moto-5.2.5', 'bin', 'python');
const present = existsSync(path.join(DIR, 'pkgrelay-dev.template.json'));

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

describe('the synthesized stacks', { skip: present ? false : `no ${DIR}/pkgrelay-dev.template.json (cdk synth)` }, () => {
  let moto;
  let server;
  let STUB_BIN;
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
    const { templateFile, templates } = templateArgs([path.join(DIR, 'pkgrelay-dev.template.json')], DIR);
    STUB_BIN = mkdtempSync(path.join(os.tmpdir(), 'localaws-stacks-bin-'));
    for (const f of ['authenticate', 'list-media', 'download-media', 'summarize']) symlinkSync(path.resolve(HERE, '../fixtures/media-stub.mjs'), path.join(STUB_BIN, f));
    server = new Server({ motoUrl: `http://127.0.0.1:${port}`, templateFile, templates, binDir: '/nonexistent', log: () => {} });
    await server.listen('127.0.0.1', 0);
  });
  after(async () => {
    if (server?.http) {
      for (const d of [...server.deployments.keys()]) await server.undeploy(d);
      server.http.closeAllConnections();
      await new Promise((r) => server.http.close(r));
    }
    if (STUB_BIN) rmSync(STUB_BIN, { recursive: true, force: true });
    if (moto && moto.exitCode === null) {
      const exited = new Promise((r) => moto.once('exit', r));
      process.kill(moto.pid, 'SIGTERM');
      await exited;
    }
  });

  test('the pipeline stack (the default): unchanged names, its encrypted topics under KMS', async () => {
    const d = await server.deploy({});
    const info = d.info();
    assert.equal(info.stack, 'pipeline');
    assert.ok(info.outputs.RepositoryUrl, 'the CloudFront stand-in');
    assert.deepEqual(Object.keys(info.cdk_outputs), ['pkgrelay-dev']);
    assert.equal(info.state_machine.name, 'pipeline');
    const topics = Object.keys(info.encrypted.topics);
    assert.ok(topics.length >= 1, 'the notification topics are encrypted with the template key');
    // The pipeline role may use the key (its kms:Decrypt / kms:GenerateDataKey* grant): a publish goes through.
    const res = await fetch(server.url, {
      method: 'POST',
      headers: {
        authorization: `AWS4-HMAC-SHA256 Credential=${info.state_machine.access_key_id}/20260101/us-east-1/sns/aws4_request, SignedHeaders=host, Signature=0`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({ Action: 'Publish', TopicArn: topics[0], Message: '{}' }).toString(),
    });
    assert.equal(res.status, 200, await res.text());
  });

  test('the media stack, when synthesized: its schedule runs the definition with stub functions, every call allowed', { skip: existsSync(path.join(DIR, 'pkgrelay-dev-media.template.json')) ? false : 'no pkgrelay-dev-media.template.json yet' }, async () => {
    const d = await server.deploy({ stack: 'media', retry_delay_ms: 1 });
    const info = d.info();
    assert.equal(info.stack, 'media');
    for (const f of ['authenticate', 'list-media', 'download-media', 'summarize']) assert.ok(info.functions[f], f);
    for (const o of ['StateMachineArn', 'MediaBucketName', 'StatusTableName', 'CredentialsSecretArn', 'AlertTopicArn']) assert.ok(info.outputs[o], o);
    assert.equal(info.encrypted.buckets[info.outputs.MediaBucketName] !== undefined, true, 'SSE-KMS media bucket');
    assert.ok(info.encrypted.secrets[info.outputs.CredentialsSecretArn], 'the credentials under the media key');
    assert.ok(info.encrypted.topics[info.outputs.AlertTopicArn], 'the alert topic under its key');
    const [name] = Object.keys(info.schedules);
    assert.equal(info.schedules[name].timezone, 'Europe/Paris');
    // The stub functions (fixtures/media-stub.mjs) make the media functions' calls under the synthesized roles.
    server.runner.binDir = STUB_BIN;
    await fetch(server.url, {
      method: 'POST',
      headers: {
        authorization: 'AWS4-HMAC-SHA256 Credential=AKIAPKGRELAYTESTONLY/20260101/us-east-1/secretsmanager/aws4_request, SignedHeaders=host, Signature=0',
        'x-amz-target': 'secretsmanager.PutSecretValue',
        'content-type': 'application/x-amz-json-1.1',
      },
      body: JSON.stringify({ SecretId: info.outputs.CredentialsSecretArn, SecretString: '{"kind":"oauth"}' }),
    });
    const fired = await server.fireSchedule(d, name, {});
    assert.equal(fired.started, true, JSON.stringify(fired));
    const record = server.states.record(fired.execution_arn);
    await record.execution.done;
    assert.equal(record.execution.status, 'SUCCEEDED', `${record.execution.error}: ${record.execution.cause}\n${d.logs.join('\n')}`);
    assert.deepEqual(d.denials.map((x) => `${x.caller} ${x.action} ${x.resource}: ${x.reason}`), []);
  });
});
