#!/usr/bin/env node
// localaws: AWS's rules in front of moto, for the tests (see README.md here).
//
//   node tests/localaws/server.mjs --moto http://127.0.0.1:PORT \
//     --template cdk/cdk.out.dev/pkgrelay-dev.template.json --bin-dir target/debug \
//     [--listen 127.0.0.1:0] [--port-file FILE] [--log FILE]
//
// One port serves the AWS APIs the functions and tests call (through the
// gateway), the Step Functions API, and the admin API under /_localaws/.
// Each test deploys its own copy of the synthesized stack (POST
// /_localaws/deployments) and gets back its names, the CloudFront stand-in's
// URL and the credentials the harness gives each function.

import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startCloudFront } from './cloudfront.mjs';
import { KeyValueStores } from './kvs.mjs';
import { jsonCall, queryCall, request, s3Client, snsClient, xmlText } from './client.mjs';
import { FaultList, Meter, createGateway } from './gateway.mjs';
import { authorize } from './iam.mjs';
import { LambdaRunner } from './lambda.mjs';
import { ApiError, StatesService } from './states-api.mjs';
import { ACCOUNT_ID, REGION, Stack, TEMPLATE_PREFIX, loadTemplate } from './template.mjs';

/** The tests' own key (tests/common/aws.rs): allowed everything, like the account's administrator. */
export const ADMIN_ACCESS_KEYS = new Set(['AKIAPKGRELAYTESTONLY', ...(process.env.LOCALAWS_ADMIN_KEYS ?? '').split(',').filter(Boolean)]);
const ADMIN_KEY = 'AKIAPKGRELAYTESTONLY';

const deepCopy = (v) => JSON.parse(JSON.stringify(v));

/** The role session a Lambda function or a state machine acts as. */
function sessionArn(roleName, session) {
  return `arn:aws:sts::${ACCOUNT_ID}:assumed-role/${roleName}/${session}`;
}

let deploymentCounter = 0;

/**
 * An EventBridge Scheduler schedule of the template, as recorded at deploy
 * time. Nothing fires on a clock: a test fires it (POST
 * …/schedules/{name}/fire) and localaws does what the scheduler would do then.
 */
class Schedule {
  constructor(sc) {
    Object.assign(this, sc);
    this.identityPolicies = sc.identityPolicies;
    this.invocations = [];
  }

  describe() {
    return {
      name: this.name,
      arn: this.arn,
      group: this.groupName,
      expression: this.expression,
      timezone: this.timezone,
      state: this.state,
      flexible_time_window: this.flexibleTimeWindow,
      target_arn: this.target.arn,
      input: this.target.input,
      role_arn: this.target.roleArn,
      dead_letter_arn: this.target.deadLetterArn ?? null,
      retry_policy: this.target.retryPolicy ?? null,
      invocations: this.invocations,
    };
  }
}

class Deployment {
  constructor({ server, stack, id, options }) {
    this.server = server;
    this.stack = stack;
    this.id = id;
    this.prefix = stack.prefix;
    this.options = { retryDelayMs: options.retry_delay_ms ?? 20, configDir: options.config_dir, lambdaEnv: options.lambda_env ?? {} };
    // Which of the app's stacks this deployment is (`pipeline`, the package
    // pipeline stack, or `media`): its state machine role is edited and
    // metered under that name.
    this.stackKey = stack.stackKey ?? 'pipeline';
    this.smName = this.stackKey;
    this.functions = stack.functions();
    this.stateMachine = stack.stateMachines()[0];
    this.distribution = stack.distributions()[0];
    this.meter = new Meter();
    this.logs = [];
    this.denials = [];
    this.keys = {};
    // Policies as synthesized, to restore after a test removed a statement.
    this.original = {};
    for (const fn of Object.values(this.functions)) this.original[fn.name] = deepCopy(fn.identityPolicies);
    if (this.stateMachine) this.original[this.smName] = deepCopy(this.stateMachine.identityPolicies);
  }

  /** Everything a role principal needs in the gateway's registry. */
  principals() {
    const out = [];
    for (const fn of Object.values(this.functions)) {
      out.push({ name: fn.name, roleName: fn.roleName, roleArn: fn.roleArn, identityPolicies: fn.identityPolicies, session: fn.functionName });
    }
    if (this.stateMachine) {
      const sm = this.stateMachine;
      out.push({ name: this.smName, roleName: sm.roleName, roleArn: sm.roleArn, identityPolicies: sm.identityPolicies, session: 'states' });
    }
    return out;
  }

  functionByArn(arn) {
    // Qualified ARNs (a version or alias) invoke the same binary.
    const base = arn.split(':').slice(0, 7).join(':');
    return Object.values(this.functions).find((f) => f.arn === base) ?? null;
  }

