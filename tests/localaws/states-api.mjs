// The Step Functions API (JSON 1.0 protocol, `X-Amz-Target: AWSStepFunctions.<Operation>`)
// over the ASL interpreter, so that `aws-sdk-sfn` clients (the CLI, the
// tests) start and follow executions as they would on AWS.
//
// Each execution runs the definition CDK synthesized for the deployment. Its
// Task states run here:
// - a Lambda function ARN: the function binary through lambda.mjs, after
//   checking that the state machine's role may lambda:InvokeFunction it;
// - arn:aws:states:::sns:publish: Publish through the gateway (sns:Publish checked);
// - a Distributed Map's ItemReader (s3:getObject) and ResultWriter (s3:putObject)
//   read and write the bucket through the gateway, after checking the role;
//   its child executions (states:StartExecution checked) are executions of
//   their own, listed by ListExecutions with the map run's ARN.
//
// What a Lambda function returns or fails with is carried exactly as Step
// Functions carries it: an error's Cause is the JSON of
// {errorMessage, errorType, requestId, stackTrace}.

import crypto from 'node:crypto';
import { PAYLOAD_LIMIT_BYTES, TaskFailure, startExecution, validateDefinition } from './asl.mjs';

const SNS_PUBLISH = 'arn:aws:states:::sns:publish';
const S3_GET = 'arn:aws:states:::s3:getObject';
const S3_PUT = 'arn:aws:states:::s3:putObject';
const LAMBDA_ARN = /^arn:aws:lambda:[a-z0-9-]+:\d{12}:function:([A-Za-z0-9_-]+)(?::[A-Za-z0-9$_-]+)?$/;

class ApiError extends Error {
  constructor(type, message, status = 400) {
    super(message);
    this.type = type;
    this.status = status;
  }
}

const epoch = (d) => (d ? d.getTime() / 1000 : undefined);

function historyEventForApi(e, includeData) {
  const out = { ...e, timestamp: epoch(e.timestamp) };
  if (!includeData) {
    for (const [k, v] of Object.entries(out)) {
      if (k.endsWith('EventDetails') && v && typeof v === 'object') {
        const copy = { ...v };
        for (const f of ['input', 'output', 'parameters']) if (f in copy) delete copy[f];
        out[k] = copy;
      }
    }
  }
  return out;
}

/** Largest state payload in an execution's history, as the harness measures it (UTF-8 bytes). */
export function largestPayload(events) {
  let max = { bytes: 0, where: null };
  for (const e of events) {
    for (const [k, v] of Object.entries(e)) {
      if (!k.endsWith('EventDetails') || !v || typeof v !== 'object') continue;
      for (const f of ['input', 'output', 'parameters']) {
        if (typeof v[f] === 'string') {
          const bytes = Buffer.byteLength(v[f]);
          if (bytes > max.bytes) max = { bytes, where: `${e.type}${v.name ? ` ${v.name}` : ''} ${f}` };
        }
      }
    }
  }
  return max;
}

export class StatesService {
  /**
   * `authorize(sm, action, resource)` -> Promise<{allowed, reason}>: the state
   * machine role's identity policies decide (lambda:InvokeFunction, states:StartExecution).
   */
  constructor({ runner, authorize, log = () => {} }) {
    this.runner = runner;
    this.authorize = authorize;
    this.log = log;
    this.stateMachines = new Map(); // arn -> {deployment, sm}
    this.executions = new Map(); // arn -> record
    this.mapRuns = new Map(); // mapRunArn -> {executionArn, run (asl mapRun object)}
  }

  registerStateMachine(deployment, sm) {
    const problems = validateDefinition(sm.definition);
    if (problems.length > 0) throw new Error(`${sm.name}: the definition is not valid ASL:\n${problems.join('\n')}`);
    this.stateMachines.set(sm.arn, { deployment, sm, created: new Date() });
  }

  unregisterDeployment(deployment) {
    for (const [arn, entry] of this.stateMachines) {
      if (entry.deployment === deployment) this.stateMachines.delete(arn);
    }
    for (const record of this.executions.values()) {
      if (record.deployment === deployment && record.execution.status === 'RUNNING') {
        record.execution.stop({ error: 'Local.DeploymentDeleted', cause: 'the test deployment was deleted' });
      }
    }
  }

