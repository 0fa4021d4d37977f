// The synthesized CDK template as a test deployment sees it.
//
// `cdk synth -c env=dev -c bundling=false` writes cdk/cdk.out.dev/pkgrelay-dev.template.json;
// tests/run runs it before the tests, so that the roles, the bucket policy,
// the memory sizes and timeouts, the functions' environment and the state
// machine definition that the tests enforce are exactly those CDK would
// deploy, never a hand-made copy.
//
// A test deployment is that template instantiated under its own name prefix
// (`pkgrelay-dev` -> `pkgrelay-t7`) so that tests running side by side in one
// moto never share a table, a bucket or a state machine. This module resolves
// the intrinsic functions the template uses (Ref, Fn::GetAtt, Fn::Join,
// Fn::Sub, Fn::Select, Fn::Split, pseudo parameters) to the physical names of
// that deployment. Anything it cannot resolve is an error naming the
// resource and the path, never a silent placeholder.

import crypto from 'node:crypto';
import fs from 'node:fs';

export const ACCOUNT_ID = '123456789012';
export const REGION = 'us-east-1';

/** The stack prefix CDK gives the dev environment's named resources (cdk/lib/environments.ts). */
export const TEMPLATE_PREFIX = 'pkgrelay-dev';

export function loadTemplate(file) {
  let text;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`cannot read the synthesized template ${file} (tests/run synthesizes it with cdk/check): ${e.message}`);
  }
  return JSON.parse(text);
}

function shortHash(text, length, alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789') {
  const digest = crypto.createHash('sha256').update(text).digest();
  let out = '';
  for (let i = 0; out.length < length; i++) out += alphabet[digest[i % digest.length] % alphabet.length];
  return out;
}