  lambdaEnvironment(fn) {
    const key = this.keys[fn.name];
    const env = {
      AWS_ENDPOINT_URL: this.server.url,
      AWS_ACCESS_KEY_ID: key.accessKeyId,
      AWS_SECRET_ACCESS_KEY: key.secretAccessKey,
      AWS_SESSION_TOKEN: key.sessionToken,
      PKGRELAY_S3_FORCE_PATH_STYLE: 'true',
      ...this.options.lambdaEnv,
    };
    // The bundled config/ directory (/var/task/config on Lambda) is the test's.
    if (this.options.configDir && fn.environment.CONFIG_LOCATION === '/var/task/config') env.CONFIG_LOCATION = this.options.configDir;
    return env;
  }

  functionLog(name, line) {
    this.logs.push(`[${name}] ${line}`);
    if (this.logs.length > 200000) this.logs.splice(0, 100000);
  }

  /** Remove (or restore) one statement of a role's policies, by Sid. */
  editStatement(roleName, sid, action) {
    // The state machine's role: its principal name (`pipeline`, `media`) or `state-machine`;
    // a schedule's role: `schedule:<name>`.
    if (roleName === 'state-machine') roleName = this.smName;
    const schedule = roleName?.startsWith('schedule:') ? this.schedules?.get(roleName.slice('schedule:'.length)) : undefined;
    const holder = schedule ?? (roleName === this.smName ? this.stateMachine : this.functions[roleName]);
    if (!holder) throw new ApiError('NotFound', `no role for ${roleName}`, 404);
    if (action === 'restore') {
      holder.identityPolicies.splice(0, holder.identityPolicies.length, ...deepCopy(this.original[roleName]));
      return { restored: roleName };
    }
    let removed = null;
    for (const p of holder.identityPolicies) {
      const statements = Array.isArray(p.policy.Statement) ? p.policy.Statement : [p.policy.Statement];
      const i = statements.findIndex((s) => s.Sid === sid);
      if (i >= 0) {
        removed = statements.splice(i, 1)[0];
        p.policy.Statement = statements;
      }
    }
    if (!removed) throw new ApiError('NotFound', `role of ${roleName} has no statement ${sid}`, 404);
    return { removed };
  }

  info() {
    const functions = {};
    for (const fn of Object.values(this.functions)) {
      const key = this.keys[fn.name];
      functions[fn.name] = {
        function_name: fn.functionName,
        arn: fn.arn,
        role_arn: fn.roleArn,
        access_key_id: key.accessKeyId,
        secret_access_key: key.secretAccessKey,
        memory_mib: fn.memoryMiB,
        timeout_seconds: fn.timeoutSeconds,
        ephemeral_mib: fn.ephemeralMiB,
        // What the binary sees when localaws invokes it (but WORK_DIR, fresh each time).
        environment: { ...fn.environment, ...this.lambdaEnvironment(fn), AWS_REGION: REGION },
      };
    }
    const outputs = this.stack.outputs();
    if (this.cloudfront) outputs.RepositoryUrl = this.cloudfront.url;
    return {
      id: this.id,
      stack: this.stackKey,
      stack_name: this.stack.stackName,
      prefix: this.prefix,
      gateway_url: this.server.url,
      cloudfront_url: this.cloudfront?.url,
      distribution_arn: this.distribution?.arn,
      state_machine_arn: this.stateMachine?.arn,
      // The state machine's role and the key its S3 and SNS calls are signed with.
      state_machine: this.stateMachine
        ? {
            name: this.smName,
            arn: this.stateMachine.arn,
            role_arn: this.stateMachine.roleArn,
            access_key_id: this.keys[this.smName]?.accessKeyId,
            secret_access_key: this.keys[this.smName]?.secretAccessKey,
          }
        : undefined,
      outputs,
      // The shape of `cdk deploy -c env=dev --outputs-file` (what the CLI reads):
      // this deployment stands for the dev stack.
      cdk_outputs: { [this.stack.templateStackName]: outputs },
      functions,
      kms_keys: Object.fromEntries([...this.kmsKeys.values()].map((k) => [k.logicalId, { key_id: k.keyId, arn: k.arn }])),
      encrypted: {
        buckets: Object.fromEntries([...this.bucketKeys].map(([b, k]) => [b, k])),
        topics: Object.fromEntries([...this.topicKeys].map(([t, k]) => [t, k])),
        secrets: Object.fromEntries([...this.secretKeys].map(([t, k]) => [t, k])),
      },
      queues: Object.fromEntries([...this.queues.values()].map((q) => [q.logicalId, { name: q.name, url: q.url, arn: q.arn }])),
      schedules: Object.fromEntries([...(this.schedules ?? new Map()).values()].map((sc) => [sc.name, sc.describe()])),
      lambda_limits: this.server.runner.mode,
    };
  }
}

