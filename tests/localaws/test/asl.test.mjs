// Tests of tests/localaws/asl.mjs. Offline, a few seconds:
//   node --test tests/localaws/test/
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  HISTORY_LIMIT_EVENTS,
  PAYLOAD_LIMIT_BYTES,
  TaskFailure,
  startExecution,
  validateDefinition,
} from '../asl.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..', '..', '..');
const ACCOUNT = '123456789012';
const SM_ARN = `arn:aws:states:us-east-1:${ACCOUNT}:stateMachine:pipe`;
const fnArn = (name) => `arn:aws:lambda:us-east-1:${ACCOUNT}:function:${name}`;
const ctx = (name = 'run1') => ({
  executionArn: `arn:aws:states:us-east-1:${ACCOUNT}:execution:pipe:${name}`,
  executionName: name,
  stateMachineArn: SM_ARN,
  stateMachineName: 'pipe',
  roleArn: `arn:aws:iam::${ACCOUNT}:role/pipe`,
});

async function run(definition, input, handlers = {}, options = {}) {
  assert.deepEqual(validateDefinition(definition), [], 'the test definition should be valid');
  const ex = startExecution({ definition, input, context: ctx(), handlers, options: { retryDelayMs: 0, ...options } });
  await ex.done;
  return ex;
}

const types = (ex) => ex.events.map((e) => e.type);
const big = (bytes) => 'x'.repeat(bytes);

// statemachine/pipeline.asl.json as committed when these tests were written
// (inline Map; Comments dropped), frozen so that edits of the live file do
// not break the interpreter's tests. The live file is only validated below.
const PIPELINE = JSON.stringify({"StartAt":"Defaults","States":{"Defaults":{"Type":"Pass","Parameters":{"defaults":{"force_rebuild":false,"trigger":"manual","max_concurrency":4},"given.$":"$"},"Next":"ApplyDefaults"},"ApplyDefaults":{"Type":"Pass","Parameters":{"input.$":"States.JsonMerge($.defaults, $.given, false)"},"Next":"CheckSources"},"CheckSources":{"Type":"Task","Resource":"${CheckSourcesFunctionArn}","InputPath":"$.input","Parameters":{"payload.$":"$","execution_id.$":"$$.Execution.Id"},"ResultPath":"$.check","TimeoutSeconds":900,"Retry":[{"ErrorEquals":["TransientError","Lambda.ServiceException","Lambda.AWSLambdaException","Lambda.SdkClientException","Lambda.TooManyRequestsException"],"IntervalSeconds":2,"BackoffRate":2,"MaxAttempts":3,"JitterStrategy":"FULL"}],"Catch":[{"ErrorEquals":["States.ALL"],"ResultPath":"$.error","Next":"NotifyFailure"}],"Next":"AnythingToDo"},"AnythingToDo":{"Type":"Choice","Choices":[{"Variable":"$.check.proceed","BooleanEquals":false,"Next":"NothingToDo"}],"Default":"DownloadAll"},"NothingToDo":{"Type":"Succeed"},"DownloadAll":{"Type":"Map","ItemsPath":"$.check.candidates","MaxConcurrencyPath":"$.input.max_concurrency","ItemProcessor":{"ProcessorConfig":{"Mode":"INLINE"},"StartAt":"DownloadPackage","States":{"DownloadPackage":{"Type":"Task","Resource":"${DownloadPackageFunctionArn}","Parameters":{"payload.$":"$","execution_id.$":"$$.Execution.Id"},"ResultPath":"$.staged","TimeoutSeconds":900,"Retry":[{"ErrorEquals":["TransientError","Lambda.ServiceException","Lambda.AWSLambdaException","Lambda.SdkClientException","Lambda.TooManyRequestsException"],"IntervalSeconds":2,"BackoffRate":2,"MaxAttempts":3,"JitterStrategy":"FULL"}],"Catch":[{"ErrorEquals":["States.ALL"],"ResultPath":"$.error","Next":"ItemFailed"}],"Next":"RecordMetadata"},"RecordMetadata":{"Type":"Task","Resource":"${RecordMetadataFunctionArn}","InputPath":"$.staged","Parameters":{"payload.$":"$","execution_id.$":"$$.Execution.Id"},"ResultPath":"$.recorded","OutputPath":"$.recorded","TimeoutSeconds":900,"Retry":[{"ErrorEquals":["TransientError","Lambda.ServiceException","Lambda.AWSLambdaException","Lambda.SdkClientException","Lambda.TooManyRequestsException"],"IntervalSeconds":2,"BackoffRate":2,"MaxAttempts":3,"JitterStrategy":"FULL"}],"Catch":[{"ErrorEquals":["States.ALL"],"ResultPath":"$.error","Next":"ItemFailed"}],"End":true},"ItemFailed":{"Type":"Pass","Parameters":{"failed":true,"package_id.$":"States.Format('{}#{}#{}', $.package, $.version, $.architecture)","error.$":"$.error.Error","cause.$":"$.error.Cause"},"End":true}}},"ResultPath":"$.items","Catch":[{"ErrorEquals":["States.ALL"],"ResultPath":"$.error","Next":"NotifyFailure"}],"Next":"BuildIndex"},"BuildIndex":{"Type":"Task","Resource":"${BuildIndexFunctionArn}","Parameters":{"payload":{"force_rebuild.$":"$.input.force_rebuild"},"execution_id.$":"$$.Execution.Id"},"ResultPath":"$.index","TimeoutSeconds":900,"Retry":[{"ErrorEquals":["PublishInProgress"],"IntervalSeconds":5,"BackoffRate":1.5,"MaxAttempts":12,"MaxDelaySeconds":60,"JitterStrategy":"FULL"},{"ErrorEquals":["TransientError","Lambda.ServiceException","Lambda.AWSLambdaException","Lambda.SdkClientException","Lambda.TooManyRequestsException"],"IntervalSeconds":2,"BackoffRate":2,"MaxAttempts":3,"JitterStrategy":"FULL"}],"Catch":[{"ErrorEquals":["States.ALL"],"ResultPath":"$.error","Next":"NotifyFailure"}],"Next":"Publish"},"Publish":{"Type":"Task","Resource":"${PublishFunctionArn}","Parameters":{"payload":{"generation.$":"$.index.generation","manifest_key.$":"$.index.manifest_key"},"execution_id.$":"$$.Execution.Id"},"ResultPath":"$.publish","TimeoutSeconds":900,"Retry":[{"ErrorEquals":["TransientError","Lambda.ServiceException","Lambda.AWSLambdaException","Lambda.SdkClientException","Lambda.TooManyRequestsException"],"IntervalSeconds":2,"BackoffRate":2,"MaxAttempts":3,"JitterStrategy":"FULL"}],"Catch":[{"ErrorEquals":["States.ALL"],"ResultPath":"$.error","Next":"NotifyFailure"}],"Next":"Summarize"},"Summarize":{"Type":"Pass","Parameters":{"execution.$":"$$.Execution.Id","trigger.$":"$.input.trigger","force_rebuild.$":"$.input.force_rebuild","status.$":"$.publish.status","publish.$":"$.publish","items.$":"$.items","already_processed.$":"$.check.already_processed","source_failures.$":"$.check.failures"},"ResultPath":"$.summary","Next":"NotifySuccess"},"NotifySuccess":{"Type":"Task","Resource":"arn:aws:states:::sns:publish","Parameters":{"TopicArn":"${SuccessTopicArn}","Subject.$":"States.Format('pkgrelay: {}', $.publish.status)","Message.$":"States.JsonToString($.summary)"},"ResultPath":"$.notification","TimeoutSeconds":60,"Retry":[{"ErrorEquals":["States.TaskFailed"],"IntervalSeconds":2,"BackoffRate":2,"MaxAttempts":3,"JitterStrategy":"FULL"}],"Next":"Done"},"Done":{"Type":"Succeed"},"NotifyFailure":{"Type":"Task","Resource":"arn:aws:states:::sns:publish","Parameters":{"TopicArn":"${FailureTopicArn}","Subject":"pkgrelay: pipeline failed","Message.$":"States.JsonToString($.error)"},"ResultPath":"$.notification","TimeoutSeconds":60,"Retry":[{"ErrorEquals":["States.TaskFailed"],"IntervalSeconds":2,"BackoffRate":2,"MaxAttempts":3,"JitterStrategy":"FULL"}],"Catch":[{"ErrorEquals":["States.ALL"],"ResultPath":"$.notification_error","Next":"Failed"}],"Next":"Failed"},"Failed":{"Type":"Fail","ErrorPath":"$.error.Error","CausePath":"$.error.Cause"}}});