  /** Whether the state machine's role may `action` on `resource`: {allowed, reason}. */
  async mayRole(sm, action, resource) {
    return this.authorize(sm, action, resource);
  }

  handlersFor(record) {
    const { deployment, sm } = record;
    // S3 and SNS calls go through the gateway signed with the state machine
    // role's key: its policy (and the bucket or topic policy) decides there.
    const s3 = deployment.stateMachineS3;
    const sns = deployment.stateMachineSns;
    return {
      task: async ({ resource, input, signal, stateName }) => {
        if (LAMBDA_ARN.test(resource)) return this.invokeLambda(record, resource, input, signal, stateName);
        if (resource === SNS_PUBLISH) {
          const message = typeof input.Message === 'string' ? input.Message : JSON.stringify(input.Message);
          let id;
          try {
            id = await sns.publish(input.TopicArn, message, input.Subject);
          } catch (e) {
            const code = (e.body && /<Code>([^<]+)<\/Code>/.exec(e.body)?.[1]) || `Http${e.status ?? ''}`;
            throw new TaskFailure(`SNS.${code.endsWith('Exception') ? code : `${code}Exception`}`, e.message);
          }
          return {
            MessageId: id,
            SdkHttpMetadata: { HttpStatusCode: 200 },
            SdkResponseMetadata: { RequestId: crypto.randomUUID() },
          };
        }
        throw new TaskFailure('States.Runtime', `tests/localaws does not run the resource ${resource} (state ${stateName})`);
      },
      itemReader: async ({ resource, parameters }) => {
        if (resource !== S3_GET) throw new TaskFailure('States.ItemReaderFailed', `unsupported ItemReader resource ${resource}`);
        let body;
        try {
          body = await s3.getObject(parameters.Bucket, parameters.Key);
        } catch (e) {
          throw new TaskFailure('States.ItemReaderFailed', e.message);
        }
        let items;
        try {
          items = JSON.parse(body.toString('utf8'));
        } catch (e) {
          throw new TaskFailure('States.ItemReaderFailed', `s3://${parameters.Bucket}/${parameters.Key} is not JSON: ${e.message}`);
        }
        if (!Array.isArray(items)) {
          throw new TaskFailure('States.ItemReaderFailed', `s3://${parameters.Bucket}/${parameters.Key} is not a JSON array`);
        }
        return items;
      },
      childExecution: async ({ mapRunArn, name, definition, input, childExecutionArn, signal }) => {
        const verdict = await this.mayRole(sm, 'states:StartExecution', sm.arn);
        if (!verdict.allowed) {
          throw new TaskFailure('States.Runtime', `the state machine role ${sm.roleArn} may not states:StartExecution on ${sm.arn} (needed by a Distributed Map): ${verdict.reason}`);
        }
        const childArn = childExecutionArn;
        const child = this.run(deployment, sm, { arn: childArn, name, input, definition, mapRunArn, parent: record });
        // The map run failed or the parent was stopped: so is the child.
        const stop = () => child.execution.stop({ error: 'States.Aborted', cause: 'the map run ended' });
        signal?.addEventListener('abort', stop, { once: true });
        await child.execution.done;
        signal?.removeEventListener('abort', stop);
        const ex = child.execution;
        return { status: ex.status, output: ex.output, error: ex.error, cause: ex.cause, executionArn: childArn };
      },
      resultWriter: async ({ parameters, mapRunArn, results }) => {
        if (!parameters?.Bucket) throw new TaskFailure('States.ResultWriterFailed', 'ResultWriter needs Parameters.Bucket');
        const bucket = parameters.Bucket;
        const prefix = (parameters.Prefix ?? '').replace(/\/+$/, '');
        const runId = mapRunArn.split(':').pop().split('/').pop();
        const base = prefix ? `${prefix}/${runId}` : runId;
        const files = { SUCCEEDED: [], FAILED: [], PENDING: [] };
        const groups = {
          SUCCEEDED: results.filter((r) => r.Status === 'SUCCEEDED'),
          FAILED: results.filter((r) => r.Status !== 'SUCCEEDED' && r.Status !== 'PENDING'),
          PENDING: results.filter((r) => r.Status === 'PENDING'),
        };
        try {
          for (const [status, list] of Object.entries(groups)) {
            if (list.length === 0) continue;
            const key = `${base}/${status}_0.json`;
            const body = Buffer.from(JSON.stringify(list));
            await s3.putObject(bucket, key, body);
            files[status].push({ Key: key, Size: body.length });
          }
          const manifestKey = `${base}/manifest.json`;
          await s3.putObject(bucket, manifestKey, Buffer.from(JSON.stringify({ DestinationBucket: bucket, MapRunArn: mapRunArn, ResultFiles: files })));
          return { Bucket: bucket, Key: manifestKey };
        } catch (e) {
          throw new TaskFailure('States.ResultWriterFailed', e.message);
        }
      },
    };
  }