export class Server {
  /**
   * `templateFile`: the package pipeline stack's template (the default of
   * every deployment); `templates`: `{ [stack]: file }` for the app's other
   * stacks (`media`), read when a deployment first asks for them.
   */
  constructor({ motoUrl, templateFile, templates = {}, binDir, log }) {
    this.motoUrl = motoUrl;
    this.templateFiles = { ...templates };
    if (templateFile) this.templateFiles.pipeline = templateFile;
    this.templates = new Map();
    this.template = this.templateFiles.pipeline ? this.templateOf('pipeline') : null;
    this.log = log;
    this.runner = new LambdaRunner({ binDir, log });
    this.deployments = new Map();
    this.keys = new Map(); // access key -> principal
    this.kvs = new KeyValueStores();
    this.faults = new FaultList();
    this.states = new StatesService({
      runner: this.runner,
      authorize: (sm, action, resource) => this.authorizeRole(sm.identityPolicies, sessionArn(sm.roleName, 'states'), action, resource),
      log,
    });
    const registry = {
      principalForAccessKey: (akid) => (ADMIN_ACCESS_KEYS.has(akid) ? { kind: 'admin' } : this.keys.get(akid) ?? null),
      resourcePolicy: (service, arn) => this.resourcePolicy(service, arn),
      deploymentForResource: (service, arn) => this.deploymentForResource(service, arn)?.id ?? null,
      faults: this.faults,
      kvs: this.kvs,
      snsPublished: (id, topicArn, subject, message) => this.deliverSns(id, topicArn, subject, message),
      meter: (id) => this.deployments.get(id)?.meter,
      denial: (id, what) => this.deployments.get(id)?.denials.push(what),
      // KMS (kms.mjs): which key encrypts a bucket, topic or secret, and the key itself.
      kms: {
        bucketKey: (bucket) => this.findInDeployments((d) => d.bucketKeys?.get(bucket)),
        topicKey: (arn) => this.findInDeployments((d) => d.topicKeys?.get(arn)),
        secretKey: (id) =>
          this.findInDeployments((d) => {
            for (const [arn, key] of d.secretKeys ?? []) {
              // A full ARN, the ARN without its random suffix, or the name.
              const partial = arn.replace(/-[A-Za-z0-9]{6}$/, '');
              if (id === arn || id === partial || id === partial.split(':secret:')[1]) return key;
            }
            return undefined;
          }),
        keyArn: (id) =>
          this.findInDeployments((d) => [...(d.kmsKeys?.values() ?? [])].find((k) => k.arn === id || k.keyId === id)?.arn),
        key: (arn) => this.findInDeployments((d) => d.kmsKeys?.get(arn)),
      },
    };
    this.registry = registry;
    this.gateway = createGateway({ motoUrl, registry, log });
  }

  /** The synthesized template of one stack of the app (`pipeline`, `media`), read once. */
  templateOf(stackKey) {
    if (!this.templates.has(stackKey)) {
      const file = this.templateFiles[stackKey];
      if (!file) {
        throw new ApiError('NotFound', `no template for the stack ${JSON.stringify(stackKey)} (known: ${Object.keys(this.templateFiles).join(', ') || 'none'}; server.mjs --template-dir or --template ${stackKey}=FILE)`, 404);
      }
      this.templates.set(stackKey, loadTemplate(file));
    }
    return this.templates.get(stackKey);
  }

  async authorizeRole(identityPolicies, principal, action, resource) {
    const verdict = await authorize([{ action, resource, context: {} }], {
      principal,
      identityPolicies,
      resourcePolicyFor: () => undefined,
      accountId: ACCOUNT_ID,
    });
    return verdict;
  }

  findInDeployments(fn) {
    for (const d of this.deployments.values()) {
      const v = fn(d);
      if (v !== undefined && v !== null) return v;
    }
    return null;
  }

  resourcePolicy(service, arn) {
    const d = this.deploymentForResource(service, arn);
    if (!d) return undefined;
    if (service === 's3') return d.bucketPolicies.get(arn.replace(/^arn:aws:s3:::/, '').split('/')[0]);
    if (service === 'sns') return d.topicPolicies.get(arn);
    return undefined;
  }

  deploymentForResource(service, arn) {
    if (!arn) return null;
    for (const d of this.deployments.values()) {
      if (service === 's3' && d.bucketNames.has(arn.replace(/^arn:aws:s3:::/, '').split('/')[0])) return d;
      if (service === 'dynamodb' && d.tableNames.has(arn.split(':table/')[1]?.split('/')[0])) return d;
      if (service === 'sns' && d.topicPolicies.has(arn)) return d;
      if (service === 'secretsmanager' && d.secretArns.has(arn)) return d;
      if (service === 'cloudfront-keyvaluestore' && d.kvsArns.has(arn)) return d;
    }
    return null;
  }

