// Shared by the assertion tests: synthesize a stack the way `cdk synth -c
// env=<env> -c bundling=false` does (same feature flags, from cdk.json), and
// read its template in terms a reader can check (IAM statements as
// action/resource pairs, resources named after what they are).

import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { BUNDLING_STACKS, createApp } from '../lib/app';

export const CDK_DIR = path.resolve(__dirname, '..');
export const REPO_ROOT = path.resolve(CDK_DIR, '..');

const cdkJson = JSON.parse(readFileSync(path.join(CDK_DIR, 'cdk.json'), 'utf8'));

export function synthesize(env: string, context: Record<string, unknown> = {}) {
  // A scratch cloud assembly, removed once the template is in memory.
  const outdir = mkdtempSync(path.join(tmpdir(), 'pkgrelay-cdk-test-'));
  try {
    const { stack, mediaStack } = createApp({
      outdir,
      context: { ...cdkJson.context, env, [BUNDLING_STACKS]: [], ...context },
    });
    // Expected here: these tests never build the Rust functions.
    for (const s of [stack, mediaStack]) {
      Validations.of(s).acknowledge({ id: 'Annotation::pkgrelay:no-bundling', reason: 'template tests' });
    }
    return { stack, template: Template.fromStack(stack) };
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
}

/** The media stack (pkgrelay-<env>-media) of the same app: `synthesize` for lib/media-stack.ts. */
export function synthesizeMedia(env: string, context: Record<string, unknown> = {}) {
  const outdir = mkdtempSync(path.join(tmpdir(), 'pkgrelay-cdk-test-'));
  try {
    const { stack, mediaStack } = createApp({
      outdir,
      context: { ...cdkJson.context, env, [BUNDLING_STACKS]: [], ...context },
    });
    for (const s of [stack, mediaStack]) {
      Validations.of(s).acknowledge({ id: 'Annotation::pkgrelay:no-bundling', reason: 'template tests' });
    }
    return { stack: mediaStack, template: Template.fromStack(mediaStack) };
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
}

export type Json = any;

/** The one resource of `type` whose property `prop` equals `value`: [logicalId, resource]. */
export function resourceWhere(t: Template, type: string, prop: string, value: unknown): [string, Json] {
  const found = Object.entries(t.findResources(type)).filter(([, r]) => r.Properties?.[prop] === value);
  if (found.length !== 1) {
    throw new Error(`expected one ${type} with ${prop} = ${JSON.stringify(value)}, found ${found.length}`);
  }
  return found[0];
}

export function onlyResource(t: Template, type: string): [string, Json] {
  const found = Object.entries(t.findResources(type));
  if (found.length !== 1) throw new Error(`expected one ${type}, found ${found.length}`);
  return found[0];
}

export const asArray = <T>(x: T | T[] | undefined): T[] => (x === undefined ? [] : Array.isArray(x) ? x : [x]);

/**
 * An intrinsic as readable text: `{Ref: X}` -> `X`, `{Fn::GetAtt: [X, Arn]}` ->
 * `X.Arn`, `{Fn::Join: ['', [a, b]]}` -> `ab`, logical ids renamed by `names`.
 */
export function render(value: Json, names: Record<string, string> = {}): string {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object') {
    if ('Ref' in value) return names[value.Ref] ?? value.Ref;
    if ('Fn::GetAtt' in value) {
      const [id, attr] = value['Fn::GetAtt'];
      return `${names[id] ?? id}.${attr}`;
    }
    if ('Fn::Join' in value) {
      const [sep, parts] = value['Fn::Join'];
      return parts.map((p: Json) => render(p, names)).join(sep);
    }
  }
  return JSON.stringify(value);
}

export interface Statement {
  readonly Effect: string;
  readonly Action: string[];
  readonly Resource: string[];
  readonly Condition?: Json;
  readonly Principal?: Json;
  readonly Sid?: string;
}

function normalise(s: Json, names: Record<string, string>): Statement {
  return {
    ...s,
    Action: asArray(s.Action),
    Resource: asArray(s.Resource).map((r) => render(r, names)),
  };
}

/** Every IAM statement granted to a role: its inline policies and any AWS::IAM::Policy attached to it. */
export function roleStatements(t: Template, roleId: string, names: Record<string, string> = {}): Statement[] {
  const role = t.toJSON().Resources[roleId];
  if (role?.Type !== 'AWS::IAM::Role') throw new Error(`${roleId} is not a role`);
  const docs = asArray(role.Properties.Policies).map((p: Json) => p.PolicyDocument);
  for (const policy of Object.values(t.findResources('AWS::IAM::Policy'))) {
    if (asArray(policy.Properties.Roles).some((r: Json) => r?.Ref === roleId)) {
      docs.push(policy.Properties.PolicyDocument);
    }
  }
  return docs.flatMap((d: Json) => asArray(d.Statement).map((s: Json) => normalise(s, names)));
}

/** Every IAM statement of every role and policy in the template. */
export function allIdentityStatements(t: Template, names: Record<string, string> = {}): Statement[] {
  return Object.keys(t.findResources('AWS::IAM::Role')).flatMap((id) => roleStatements(t, id, names));
}

/** `action resource` pairs of the Allow statements, sorted. */
export function grants(statements: Statement[]): string[] {
  return statements
    .filter((s) => s.Effect === 'Allow')
    .flatMap((s) => s.Action.flatMap((a) => s.Resource.map((r) => `${a} ${r}`)))
    .sort();
}

/** Whether an IAM resource pattern (with `*` and `?`) matches `arn`. */
export function patternMatches(pattern: string, arn: string): boolean {
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
  return re.test(arn);
}

/** Logical ids of the main resources of a synthesized pkgrelay stack, by what they are. */
export function logicalIds(t: Template, prefix: string) {
  const fn = (name: string) => resourceWhere(t, 'AWS::Lambda::Function', 'FunctionName', `${prefix}-${name}`)[0];
  const bucket = Object.entries(t.findResources('AWS::S3::Bucket')).filter(
    ([, r]) => r.Properties?.NotificationConfiguration?.EventBridgeConfiguration?.EventBridgeEnabled === true,
  );
  if (bucket.length !== 1) throw new Error(`expected one bucket with EventBridge notifications, found ${bucket.length}`);
  return {
    bucket: bucket[0][0],
    packagesTable: resourceWhere(t, 'AWS::DynamoDB::Table', 'TableName', `${prefix}-packages`)[0],
    stateTable: resourceWhere(t, 'AWS::DynamoDB::Table', 'TableName', `${prefix}-state`)[0],
    secret: resourceWhere(t, 'AWS::SecretsManager::Secret', 'Name', `${prefix}-signing-key`)[0],
    distribution: onlyResource(t, 'AWS::CloudFront::Distribution')[0],
    stateMachine: onlyResource(t, 'AWS::StepFunctions::StateMachine')[0],
    successTopic: resourceWhere(t, 'AWS::SNS::Topic', 'TopicName', `${prefix}-success`)[0],
    failureTopic: resourceWhere(t, 'AWS::SNS::Topic', 'TopicName', `${prefix}-failure`)[0],
    deadLetterQueue: resourceWhere(t, 'AWS::SQS::Queue', 'QueueName', `${prefix}-trigger-dlq`)[0],
    function: fn,
  };
}

/**
 * A copy of config/ without repositories.yaml: the deployment of the APT
 * repository alone (the shipped list adds the Homebrew mirror, whose own
 * resources cdk/test/repositories.test.ts checks). Removed at exit.
 */
export function aptOnlyConfigDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'pkgrelay-config-apt-'));
  cpSync(path.join(REPO_ROOT, 'config'), dir, { recursive: true });
  rmSync(path.join(dir, 'repositories.yaml'), { force: true });
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