  async invokeLambda(record, resource, input, signal, stateName) {
    const { deployment, sm } = record;
    const fn = deployment.functionByArn(resource);
    if (!fn) throw new TaskFailure('Lambda.ResourceNotFoundException', `Function not found: ${resource}`);
    const verdict = await this.mayRole(sm, 'lambda:InvokeFunction', resource);
    if (!verdict.allowed) {
      throw new TaskFailure(
        'Lambda.AWSLambdaException',
        `User: arn:aws:sts::123456789012:assumed-role/${sm.roleName}/states is not authorized to perform: lambda:InvokeFunction on resource: ${resource} because ${verdict.reason}`,
      );
    }
    const outcome = await this.runner.invoke(fn, input, {
      env: deployment.lambdaEnvironment(fn),
      signal,
      onLog: (line) => deployment.functionLog(fn.name, line),
    });
    record.invocations.push({
      function: fn.name,
      state: stateName,
      durationMs: outcome.durationMs,
      billedMs: outcome.billedMs,
      memoryMiB: outcome.memoryMiB,
      maxMemoryMiB: outcome.maxMemoryMiB,
      maxRssMiB: outcome.maxRssMiB,
      ok: outcome.ok,
      errorType: outcome.errorType,
    });
    if (outcome.ok) return outcome.result;
    if (outcome.invoked === false) throw new TaskFailure(outcome.errorType, outcome.errorMessage);
    throw new TaskFailure(
      outcome.errorType,
      JSON.stringify({ errorMessage: outcome.errorMessage, errorType: outcome.errorType, requestId: outcome.requestId, stackTrace: [] }),
    );
  }

  run(deployment, sm, { arn, name, input, definition, mapRunArn, parent }) {
    const record = {
      arn,
      name,
      deployment,
      sm,
      mapRunArn,
      parent,
      input,
      invocations: [],
      children: [],
      startDate: new Date(),
    };
    record.execution = startExecution({
      definition: definition ?? sm.definition,
      input,
      context: {
        executionArn: arn,
        executionName: name,
        stateMachineArn: sm.arn,
        stateMachineName: sm.name,
        roleArn: sm.roleArn,
        startTime: record.startDate.toISOString(),
      },
      handlers: this.handlersFor(record),
      options: { retryDelayMs: deployment.options.retryDelayMs },
    });
    if (parent) parent.children.push(record);
    this.executions.set(arn, record);
    record.execution.done.then(() => {
      for (const run of record.execution.mapRuns ?? []) this.mapRuns.set(run.mapRunArn, { executionArn: arn, run });
    });
    // Map runs appear while the execution runs too.
    record.execution.on?.((event) => {
      if (event.type === 'MapRunStarted') {
        for (const run of record.execution.mapRuns ?? []) this.mapRuns.set(run.mapRunArn, { executionArn: arn, run });
      }
    });
    return record;
  }

  start(stateMachineArn, { name, input }) {
    const entry = this.stateMachines.get(stateMachineArn);
    if (!entry) throw new ApiError('StateMachineDoesNotExist', `State Machine Does Not Exist: '${stateMachineArn}'`);
    const execName = name ?? crypto.randomUUID();
    if (!/^[A-Za-z0-9_-]{1,80}$/.test(execName)) throw new ApiError('InvalidName', `Invalid Name: '${execName}'`);
    const arn = `arn:aws:states:us-east-1:123456789012:execution:${entry.sm.name}:${execName}`;
    if (this.executions.has(arn)) throw new ApiError('ExecutionAlreadyExists', `Execution Already Exists: '${arn}'`);
    const text = input ?? '{}';
    if (Buffer.byteLength(text) > PAYLOAD_LIMIT_BYTES) {
      throw new ApiError('InvalidExecutionInput', `The input exceeds the maximum size of ${PAYLOAD_LIMIT_BYTES} bytes`);
    }
    let parsed;
    try {
      parsed = JSON.parse(text);
    } catch (e) {
      throw new ApiError('InvalidExecutionInput', `Invalid State Machine Execution Input: '${e.message}'`);
    }
    return this.run(entry.deployment, entry.sm, { arn, name: execName, input: parsed });
  }