  /**
   * SNS delivers a message published to a topic to its Lambda subscriptions,
   * asynchronously (the publisher does not wait): each function runs as
   * Lambda would run it, with the SNS event. A subscription whose function
   * has no Lambda permission for the topic gets nothing (AWS logs a
   * delivery failure), which the deployment's denials record.
   */
  deliverSns(deploymentId, topicArn, subject, message) {
    const d = this.deployments.get(deploymentId);
    if (!d) return;
    for (const sub of d.stack.lambdaSubscriptions().filter((s) => s.topicArn === topicArn)) {
      const fn = d.functionByArn(sub.functionArn);
      if (!fn) continue;
      if (!sub.permitted) {
        d.denials.push({ kind: 'sns-delivery', topicArn, function: fn.name, reason: 'no Lambda permission lets sns.amazonaws.com invoke it for this topic' });
        continue;
      }
      const event = {
        Records: [
          {
            EventSource: 'aws:sns',
            EventVersion: '1.0',
            EventSubscriptionArn: sub.subscriptionArn,
            Sns: {
              Type: 'Notification',
              MessageId: crypto.randomUUID(),
              TopicArn: topicArn,
              Subject: subject ?? null,
              Message: message,
              Timestamp: new Date().toISOString(),
              SignatureVersion: '1',
              MessageAttributes: {},
            },
          },
        ],
      };
      d.snsDeliveries = (d.snsDeliveries ?? 0) + 1;
      const run = this.runner
        .invoke(fn, event, { env: d.lambdaEnvironment(fn), onLog: (line) => d.functionLog(fn.name, line) })
        .then((outcome) => {
          d.snsDeliveryOutcomes = [...(d.snsDeliveryOutcomes ?? []), { function: fn.name, topicArn, ok: outcome.ok, error: outcome.errorMessage }];
        });
      d.pendingDeliveries = [...(d.pendingDeliveries ?? []), run];
    }
  }

  moto(service, args) {
    return request(this.motoUrl, { accessKeyId: ADMIN_KEY, service, ...args });
  }

