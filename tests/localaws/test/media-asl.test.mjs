// statemachine/media.asl.json (statemachine/media.md) run through
// tests/localaws/asl.mjs with stubbed tasks: the happy path, an item that
// fails, partial and critical outcomes, the reauthenticate pass, a dead login
// (from Authenticate or from Summarize), a step failure. Offline, a second:
//   node --test tests/localaws/test/media-asl.test.mjs
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { TaskFailure, startExecution, validateDefinition } from '../asl.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..', '..', '..');
const ACCOUNT = '123456789012';
const SM_NAME = 'pkgrelay-dev-media-sync';
const SM_ARN = `arn:aws:states:us-east-1:${ACCOUNT}:stateMachine:${SM_NAME}`;
const EXECUTION = 'run1';
const EXECUTION_ARN = `arn:aws:states:us-east-1:${ACCOUNT}:execution:${SM_NAME}:${EXECUTION}`;
const BUCKET = 'pkgrelay-dev-media-bucket';
const TOPIC = `arn:aws:sns:us-east-1:${ACCOUNT}:pkgrelay-dev-media-alerts`;
const fnArn = (name) => `arn:aws:lambda:us-east-1:${ACCOUNT}:function:pkgrelay-dev-${name}`;
const ctx = (name = EXECUTION, arn = EXECUTION_ARN) => ({
  executionArn: arn,
  executionName: name,
  stateMachineArn: SM_ARN,
  stateMachineName: SM_NAME,
  roleArn: `arn:aws:iam::${ACCOUNT}:role/sync`,
});

const TEXT = fs.readFileSync(path.join(REPO, 'statemachine', 'media.asl.json'), 'utf8');

/** The definition with the media stack's DefinitionSubstitutions (cdk/lib/media-stack.ts). */
function definition() {
  const subs = {
    AlertTopicArn: TOPIC,
    MediaBucketName: BUCKET,
    AuthenticateFunctionArn: fnArn('authenticate'),
    ListMediaFunctionArn: fnArn('list-media'),
    DownloadMediaFunctionArn: fnArn('download-media'),
    SummarizeFunctionArn: fnArn('summarize'),
  };
  const text = TEXT.replace(/\$\{([A-Za-z0-9_]+)\}/g, (whole, name) => {
    assert.ok(name in subs, `unknown placeholder ${whole}`);
    return subs[name];
  });
  return JSON.parse(text);
}

const ITEMS = [
  { id: 'good', kind: 'Video', filename: 'GX010001.MP4', file_extension: 'mp4', file_size: 1000, captured_at: '2025-06-01T10:00:00Z', state: 'ready' },
  { id: 'flaky', kind: 'Chaptered', filename: 'GX010002.MP4', file_extension: 'mp4', file_size: 3000, captured_at: '2025-06-02T10:00:00Z', state: 'ready' },
  { id: 'bad', kind: 'Photo', filename: '', file_extension: 'jpg', file_size: 10, captured_at: '2025-06-03T10:00:00Z', state: 'ready' },
];

/**
 * Stub tasks. `summarize(pass, calls)` gives Summarize's result; `download(item,
 * attempt, pass)` DownloadMedia's (or throws); `authenticate(n)` the n-th
 * Authenticate/Reauthenticate's.
 */