/** A deterministic UUID-shaped id (KMS key ids and the like). */
function uuidFrom(text) {
  const h = crypto.createHash('sha256').update(text).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

/** Replace the template's name prefix in every string (names, descriptions, definitions). */
function renamePrefix(value, from, to) {
  if (from === to) return value;
  const pattern = new RegExp(`\\b${from.replace(/[-]/g, '\\-')}(?=[-/:"\\s]|$)`, 'g');
  const walk = (v) => {
    if (typeof v === 'string') return v.replace(pattern, to);
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    return v;
  };
  return walk(value);
}

/**
 * One instantiation of the template. `overrides` sets physical values the
 * deployment learned when it created the resource (e.g. a secret's ARN, which
 * Secrets Manager suffixes with random characters): `{ [logicalId]: { ref, attrs: {Arn: …} } }`.
 */
export class Stack {
  /**
   * `stackKey`: which stack of the CDK app the template is: `pipeline`
   * (`pkgrelay-dev`) or another (`media`: `pkgrelay-dev-media`), whose
   * names carry the same environment prefix (`pkgrelay-dev-media-status`,
   * functions `pkgrelay-dev-authenticate`): the rename covers both.
   */
  constructor(template, { prefix = TEMPLATE_PREFIX, accountId = ACCOUNT_ID, region = REGION, stackKey = 'pipeline' } = {}) {
    this.template = renamePrefix(template, TEMPLATE_PREFIX, prefix);
    this.stackKey = stackKey;
    this.templateStackName = stackKey === 'pipeline' ? TEMPLATE_PREFIX : `${TEMPLATE_PREFIX}-${stackKey}`;
    this.stackName = stackKey === 'pipeline' ? prefix : `${prefix}-${stackKey}`;
    this.prefix = prefix;
    this.accountId = accountId;
    this.region = region;
    this.resources = this.template.Resources ?? {};
    this.overrides = {};
  }

  /** Logical ids of the resources of `type`. */
  ofType(type) {
    return Object.keys(this.resources).filter((id) => this.resources[id].Type === type);
  }

  resource(logicalId) {
    const r = this.resources[logicalId];
    if (!r) throw new Error(`the template has no resource ${logicalId}`);
    return r;
  }

  setPhysical(logicalId, { ref, attrs = {} }) {
    this.overrides[logicalId] = { ref, attrs };
  }

  /** What `Ref` of a resource gives. */
  ref(logicalId) {
    const o = this.overrides[logicalId];
    if (o?.ref !== undefined) return o.ref;
    const r = this.resource(logicalId);
    const p = r.Properties ?? {};
    const a = this.accountId;
    const g = this.region;
    switch (r.Type) {
      case 'AWS::S3::Bucket':
        // Bucket names are global and DNS-shaped: the prefix plus a lower-case stub of the logical id.
        return p.BucketName ?? `${this.prefix}-${logicalId.toLowerCase().slice(0, 62 - this.prefix.length)}`;
      case 'AWS::DynamoDB::Table':
        return p.TableName ?? `${this.prefix}-${logicalId}`;
      case 'AWS::SNS::Topic':
        return `arn:aws:sns:${g}:${a}:${p.TopicName ?? `${this.prefix}-${logicalId}`}`;
      case 'AWS::SQS::Queue':
        return `http://sqs.${g}.localhost/${a}/${p.QueueName ?? `${this.prefix}-${logicalId}`}`;
      case 'AWS::Lambda::Function':
        return p.FunctionName ?? `${this.prefix}-${logicalId}`;
      case 'AWS::IAM::Role':
        return p.RoleName ?? `${this.prefix}-${logicalId}`.slice(0, 64);
      case 'AWS::IAM::Policy':
        return p.PolicyName ?? logicalId;
      case 'AWS::Logs::LogGroup':
        return p.LogGroupName ?? `/${this.prefix}/${logicalId}`;
      case 'AWS::StepFunctions::StateMachine':
        return `arn:aws:states:${g}:${a}:stateMachine:${p.StateMachineName ?? `${this.prefix}-${logicalId}`}`;
      case 'AWS::SecretsManager::Secret':
        return `arn:aws:secretsmanager:${g}:${a}:secret:${p.Name ?? logicalId}-${shortHash(`${this.prefix}/${logicalId}`, 6, 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ')}`;
      case 'AWS::CloudFront::Distribution':
        return `E${shortHash(`${this.prefix}/${logicalId}`, 13, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789')}`;
      case 'AWS::KMS::Key':
        return uuidFrom(`${this.prefix}/${logicalId}`);
      case 'AWS::Scheduler::Schedule':
        return p.Name ?? `${this.prefix}-${logicalId}`;
      default:
        return `${this.prefix}-${logicalId}`;
    }
  }

  /** What `Fn::GetAtt [logicalId, attr]` gives. */
  attr(logicalId, attr) {
    const o = this.overrides[logicalId];
    if (o?.attrs?.[attr] !== undefined) return o.attrs[attr];
    const r = this.resource(logicalId);
    const p = r.Properties ?? {};
    const a = this.accountId;
    const g = this.region;
    const ref = this.ref(logicalId);
    const fail = () => {
      throw new Error(`Fn::GetAtt ${logicalId}.${attr} (${r.Type}) is not known to tests/localaws/template.mjs`);
    };
    switch (r.Type) {
      case 'AWS::S3::Bucket':
        if (attr === 'Arn') return `arn:aws:s3:::${ref}`;
        if (attr === 'RegionalDomainName') return `${ref}.s3.${g}.amazonaws.com`;
        if (attr === 'DomainName') return `${ref}.s3.amazonaws.com`;
        return fail();
      case 'AWS::DynamoDB::Table':
        if (attr === 'Arn') return `arn:aws:dynamodb:${g}:${a}:table/${ref}`;
        return fail();
      case 'AWS::SNS::Topic':
        if (attr === 'TopicArn') return ref;
        if (attr === 'TopicName') return ref.split(':').pop();
        return fail();
      case 'AWS::SQS::Queue': {
        const name = p.QueueName ?? ref.split('/').pop();
        if (attr === 'Arn') return `arn:aws:sqs:${g}:${a}:${name}`;
        if (attr === 'QueueName') return name;
        if (attr === 'QueueUrl') return ref;
        return fail();
      }
      case 'AWS::Lambda::Function':
        if (attr === 'Arn') return `arn:aws:lambda:${g}:${a}:function:${ref}`;
        return fail();
      case 'AWS::IAM::Role':
        if (attr === 'Arn') return `arn:aws:iam::${a}:role/${ref}`;
        if (attr === 'RoleId') return `AROA${shortHash(ref, 17, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567')}`;
        return fail();
      case 'AWS::Logs::LogGroup':
        if (attr === 'Arn') return `arn:aws:logs:${g}:${a}:log-group:${ref}:*`;
        return fail();
      case 'AWS::StepFunctions::StateMachine':
        if (attr === 'Arn') return ref;
        if (attr === 'Name') return ref.split(':').pop();
        return fail();
      case 'AWS::CloudFront::Distribution':
        if (attr === 'DomainName') return `${ref.toLowerCase()}.cloudfront.net`;
        if (attr === 'Id') return ref;
        return fail();
      case 'AWS::CloudFront::OriginAccessControl':
        if (attr === 'Id') return `E${shortHash(`${this.prefix}/${logicalId}`, 13, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789')}`;
        return fail();
      case 'AWS::CloudFront::Function':
        if (attr === 'FunctionARN' || attr === 'FunctionArn') return `arn:aws:cloudfront::${a}:function/${p.Name ?? logicalId}`;
        return fail();
      case 'AWS::CloudFront::KeyValueStore':
        if (attr === 'Arn') return `arn:aws:cloudfront::${a}:key-value-store/${uuidFrom(`${this.prefix}/${logicalId}`)}`;
        if (attr === 'Id') return uuidFrom(`${this.prefix}/${logicalId}`);
        if (attr === 'Status') return 'READY';
        return fail();
      case 'AWS::KMS::Key':
        if (attr === 'Arn') return `arn:aws:kms:${g}:${a}:key/${ref}`;
        if (attr === 'KeyId') return ref;
        return fail();
      case 'AWS::Events::Rule':
        if (attr === 'Arn') return `arn:aws:events:${g}:${a}:rule/${p.Name ?? ref}`;
        return fail();
      case 'AWS::Scheduler::Schedule':
        if (attr === 'Arn') return `arn:aws:scheduler:${g}:${a}:schedule/${p.GroupName ?? 'default'}/${p.Name ?? ref}`;
        return fail();
      case 'AWS::SecretsManager::Secret':
        if (attr === 'Id') return ref;
        return fail();
      default:
        return fail();
    }
  }

  pseudo(name) {
    switch (name) {
      case 'AWS::AccountId':
        return this.accountId;
      case 'AWS::Region':
        return this.region;
      case 'AWS::Partition':
        return 'aws';
      case 'AWS::URLSuffix':
        return 'amazonaws.com';
      case 'AWS::StackName':
        return this.stackName;
      case 'AWS::NoValue':
        return undefined;
      default:
        throw new Error(`pseudo parameter ${name} is not known to tests/localaws/template.mjs`);
    }
  }

  /** Resolve every intrinsic function in `value` (deeply). `where` names the place for errors. */
  resolve(value, where = '') {
    if (Array.isArray(value)) return value.map((v, i) => this.resolve(v, `${where}[${i}]`)).filter((v) => v !== undefined);
    if (!value || typeof value !== 'object') return value;
    const keys = Object.keys(value);
    if (keys.length === 1) {
      const [k] = keys;
      const arg = value[k];
      switch (k) {
        case 'Ref':
          return arg.startsWith('AWS::') ? this.pseudo(arg) : this.ref(arg);
        case 'Fn::GetAtt': {
          const [id, attr] = Array.isArray(arg) ? arg : arg.split('.');
          return this.attr(id, attr);
        }
        case 'Fn::Join': {
          const [sep, parts] = arg;
          return this.resolve(parts, where).join(sep);
        }
        case 'Fn::Select': {
          const [index, list] = arg;
          return this.resolve(list, where)[Number(this.resolve(index, where))];
        }
        case 'Fn::Split': {
          const [sep, text] = arg;
          return String(this.resolve(text, where)).split(sep);
        }
        case 'Fn::Sub': {
          const [text, vars] = Array.isArray(arg) ? arg : [arg, {}];
          const resolvedVars = this.resolve(vars, where);
          return text.replace(/\$\{([^}!][^}]*)\}/g, (_, name) => {
            if (name in resolvedVars) return resolvedVars[name];
            if (name.startsWith('AWS::')) return this.pseudo(name);
            const [id, attr] = name.split('.');
            return attr ? this.attr(id, attr) : this.ref(id);
          });
        }
        default:
          if (k.startsWith('Fn::')) throw new Error(`${where}: ${k} is not known to tests/localaws/template.mjs`);
      }
    }
    return Object.fromEntries(
      Object.entries(value)
        .map(([k, v]) => [k, this.resolve(v, `${where}.${k}`)])
        .filter(([, v]) => v !== undefined),
    );
  }

  /** The identity policies of a role: its inline policies and every AWS::IAM::Policy attached to it. */
  rolePolicies(roleLogicalId) {
    const role = this.resource(roleLogicalId);
    const policies = [];
    for (const p of role.Properties?.Policies ?? []) {
      policies.push({ name: p.PolicyName, policy: this.resolve(p.PolicyDocument, `${roleLogicalId}.Policies`) });
    }
    for (const id of this.ofType('AWS::IAM::Policy')) {
      const props = this.resource(id).Properties;
      if ((props.Roles ?? []).some((r) => r?.Ref === roleLogicalId)) {
        policies.push({ name: props.PolicyName, policy: this.resolve(props.PolicyDocument, `${id}.PolicyDocument`) });
      }
    }
    if ((role.Properties?.ManagedPolicyArns ?? []).length > 0) {
      // An AWS managed policy's text is not in the template: refuse rather than guess.
      throw new Error(`role ${roleLogicalId} has managed policies, which tests/localaws cannot evaluate`);
    }
    return policies;
  }

  /** The role named by `Fn::GetAtt [Role, Arn]` in a resource property. */
  roleOf(value, where) {
    const id = value?.['Fn::GetAtt']?.[0];
    if (!id) throw new Error(`${where}: the role is not a Fn::GetAtt of a role in the template`);
    return id;
  }

  /**
   * The Lambda functions, keyed by their name without the stack prefix
   * (`check-sources`): ARN, role, memory, timeout, /tmp size, environment.
   */
  functions() {
    const out = {};
    for (const id of this.ofType('AWS::Lambda::Function')) {
      const p = this.resource(id).Properties;
      const functionName = this.ref(id);
      const short = functionName.startsWith(`${this.prefix}-`) ? functionName.slice(this.prefix.length + 1) : functionName;
      const roleId = this.roleOf(p.Role, `${id}.Role`);
      out[short] = {
        logicalId: id,
        name: short,
        functionName,
        arn: this.attr(id, 'Arn'),
        roleLogicalId: roleId,
        roleName: this.ref(roleId),
        roleArn: this.attr(roleId, 'Arn'),
        identityPolicies: this.rolePolicies(roleId),
        // Lambda's defaults when the template leaves them out.
        memoryMiB: p.MemorySize ?? 128,
        timeoutSeconds: p.Timeout ?? 3,
        ephemeralMiB: p.EphemeralStorage?.Size ?? 512,
        environment: this.resolve(p.Environment?.Variables ?? {}, `${id}.Environment`),
        architectures: p.Architectures ?? ['x86_64'],
      };
    }
    return out;
  }

  /** State machines: ARN, name, the definition with its DefinitionSubstitutions applied, role and policies. */
  stateMachines() {
    const out = [];
    for (const id of this.ofType('AWS::StepFunctions::StateMachine')) {
      const p = this.resource(id).Properties;
      let text = this.resolve(p.DefinitionString, `${id}.DefinitionString`);
      if (typeof text !== 'string') text = JSON.stringify(this.resolve(p.Definition, `${id}.Definition`));
      const subs = this.resolve(p.DefinitionSubstitutions ?? {}, `${id}.DefinitionSubstitutions`);
      // As Step Functions applies DefinitionSubstitutions: every ${Name}; an unknown one is left, then refused below.
      text = text.replace(/\$\{([A-Za-z0-9_]+)\}/g, (whole, name) => (name in subs ? subs[name] : whole));
      const unknown = [...text.matchAll(/\$\{([A-Za-z0-9_]+)\}/g)].map((m) => m[1]);
      if (unknown.length > 0) throw new Error(`${id}: no DefinitionSubstitutions for ${[...new Set(unknown)].join(', ')}`);
      const roleId = this.roleOf(p.RoleArn, `${id}.RoleArn`);
      out.push({
        logicalId: id,
        arn: this.ref(id),
        name: this.attr(id, 'Name'),
        type: p.StateMachineType ?? 'STANDARD',
        definition: JSON.parse(text),
        definitionText: text,
        roleLogicalId: roleId,
        roleArn: this.attr(roleId, 'Arn'),
        roleName: this.ref(roleId),
        identityPolicies: this.rolePolicies(roleId),
      });
    }
    return out;
  }

  /** The bucket policy of a bucket (by the bucket's logical id), resolved; undefined when none. */
  bucketPolicy(bucketLogicalId) {
    for (const id of this.ofType('AWS::S3::BucketPolicy')) {
      const p = this.resource(id).Properties;
      if (p.Bucket?.Ref === bucketLogicalId) return this.resolve(p.PolicyDocument, `${id}.PolicyDocument`);
    }
    return undefined;
  }

  topicPolicy(topicLogicalId) {
    for (const id of this.ofType('AWS::SNS::TopicPolicy')) {
      const p = this.resource(id).Properties;
      if ((p.Topics ?? []).some((t) => t?.Ref === topicLogicalId)) return this.resolve(p.PolicyDocument, `${id}.PolicyDocument`);
    }
    return undefined;
  }

  /**
   * The distributions: id, ARN, default root object, and per cache behavior
   * (the default one last) its path pattern and viewer-request function if
   * any: code and the ARN of its key value store.
   */
  distributions() {
    return this.ofType('AWS::CloudFront::Distribution').map((id) => {
      const config = this.resource(id).Properties.DistributionConfig;
      const functionsOf = (behavior) => {
        const functions = {};
        for (const assoc of behavior?.FunctionAssociations ?? []) {
          const fnId = assoc.FunctionARN?.['Fn::GetAtt']?.[0];
          if (!fnId) throw new Error(`${id}: a function association that is not a Fn::GetAtt of a CloudFront function`);
          const fn = this.resource(fnId).Properties;
          const kvs = (fn.FunctionConfig?.KeyValueStoreAssociations ?? []).map((k) =>
            this.resolve(k.KeyValueStoreARN, `${fnId}.KeyValueStoreAssociations`),
          );
          if (kvs.length > 1) throw new Error(`${fnId}: CloudFront allows one key value store per function`);
          functions[assoc.EventType] = { logicalId: fnId, code: fn.FunctionCode, runtime: fn.FunctionConfig?.Runtime, kvsArn: kvs[0] };
        }
        return functions;
      };
      const behaviors = [
        ...(config.CacheBehaviors ?? []).map((b) => ({ pathPattern: b.PathPattern, functions: functionsOf(b) })),
        { pathPattern: '*', functions: functionsOf(config.DefaultCacheBehavior) },
      ];
      const distributionId = this.ref(id);
      return {
        logicalId: id,
        id: distributionId,
        arn: `arn:aws:cloudfront::${this.accountId}:distribution/${distributionId}`,
        defaultRootObject: config.DefaultRootObject ?? '',
        originBucketLogicalId: (config.Origins ?? [])
          .map((o) => o.DomainName?.['Fn::GetAtt']?.[0])
          .find((b) => b && this.resources[b]?.Type === 'AWS::S3::Bucket'),
        behaviors,
        // The default behavior's (kept for callers that know only one).
        functions: behaviors[behaviors.length - 1].functions,
      };
    });
  }

  /**
   * SNS subscriptions that deliver to a Lambda function: `{topicArn,
   * functionArn, subscriptionArn, permitted}`, where `permitted` says whether
   * a Lambda permission lets sns.amazonaws.com invoke the function for that
   * topic (AWS::Lambda::Permission, its SourceArn if any): without one, SNS's
   * delivery fails, as on AWS.
   */
  lambdaSubscriptions() {
    const permissions = this.ofType('AWS::Lambda::Permission').map((id) => this.resolve(this.resource(id).Properties, `${id}.Properties`));
    return this.ofType('AWS::SNS::Subscription')
      .map((id) => ({ id, p: this.resolve(this.resource(id).Properties, `${id}.Properties`) }))
      .filter(({ p }) => p.Protocol === 'lambda')
      .map(({ id, p }) => ({
        topicArn: p.TopicArn,
        functionArn: p.Endpoint,
        subscriptionArn: `${p.TopicArn}:${uuidFrom(`${this.prefix}/${id}`)}`,
        permitted: permissions.some(
          (q) =>
            q.Principal === 'sns.amazonaws.com' &&
            ['lambda:InvokeFunction', 'lambda:*'].includes(q.Action) &&
            q.FunctionName === p.Endpoint &&
            (q.SourceArn === undefined || q.SourceArn === p.TopicArn),
        ),
      }));
  }

  /**
   * A KMS key as a resource property names it (`Ref` gives the key id,
   * `Fn::GetAtt Arn` the ARN, or an alias): the key's ARN when it is a key
   * of this account, `null` for an AWS managed key (`alias/aws/...`, whose key
   * policy lets every principal of the account use it through the service)
   * or when absent.
   */
  keyArn(value) {
    if (value === undefined || value === null || value === '') return null;
    const v = String(value);
    if (/^(arn:aws:kms:[^:]+:\d{12}:)?alias\/aws\//.test(v)) return null;
    const aliasArn = /^arn:aws:kms:[^:]+:\d{12}:(alias\/.+)$/.exec(v);
    if (aliasArn) return this.keyArn(aliasArn[1]);
    if (v.startsWith('arn:aws:kms:')) return v;
    if (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(v)) return `arn:aws:kms:${this.region}:${this.accountId}:key/${v}`;
    if (v.startsWith('alias/')) {
      // A customer alias: the key an AWS::KMS::Alias of the template points at.
      for (const id of this.ofType('AWS::KMS::Alias')) {
        const p = this.resolve(this.resource(id).Properties, `${id}.Properties`);
        if (p.AliasName === v) return this.keyArn(p.TargetKeyId);
      }
    }
    throw new Error(`KMS key ${v}: not a key of the template (tests/localaws/template.mjs keyArn)`);
  }

  /** The customer managed keys: `{logicalId, keyId, arn, policy}` (the key policy resolved). */
  kmsKeys() {
    return this.ofType('AWS::KMS::Key').map((id) => {
      const p = this.resource(id).Properties ?? {};
      return {
        logicalId: id,
        keyId: this.ref(id),
        arn: this.attr(id, 'Arn'),
        // CloudFormation's default key policy when none is given: the account (IAM decides).
        policy: p.KeyPolicy
          ? this.resolve(p.KeyPolicy, `${id}.KeyPolicy`)
          : {
              Version: '2012-10-17',
              Statement: [{ Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${this.accountId}:root` }, Action: 'kms:*', Resource: '*' }],
            },
        enabled: p.Enabled !== false,
      };
    });
  }

  /** A bucket's default encryption: the key ARN when SSE-KMS with a customer managed key, else null. */
  bucketKey(bucketLogicalId) {
    const cfg = this.resolve(this.resource(bucketLogicalId).Properties?.BucketEncryption ?? {}, `${bucketLogicalId}.BucketEncryption`);
    for (const rule of cfg.ServerSideEncryptionConfiguration ?? []) {
      const d = rule.ServerSideEncryptionByDefault;
      if (d && (d.SSEAlgorithm === 'aws:kms' || d.SSEAlgorithm === 'aws:kms:dsse')) return this.keyArn(d.KMSMasterKeyID);
    }
    return null;
  }

  /** EventBridge Scheduler schedules: name, expression, timezone, state, target (ARN, role, input, DLQ, retry). */
  schedules() {
    return this.ofType('AWS::Scheduler::Schedule').map((id) => {
      const p = this.resolve(this.resource(id).Properties, `${id}.Properties`);
      const roleId = this.roleOf(this.resource(id).Properties.Target?.RoleArn, `${id}.Target.RoleArn`);
      return {
        logicalId: id,
        name: p.Name ?? this.ref(id),
        arn: this.attr(id, 'Arn'),
        groupName: p.GroupName ?? 'default',
        expression: p.ScheduleExpression,
        timezone: p.ScheduleExpressionTimezone ?? 'UTC',
        state: p.State ?? 'ENABLED',
        flexibleTimeWindow: p.FlexibleTimeWindow,
        target: {
          arn: p.Target?.Arn,
          roleArn: p.Target?.RoleArn,
          input: p.Target?.Input,
          deadLetterArn: p.Target?.DeadLetterConfig?.Arn,
          retryPolicy: p.Target?.RetryPolicy,
        },
        roleLogicalId: roleId,
        roleName: this.ref(roleId),
        identityPolicies: this.rolePolicies(roleId),
      };
    });
  }

  /** Stack outputs, resolved. */
  outputs() {
    return Object.fromEntries(
      Object.entries(this.template.Outputs ?? {}).map(([k, o]) => [k, this.resolve(o.Value, `Outputs.${k}`)]),
    );
  }
}