  /** Create the stack's data resources in moto, as CloudFormation would. */
  async deploy(options) {
    const stackKey = options.stack ?? 'pipeline';
    if (!/^[a-z][a-z0-9-]*$/.test(stackKey)) throw new ApiError('ValidationException', `stack ${JSON.stringify(stackKey)} is not a stack name`, 400);
    const template = this.templateOf(stackKey);
    const n = ++deploymentCounter;
    const id = `t${process.pid % 10000}x${n}`;
    const stack = new Stack(template, { prefix: `pkgrelay-${id}`, stackKey });
    const d = new Deployment({ server: this, stack, id, options });
    d.bucketNames = new Set();
    // KMS (kms.mjs): the customer managed keys, and which bucket, topic and secret each encrypts.
    d.kmsKeys = new Map(); // key ARN -> {logicalId, keyId, arn, policy, enabled}
    d.bucketKeys = new Map(); // bucket name -> key ARN
    d.topicKeys = new Map(); // topic ARN -> key ARN
    d.secretKeys = new Map(); // secret ARN -> key ARN
    d.queues = new Map(); // queue ARN -> {logicalId, name, url, arn}
    d.sqsMessages = []; // what localaws itself sent to a queue (a schedule's dead letters)
    for (const key of stack.kmsKeys()) {
      // moto's KMS is not asked: nothing is encrypted there, and moto would not
      // enforce the key policy. The key and its policy are what localaws checks.
      d.kmsKeys.set(key.arn, key);
    }
    d.bucketPolicies = new Map();
    d.tableNames = new Set();
    d.topicPolicies = new Map();
    d.secretArns = new Set();
    d.kvsArns = new Set();
    // CloudFront key value stores: kvs.mjs, not moto.
    for (const logical of stack.ofType('AWS::CloudFront::KeyValueStore')) {
      const arn = stack.attr(logical, 'Arn');
      this.kvs.create(arn, stack.resource(logical).Properties?.Name ?? logical);
      d.kvsArns.add(arn);
    }

    for (const logical of stack.ofType('AWS::S3::Bucket')) {
      const name = stack.ref(logical);
      const res = await this.moto('s3', { method: 'PUT', path: `/${name}` });
      if (res.status !== 200) throw new Error(`CreateBucket ${name}: HTTP ${res.status} ${res.body}`);
      if (stack.resource(logical).Properties?.VersioningConfiguration?.Status === 'Enabled') {
        const body = '<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Status>Enabled</Status></VersioningConfiguration>';
        await this.moto('s3', { method: 'PUT', path: `/${name}?versioning`, body });
      }
      if (stack.resource(logical).Properties?.NotificationConfiguration?.EventBridgeConfiguration) {
        const body = '<NotificationConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><EventBridgeConfiguration></EventBridgeConfiguration></NotificationConfiguration>';
        const res = await this.moto('s3', { method: 'PUT', path: `/${name}?notification`, body });
        if (res.status !== 200) throw new Error(`PutBucketNotificationConfiguration ${name}: HTTP ${res.status} ${res.body}`);
      }
      d.bucketNames.add(name);
      const bucketKey = stack.bucketKey(logical);
      if (bucketKey) d.bucketKeys.set(name, bucketKey);
      const policy = stack.bucketPolicy(logical);
      if (policy) d.bucketPolicies.set(name, policy);
    }
    for (const logical of stack.ofType('AWS::DynamoDB::Table')) {
      const p = stack.resolve(stack.resource(logical).Properties, logical);
      const body = {
        TableName: p.TableName,
        KeySchema: p.KeySchema,
        AttributeDefinitions: p.AttributeDefinitions,
        BillingMode: p.BillingMode ?? 'PROVISIONED',
      };
      if (p.GlobalSecondaryIndexes) body.GlobalSecondaryIndexes = p.GlobalSecondaryIndexes.map((g) => ({ IndexName: g.IndexName, KeySchema: g.KeySchema, Projection: g.Projection }));
      if (body.BillingMode === 'PROVISIONED') body.ProvisionedThroughput = p.ProvisionedThroughput;
      await jsonCall(this.motoUrl, { accessKeyId: ADMIN_KEY, service: 'dynamodb', target: 'DynamoDB_20120810.CreateTable', body });
      d.tableNames.add(p.TableName);
    }
    for (const logical of stack.ofType('AWS::SecretsManager::Secret')) {
      const p = stack.resource(logical).Properties;
      // Created without a value, as the stack creates it; the operator (the test) puts the key in.
      const out = await jsonCall(this.motoUrl, {
        accessKeyId: ADMIN_KEY,
        service: 'secretsmanager',
        target: 'secretsmanager.CreateSecret',
        version: '1.1',
        body: { Name: p.Name, Description: p.Description },
      });
      stack.setPhysical(logical, { ref: out.ARN });
      d.secretArns.add(out.ARN);
      const secretKey = stack.keyArn(stack.resolve(p.KmsKeyId, `${logical}.KmsKeyId`));
      if (secretKey) d.secretKeys.set(out.ARN, secretKey);
    }
    for (const logical of stack.ofType('AWS::SNS::Topic')) {
      const p = stack.resource(logical).Properties;
      const xml = await queryCall(this.motoUrl, { accessKeyId: ADMIN_KEY, service: 'sns', params: { Action: 'CreateTopic', Name: p.TopicName } });
      const arn = xmlText(xml, 'TopicArn');
      stack.setPhysical(logical, { ref: arn });
      const policy = stack.topicPolicy(logical);
      d.topicPolicies.set(arn, policy ?? null);
      const topicKey = stack.keyArn(stack.resolve(p.KmsMasterKeyId, `${logical}.KmsMasterKeyId`));
      if (topicKey) d.topicKeys.set(arn, topicKey);
    }
    for (const logical of stack.ofType('AWS::SQS::Queue')) {
      // Dead-letter queues: created in moto so that what lands there can be read.
      const p = stack.resolve(stack.resource(logical).Properties ?? {}, `${logical}.Properties`);
      const name = p.QueueName ?? `${stack.prefix}-${logical}`.slice(0, 80);
      const xml = await queryCall(this.motoUrl, { accessKeyId: ADMIN_KEY, service: 'sqs', params: { Action: 'CreateQueue', QueueName: name } });
      const url = xmlText(xml, 'QueueUrl');
      const arn = `arn:aws:sqs:${REGION}:${ACCOUNT_ID}:${name}`;
      stack.setPhysical(logical, { ref: url, attrs: { Arn: arn, QueueName: name, QueueUrl: url } });
      d.queues.set(arn, { logicalId: logical, name, url, arn });
    }
    // Re-read what depends on physical names learned above.
    d.functions = stack.functions();
    d.stateMachine = stack.stateMachines()[0];
    for (const fn of Object.values(d.functions)) d.original[fn.name] = deepCopy(fn.identityPolicies);
    if (d.stateMachine) d.original[d.smName] = deepCopy(d.stateMachine.identityPolicies);
    d.schedules = new Map(stack.schedules().map((sc) => [sc.name, new Schedule(sc)]));
    for (const sc of d.schedules.values()) d.original[`schedule:${sc.name}`] = deepCopy(sc.identityPolicies);
    for (const p of d.principals()) {
      const accessKeyId = `AKIA${crypto.randomBytes(8).toString('hex').toUpperCase()}`;
      const key = { accessKeyId, secretAccessKey: crypto.randomBytes(20).toString('base64'), sessionToken: `localaws-session-${p.name}` };
      d.keys[p.name] = key;
      this.keys.set(accessKeyId, {
        kind: 'role',
        deploymentId: id,
        name: p.name,
        roleArn: p.roleArn,
        roleName: p.roleName,
        sessionArn: sessionArn(p.roleName, p.session),
        // Live: a removed statement takes effect on the next request.
        get identityPolicies() {
          return p.name === d.smName ? d.stateMachine.identityPolicies : d.functions[p.name].identityPolicies;
        },
      });
    }
    const smKey = d.keys[d.smName]?.accessKeyId;
    d.stateMachineS3 = s3Client(this.url, smKey);
    d.stateMachineSns = snsClient(this.url, smKey);
    if (d.stateMachine) this.states.registerStateMachine(d, d.stateMachine);

    if (d.distribution) {
      const dist = d.distribution;
      const bucket = stack.ref(dist.originBucketLogicalId);
      const cfKey = `AKIA${crypto.randomBytes(8).toString('hex').toUpperCase()}`;
      this.keys.set(cfKey, {
        kind: 'service',
        deploymentId: id,
        name: 'cloudfront',
        principal: 'cloudfront.amazonaws.com',
        context: { 'aws:SourceArn': dist.arn, 'aws:SourceAccount': ACCOUNT_ID },
      });
      const cfS3 = s3Client(this.url, cfKey);
      d.cloudfront = await startCloudFront({
        distribution: dist,
        // The gateway decides (bucket policy, as the service principal); nothing to add here.
        authorize: () => ({ allowed: true }),
        fetchObject: (key, { method, headers }) => cfS3.object(bucket, key, { method, headers }),
        // What `import cf from 'cloudfront'` gives a function with a key value store.
        cloudfrontModule: (arn) => this.kvs.cloudfrontModule(arn),
        log: this.log,
      });
    }
    this.deployments.set(id, d);
    this.log({ event: 'deployed', id, prefix: d.prefix });
    return d;
  }