function world({ summarize = () => ({ outcome: 'ok' }), download, authenticate, listMedia } = {}) {
  const calls = [];
  const published = [];
  const written = [];
  const read = [];
  const attempts = new Map();
  let authCount = 0;
  const downloadDefault = (item) => {
    if (item.id === 'bad') throw new TaskFailure('MediaFatal', 'descriptor has no source file');
    return { media_id: item.id, status: 'COMPLETED', bytes: item.file_size, files: 1, duration_ms: 10, first_byte_ms: 1 };
  };
  const handlers = {
    task: async ({ stateName, input, resource }) => {
      calls.push({ stateName, input, resource });
      if (resource === 'arn:aws:states:::sns:publish') {
        published.push({ stateName, ...input });
        return { MessageId: `m${published.length}` };
      }
      switch (stateName) {
        case 'Authenticate':
        case 'Reauthenticate': {
          authCount += 1;
          assert.equal(resource, fnArn('authenticate'));
          if (authenticate) return authenticate(authCount, input);
          return { secret_version_id: `v${authCount}`, kind: 'oauth', refreshed: input.payload.force_refresh };
        }
        case 'ListMedia':
          assert.equal(resource, fnArn('list-media'));
          if (listMedia) return listMedia(input);
          return { items: { Bucket: BUCKET, Key: `runs/media/${EXECUTION}/items.json` }, to_copy: ITEMS.length, listed: 40, not_ready: 1, completed: 36, deleted: 0, pages: 1 };
        case 'DownloadMedia': {
          assert.equal(resource, fnArn('download-media'));
          const item = input.payload.item;
          const pass = calls.filter((c) => c.stateName === 'Reauthenticate').length + 1;
          const key = `${pass}/${item.id}`;
          attempts.set(key, (attempts.get(key) ?? 0) + 1);
          return (download ?? downloadDefault)(item, attempts.get(key), pass);
        }
        case 'Summarize': {
          assert.equal(resource, fnArn('summarize'));
          const pass = input.payload.pass;
          return { copied: 2, already: 0, deleted: 0, failed: 1, not_ready: 1, token_rejected: 0, bytes: 4000, failures: [], ...summarize(pass, calls) };
        }
        default:
          throw new Error(`unexpected task ${stateName}`);
      }
    },
    itemReader: async ({ parameters }) => {
      read.push(parameters);
      return structuredClone(ITEMS);
    },
    childExecution: async ({ definition: child, input, childExecutionArn, name }) => {
      const ex = startExecution({ definition: child, input, context: ctx(name, childExecutionArn), handlers, options: { retryDelayMs: 0 } });
      await ex.done;
      return { status: ex.status, output: ex.output, error: ex.error, cause: ex.cause, executionArn: childExecutionArn };
    },
    resultWriter: async ({ parameters, mapRunArn, results }) => {
      written.push({ parameters, results });
      return { Bucket: parameters.Bucket, Key: `${parameters.Prefix}/${mapRunArn.split(':').pop()}/manifest.json` };
    },
  };
  return { handlers, calls, published, written, read, attempts };
}

async function run(w, input = { trigger: 'schedule' }) {
  const ex = startExecution({ definition: definition(), input, context: ctx(), handlers: w.handlers, options: { retryDelayMs: 0 } });
  await ex.done;
  return ex;
}

const named = (calls, stateName) => calls.filter((c) => c.stateName === stateName);

// ---------------------------------------------------------------------------

