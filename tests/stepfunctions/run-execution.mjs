#!/usr/bin/env node
// Runs statemachine/pipeline.asl.json locally with aws-local-stepfunctions.
//
//   node tests/stepfunctions/run-execution.mjs --definition statemachine/pipeline.asl.json \
//     --input '{"force_rebuild": true}' --bin-dir target/debug
//   env: SNS_ENDPOINT (e.g. http://127.0.0.1:5000, a moto server), AWS_REGION
//
// Every Task state is replaced by a local handler (the run fails before it
// starts if one is not recognised, so nothing ever calls real AWS):
//   - Lambda function ARN  -> <bin-dir>/<function-name> --invoke, state input on
//     stdin; exit 0: stdout is the result JSON; exit 1: stdout is
//     {"errorType", "errorMessage"} and the task fails with error = errorType,
//     cause = errorMessage (so Retry/Catch ErrorEquals match errorType).
//   - arn:aws:states:::sns:publish -> Publish through the SNS query API at
//     $SNS_ENDPOINT, result {"MessageId"}.
// Prints one JSON document: {status, output, error, cause, history}. Exit 0
// whatever the execution's status; 1 on bad usage or setup (definition,
// binaries, SNS_ENDPOINT); 2 when something went wrong in the harness during the
// run (a binary broke its output contract, SNS unreachable, harness timeout).
// See statemachine/README.md.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { randomUUID } from 'node:crypto';