  /**
   * What EventBridge Scheduler does when a schedule fires: it assumes the
   * schedule's role and calls the target with the schedule's input
   * (states:StartExecution for a state machine target, the execution named by
   * the scheduler). The role's policy decides; a refusal is a denial of the
   * deployment, and the event goes to the schedule's dead-letter queue when it
   * has one (AWS: after the retry policy is exhausted; here at once, a denial
   * is not retried by anything). `body`: `{ input? }` replaces the template's
   * input (a test's manual trigger), `{ name? }` the execution's name.
   */
  async fireSchedule(d, name, body = {}) {
    const sc = d.schedules.get(name);
    if (!sc) throw new ApiError('ResourceNotFoundException', `Schedule ${name} does not exist (known: ${[...d.schedules.keys()].join(', ') || 'none'})`, 404);
    const input = body.input === undefined ? sc.target.input ?? '{}' : typeof body.input === 'string' ? body.input : JSON.stringify(body.input);
    const at = new Date();
    const principal = { kind: 'role', roleArn: `arn:aws:iam::${ACCOUNT_ID}:role/${sc.roleName}`, sessionArn: sessionArn(sc.roleName, 'scheduler') };
    const targetArn = sc.target.arn;
    const entry = { time: at.toISOString(), target_arn: targetArn };
    if (!/^arn:aws:states:[^:]+:\d{12}:stateMachine:/.test(targetArn ?? '')) {
      throw new ApiError('ValidationException', `schedule ${name}: localaws fires state machine targets only (target ${targetArn})`, 400);
    }
    const verdict = await authorize([{ action: 'states:StartExecution', resource: targetArn, context: {} }], {
      principal,
      identityPolicies: sc.identityPolicies,
      resourcePolicyFor: () => undefined,
      accountId: ACCOUNT_ID,
    });
    if (!verdict.allowed) {
      const reason = verdict.reason;
      d.denials.push({
        time: at.toISOString(),
        kind: 'denied',
        event: 'denied',
        deployment: d.id,
        caller: `schedule:${name}`,
        principal: principal.sessionArn,
        service: 'states',
        operation: 'StartExecution',
        action: 'states:StartExecution',
        resource: targetArn,
        reason,
        explicit: verdict.explicit,
        statementId: verdict.statementId,
        identityPolicies: sc.identityPolicies.map((p) => p.name),
      });
      entry.outcome = 'denied';
      entry.error = `User: ${principal.sessionArn} is not authorized to perform: states:StartExecution on resource: ${targetArn} ${verdict.explicit ? `with an ${reason}` : `because ${reason}`}`;
      if (sc.target.deadLetterArn) entry.dead_letter = await this.deadLetter(d, sc, input, entry.error);
      sc.invocations.push(entry);
      return { fired: name, started: false, ...entry };
    }
    let record;
    try {
      // The scheduler names executions itself (an id of the invocation).
      record = this.states.start(targetArn, { name: body.name ?? `${name}-${crypto.randomUUID()}`.slice(0, 80), input });
    } catch (e) {
      entry.outcome = 'failed';
      entry.error = `${e.type ?? e.name}: ${e.message}`;
      if (sc.target.deadLetterArn) entry.dead_letter = await this.deadLetter(d, sc, input, entry.error);
      sc.invocations.push(entry);
      return { fired: name, started: false, ...entry };
    }
    entry.outcome = 'started';
    entry.execution_arn = record.arn;
    sc.invocations.push(entry);
    return { fired: name, started: true, execution_arn: record.arn, start_date: record.startDate, input };
  }