  record(arn) {
    const r = this.executions.get(arn);
    if (!r) throw new ApiError('ExecutionDoesNotExist', `Execution Does Not Exist: '${arn}'`);
    return r;
  }

  describe(r) {
    const ex = r.execution;
    const out = {
      executionArn: r.arn,
      stateMachineArn: r.sm.arn,
      name: r.name,
      status: ex.status,
      startDate: epoch(ex.startDate ?? r.startDate),
      input: JSON.stringify(r.input),
      inputDetails: { included: true },
    };
    if (ex.stopDate) out.stopDate = epoch(ex.stopDate);
    if (ex.status === 'SUCCEEDED') {
      out.output = JSON.stringify(ex.output);
      out.outputDetails = { included: true };
    }
    if (ex.error !== undefined && ex.error !== null) out.error = ex.error;
    if (ex.cause !== undefined && ex.cause !== null) out.cause = ex.cause;
    if (r.mapRunArn) out.mapRunArn = r.mapRunArn;
    return out;
  }

  summary(r) {
    const ex = r.execution;
    const s = { executionArn: r.arn, stateMachineArn: r.sm.arn, name: r.name, status: ex.status, startDate: epoch(ex.startDate ?? r.startDate) };
    if (ex.stopDate) s.stopDate = epoch(ex.stopDate);
    if (r.mapRunArn) s.mapRunArn = r.mapRunArn;
    return s;
  }

  /** What the tests read besides the API: counts, invocations, payload sizes, children (recursively summed). */
  report(arn) {
    const r = this.record(arn);
    const ex = r.execution;
    const all = [];
    const walk = (x) => {
      all.push(x);
      x.children.forEach(walk);
    };
    walk(r);
    const sum = (f) => all.reduce((n, x) => n + f(x), 0);
    const invocations = all.flatMap((x) => x.invocations);
    const largest = all
      .map((x) => ({ execution: x.arn, ...largestPayload(x.execution.events) }))
      .reduce((a, b) => (b.bytes > a.bytes ? b : a), { bytes: 0 });
    return {
      ...this.describe(r),
      output: ex.status === 'SUCCEEDED' ? ex.output : null,
      events: ex.events.map((e) => historyEventForApi(e, true)),
      counts: {
        executions: all.length,
        stateTransitions: sum((x) => x.execution.counts?.stateTransitions ?? 0),
        lambdaInvocations: invocations.length,
        lambdaGbSeconds: invocations.reduce((n, i) => n + (i.billedMs / 1000) * (i.memoryMiB / 1024), 0),
        historyEvents: ex.events.length,
        maxChildHistoryEvents: Math.max(0, ...all.slice(1).map((x) => x.execution.events.length)),
      },
      invocations,
      largestPayload: largest,
      children: r.children.map((c) => ({
        ...this.summary(c),
        error: c.execution.error ?? undefined,
        cause: c.execution.cause ?? undefined,
        output: c.execution.status === 'SUCCEEDED' ? c.execution.output : undefined,
        states: c.execution.events.filter((e) => e.type.endsWith('StateEntered')).map((e) => e.stateEnteredEventDetails?.name),
      })),
      mapRuns: (ex.mapRuns ?? []).map((m) => ({ ...m, startDate: epoch(m.startDate), stopDate: epoch(m.stopDate) })),
    };
  }