const substitute = (text) =>
  text.replace(/\$\{([A-Za-z0-9_]+)\}/g, (_, name) =>
    name.endsWith('TopicArn') ? `arn:aws:sns:us-east-1:${ACCOUNT}:${name}` : name === 'BucketName' ? 'bucket' : fnArn(name.replace(/FunctionArn$/, '')),
  );

function pipelineDefinition() {
  return JSON.parse(substitute(PIPELINE));
}

// ---------------------------------------------------------------------------

describe('pipeline.asl.json', () => {
  const candidates = [
    { package: 'good', version: '1.0', architecture: 'amd64' },
    { package: 'flaky', version: '2.0', architecture: 'arm64' },
    { package: 'bad', version: '3.0', architecture: 'amd64' },
  ];

  function handlers(calls, { buildIndex } = {}) {
    return {
      task: async ({ stateName, input, resource }) => {
        calls.push({ stateName, input, resource });
        const n = calls.filter((c) => c.stateName === stateName).length;
        switch (stateName) {
          case 'CheckSources':
            return { candidates, already_processed: 0, failures: [], proceed: true };
          case 'DownloadPackage': {
            const p = input.payload.package;
            if (p === 'bad') throw new TaskFailure('NotFound', 'no such "package"\nat all');
            if (p === 'flaky' && calls.filter((c) => c.stateName === stateName && c.input.payload.package === 'flaky').length === 1) {
              throw new TaskFailure('TransientError', 'connection reset');
            }
            return { entry: { package_id: `${p}#x` } };
          }
          case 'RecordMetadata':
            return { package_id: input.payload.entry.package_id, outcome: 'added' };
          case 'BuildIndex':
            if (buildIndex) return buildIndex(n);
            return { generation: 7, manifest_key: 'manifests/7.json', packages: 2 };
          case 'Publish':
            return { status: 'published', generation: input.payload.generation };
          default:
            return { MessageId: `m-${stateName}` };
        }
      },
    };
  }

  test('the frozen and the live definitions are valid', () => {
    assert.deepEqual(validateDefinition(pipelineDefinition()), []);
    const live = fs.readFileSync(path.join(REPO, 'statemachine', 'pipeline.asl.json'), 'utf8');
    assert.deepEqual(validateDefinition(JSON.parse(substitute(live))), []);
  });

  test('succeeds: defaults merged, per-item Catch to ItemFailed, retried TransientError, SNS summary as JSON text', async () => {
    const calls = [];
    const ex = await run(pipelineDefinition(), { trigger: 'schedule', staging: 'k' }, handlers(calls));
    assert.equal(ex.status, 'SUCCEEDED', `${ex.error}: ${ex.cause}`);
    // Defaults + ApplyDefaults: JsonMerge, execution input wins
    assert.deepEqual(ex.output.input, { force_rebuild: false, trigger: 'schedule', max_concurrency: 4, staging: 'k' });
    // CheckSources got the InputPath'd input plus the execution id from $$
    const check = calls.find((c) => c.stateName === 'CheckSources');
    assert.deepEqual(check.input, { payload: ex.output.input, execution_id: ctx().executionArn });
    // one item failed (reported), one retried then succeeded
    const items = ex.output.items;
    assert.deepEqual(items[0], { package_id: 'good#x', outcome: 'added' });
    assert.deepEqual(items[1], { package_id: 'flaky#x', outcome: 'added' });
    assert.deepEqual(items[2], { failed: true, package_id: 'bad#3.0#amd64', error: 'NotFound', cause: 'no such "package"\nat all' });
    assert.equal(calls.filter((c) => c.stateName === 'DownloadPackage').length, 4);
    // NotifySuccess: Message is the JSON text of the summary and parses back to it
    const notify = calls.find((c) => c.stateName === 'NotifySuccess');
    assert.equal(notify.resource, 'arn:aws:states:::sns:publish');
    assert.equal(notify.input.Subject, 'pkgrelay: published');
    assert.equal(typeof notify.input.Message, 'string');
    assert.deepEqual(JSON.parse(notify.input.Message), ex.output.summary);
    assert.equal(ex.output.summary.items[2].cause, 'no such "package"\nat all');
    // history: the inline Map's iterations are in this execution's history
    assert.equal(types(ex).filter((t) => t === 'MapIterationStarted').length, 3);
    assert.equal(types(ex).filter((t) => t === 'MapIterationSucceeded').length, 3);
    assert.ok(types(ex).includes('TaskScheduled'), 'sns:publish is a service integration');
    assert.equal(ex.counts.lambdaInvocations, calls.filter((c) => c.resource.includes(':function:')).length);
    assert.equal(ex.counts.taskInvocations, calls.length);
  });

  test('a BuildIndex failure goes NotifyFailure -> Failed with ErrorPath/CausePath; PublishInProgress is retried first', async () => {
    const calls = [];
    const ex = await run(
      pipelineDefinition(),
      {},
      handlers(calls, {
        buildIndex: (n) => {
          if (n <= 2) throw new TaskFailure('PublishInProgress', 'another execution holds the lease');
          throw new TaskFailure('InternalError', 'store "unreadable"');
        },
      }),
    );
    assert.equal(ex.status, 'FAILED');
    assert.equal(ex.error, 'InternalError');
    assert.equal(ex.cause, 'store "unreadable"');
    assert.equal(calls.filter((c) => c.stateName === 'BuildIndex').length, 3);
    const failure = calls.find((c) => c.stateName === 'NotifyFailure');
    assert.deepEqual(JSON.parse(failure.input.Message), { Error: 'InternalError', Cause: 'store "unreadable"' });
    const last = ex.events.at(-1);
    assert.equal(last.type, 'ExecutionFailed');
    assert.deepEqual(last.executionFailedEventDetails, { error: 'InternalError', cause: 'store "unreadable"' });
    assert.equal(ex.events.at(-2).type, 'FailStateEntered');
  });

  test('nothing to do: Choice to Succeed', async () => {
    const ex = await run(pipelineDefinition(), {}, {
      task: async ({ stateName }) => {
        assert.equal(stateName, 'CheckSources');
        return { candidates: [], proceed: false, already_processed: 3, failures: [] };
      },
    });
    assert.equal(ex.status, 'SUCCEEDED');
    assert.deepEqual(types(ex).slice(-3), ['SucceedStateEntered', 'SucceedStateExited', 'ExecutionSucceeded']);
  });
});

// ---------------------------------------------------------------------------