  /** A failed schedule invocation on the schedule's DLQ, with the attributes Scheduler sets. */
  async deadLetter(d, sc, input, error) {
    const queue = d.queues.get(sc.target.deadLetterArn);
    const message = { body: input, attributes: { ERROR_CODE: 'AccessDeniedException', ERROR_MESSAGE: error, RETRY_ATTEMPTS: '0', SCHEDULE_ARN: sc.arn, TARGET_ARN: sc.target.arn } };
    d.sqsMessages.push({ queue_arn: sc.target.deadLetterArn, ...message });
    if (queue) {
      const params = { Action: 'SendMessage', QueueUrl: queue.url, MessageBody: input };
      let i = 1;
      for (const [k, v] of Object.entries(message.attributes)) {
        params[`MessageAttribute.${i}.Name`] = k;
        params[`MessageAttribute.${i}.Value.DataType`] = 'String';
        params[`MessageAttribute.${i}.Value.StringValue`] = v;
        i += 1;
      }
      await queryCall(this.motoUrl, { accessKeyId: ADMIN_KEY, service: 'sqs', params }).catch((e) => this.log({ event: 'dlq-send-failed', error: String(e) }));
    }
    return sc.target.deadLetterArn;
  }

  async undeploy(id) {
    const d = this.deployments.get(id);
    if (!d) return;
    this.states.unregisterDeployment(d);
    for (const [k, p] of this.keys) if (p.deploymentId === id) this.keys.delete(k);
    await d.cloudfront?.close();
    for (const arn of d.kvsArns ?? []) this.kvs.remove(arn);
    this.deployments.delete(id);
  }

  deployment(id) {
    const d = this.deployments.get(id);
    if (!d) throw new ApiError('NotFound', `no deployment ${id}`, 404);
    return d;
  }

  async admin(req, res, body) {
    const url = new URL(req.url, 'http://localhost');
    const parts = url.pathname.split('/').filter(Boolean).slice(1); // drop _localaws
    const json = body.length ? JSON.parse(body.toString('utf8')) : {};
    const m = req.method;
    if (parts[0] === 'health') return { ok: true, lambda_limits: this.runner.mode };
    if (parts[0] === 'deployments' && parts.length === 1 && m === 'POST') return (await this.deploy(json)).info();
    if (parts[0] === 'deployments' && parts.length >= 2) {
      const d = this.deployment(parts[1]);
      const rest = parts.slice(2).join('/');
      if (rest === '' && m === 'GET') return d.info();
      if (rest === '' && m === 'DELETE') {
        await this.undeploy(d.id);
        return { deleted: d.id };
      }
      if (rest === 'logs') return { logs: d.logs.join('\n') };
      if (rest === 'meter' && m === 'GET') return d.meter.snapshot();
      if (rest === 'meter/reset') {
        d.meter.reset();
        return { reset: true };
      }
      if (rest === 'denials') return { denials: d.denials };
      // The deployment's key value stores: item count and size.
      if (rest === 'kvs') {
        return { stores: [...(d.kvsArns ?? [])].map((arn) => ({ arn, ...this.kvs.get(arn).describe() })) };
      }
      // SNS deliveries to Lambda subscriptions, once every one begun has ended.
      if (rest === 'sns-deliveries') {
        await Promise.all(d.pendingDeliveries ?? []);
        return { deliveries: d.snsDeliveryOutcomes ?? [] };
      }
      if (rest === 'statements' && m === 'POST') return d.editStatement(json.role, json.sid, json.action);
      if (rest === 'schedules' && m === 'GET') return { schedules: [...d.schedules.values()].map((sc) => sc.describe()) };
      if (parts[2] === 'schedules' && parts[4] === 'fire' && m === 'POST') return this.fireSchedule(d, decodeURIComponent(parts[3]), json);
      // What localaws put on the deployment's queues (a schedule's dead letters).
      if (rest === 'dead-letters') return { messages: d.sqsMessages };
      // One invocation of a function as Lambda would run it (its role, memory size, timeout).
      if (parts[2] === 'functions' && parts[4] === 'invoke' && m === 'POST') {
        const fn = d.functions[parts[3]];
        if (!fn) throw new ApiError('NotFound', `no function ${parts[3]}`, 404);
        const outcome = await this.runner.invoke(fn, json.payload ?? {}, {
          env: d.lambdaEnvironment(fn),
          onLog: (line) => d.functionLog(fn.name, line),
        });
        return { ...outcome, limits: this.runner.mode };
      }
      if (rest === 'options' && m === 'POST') {
        if (json.retry_delay_ms !== undefined) d.options.retryDelayMs = json.retry_delay_ms;
        if (json.lambda_env) d.options.lambdaEnv = { ...d.options.lambdaEnv, ...json.lambda_env };
        for (const k of json.unset_lambda_env ?? []) delete d.options.lambdaEnv[k];
        return { options: d.options };
      }
    }
    if (parts[0] === 'faults') {
      if (m === 'POST') return { fault: this.faults.add(json) };
      if (m === 'DELETE' && parts[1]) return { removed: this.faults.remove(parts[1]) };
      if (m === 'DELETE') {
        this.faults.clear();
        return { cleared: true };
      }
      return { faults: this.faults.list() };
    }
    if (parts[0] === 'executions' && parts[1] === 'report') return this.states.report(url.searchParams.get('arn'));
    throw new ApiError('NotFound', `no admin route ${m} ${url.pathname}`, 404);
  }