  /** The JSON 1.0 API. */
  async handle(operation, body) {
    switch (operation) {
      case 'StartExecution': {
        const r = this.start(body.stateMachineArn, { name: body.name, input: body.input });
        return { executionArn: r.arn, startDate: epoch(r.startDate) };
      }
      case 'DescribeExecution':
        return this.describe(this.record(body.executionArn));
      case 'StopExecution': {
        const r = this.record(body.executionArn);
        if (r.execution.status === 'RUNNING') r.execution.stop({ error: body.error, cause: body.cause });
        await r.execution.done;
        return { stopDate: epoch(r.execution.stopDate ?? new Date()) };
      }
      case 'GetExecutionHistory': {
        const r = this.record(body.executionArn);
        let events = r.execution.events.map((e) => historyEventForApi(e, body.includeExecutionData !== false));
        if (body.reverseOrder) events = events.reverse();
        const start = body.nextToken ? Number(body.nextToken) : 0;
        const max = Math.min(body.maxResults || 1000, 1000);
        const page = events.slice(start, start + max);
        const out = { events: page };
        if (start + max < events.length) out.nextToken = String(start + max);
        return out;
      }
      case 'ListExecutions': {
        let list = [...this.executions.values()];
        if (body.mapRunArn) list = list.filter((r) => r.mapRunArn === body.mapRunArn);
        else if (body.stateMachineArn) {
          if (!this.stateMachines.has(body.stateMachineArn)) {
            throw new ApiError('StateMachineDoesNotExist', `State Machine Does Not Exist: '${body.stateMachineArn}'`);
          }
          list = list.filter((r) => r.sm.arn === body.stateMachineArn && !r.mapRunArn);
        } else throw new ApiError('ValidationException', 'stateMachineArn or mapRunArn is required');
        if (body.statusFilter) list = list.filter((r) => r.execution.status === body.statusFilter);
        list.sort((a, b) => b.startDate - a.startDate);
        const start = body.nextToken ? Number(body.nextToken) : 0;
        const max = Math.min(body.maxResults || 100, 1000);
        const out = { executions: list.slice(start, start + max).map((r) => this.summary(r)) };
        if (start + max < list.length) out.nextToken = String(start + max);
        return out;
      }
      case 'DescribeStateMachine': {
        const entry = this.stateMachines.get(body.stateMachineArn);
        if (!entry) throw new ApiError('StateMachineDoesNotExist', `State Machine Does Not Exist: '${body.stateMachineArn}'`);
        return {
          stateMachineArn: entry.sm.arn,
          name: entry.sm.name,
          status: 'ACTIVE',
          definition: entry.sm.definitionText,
          roleArn: entry.sm.roleArn,
          type: entry.sm.type,
          creationDate: epoch(entry.created),
        };
      }
      case 'ListStateMachines':
        return {
          stateMachines: [...this.stateMachines.values()].map((e) => ({
            stateMachineArn: e.sm.arn,
            name: e.sm.name,
            type: e.sm.type,
            creationDate: epoch(e.created),
          })),
        };
      case 'ListMapRuns': {
        this.record(body.executionArn);
        return {
          mapRuns: [...this.mapRuns.entries()]
            .filter(([, m]) => m.executionArn === body.executionArn)
            .map(([arn, m]) => ({ executionArn: m.executionArn, mapRunArn: arn, stateMachineArn: this.record(m.executionArn).sm.arn, startDate: epoch(m.run.startDate), stopDate: epoch(m.run.stopDate) })),
        };
      }
      case 'DescribeMapRun': {
        const m = this.mapRuns.get(body.mapRunArn);
        if (!m) throw new ApiError('ResourceNotFound', `Map Run Does Not Exist: '${body.mapRunArn}'`);
        const run = m.run;
        const counts = run.itemCounts ?? {};
        return {
          mapRunArn: body.mapRunArn,
          executionArn: m.executionArn,
          status: run.status,
          startDate: epoch(run.startDate),
          stopDate: epoch(run.stopDate),
          maxConcurrency: run.maxConcurrency ?? 0,
          toleratedFailurePercentage: run.toleratedFailurePercentage ?? 0,
          toleratedFailureCount: run.toleratedFailureCount ?? 0,
          itemCounts: { resultsWritten: 0, failuresNotRedrivable: 0, pendingRedrive: 0, ...counts },
          executionCounts: { resultsWritten: 0, failuresNotRedrivable: 0, pendingRedrive: 0, ...counts },
        };
      }
      default:
        throw new ApiError('UnknownOperationException', `tests/localaws does not implement AWSStepFunctions.${operation}`);
    }
  }
}

export { ApiError };