describe('media.asl.json', () => {
  test('is valid ASL with exactly the states of statemachine/media.md, a 12 h timeout and placeholders the stack fills', () => {
    const def = definition();
    assert.deepEqual(validateDefinition(def), []);
    assert.equal(def.TimeoutSeconds, 43200);
    assert.deepEqual(Object.keys(def.States).sort(), [
      'Authenticate', 'Defaults', 'Done', 'DownloadAll', 'Failed', 'ListMedia', 'LoginRequired', 'NotifyCritical',
      'NotifyFailure', 'NotifyLoginRequired', 'NotifyPartial', 'Outcome', 'Reauthenticate', 'StepFailed', 'Summarize',
    ]);
    assert.deepEqual(Object.keys(def.States.DownloadAll.ItemProcessor.States).sort(), ['DownloadMedia', 'ItemFailed']);
  });

  test('DownloadAll: a Distributed Map, 5 at once, every failure tolerated, DownloadMedia retried after 30, 60, 120 s', () => {
    const map = definition().States.DownloadAll;
    assert.equal(map.ItemProcessor.ProcessorConfig.Mode, 'DISTRIBUTED');
    assert.equal(map.MaxConcurrency, 5);
    assert.equal(map.ToleratedFailurePercentage, 100);
    const task = map.ItemProcessor.States.DownloadMedia;
    assert.deepEqual(task.Retry, [
      {
        ErrorEquals: ['MediaTransient', 'Lambda.ServiceException', 'Lambda.AWSLambdaException', 'Lambda.SdkClientException', 'Lambda.TooManyRequestsException'],
        IntervalSeconds: 30,
        BackoffRate: 2,
        MaxAttempts: 3,
      },
    ]);
    assert.deepEqual(task.Catch, [{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'ItemFailed' }]);
  });

  test('happy path: authenticate, list, copy every item (one retried, one failed), summarize, ok: no notification', async () => {
    const w = world({
      download: (item, attempt) => {
        if (item.id === 'flaky' && attempt < 3) throw new TaskFailure('MediaTransient', 'HTTP 503 from the source');
        if (item.id === 'bad') throw new TaskFailure('MediaFatal', 'descriptor has no source file');
        return { media_id: item.id, status: 'COMPLETED', bytes: item.file_size, files: 1, duration_ms: 10, first_byte_ms: 1 };
      },
    });
    const ex = await run(w);
    assert.equal(ex.status, 'SUCCEEDED', `${ex.error} ${ex.cause}`);
    // The envelope: {payload, execution_id}; the token never, the secret's version id only.
    assert.deepEqual(named(w.calls, 'Authenticate')[0].input, { payload: { force_refresh: false }, execution_id: EXECUTION_ARN });
    assert.deepEqual(named(w.calls, 'ListMedia')[0].input, { payload: { secret_version_id: 'v1' }, execution_id: EXECUTION_ARN });
    assert.deepEqual(w.read, [{ Bucket: BUCKET, Key: `runs/media/${EXECUTION}/items.json` }]);
    const downloads = named(w.calls, 'DownloadMedia');
    assert.equal(downloads.length, 3 + 2, 'flaky twice more');
    for (const d of downloads) {
      assert.deepEqual(Object.keys(d.input).sort(), ['execution_id', 'payload']);
      assert.equal(d.input.execution_id, EXECUTION_ARN, "the parent's execution id, for the logs");
      assert.equal(d.input.payload.secret_version_id, 'v1');
    }
    assert.deepEqual(downloads.map((d) => d.input.payload.item.id).filter((id) => id === 'flaky').length, 3);
    // The Map's results: each item's result, ItemFailed's for the failed one.
    assert.equal(w.written.length, 1);
    assert.deepEqual(w.written[0].parameters, { Bucket: BUCKET, Prefix: `runs/media/${EXECUTION}/results` });
    const outputs = w.written[0].results.map((r) => JSON.parse(r.Output));
    assert.ok(w.written[0].results.every((r) => r.Status === 'SUCCEEDED'));
    assert.deepEqual(outputs.find((o) => o.media_id === 'bad'), { media_id: 'bad', status: 'FAILED', reason: 'MediaFatal: descriptor has no source file' });
    assert.equal(outputs.find((o) => o.media_id === 'flaky').status, 'COMPLETED');
    const summarize = named(w.calls, 'Summarize')[0].input;
    assert.equal(summarize.execution_id, EXECUTION_ARN);
    assert.equal(summarize.payload.pass, 1);
    assert.equal(summarize.payload.listing.items.Key, `runs/media/${EXECUTION}/items.json`);
    assert.equal(summarize.payload.results.Bucket, BUCKET);
    assert.match(summarize.payload.results.Key, new RegExp(`^runs/media/${EXECUTION}/results/.+/manifest\\.json$`));
    assert.deepEqual(w.published, []);
    assert.equal(ex.output.summary.outcome, 'ok');
    assert.deepEqual(ex.output.input, { trigger: 'schedule', force_refresh: false });
  });

  test('partial: the summary goes to the alert topic and the run succeeds', async () => {
    const w = world({ summarize: () => ({ outcome: 'partial', failures: [{ media_id: 'bad', reason: 'x' }] }) });
    const ex = await run(w);
    assert.equal(ex.status, 'SUCCEEDED');
    assert.equal(w.published.length, 1);
    assert.equal(w.published[0].stateName, 'NotifyPartial');
    assert.equal(w.published[0].TopicArn, TOPIC);
    assert.equal(JSON.parse(w.published[0].Message).outcome, 'partial');
  });

  test('critical: the summary goes to the alert topic and the run fails', async () => {
    const w = world({ summarize: () => ({ outcome: 'critical', copied: 0, failed: 3 }) });
    const ex = await run(w);
    assert.equal(ex.status, 'FAILED');
    assert.equal(ex.error, 'MediaSyncCritical');
    assert.deepEqual(w.published.map((p) => p.stateName), ['NotifyCritical']);
    assert.equal(JSON.parse(w.published[0].Message).failed, 3);
  });

  test('reauthenticate: one forced refresh, the Map again with the new secret version (pass 2), then ok', async () => {
    const w = world({
      download: (item, attempt, pass) => {
        if (pass === 1 && item.id === 'flaky') return { media_id: item.id, status: 'TOKEN_REJECTED', bytes: 0, files: 0, duration_ms: 1, first_byte_ms: 0 };
        if (pass === 2 && item.id !== 'flaky') return { media_id: item.id, status: 'ALREADY_COPIED', bytes: 0, files: 1, duration_ms: 1, first_byte_ms: 0 };
        return { media_id: item.id, status: 'COMPLETED', bytes: item.file_size, files: 1, duration_ms: 10, first_byte_ms: 1 };
      },
      summarize: (pass) => ({ outcome: pass === 1 ? 'reauthenticate' : 'ok' }),
    });
    const ex = await run(w);
    assert.equal(ex.status, 'SUCCEEDED', `${ex.error} ${ex.cause}`);
    const reauth = named(w.calls, 'Reauthenticate');
    assert.equal(reauth.length, 1);
    assert.deepEqual(reauth[0].input, { payload: { force_refresh: true }, execution_id: EXECUTION_ARN });
    assert.equal(named(w.calls, 'ListMedia').length, 1, 'the list is not made again');
    assert.deepEqual(named(w.calls, 'Summarize').map((c) => c.input.payload.pass), [1, 2]);
    const versions = named(w.calls, 'DownloadMedia').map((c) => c.input.payload.secret_version_id);
    assert.deepEqual([...new Set(versions)], ['v1', 'v2']);
    assert.equal(w.written.length, 2);
    assert.notEqual(named(w.calls, 'Summarize')[0].input.payload.results.Key, named(w.calls, 'Summarize')[1].input.payload.results.Key);
    assert.deepEqual(w.published, []);
  });

  test('reauthenticate again on pass 2: no third pass, reported as partial', async () => {
    const w = world({ summarize: () => ({ outcome: 'reauthenticate', token_rejected: 1 }) });
    const ex = await run(w);
    assert.equal(ex.status, 'SUCCEEDED');
    assert.equal(named(w.calls, 'Reauthenticate').length, 1);
    assert.equal(named(w.calls, 'Summarize').length, 2);
    assert.deepEqual(w.published.map((p) => p.stateName), ['NotifyPartial']);
  });

  test('login required at Authenticate: "log in again" on the topic, nothing listed or copied, the run fails LoginRequired', async () => {
    const w = world({
      authenticate: () => {
        throw new TaskFailure('LoginRequired', 'the refresh token was revoked');
      },
    });
    const ex = await run(w);
    assert.equal(ex.status, 'FAILED');
    assert.equal(ex.error, 'LoginRequired');
    assert.equal(named(w.calls, 'Authenticate').length, 1, 'LoginRequired is not retried');
    assert.equal(named(w.calls, 'ListMedia').length, 0);
    assert.equal(named(w.calls, 'DownloadMedia').length, 0);
    assert.equal(w.published.length, 1);
    assert.equal(w.published[0].stateName, 'NotifyLoginRequired');
    assert.equal(w.published[0].TopicArn, TOPIC);
    assert.match(w.published[0].Subject, /log in/i);
    assert.match(w.published[0].Message, /log in to GoPro again/);
    assert.ok(w.published[0].Message.includes(EXECUTION_ARN));
  });

  test('login required at Reauthenticate, or as the outcome: the same alert and failure', async () => {
    for (const w of [
      world({
        summarize: () => ({ outcome: 'reauthenticate' }),
        authenticate: (n) => {
          if (n === 2) throw new TaskFailure('LoginRequired', 'refresh refused');
          return { secret_version_id: 'v1', kind: 'oauth', refreshed: false };
        },
      }),
      world({ summarize: () => ({ outcome: 'login_required' }) }),
    ]) {
      const ex = await run(w);
      assert.equal(ex.status, 'FAILED');
      assert.equal(ex.error, 'LoginRequired');
      assert.deepEqual(w.published.map((p) => p.stateName), ['NotifyLoginRequired']);
    }
  });

  test('a step that keeps failing (ListMedia): retried, then NotifyFailure with its error, and the run fails with it', async () => {
    const w = world({
      listMedia: () => {
        throw new TaskFailure('MediaTransient', 'api.gopro.com answered 503');
      },
    });
    const ex = await run(w);
    assert.equal(ex.status, 'FAILED');
    assert.equal(ex.error, 'MediaTransient');
    assert.equal(named(w.calls, 'ListMedia').length, 4, 'three retries');
    assert.deepEqual(w.published.map((p) => p.stateName), ['NotifyFailure']);
    assert.deepEqual(JSON.parse(w.published[0].Message), { Error: 'MediaTransient', Cause: 'api.gopro.com answered 503' });
  });

  test('a manual run may force the first refresh', async () => {
    const w = world();
    const ex = await run(w, { trigger: 'manual', force_refresh: true });
    assert.equal(ex.status, 'SUCCEEDED');
    assert.deepEqual(named(w.calls, 'Authenticate')[0].input.payload, { force_refresh: true });
  });

  test('states carry ids, keys and counts: every state stays small', async () => {
    const w = world();
    const ex = await run(w);
    const largest = Math.max(...ex.events.map((e) => JSON.stringify(e).length));
    assert.ok(largest < 4096, `largest event ${largest} bytes`);
  });
});