  async handle(req, res) {
    const target = req.headers['x-amz-target'] ?? '';
    const isAdmin = req.url.startsWith('/_localaws/');
    if (!isAdmin && !target.startsWith('AWSStepFunctions.')) {
      this.gateway.handle(req, res);
      return;
    }
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const body = Buffer.concat(chunks);
    try {
      const out = isAdmin ? await this.admin(req, res, body) : await this.states.handle(target.slice('AWSStepFunctions.'.length), body.length ? JSON.parse(body) : {});
      const text = JSON.stringify(out);
      res.writeHead(200, { 'content-type': isAdmin ? 'application/json' : 'application/x-amz-json-1.0', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    } catch (e) {
      const status = e instanceof ApiError ? e.status : 500;
      const type = e instanceof ApiError ? e.type : 'InternalFailure';
      if (!(e instanceof ApiError)) this.log({ event: 'error', error: String(e?.stack ?? e) });
      const text = JSON.stringify({ __type: type, message: e.message });
      res.writeHead(status, { 'content-type': 'application/x-amz-json-1.0', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    }
  }

  listen(host, port) {
    return new Promise((resolve) => {
      this.http = http.createServer((req, res) => this.handle(req, res));
      this.http.listen(port, host, () => {
        const a = this.http.address();
        this.url = `http://${a.address}:${a.port}`;
        resolve(this.url);
      });
    });
  }
}

/**
 * The templates the options name: `--template FILE` (the pipeline stack),
 * `--template NAME=FILE` (repeatable: `media=cdk/cdk.out.dev/pkgrelay-dev-media.template.json`),
 * `--template-dir DIR` (cdk.out: `pkgrelay-dev.template.json` is the
 * pipeline stack, each `pkgrelay-dev-NAME.template.json` the stack NAME).
 */
export function templateArgs(list, dir) {
  const templates = {};
  if (dir) {
    for (const f of fs.readdirSync(dir)) {
      const m = new RegExp(`^${TEMPLATE_PREFIX}(?:-([a-z][a-z0-9-]*))?\\.template\\.json$`).exec(f);
      if (m) templates[m[1] ?? 'pipeline'] = path.join(dir, f);
    }
  }
  for (const t of list) {
    const m = /^([a-z][a-z0-9-]*)=(.+)$/.exec(t);
    if (m) templates[m[1]] = m[2];
    else templates.pipeline = t;
  }
  const { pipeline: templateFile, ...others } = templates;
  return { templateFile, templates: others };
}

async function main() {
  const { values: args } = parseArgs({
    options: {
      moto: { type: 'string' },
      template: { type: 'string', multiple: true },
      'template-dir': { type: 'string' },
      'bin-dir': { type: 'string' },
      listen: { type: 'string', default: '127.0.0.1:0' },
      'port-file': { type: 'string' },
      log: { type: 'string' },
    },
  });
  for (const a of ['moto', 'bin-dir']) {
    if (!args[a]) throw new Error(`--${a} is required`);
  }
  const { templateFile, templates } = templateArgs(args.template ?? [], args['template-dir']);
  if (!templateFile && !Object.keys(templates).length) throw new Error('--template FILE, --template NAME=FILE or --template-dir DIR is required');
  const [host, port] = args.listen.split(':');
  if (host !== '127.0.0.1') throw new Error('localaws listens on 127.0.0.1 only');
  const logStream = args.log ? fs.createWriteStream(args.log, { flags: 'a' }) : process.stderr;
  const log = (o) => logStream.write(`${JSON.stringify({ t: new Date().toISOString(), ...o })}\n`);
  const server = new Server({ motoUrl: args.moto, templateFile, templates, binDir: args['bin-dir'], log });
  const url = await server.listen(host, Number(port));
  log({ event: 'listening', url, lambda_limits: server.runner.mode });
  if (args['port-file']) fs.writeFileSync(args['port-file'], url);
  const stop = () => {
    server.runner.close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

// Run as a program (tests import Server and templateArgs instead).
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    process.stderr.write(`localaws: ${e?.stack ?? e}\n`);
    process.exit(1);
  });
}