// aws-local-stepfunctions 3.0.0 calls Promise.withResolvers (Node >= 22) in every
// Task state; define it before the library is loaded (dynamic import below).
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers() {
    let resolve;
    let reject;
    const promise = new Promise((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
}

export const ACCOUNT = '123456789012';
export const SNS_PUBLISH = 'arn:aws:states:::sns:publish';

/** Placeholder name -> Lambda function name (the binary's file name). */
export const FUNCTION_PLACEHOLDERS = {
  CheckSourcesFunctionArn: 'check-sources',
  DownloadPackageFunctionArn: 'download-package',
  RecordMetadataFunctionArn: 'record-metadata',
  BuildIndexFunctionArn: 'build-index',
  PublishFunctionArn: 'publish',
};
/** Placeholder name -> default topic name. */
export const TOPIC_PLACEHOLDERS = {
  SuccessTopicArn: 'pkgrelay-success',
  FailureTopicArn: 'pkgrelay-failure',
};
export const PLACEHOLDERS = [...Object.keys(FUNCTION_PLACEHOLDERS), ...Object.keys(TOPIC_PLACEHOLDERS)];

/** An error that stops the harness itself (exit 1 before the run, 2 during it). */
export class HarnessError extends Error {
  constructor(message) {
    super(message);
    this.name = 'HarnessError';
  }
}

/**
 * The error a local task handler throws. aws-local-stepfunctions matches
 * Retry/Catch ErrorEquals against `error.name` (plus States.ALL and
 * States.TaskFailed), retries/catches anything without `isRetryable === false`
 * / `isCatchable === false`, and reports `error.message` as the Cause (or
 * `error.cause` when set, in the history: so `cause` is left unset).
 */
export class TaskError extends Error {
  constructor(name, message) {
    super(message);
    this.name = name;
  }
}

export function placeholderValues({ region, successTopicArn, failureTopicArn } = {}) {
  const r = region || 'us-east-1';
  const values = {};
  for (const [placeholder, fn] of Object.entries(FUNCTION_PLACEHOLDERS)) {
    values[placeholder] = `arn:aws:lambda:${r}:${ACCOUNT}:function:${fn}`;
  }
  values.SuccessTopicArn = successTopicArn || `arn:aws:sns:${r}:${ACCOUNT}:${TOPIC_PLACEHOLDERS.SuccessTopicArn}`;
  values.FailureTopicArn = failureTopicArn || `arn:aws:sns:${r}:${ACCOUNT}:${TOPIC_PLACEHOLDERS.FailureTopicArn}`;
  return values;
}

/** `${Name}` -> value over the definition text, as CDK DefinitionSubstitutions does. */
export function substitute(text, values) {
  const unknown = new Set();
  const out = text.replace(/\$\{([A-Za-z0-9_]+)\}/g, (whole, name) => {
    if (!(name in values)) {
      unknown.add(name);
      return whole;
    }
    return JSON.stringify(String(values[name])).slice(1, -1);
  });
  if (unknown.size > 0) {
    throw new HarnessError(`unknown placeholder(s) in the definition: ${[...unknown].join(', ')}`);
  }
  return out;
}

/** Every state of a definition, nested ones (Map item processors, Parallel branches) included. */
export function allStates(definition, where = '') {
  const found = [];
  for (const [name, state] of Object.entries(definition.States ?? {})) {
    found.push({ name, state, where: where ? `${where} > ${name}` : name });
    const nested = [];
    if (state.Type === 'Map') nested.push(state.ItemProcessor ?? state.Iterator);
    if (state.Type === 'Parallel') nested.push(...(state.Branches ?? []));
    for (const sub of nested) {
      if (sub) found.push(...allStates(sub, where ? `${where} > ${name}` : name));
    }
  }
  return found;
}

/** What a Task's Resource is: {kind: 'lambda', functionName} or {kind: 'sns'}; null if unknown. */
export function classifyResource(resource) {
  if (resource === SNS_PUBLISH) return { kind: 'sns' };
  const m = /^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:([A-Za-z0-9_-]+)$/.exec(resource ?? '');
  if (m) return { kind: 'lambda', functionName: m[1] };
  return null;
}

const JSON_TO_STRING = /^States\.JsonToString\((\$[^,]*)\)$/;

/**
 * One handler per Task state. Also rewrites (in the copy that is executed)
 * top-level `"Key.$": "States.JsonToString($.path)"` task parameters to
 * `"Key.$": "$.path"`, the handler stringifying the value: aws-local-stepfunctions
 * deletes every backslash from an intrinsic's string result, which turns a
 * JSON text with a quote or newline inside a string into invalid JSON; AWS
 * does not. The result is what AWS would produce.
 */
export function planTasks(definition, { binDir }) {
  const tasks = [];
  const seen = new Set();
  const problems = [];
  for (const { name, state, where } of allStates(definition)) {
    // AWS wants names unique across the whole machine; the library keys overrides by name.
    if (seen.has(name)) problems.push(`state name ${name} is used twice (${where})`);
    seen.add(name);
    if (state.Type !== 'Task') continue;
    const what = classifyResource(state.Resource);
    if (!what) {
      problems.push(`Task ${where}: resource ${JSON.stringify(state.Resource)} is not recognised (a Lambda function ARN or ${SNS_PUBLISH}); refusing to run it against real AWS`);
      continue;
    }
    const stringify = [];
    if (state.Parameters && typeof state.Parameters === 'object' && !Array.isArray(state.Parameters)) {
      for (const [key, value] of Object.entries(state.Parameters)) {
        const m = key.endsWith('.$') && typeof value === 'string' ? JSON_TO_STRING.exec(value.trim()) : null;
        if (m) {
          state.Parameters[key] = m[1].trim();
          stringify.push(key.slice(0, -2));
        }
      }
    }
    if (what.kind === 'lambda') {
      const bin = path.join(binDir ?? '', what.functionName);
      if (!binDir) {
        problems.push(`Task ${where} needs --bin-dir (function ${what.functionName})`);
      } else {
        try {
          fs.accessSync(bin, fs.constants.X_OK);
          if (!fs.statSync(bin).isFile()) throw new Error('not a file');
        } catch {
          problems.push(`Task ${where}: no executable ${bin} for function ${what.functionName}`);
        }
      }
      tasks.push({ name, where, ...what, bin, stringify });
    } else {
      tasks.push({ name, where, ...what, stringify });
    }
  }
  if (problems.length > 0) throw new HarnessError(problems.join('\n'));
  return tasks;
}

function stringifyParams(input, keys) {
  if (keys.length === 0 || !input || typeof input !== 'object') return input;
  const copy = { ...input };
  for (const key of keys) {
    if (key in copy) copy[key] = JSON.stringify(copy[key]);
  }
  return copy;
}

/** Runs a function binary the way Lambda would invoke it. */
function invokeBinary(task, input, ctx) {
  return new Promise((resolve, reject) => {
    let child;
    try {
      child = spawn(task.bin, ['--invoke'], { env: process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    } catch (e) {
      reject(ctx.harnessFailure(`${task.functionName}: cannot start ${task.bin}: ${e.message}`));
      return;
    }
    ctx.children.add(child);
    const stdout = [];
    let stderrTail = '';
    let partial = '';
    child.stdout.on('data', (chunk) => stdout.push(chunk));
    child.stderr.on('data', (chunk) => {
      const text = chunk.toString('utf8');
      stderrTail = (stderrTail + text).slice(-2000);
      const lines = (partial + text).split('\n');
      partial = lines.pop();
      for (const line of lines) process.stderr.write(`[${task.functionName}] ${line}\n`);
    });
    // A binary may exit without reading its input; that is its business.
    child.stdin.on('error', () => {});
    child.on('error', (e) => {
      ctx.children.delete(child);
      reject(ctx.harnessFailure(`${task.functionName}: cannot run ${task.bin}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      ctx.children.delete(child);
      if (partial) process.stderr.write(`[${task.functionName}] ${partial}\n`);
      const text = Buffer.concat(stdout).toString('utf8');
      if (code === 0) {
        try {
          resolve(JSON.parse(text));
        } catch {
          reject(ctx.harnessFailure(`${task.functionName} exited 0 but its stdout is not JSON: ${JSON.stringify(text.slice(0, 500))}`));
        }
        return;
      }
      if (code === 1) {
        let err = null;
        try {
          err = JSON.parse(text);
        } catch {
          // fall through: treated as a crash
        }
        if (err && typeof err === 'object' && typeof err.errorType === 'string' && err.errorType) {
          reject(new TaskError(err.errorType, typeof err.errorMessage === 'string' ? err.errorMessage : JSON.stringify(err.errorMessage ?? '')));
          return;
        }
      }
      // No error document: what Lambda reports when the runtime process dies.
      const how = signal ? `signal ${signal}` : `exit status ${code}`;
      const tail = stderrTail.trim().split('\n').slice(-5).join('\n');
      reject(new TaskError('Runtime.ExitError', `RequestId: local Error: Runtime exited with error: ${how}${tail ? `\n${tail}` : ''}`));
    });
    child.stdin.end(JSON.stringify(input));
  });
}

function xmlText(xml, tag) {
  const m = new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`).exec(xml);
  if (!m) return null;
  return m[1]
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&amp;/g, '&');
}

const SNS_PARAMETERS = new Set(['TopicArn', 'Message', 'Subject', 'MessageGroupId', 'MessageDeduplicationId']);

/** sns:publish through the SNS query API (moto server in the tests). */
async function snsPublish(task, input, ctx) {
  const unsupported = Object.keys(input ?? {}).filter((k) => !SNS_PARAMETERS.has(k));
  if (unsupported.length > 0) {
    throw ctx.harnessFailure(`${task.name}: sns:publish parameter(s) not supported by the harness: ${unsupported.join(', ')}`);
  }
  for (const key of ['TopicArn', 'Message']) {
    if (typeof input[key] !== 'string') {
      throw new TaskError('SNS.InvalidParameterException', `${key} must be a string, got ${JSON.stringify(input[key])}`);
    }
  }
  const form = new URLSearchParams({ Action: 'Publish', Version: '2010-03-31' });
  for (const key of SNS_PARAMETERS) {
    if (input[key] !== undefined) form.set(key, String(input[key]));
  }
  // moto picks the region's backend from the credential scope: use the topic's region.
  const region = input.TopicArn.split(':')[3] || ctx.region;
  const day = new Date().toISOString().slice(0, 10).replace(/-/g, '');
  let response;
  let body;
  try {
    response = await fetch(`${ctx.snsEndpoint.replace(/\/+$/, '')}/`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded; charset=utf-8',
        authorization: `AWS4-HMAC-SHA256 Credential=testing/${day}/${region}/sns/aws4_request, SignedHeaders=content-type;host, Signature=local`,
      },
      body: form.toString(),
      signal: AbortSignal.timeout(30000),
    });
    body = await response.text();
  } catch (e) {
    throw ctx.harnessFailure(`${task.name}: SNS endpoint ${ctx.snsEndpoint} unreachable: ${e.cause?.message ?? e.message}`);
  }
  if (!response.ok) {
    const code = xmlText(body, 'Code') || `Http${response.status}`;
    const message = xmlText(body, 'Message') || body.slice(0, 500);
    throw new TaskError(`SNS.${code.endsWith('Exception') ? code : `${code}Exception`}`, message);
  }
  const messageId = xmlText(body, 'MessageId');
  if (!messageId) {
    throw ctx.harnessFailure(`${task.name}: no MessageId in the SNS response: ${body.slice(0, 500)}`);
  }
  return { MessageId: messageId };
}

function causeText(cause) {
  if (cause === undefined || cause === null) return null;
  if (cause instanceof Error) return cause.message;
  return typeof cause === 'string' ? cause : JSON.stringify(cause);
}

/** The library's event log, flattened. */
function historyEntry(e) {
  const h = { type: e.type, timestamp: e.timestamp };
  if (e.state) {
    h.state = e.state.name;
    h.state_type = e.state.type;
  } else if (e.parentState) {
    h.state = e.parentState.name;
    h.state_type = e.parentState.type;
  }
  if (e.index !== undefined) h.index = e.index;
  if (e.type === 'ExecutionStarted') h.input = e.input;
  if (e.type === 'ExecutionSucceeded') h.output = e.output;
  if (e.type === 'StateEntered' || e.type === 'StateExited') h.input = e.state.input;
  if (e.type === 'StateExited') h.output = e.state.output;
  if ('Error' in e) {
    h.error = e.Error;
    h.cause = causeText(e.Cause);
  }
  if (e.retry) {
    h.attempt = e.retry.attempt;
    h.error_equals = e.retry.retrier.ErrorEquals;
  }
  if (e.catch) {
    h.error_equals = e.catch.catcher.ErrorEquals;
    h.next = e.catch.catcher.Next;
  }
  return h;
}

export async function runExecution(options) {
  const {
    definitionPath,
    input,
    binDir,
    region = process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION || 'us-east-1',
    successTopicArn,
    failureTopicArn,
    snsEndpoint = process.env.SNS_ENDPOINT,
    retryIntervalMs,
    timeoutSeconds = 600,
    executionName = `local-${randomUUID()}`,
  } = options;

  // --- setup: any problem here is exit 1, before anything runs ---
  const text = substitute(fs.readFileSync(definitionPath, 'utf8'), placeholderValues({ region, successTopicArn, failureTopicArn }));
  let definition;
  try {
    definition = JSON.parse(text);
  } catch (e) {
    throw new HarnessError(`${definitionPath}: not JSON: ${e.message}`);
  }
  const tasks = planTasks(definition, { binDir: binDir && path.resolve(binDir) });
  if (tasks.some((t) => t.kind === 'sns') && !snsEndpoint) {
    throw new HarnessError('the definition publishes to SNS: set SNS_ENDPOINT (e.g. http://127.0.0.1:5000)');
  }
  const { StateMachine } = await import('aws-local-stepfunctions');
  let machine;
  try {
    machine = new StateMachine(definition);
  } catch (e) {
    throw new HarnessError(e.message);
  }

  const ctx = {
    region,
    snsEndpoint,
    children: new Set(),
    harnessErrors: [],
    harnessFailure(message) {
      this.harnessErrors.push(message);
      process.stderr.write(`run-execution: ${message}\n`);
      return new TaskError('Local.HarnessError', message);
    },
  };
  const taskResourceLocalHandlers = {};
  for (const task of tasks) {
    taskResourceLocalHandlers[task.name] = (stateInput) => {
      const effective = stringifyParams(stateInput, task.stringify);
      return task.kind === 'lambda' ? invokeBinary(task, effective, ctx) : snsPublish(task, effective, ctx);
    };
  }
  const overrides = { taskResourceLocalHandlers };
  if (retryIntervalMs !== undefined) {
    overrides.retryIntervalOverrides = {};
    for (const { name, state } of allStates(definition)) {
      if (state.Retry) overrides.retryIntervalOverrides[name] = retryIntervalMs;
    }
  }
  const stateMachineArn = `arn:aws:states:${region}:${ACCOUNT}:stateMachine:pkgrelay-pipeline`;
  const context = {
    Execution: {
      Id: `arn:aws:states:${region}:${ACCOUNT}:execution:pkgrelay-pipeline:${executionName}`,
      Name: executionName,
      RoleArn: `arn:aws:iam::${ACCOUNT}:role/pkgrelay-pipeline`,
    },
    StateMachine: { Id: stateMachineArn, Name: 'pkgrelay-pipeline' },
  };

  // --- the run ---
  const execution = machine.run(input, { overrides, context });
  const events = [];
  const collecting = (async () => {
    for await (const event of execution.eventLogs) events.push(historyEntry(event));
  })();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    execution.abort();
  }, timeoutSeconds * 1000);

  const report = { status: null, output: null, error: null, cause: null, history: events };
  try {
    report.output = await execution.result;
    report.status = 'SUCCEEDED';
  } catch (e) {
    if (timedOut) {
      report.status = 'TIMED_OUT';
      report.error = 'Local.HarnessTimeout';
      report.cause = `the execution did not end within ${timeoutSeconds} s (--timeout-seconds)`;
      ctx.harnessErrors.push(report.cause);
    } else if (e?.name === 'ExecutionTimeoutError') {
      report.status = 'TIMED_OUT';
      report.error = 'States.Timeout';
      report.cause = e.message;
    } else if (e?.name === 'ExecutionError' && e.cause) {
      report.status = 'FAILED';
      report.error = e.cause.name;
      report.cause = causeText(e.cause.cause) ?? e.cause.message;
    } else {
      throw e;
    }
  } finally {
    clearTimeout(timer);
    // Processes still running (an aborted Map iteration, a task past its
    // TimeoutSeconds) were started here: stop them.
    for (const child of ctx.children) child.kill('SIGKILL');
  }
  await Promise.race([collecting, new Promise((r) => setTimeout(r, 1000))]);
  // Nested (Map) events are forwarded asynchronously: order by time, stable.
  events.sort((a, b) => a.timestamp - b.timestamp);
  if (ctx.harnessErrors.length > 0) report.harness_errors = ctx.harnessErrors;
  return report;
}

function usage() {
  return [
    'usage: node tests/stepfunctions/run-execution.mjs --definition FILE [--input JSON] --bin-dir DIR',
    '         [--success-topic-arn ARN] [--failure-topic-arn ARN] [--region R]',
    '         [--retry-interval-ms MS] [--timeout-seconds S] [--execution-name NAME]',
    '  env: SNS_ENDPOINT (SNS query API, e.g. a moto server), AWS_REGION',
  ].join('\n');
}

async function main(argv) {
  let args;
  try {
    ({ values: args } = parseArgs({
      args: argv,
      options: {
        definition: { type: 'string' },
        input: { type: 'string', default: '{}' },
        'bin-dir': { type: 'string' },
        'success-topic-arn': { type: 'string' },
        'failure-topic-arn': { type: 'string' },
        region: { type: 'string' },
        'retry-interval-ms': { type: 'string' },
        'timeout-seconds': { type: 'string' },
        'execution-name': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (e) {
    throw new HarnessError(`${e.message}\n${usage()}`);
  }
  if (args.help) {
    process.stdout.write(`${usage()}\n`);
    return 0;
  }
  if (!args.definition) throw new HarnessError(`--definition is required\n${usage()}`);
  let input;
  try {
    input = JSON.parse(args.input);
  } catch (e) {
    throw new HarnessError(`--input is not JSON: ${e.message}`);
  }
  const number = (flag) => {
    if (args[flag] === undefined) return undefined;
    const n = Number(args[flag]);
    if (!Number.isFinite(n) || n < 0) throw new HarnessError(`--${flag} must be a non-negative number`);
    return n;
  };
  const report = await runExecution({
    definitionPath: args.definition,
    input,
    binDir: args['bin-dir'],
    region: args.region,
    successTopicArn: args['success-topic-arn'],
    failureTopicArn: args['failure-topic-arn'],
    retryIntervalMs: number('retry-interval-ms'),
    timeoutSeconds: number('timeout-seconds'),
    executionName: args['execution-name'],
  });
  await new Promise((resolve) => process.stdout.write(`${JSON.stringify(report)}\n`, resolve));
  return report.harness_errors ? 2 : 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => {
      process.stderr.write(`run-execution: ${e instanceof HarnessError ? e.message : e?.stack ?? e}\n`);
      process.exit(1);
    },
  );
}