describe('intrinsic functions', () => {
  const evalParams = async (parameters, input = {}) => {
    const ex = await run({ StartAt: 'P', States: { P: { Type: 'Pass', Parameters: parameters, End: true } } }, input);
    return ex;
  };

  test('JsonToString round-trips quotes, backslashes, newlines (no deleted backslashes)', async () => {
    const v = { text: 'say "hi"\\ now\nnext\tline', path: 'C:\\dir\\file', nested: { q: '"', bs: '\\\\' }, u: 'é✓' };
    const ex = await evalParams({ 's.$': 'States.JsonToString($.v)', 'back.$': 'States.StringToJson(States.JsonToString($.v))' }, { v });
    assert.equal(ex.status, 'SUCCEEDED');
    assert.equal(ex.output.s, JSON.stringify(v));
    assert.deepEqual(JSON.parse(ex.output.s), v);
    assert.deepEqual(ex.output.back, v);
  });

  test('Format with escapes, numbers, null and nested calls', async () => {
    const ex = await evalParams(
      {
        'a.$': "States.Format('{}#{}#{}', $.p, $.v, $.n)",
        'b.$': "States.Format('literal \\{\\} and {}\\'s', $.p)",
        'c.$': "States.Format('{}', $.o)",
        'd.$': "States.Format('{}', States.ArrayGetItem(States.StringSplit($.arn, ':'), 3))",
      },
      { p: 'pkg', v: 1.5, n: null, o: { Arg1: 1, Arg2: [] }, arn: 'arn:aws:states:us-east-1:1:x' },
    );
    assert.equal(ex.status, 'SUCCEEDED', ex.cause);
    assert.equal(ex.output.a, 'pkg#1.5#null');
    assert.equal(ex.output.b, "literal {} and pkg's");
    assert.equal(ex.output.c, '{Arg1=1, Arg2=[]}'); // what AWS prints (recorded)
    assert.equal(ex.output.d, 'us-east-1');
  });

  test('the array, math, string, encoding and hash functions', async () => {
    const ex = await evalParams(
      {
        'arr.$': "States.Array('Foo', 2020, $.o, null, true)",
        'part.$': 'States.ArrayPartition($.nums, 4)',
        'has.$': 'States.ArrayContains($.objs, $.o)',
        'range.$': 'States.ArrayRange(0, 10, 3)',
        'item.$': 'States.ArrayGetItem($.nums, 5)',
        'len.$': 'States.ArrayLength($.nums)',
        'uniq.$': 'States.ArrayUnique($.dups)',
        'b64.$': "States.Base64Encode('Data to encode')",
        'raw.$': "States.Base64Decode('RGF0YSB0byBlbmNvZGU=')",
        'sha1.$': "States.Hash('input data', 'SHA-1')",
        'md5.$': "States.Hash('input data', 'MD5')",
        'merged.$': 'States.JsonMerge($.m1, $.m2, false)',
        'add.$': 'States.MathAdd(1.5, -2.5)',
        'split.$': "States.StringSplit(',a,,b,', ',')",
        'uuid.$': 'States.UUID()',
        'rnd.$': 'States.MathRandom(1, 5)',
        'seeded.$': 'States.MathRandom(1, 1000, 7)',
        'seeded2.$': 'States.MathRandom(1, 1000, 7)',
        'empty.$': "States.StringToJson(' ')",
      },
      {
        o: { a: 1, b: [2] },
        objs: [{ b: [2], a: 1 }],
        nums: [1, 2, 3, 4, 5, 6, 7, 8, 9],
        dups: [1, 1, 'x', 'x', { a: 1, b: 2 }, { b: 2, a: 1 }],
        m1: { a: { a1: 1 }, b: 2 },
        m2: { a: { a3: 1 }, c: 3 },
      },
    );
    assert.equal(ex.status, 'SUCCEEDED', ex.cause);
    const o = ex.output;
    assert.deepEqual(o.arr, ['Foo', 2020, { a: 1, b: [2] }, null, true]);
    assert.deepEqual(o.part, [[1, 2, 3, 4], [5, 6, 7, 8], [9]]);
    assert.equal(o.has, true);
    assert.deepEqual(o.range, [0, 3, 6, 9]);
    assert.equal(o.item, 6);
    assert.equal(o.len, 9);
    assert.deepEqual(o.uniq, [1, 'x', { a: 1, b: 2 }]);
    assert.equal(o.b64, 'RGF0YSB0byBlbmNvZGU=');
    assert.equal(o.raw, 'Data to encode');
    assert.equal(o.sha1, 'aaff4a450a104cd177d28d18d74485e8cae074b7');
    assert.equal(o.md5, '812f45842bc6d66ee14572ce20db8e86');
    assert.deepEqual(o.merged, { a: { a3: 1 }, b: 2, c: 3 });
    assert.equal(o.add, 0); // round(1.5) + round(-2.5) = 2 + -2
    assert.deepEqual(o.split, ['a', 'b']);
    assert.match(o.uuid, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.ok(o.rnd >= 1 && o.rnd < 5 && Number.isInteger(o.rnd));
    assert.equal(o.seeded, o.seeded2);
    assert.equal(o.empty, null);
  });

  test('failures are States.IntrinsicFailure (catchable); JsonMerge deep mode is refused', async () => {
    for (const expr of [
      'States.JsonMerge($.a, $.b, true)',
      "States.Format('{} {}', $.x)",
      'States.ArrayGetItem($.arr, 9)',
      "States.Hash('x', 'SHA-3')",
      "States.StringToJson('{nope')",
      'States.ArrayRange(1, 5000, 1)',
    ]) {
      const ex = await run(
        {
          StartAt: 'M',
          States: {
            M: {
              Type: 'Map',
              ItemsPath: '$.one',
              ItemProcessor: { StartAt: 'P', States: { P: { Type: 'Pass', Parameters: { 'r.$': expr }, End: true } } },
              Catch: [{ ErrorEquals: ['States.IntrinsicFailure'], Next: 'Caught' }],
              End: true,
            },
            Caught: { Type: 'Pass', End: true },
          },
        },
        { one: [{ a: { x: 1 }, b: { y: 2 }, x: 'only one', arr: [1] }] },
      );
      assert.equal(ex.status, 'SUCCEEDED', `${expr}: ${ex.error} ${ex.cause}`);
      assert.equal(ex.output.Error, 'States.IntrinsicFailure', expr);
    }
  });

  test('a payload path that matches nothing is States.Runtime with the AWS wording, not caught', async () => {
    const ex = await run(
      {
        StartAt: 'M',
        States: {
          M: {
            Type: 'Map',
            ItemProcessor: { StartAt: 'P', States: { P: { Type: 'Pass', Parameters: { 'v.$': '$.missing' }, End: true } } },
            Catch: [{ ErrorEquals: ['States.ALL'], Next: 'Caught' }],
            End: true,
          },
          Caught: { Type: 'Pass', End: true },
        },
      },
      [{ a: 1 }],
    );
    assert.equal(ex.status, 'FAILED');
    assert.equal(ex.error, 'States.Runtime');
    assert.match(ex.cause, /^An error occurred while executing the state 'P' \(entered at the event id #\d+\)\. The JSONPath '\$\.missing' specified for the field 'v\.\$' could not be found in the input '\{"a":1\}'$/);
  });
});

// ---------------------------------------------------------------------------

describe('Retry and Catch', () => {
  const task = (extra) => ({
    StartAt: 'T',
    States: {
      T: { Type: 'Task', Resource: fnArn('f'), End: true, ...extra },
      Caught: { Type: 'Pass', End: true },
    },
  });
  const failing = (errors, result = { ok: true }) => {
    const seen = [];
    return {
      seen,
      handlers: {
        task: async () => {
          const e = errors[seen.length];
          seen.push(e ?? 'ok');
          if (e) throw new TaskFailure(e, `${e} cause`);
          return result;
        },
      },
    };
  };

  test('each retrier has its own count; the first matching retrier decides (spec example)', async () => {
    const { seen, handlers } = failing(['ErrorA', 'ErrorC', 'ErrorB', 'ErrorB']);
    const ex = await run(
      task({
        Retry: [
          { ErrorEquals: ['ErrorA', 'ErrorB'], IntervalSeconds: 1, BackoffRate: 2, MaxAttempts: 2 },
          { ErrorEquals: ['ErrorC'], IntervalSeconds: 5 },
        ],
        Catch: [{ ErrorEquals: ['States.ALL'], Next: 'Caught' }],
      }),
      {},
      handlers,
    );
    assert.deepEqual(seen, ['ErrorA', 'ErrorC', 'ErrorB', 'ErrorB']);
    assert.equal(ex.status, 'SUCCEEDED');
    assert.deepEqual(ex.output, { Error: 'ErrorB', Cause: 'ErrorB cause' });
    // T entered once + 3 retries, then Caught
    assert.equal(ex.counts.stateTransitions, 5);
    assert.equal(types(ex).filter((t) => t === 'TaskStateEntered').length, 1);
    assert.equal(types(ex).filter((t) => t === 'LambdaFunctionScheduled').length, 4);
  });

  test('MaxAttempts defaults to 3; MaxAttempts 0 never retries', async () => {
    let f = failing(['E', 'E', 'E', 'E', 'E']);
    let ex = await run(task({ Retry: [{ ErrorEquals: ['E'] }] }), {}, f.handlers);
    assert.equal(f.seen.length, 4);
    assert.equal(ex.status, 'FAILED');
    assert.equal(ex.error, 'E');
    f = failing(['E']);
    ex = await run(task({ Retry: [{ ErrorEquals: ['E'], MaxAttempts: 0 }, { ErrorEquals: ['States.ALL'] }] }), {}, f.handlers);
    assert.equal(f.seen.length, 1);
    assert.equal(ex.status, 'FAILED');
  });

  test('TransientError retried then success; a non-retryable error is caught with ResultPath', async () => {
    let f = failing(['TransientError', 'TransientError'], { done: 1 });
    let ex = await run(task({ Retry: [{ ErrorEquals: ['TransientError'], MaxAttempts: 3, BackoffRate: 2, JitterStrategy: 'FULL' }] }), { in: 1 }, f.handlers);
    assert.equal(ex.status, 'SUCCEEDED');
    assert.deepEqual(ex.output, { done: 1 });
    assert.equal(f.seen.length, 3);
    f = failing(['Fatal']);
    ex = await run(
      task({ Retry: [{ ErrorEquals: ['TransientError'] }], Catch: [{ ErrorEquals: ['Fatal'], ResultPath: '$.error', Next: 'Caught' }] }),
      { in: 1 },
      f.handlers,
    );
    assert.equal(f.seen.length, 1);
    assert.deepEqual(ex.output, { in: 1, error: { Error: 'Fatal', Cause: 'Fatal cause' } });
    // the caught state still exits, with the Catch output [recorded AWS shape]
    const exited = ex.events.find((e) => e.type === 'TaskStateExited');
    assert.deepEqual(JSON.parse(exited.stateExitedEventDetails.output), ex.output);
  });

  test('retry waits follow IntervalSeconds, BackoffRate and MaxDelaySeconds', async () => {
    // the real waits, scaled down by waiting on the timers: 1 s, then min(2 s, MaxDelaySeconds 1 s)
    const f = failing(['E', 'E']);
    const t0 = Date.now();
    const ex = startExecution({
      definition: task({ Retry: [{ ErrorEquals: ['E'], IntervalSeconds: 1, BackoffRate: 2, MaxDelaySeconds: 1 }] }),
      input: {},
      handlers: f.handlers,
    });
    await ex.done;
    const elapsed = Date.now() - t0;
    assert.equal(ex.status, 'SUCCEEDED');
    assert.ok(elapsed >= 1900 && elapsed < 2900, `two waits of 1 s each, took ${elapsed} ms`);
  });

  test('TimeoutSeconds: States.Timeout aborts the handler, caught by States.ALL but not by States.TaskFailed', async () => {
    let aborted = 0;
    const handlers = {
      task: ({ signal }) =>
        new Promise((resolve) => {
          signal.addEventListener('abort', () => {
            aborted += 1;
            resolve('too late');
          });
        }),
    };
    let ex = await run(task({ TimeoutSeconds: 1, Catch: [{ ErrorEquals: ['States.TaskFailed'], Next: 'Caught' }] }), {}, handlers);
    assert.equal(ex.status, 'FAILED');
    assert.equal(ex.error, 'States.Timeout');
    assert.ok(types(ex).includes('LambdaFunctionTimedOut'));
    assert.deepEqual(ex.events.find((e) => e.type === 'LambdaFunctionTimedOut').lambdaFunctionTimedOutEventDetails, { error: 'States.Timeout' });
    assert.equal(ex.events.find((e) => e.type === 'LambdaFunctionScheduled').lambdaFunctionScheduledEventDetails.timeoutInSeconds, 1);
    ex = await run(task({ TimeoutSeconds: 1, Catch: [{ ErrorEquals: ['States.ALL'], Next: 'Caught' }] }), {}, handlers);
    assert.equal(ex.status, 'SUCCEEDED');
    assert.deepEqual(ex.output, { Error: 'States.Timeout' });
    assert.equal(aborted, 2);
  });
});

// ---------------------------------------------------------------------------

describe('payload limit (256 KiB)', () => {
  const mapAround = (processorStates, startAt, extra = {}) => ({
    StartAt: 'M',
    States: {
      M: {
        Type: 'Map',
        ItemProcessor: { StartAt: startAt, States: processorStates },
        Catch: [{ ErrorEquals: ['States.ALL'], Next: 'Caught' }],
        End: true,
        ...extra,
      },
      Caught: { Type: 'Pass', End: true },
    },
  });

  test('an over-size task result is a task failure that Catch sees, as recorded on AWS', async () => {
    const def = {
      StartAt: 'T',
      States: {
        T: { Type: 'Task', Resource: fnArn('huge'), Catch: [{ ErrorEquals: ['States.ALL'], Next: 'Caught' }], End: true },
        Caught: { Type: 'Pass', End: true },
      },
    };
    const ex = await run(def, {}, { task: async () => ({ blob: big(PAYLOAD_LIMIT_BYTES) }) });
    assert.equal(ex.status, 'SUCCEEDED');
    assert.equal(ex.output.Error, 'States.DataLimitExceeded');
    assert.match(ex.output.Cause, /returned a result with a size exceeding the maximum number of bytes service limit/);
    assert.match(ex.output.Cause, /state 'T': the task result is 262155 bytes; the limit is 262144 bytes/);
    const failed = ex.events.find((e) => e.type === 'LambdaFunctionFailed');
    assert.equal(failed.lambdaFunctionFailedEventDetails.error, 'States.DataLimitExceeded');
  });

  test('an over-size Pass output fails the execution; the Map Catch on States.ALL does not catch it', async () => {
    const ex = await run(mapAround({ Grow: { Type: 'Pass', Parameters: { 'blob.$': '$.blob' }, Result: { blob: big(PAYLOAD_LIMIT_BYTES) }, End: true } }, 'Grow'), [{ blob: 'small' }]);
    assert.equal(ex.status, 'FAILED');
    assert.equal(ex.error, 'States.DataLimitExceeded');
    assert.match(ex.cause, /^The state\/task 'Grow' returned a result with a size exceeding the maximum number of bytes service limit\./);
    assert.match(ex.cause, /the state's output is \d+ bytes; the limit is 262144 bytes/);
    assert.ok(!types(ex).includes('PassStateExited'));
    assert.ok(!types(ex).includes('MapStateExited'), 'the Catch did not run');
  });

  test('over-size effective task input (after Parameters) fails the execution despite a Catch', async () => {
    const def = {
      StartAt: 'T',
      States: {
        T: {
          Type: 'Task',
          Resource: 'arn:aws:states:::sns:publish',
          Parameters: { 'a.$': '$.half', 'b.$': '$.half' },
          Catch: [{ ErrorEquals: ['States.ALL'], Next: 'Caught' }],
          End: true,
        },
        Caught: { Type: 'Pass', End: true },
      },
    };
    let called = false;
    const ex = await run(def, { half: big(140000) }, { task: async () => { called = true; } });
    assert.equal(ex.status, 'FAILED');
    assert.equal(ex.error, 'States.DataLimitExceeded');
    assert.match(ex.cause, /^The state\/task 'T' provided parameters with a size exceeding/);
    assert.equal(called, false, 'nothing is sent to the service');
  });

  test('an over-size execution input fails the execution', async () => {
    const ex = await run({ StartAt: 'P', States: { P: { Type: 'Pass', End: true } } }, { blob: big(PAYLOAD_LIMIT_BYTES) });
    assert.equal(ex.status, 'FAILED');
    assert.equal(ex.error, 'States.DataLimitExceeded');
    assert.deepEqual(types(ex), ['ExecutionStarted', 'ExecutionFailed']);
  });

  test('an over-size Map item after ItemSelector fails the execution despite the Map Catch', async () => {
    const ex = await run(
      mapAround({ P: { Type: 'Pass', End: true } }, 'P', { ItemsPath: '$.items', ItemSelector: { 'item.$': '$$.Map.Item.Value', 'shared.$': '$.shared' }, ResultPath: null }),
      { items: [1, 2], shared: big(200000) },
    );
    // each selected item is 200 KB: fine (ResultPath null: the two outputs together would not be)
    assert.equal(ex.status, 'SUCCEEDED', ex.cause);
    const ex2 = await run(
      mapAround({ P: { Type: 'Pass', End: true } }, 'P', { ItemsPath: '$.items', ItemSelector: { 'a.$': '$.shared', 'b.$': '$.shared' } }),
      { items: [1], shared: big(140000) },
    );
    assert.equal(ex2.status, 'FAILED');
    assert.equal(ex2.error, 'States.DataLimitExceeded');
    assert.match(ex2.cause, /state 'M': the Map item is \d+ bytes/);
  });

  test('payloadLimitBytes can be lowered for a test', async () => {
    const ex = await run({ StartAt: 'P', States: { P: { Type: 'Pass', Result: big(200), End: true } } }, {}, {}, { payloadLimitBytes: 100 });
    assert.equal(ex.status, 'FAILED');
    assert.equal(ex.error, 'States.DataLimitExceeded');
  });
});

// ---------------------------------------------------------------------------

describe('history limit (25,000 events)', () => {
  const iteration = {
    StartAt: 'S1',
    States: {
      S1: { Type: 'Pass', Next: 'S2' },
      S2: { Type: 'Pass', Next: 'S3' },
      S3: { Type: 'Pass', Next: 'S4' },
      S4: { Type: 'Pass', End: true },
    },
  };
  const items = Array.from({ length: 3000 }, (_, k) => ({ k }));

  test('an inline Map of 3,000 items (10 events each) fails at event 25,000', async () => {
    const ex = await run({ StartAt: 'M', States: { M: { Type: 'Map', ItemProcessor: iteration, End: true } } }, items);
    assert.equal(ex.status, 'FAILED');
    assert.equal(ex.error, 'States.Runtime');
    assert.equal(ex.cause, 'The execution reached the maximum number of history events (25000).');
    assert.equal(ex.events.length, HISTORY_LIMIT_EVENTS);
    const last = ex.events.at(-1);
    assert.equal(last.type, 'ExecutionFailed');
    assert.equal(last.id, 25000);
    assert.equal(last.previousEventId, 24999);
  });

  test('the same items in a Distributed Map succeed: children have their own histories', async () => {
    const children = [];
    const handlers = {
      childExecution: async ({ definition, input, childExecutionArn, name }) => {
        const child = startExecution({ definition, input, context: { ...ctx(name), executionArn: childExecutionArn }, handlers: {} });
        children.push(child);
        await child.done;
        return { status: child.status, output: child.output, error: child.error, cause: child.cause, executionArn: child.arn };
      },
    };
    const def = {
      StartAt: 'M',
      States: {
        M: {
          Type: 'Map',
          ItemProcessor: { ProcessorConfig: { Mode: 'DISTRIBUTED', ExecutionType: 'STANDARD' }, ...iteration },
          End: true,
        },
      },
    };
    const ex = await run(def, items, handlers);
    assert.equal(ex.status, 'SUCCEEDED', ex.cause);
    assert.equal(ex.output.length, 3000);
    assert.deepEqual(ex.output[2999], { k: 2999 });
    assert.deepEqual(types(ex), [
      'ExecutionStarted', 'MapStateEntered', 'MapStateStarted', 'MapRunStarted', 'MapRunSucceeded', 'MapStateSucceeded', 'MapStateExited', 'ExecutionSucceeded',
    ]);
    assert.equal(children.length, 3000);
    assert.equal(children[0].events.length, 10);
    assert.equal(ex.counts.stateTransitions, 1, 'children count in their own executions');
    assert.equal(children[0].counts.stateTransitions, 4);
  });

  test('historyLimitEvents can be lowered', async () => {
    const ex = await run({ StartAt: 'M', States: { M: { Type: 'Map', ItemProcessor: iteration, End: true } } }, items.slice(0, 5), {}, { historyLimitEvents: 20 });
    assert.equal(ex.status, 'FAILED');
    assert.equal(ex.events.length, 20);
    assert.equal(ex.cause, 'The execution reached the maximum number of history events (20).');
  });
});

// ---------------------------------------------------------------------------

describe('Distributed Map', () => {
  function childRunner(log, fail = () => null) {
    return async ({ definition, input, childExecutionArn, name, mapRunArn, index, executionType }) => {
      log.push({ input, childExecutionArn, mapRunArn, index, executionType });
      const child = startExecution({
        definition,
        input,
        context: { ...ctx(name), executionArn: childExecutionArn },
        handlers: {
          task: async ({ input: i }) => {
            const f = fail(i);
            if (f) throw new TaskFailure(f, `item ${JSON.stringify(i)} failed`);
            return { done: i };
          },
        },
      });
      await child.done;
      return { status: child.status, output: child.output, error: child.error, cause: child.cause, executionArn: child.arn };
    };
  }

  const reading = (extra = {}) => ({
    StartAt: 'M',
    States: {
      M: {
        Type: 'Map',
        ItemReader: { Resource: 'arn:aws:states:::s3:getObject', ReaderConfig: { InputType: 'JSON', MaxItems: 10 }, Parameters: { Bucket: 'b', 'Key.$': '$.key' } },
        ItemSelector: { 'value.$': '$$.Map.Item.Value', 'index.$': '$$.Map.Item.Index', 'run.$': '$.run' },
        ItemProcessor: {
          ProcessorConfig: { Mode: 'DISTRIBUTED', ExecutionType: 'STANDARD' },
          StartAt: 'Work',
          States: {
            Work: { Type: 'Task', Resource: fnArn('work'), ResultPath: '$.result', Next: 'Who' },
            Who: { Type: 'Pass', Parameters: { 'id.$': '$$.Execution.Id', 'value.$': '$.value' }, End: true },
          },
        },
        MaxConcurrency: 3,
        ResultWriter: { Resource: 'arn:aws:states:::s3:putObject', Parameters: { Bucket: 'out', Prefix: 'runs' } },
        Catch: [{ ErrorEquals: ['States.ExceedToleratedFailureThreshold'], ResultPath: '$.error', Next: 'Tolerance' }],
        End: true,
        ...extra,
      },
      Tolerance: { Type: 'Pass', End: true },
    },
  });

  test('ItemReader, ItemSelector with $$.Map.Item, child executions, ResultWriter, tolerated failures', async () => {
    const log = [];
    const written = [];
    let readerArgs;
    const ex = await run(reading({ ToleratedFailurePercentage: 20 }), { key: 'items.json', run: 'r1' }, {
      itemReader: async (args) => {
        readerArgs = args;
        return Array.from({ length: 12 }, (_, k) => `item-${k}`);
      },
      childExecution: childRunner(log, (i) => (i.value === 'item-3' || i.value === 'item-7' ? 'Boom' : null)),
      resultWriter: async ({ results, mapRunArn, parameters }) => {
        written.push(...results);
        return { Bucket: parameters.Bucket, Key: `${parameters.Prefix}/${mapRunArn.split(':').pop()}/manifest.json` };
      },
    });
    assert.equal(ex.status, 'SUCCEEDED', `${ex.error} ${ex.cause}`);
    assert.deepEqual(readerArgs.parameters, { Bucket: 'b', Key: 'items.json' });
    assert.equal(readerArgs.resource, 'arn:aws:states:::s3:getObject');
    assert.equal(log.length, 10, 'MaxItems 10');
    assert.deepEqual(log.find((l) => l.index === 4).input, { value: 'item-4', index: 4, run: 'r1' });
    assert.equal(log[0].executionType, 'STANDARD');
    const run0 = ex.mapRuns[0];
    assert.match(ex.output.MapRunArn, /^arn:aws:states:us-east-1:123456789012:mapRun:pipe\/M:[0-9a-f-]{36}$/);
    assert.equal(ex.output.MapRunArn, run0.mapRunArn);
    assert.deepEqual(ex.output.ResultWriterDetails, { Bucket: 'out', Key: `runs/${run0.mapRunArn.split(':').pop()}/manifest.json` });
    assert.equal(run0.status, 'SUCCEEDED');
    assert.deepEqual(
      { ...run0.itemCounts },
      { pending: 0, running: 0, succeeded: 8, failed: 2, timedOut: 0, aborted: 0, total: 10, resultsWritten: 10 },
    );
    assert.equal(run0.toleratedFailurePercentage, 20);
    assert.equal(run0.maxConcurrency, 3);
    assert.equal(written.length, 10);
    const ok = written.find((r) => r.Status === 'SUCCEEDED');
    assert.equal(JSON.parse(ok.Output).id, ok.ExecutionArn, "$$.Execution.Id in a child is the child's ARN");
    assert.match(ok.ExecutionArn, /:execution:pipe\/M:/);
    const bad = written.find((r) => r.Status === 'FAILED');
    assert.equal(bad.Error, 'Boom');
    assert.equal(typeof bad.Input, 'string');
    const mapEvents = types(ex).filter((t) => t.startsWith('MapRun'));
    assert.deepEqual(mapEvents, ['MapRunStarted', 'MapRunSucceeded']);
    assert.equal(ex.events.find((e) => e.type === 'MapStateStarted').mapStateStartedEventDetails.length, 0, 'items come from the reader');
  });

  test('exceeding ToleratedFailurePercentage fails the Map Run with States.ExceedToleratedFailureThreshold (catchable)', async () => {
    const ex = await run(reading({ ToleratedFailurePercentage: 10, MaxConcurrency: 1 }), { key: 'k', run: 'r' }, {
      itemReader: async () => Array.from({ length: 10 }, (_, k) => k),
      childExecution: childRunner([], (i) => (i.value >= 3 ? 'Boom' : null)),
      resultWriter: async () => ({ Bucket: 'x', Key: 'y' }),
    });
    assert.equal(ex.status, 'SUCCEEDED');
    assert.deepEqual(ex.output.error, { Error: 'States.ExceedToleratedFailureThreshold', Cause: 'The specified tolerated failure threshold was exceeded' });
    const failed = ex.events.find((e) => e.type === 'MapRunFailed');
    assert.deepEqual(failed.mapRunFailedEventDetails, { error: 'States.ExceedToleratedFailureThreshold', cause: 'The specified tolerated failure threshold was exceeded' });
    assert.equal(ex.mapRuns[0].status, 'FAILED');
    assert.equal(ex.mapRuns[0].itemCounts.failed, 2, 'the second failure (20% > 10%) stops the run');
    assert.equal(ex.mapRuns[0].itemCounts.pending, 5);
  });

  test('ItemBatcher with BatchInput; no ResultWriter gives the array of child outputs; ItemReader failure', async () => {
    const log = [];
    const def = {
      StartAt: 'M',
      States: {
        M: {
          Type: 'Map',
          ItemsPath: '$.items',
          ItemBatcher: { MaxItemsPerBatch: 3, BatchInput: { 'tag.$': '$.tag' } },
          ItemProcessor: {
            ProcessorConfig: { Mode: 'DISTRIBUTED', ExecutionType: 'EXPRESS' },
            StartAt: 'Count',
            States: { Count: { Type: 'Pass', Parameters: { 'n.$': 'States.ArrayLength($.Items)', 'tag.$': '$.BatchInput.tag' }, End: true } },
          },
          End: true,
        },
      },
    };
    const ex = await run(def, { items: [1, 2, 3, 4, 5, 6, 7], tag: 't' }, { childExecution: childRunner(log) });
    assert.equal(ex.status, 'SUCCEEDED', ex.cause);
    assert.deepEqual(ex.output, [{ n: 3, tag: 't' }, { n: 3, tag: 't' }, { n: 1, tag: 't' }]);
    assert.deepEqual(log[0].input, { BatchInput: { tag: 't' }, Items: [1, 2, 3] });
    assert.equal(ex.mapRuns[0].itemCounts.total, 7);
    assert.equal(ex.mapRuns[0].executionCounts.total, 3);
    const ex2 = await run(reading(), { key: 'k', run: 'r' }, {
      itemReader: async () => {
        throw new TaskFailure('S3.NoSuchKey', 'The specified key does not exist.');
      },
    });
    assert.equal(ex2.status, 'FAILED');
    assert.equal(ex2.error, 'States.ItemReaderFailed');
    assert.equal(ex2.cause, 'The specified key does not exist.');
  });
});

// ---------------------------------------------------------------------------

describe('history event shapes', () => {
  test('ids, previousEventId and detail fields of a small run', async () => {
    const def = {
      StartAt: 'Prep',
      States: {
        Prep: { Type: 'Pass', Parameters: { 'x.$': '$.x' }, Next: 'Fn' },
        Fn: { Type: 'Task', Resource: fnArn('f'), TimeoutSeconds: 30, ResultPath: '$.fn', Next: 'Notify' },
        Notify: { Type: 'Task', Resource: 'arn:aws:states:::sns:publish', Parameters: { TopicArn: 't', 'Message.$': 'States.JsonToString($)' }, ResultPath: null, Next: 'Pick' },
        Pick: { Type: 'Choice', Choices: [{ Variable: '$.x', NumericGreaterThan: 1, Next: 'Done' }], Default: 'Done' },
        Done: { Type: 'Succeed' },
      },
    };
    const ex = await run(def, { x: 2 }, { task: async ({ resource }) => (resource.includes('sns') ? { MessageId: 'm' } : { y: 1 }) });
    assert.equal(ex.status, 'SUCCEEDED');
    assert.deepEqual(types(ex), [
      'ExecutionStarted',
      'PassStateEntered', 'PassStateExited',
      'TaskStateEntered', 'LambdaFunctionScheduled', 'LambdaFunctionStarted', 'LambdaFunctionSucceeded', 'TaskStateExited',
      'TaskStateEntered', 'TaskScheduled', 'TaskStarted', 'TaskSucceeded', 'TaskStateExited',
      'ChoiceStateEntered', 'ChoiceStateExited',
      'SucceedStateEntered', 'SucceedStateExited',
      'ExecutionSucceeded',
    ]);
    ex.events.forEach((e, k) => {
      assert.equal(e.id, k + 1);
      assert.ok(e.timestamp instanceof Date);
      assert.equal(e.previousEventId, k <= 1 ? 0 : k, `event ${e.id} ${e.type}`);
    });
    const byType = (t) => ex.events.find((e) => e.type === t);
    assert.deepEqual(byType('ExecutionStarted').executionStartedEventDetails, {
      input: '{"x":2}',
      inputDetails: { truncated: false },
      roleArn: ctx().roleArn,
    });
    assert.deepEqual(byType('PassStateEntered').stateEnteredEventDetails, { name: 'Prep', input: '{"x":2}', inputDetails: { truncated: false } });
    assert.deepEqual(byType('PassStateExited').stateExitedEventDetails, { name: 'Prep', output: '{"x":2}', outputDetails: { truncated: false } });
    assert.deepEqual(byType('LambdaFunctionScheduled').lambdaFunctionScheduledEventDetails, {
      resource: fnArn('f'),
      input: '{"x":2}',
      inputDetails: { truncated: false },
      timeoutInSeconds: 30,
    });
    assert.equal(Object.keys(byType('LambdaFunctionStarted')).join(), 'timestamp,type,id,previousEventId');
    assert.deepEqual(byType('LambdaFunctionSucceeded').lambdaFunctionSucceededEventDetails, { output: '{"y":1}', outputDetails: { truncated: false } });
    assert.deepEqual(byType('TaskScheduled').taskScheduledEventDetails, {
      resourceType: 'sns',
      resource: 'publish',
      region: 'us-east-1',
      parameters: JSON.stringify({ TopicArn: 't', Message: JSON.stringify({ x: 2, fn: { y: 1 } }) }),
    });
    assert.deepEqual(byType('TaskStarted').taskStartedEventDetails, { resourceType: 'sns', resource: 'publish' });
    assert.deepEqual(byType('TaskSucceeded').taskSucceededEventDetails, { resourceType: 'sns', resource: 'publish', output: '{"MessageId":"m"}', outputDetails: { truncated: false } });
    assert.deepEqual(byType('ExecutionSucceeded').executionSucceededEventDetails, { output: '{"x":2,"fn":{"y":1}}', outputDetails: { truncated: false } });
    assert.equal(ex.counts.stateTransitions, 5);
    assert.equal(ex.counts.lambdaInvocations, 1);
    assert.equal(ex.counts.taskInvocations, 2);
    assert.ok(ex.stopDate instanceof Date && ex.startDate instanceof Date);
  });

  test('Map shapes as recorded on AWS (localstack snapshots, markers.aws.validated)', async () => {
    const shape = (ex) => ex.events.map((e) => `${e.id}<${e.previousEventId} ${e.type}`);
    // test_map_state_config_distributed_item_selector (2024-02-08), up to MapStateExited
    const dist = await run(
      {
        StartAt: 'MapState',
        States: {
          MapState: { Type: 'Map', ItemProcessor: { ProcessorConfig: { Mode: 'DISTRIBUTED', ExecutionType: 'STANDARD' }, StartAt: 'P', States: { P: { Type: 'Pass', End: true } } }, End: true },
        },
      },
      ['Hello', 'World'],
      { childExecution: async ({ input }) => ({ status: 'SUCCEEDED', output: input }) },
    );
    assert.deepEqual(shape(dist), [
      '1<0 ExecutionStarted', '2<0 MapStateEntered', '3<2 MapStateStarted', '4<3 MapRunStarted', '5<4 MapRunSucceeded',
      '6<5 MapStateSucceeded', '7<5 MapStateExited', '8<7 ExecutionSucceeded',
    ]);
    // test_map_state (2023-07-17): one iteration after the other
    const inline = await run({ StartAt: 'M', States: { M: { Type: 'Map', MaxConcurrency: 1, ItemProcessor: { StartAt: 'H', States: { H: { Type: 'Pass', End: true } } }, End: true } } }, [1, 2]);
    assert.deepEqual(shape(inline), [
      '1<0 ExecutionStarted', '2<0 MapStateEntered', '3<2 MapStateStarted',
      '4<3 MapIterationStarted', '5<4 PassStateEntered', '6<5 PassStateExited', '7<6 MapIterationSucceeded',
      '8<6 MapIterationStarted', '9<8 PassStateEntered', '10<9 PassStateExited', '11<10 MapIterationSucceeded',
      '12<11 MapStateSucceeded', '13<11 MapStateExited', '14<13 ExecutionSucceeded',
    ]);
    // test_map_state_catch (2023-07-18)
    const caught = await run(
      {
        StartAt: 'MapState',
        States: {
          MapState: {
            Type: 'Map',
            ItemProcessor: { StartAt: 'HandleItemFail', States: { HandleItemFail: { Type: 'Fail', Error: 'HandleItemFailError', Cause: 'HandleItemFailCause' } } },
            Catch: [{ ErrorEquals: ['States.ALL'], Next: 'FinalCaught' }],
            End: true,
          },
          FinalCaught: { Type: 'Pass', End: true },
        },
      },
      [1],
    );
    assert.deepEqual(shape(caught), [
      '1<0 ExecutionStarted', '2<0 MapStateEntered', '3<2 MapStateStarted', '4<3 MapIterationStarted', '5<4 FailStateEntered',
      '6<5 MapIterationFailed', '7<5 MapStateFailed', '8<7 MapStateExited', '9<8 PassStateEntered', '10<9 PassStateExited', '11<10 ExecutionSucceeded',
    ]);
    assert.deepEqual(caught.output, { Error: 'HandleItemFailError', Cause: 'HandleItemFailCause' });
  });

  test('inline Map and Parallel events; a failing iteration aborts the others', async () => {
    let release;
    const gate = new Promise((r) => {
      release = r;
    });
    const def = {
      StartAt: 'Par',
      States: {
        Par: {
          Type: 'Parallel',
          Branches: [
            { StartAt: 'B1', States: { B1: { Type: 'Pass', Result: 1, End: true } } },
            { StartAt: 'B2', States: { B2: { Type: 'Pass', Result: 2, End: true } } },
          ],
          ResultPath: '$.par',
          Next: 'M',
        },
        M: {
          Type: 'Map',
          ItemsPath: '$.items',
          MaxConcurrency: 2,
          ItemProcessor: { StartAt: 'Work', States: { Work: { Type: 'Task', Resource: fnArn('w'), End: true } } },
          Catch: [{ ErrorEquals: ['States.ALL'], Next: 'Caught' }],
          End: true,
        },
        Caught: { Type: 'Pass', End: true },
      },
    };
    const signals = [];
    const ex = await run(def, { items: ['slow', 'bad', 'never'] }, {
      task: async ({ input, signal }) => {
        signals.push({ input, signal });
        if (input === 'bad') {
          await new Promise((r) => setImmediate(r));
          throw new TaskFailure('Bad', 'bad item');
        }
        await gate;
        return input;
      },
    });
    release();
    assert.equal(ex.status, 'SUCCEEDED');
    assert.deepEqual(ex.output, { Error: 'Bad', Cause: 'bad item' });
    assert.equal(signals.length, 2, 'the third item never started');
    assert.equal(signals[0].signal.aborted, true, 'the running iteration was aborted');
    const t = types(ex);
    for (const type of ['ParallelStateEntered', 'ParallelStateStarted', 'ParallelStateSucceeded', 'ParallelStateExited', 'MapStateEntered', 'MapStateStarted', 'MapIterationStarted', 'MapIterationFailed', 'MapIterationAborted', 'TaskStateAborted', 'MapStateFailed', 'MapStateExited']) {
      assert.ok(t.includes(type), type);
    }
    assert.deepEqual(ex.events.find((e) => e.type === 'MapStateStarted').mapStateStartedEventDetails, { length: 3 });
    assert.deepEqual(ex.events.find((e) => e.type === 'MapIterationFailed').mapIterationFailedEventDetails, { name: 'M', index: 1 });
    assert.equal(ex.events.find((e) => e.type === 'MapStateFailed').mapStateFailedEventDetails, undefined);
    for (const e of ex.events) assert.ok(e.previousEventId < e.id);
    // Parallel(1) + 2 branches + Map(1) + 2 started iterations + Caught
    assert.equal(ex.counts.stateTransitions, 7);
  });
});

// ---------------------------------------------------------------------------

describe('states', () => {
  test('Choice operators', async () => {
    const rule = (r) => ({ ...r, Next: 'Yes' });
    const cases = [
      [{ Variable: '$.s', StringEquals: 'a' }, { s: 'a' }, true],
      [{ Variable: '$.s', StringEqualsPath: '$.t' }, { s: 'a', t: 'a' }, true],
      [{ Variable: '$.s', StringLessThan: 'b' }, { s: 'a' }, true],
      [{ Variable: '$.s', StringMatches: 'log-*.txt' }, { s: 'log-2024.txt' }, true],
      [{ Variable: '$.s', StringMatches: 'a\\*' }, { s: 'ab' }, false],
      [{ Variable: '$.n', NumericEquals: 3 }, { n: 3 }, true],
      [{ Variable: '$.n', NumericGreaterThanEqualsPath: '$.m' }, { n: 3, m: 3 }, true],
      [{ Variable: '$.n', NumericLessThan: 3 }, { n: 'two' }, false],
      [{ Variable: '$.b', BooleanEquals: false }, { b: false }, true],
      [{ Variable: '$.t', TimestampLessThan: '2024-01-02T00:00:00Z' }, { t: '2024-01-01T23:59:59+00:00' }, true],
      [{ Variable: '$.t', IsTimestamp: true }, { t: '2024-01-01' }, false],
      [{ Variable: '$.x', IsPresent: false }, {}, true],
      [{ Variable: '$.x', IsNull: true }, { x: null }, true],
      [{ Variable: '$.x', IsNumeric: true }, { x: 1.5 }, true],
      [{ Variable: '$.x', IsString: true }, { x: 1 }, false],
      [{ Variable: '$.x', IsBoolean: true }, { x: true }, true],
      [{ And: [{ Variable: '$.n', NumericGreaterThan: 1 }, { Not: { Variable: '$.n', NumericEquals: 5 } }] }, { n: 3 }, true],
      [{ Or: [{ Variable: '$.n', NumericEquals: 1 }, { Variable: '$.n', NumericEquals: 2 }] }, { n: 3 }, false],
    ];
    for (const [r, input, expected] of cases) {
      const ex = await run(
        { StartAt: 'C', States: { C: { Type: 'Choice', Choices: [rule(r)], Default: 'No' }, Yes: { Type: 'Pass', Result: true, End: true }, No: { Type: 'Pass', Result: false, End: true } } },
        input,
      );
      assert.equal(ex.output, expected, JSON.stringify(r));
    }
    const none = await run({ StartAt: 'C', States: { C: { Type: 'Choice', Choices: [rule({ Variable: '$.n', NumericEquals: 1 })] }, Yes: { Type: 'Succeed' } } }, { n: 2 });
    assert.equal(none.status, 'FAILED');
    assert.equal(none.error, 'States.NoChoiceMatched');
  });

  test('Wait (SecondsPath, waitScale) and Fail with static Error/Cause', async () => {
    const t0 = Date.now();
    const ex = await run(
      { StartAt: 'W', States: { W: { Type: 'Wait', SecondsPath: '$.s', Next: 'F' }, F: { Type: 'Fail', Error: 'Oops', Cause: 'on purpose' } } },
      { s: 100 },
      {},
      { waitScale: 0.001 },
    );
    assert.ok(Date.now() - t0 < 2000);
    assert.equal(ex.status, 'FAILED');
    assert.equal(ex.error, 'Oops');
    assert.equal(ex.cause, 'on purpose');
    assert.deepEqual(types(ex), ['ExecutionStarted', 'WaitStateEntered', 'WaitStateExited', 'FailStateEntered', 'ExecutionFailed']);
  });

  test('InputPath/OutputPath/ResultSelector/ResultPath in AWS order; missing InputPath is States.Runtime', async () => {
    const def = {
      StartAt: 'T',
      States: {
        T: {
          Type: 'Task',
          Resource: fnArn('f'),
          InputPath: '$.in',
          Parameters: { 'v.$': '$.v', 'ctx.$': '$$.State.Name' },
          ResultSelector: { 'got.$': '$.echo' },
          ResultPath: '$.in.result',
          OutputPath: '$.in',
          End: true,
        },
      },
    };
    const ex = await run(def, { in: { v: 1 }, other: 2 }, { task: async ({ input }) => ({ echo: input, noise: true }) });
    assert.deepEqual(ex.output, { v: 1, result: { got: { v: 1, ctx: 'T' } } });
    const bad = await run({ StartAt: 'P', States: { P: { Type: 'Pass', InputPath: '$.nope', End: true } } }, {});
    assert.equal(bad.error, 'States.Runtime');
    assert.equal(bad.cause, "An error occurred while executing the state 'P' (entered at the event id #2). Invalid path '$.nope' : No results for path: $['nope']");
  });

  test('execution TimeoutSeconds: TIMED_OUT with an ExecutionTimedOut event', async () => {
    const ex = await run({ StartAt: 'W', TimeoutSeconds: 1, States: { W: { Type: 'Wait', Seconds: 30, End: true } } }, {});
    assert.equal(ex.status, 'TIMED_OUT');
    assert.equal(ex.error, undefined);
    const last = ex.events.at(-1);
    assert.equal(last.type, 'ExecutionTimedOut');
    assert.deepEqual(last.executionTimedOutEventDetails, { error: 'States.Timeout' });
  });
});

// ---------------------------------------------------------------------------

describe('stop() and cleanup', () => {
  test('stop() aborts a long task through its signal and leaves no timer behind', async () => {
    const before = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    let seenSignal;
    const events = [];
    const ex = startExecution({
      definition: { StartAt: 'Long', States: { Long: { Type: 'Task', Resource: fnArn('long'), TimeoutSeconds: 3600, Retry: [{ ErrorEquals: ['States.ALL'], IntervalSeconds: 60 }], End: true } } },
      input: {},
      context: ctx(),
      handlers: {
        task: ({ signal }) => {
          seenSignal = signal;
          return new Promise(() => {}); // ignores the signal: the interpreter must not wait for it
        },
      },
    });
    const off = ex.on((e) => events.push(e.type));
    while (!seenSignal) await new Promise((r) => setImmediate(r));
    assert.equal(ex.status, 'RUNNING');
    assert.equal(ex.stop({ error: 'Manual', cause: 'probe' }), true);
    await ex.done;
    off();
    assert.equal(ex.status, 'ABORTED');
    assert.equal(ex.error, 'Manual');
    assert.equal(ex.cause, 'probe');
    assert.equal(seenSignal.aborted, true);
    assert.deepEqual(ex.events.at(-1).executionAbortedEventDetails, { error: 'Manual', cause: 'probe' });
    assert.equal(events.at(-1), 'ExecutionAborted');
    assert.equal(ex.stop(), false, 'stopping twice is a no-op');
    await new Promise((r) => setImmediate(r));
    const after = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    assert.equal(after, before, 'no pending timers');
  });
});

// ---------------------------------------------------------------------------

describe('validateDefinition', () => {
  test('reports what AWS or this interpreter would not accept', () => {
    const problems = validateDefinition({
      StartAt: 'A',
      States: {
        A: { Type: 'Pass', Next: 'Nowhere' },
        B: { Type: 'Task', Resource: fnArn('f') },
        C: { Type: 'Pass', End: true, Bogus: 1 },
        D: { Type: 'Magic', End: true },
        E: { Type: 'Pass', Parameters: { 'x.$': 'States.Nope($.a)' }, End: true },
        F: { Type: 'Pass', ResultPath: '$.a[*]', End: true },
        G: { Type: 'Task', Resource: fnArn('f'), Retry: [{ ErrorEquals: ['States.ALL'] }, { ErrorEquals: ['X'] }], End: true },
        H: { Type: 'Map', ItemProcessor: { StartAt: 'I', States: { I: { Type: 'Pass', End: true } } }, ToleratedFailureCount: 1, End: true },
        J: { Type: 'Task', Resource: 'arn:aws:states:::lambda:invoke.waitForTaskToken', End: true },
      },
    });
    const text = problems.join('\n');
    for (const needle of [
      'state A: Next "Nowhere"',
      'state B: needs Next or "End": true',
      'state C: field Bogus is not supported',
      'state D: unknown or unsupported Type "Magic"',
      "state E: the value for the field 'Parameters.x.$' must be a valid JSONPath or a valid intrinsic function call",
      'state F: ResultPath "$.a[*]" must be a reference path',
      'state G Retry[0]: States.ALL must be in the last retrier/catcher',
      'state H: ToleratedFailureCount needs ProcessorConfig.Mode DISTRIBUTED',
      'state J: Resource arn:aws:states:::lambda:invoke.waitForTaskToken: the .waitForTaskToken pattern is not supported',
    ]) {
      assert.ok(text.includes(needle), `missing: ${needle}\n---\n${text}`);
    }
  });
});
