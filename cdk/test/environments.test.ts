// dev, staging and prod can share an account and region: every name differs.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { createApp } from '../lib/app';
import { environmentSettings } from '../lib/environments';
import { readRepositorySettings } from '../lib/repository';
import { Json, synthesize } from './helpers';

/** Every explicit name in a template, by resource type and property. */
function namesIn(template: Json): string[] {
  const props = ['FunctionName', 'TableName', 'StateMachineName', 'TopicName', 'QueueName', 'Name', 'LogGroupName', 'AlarmName', 'AliasName'];
  const out: string[] = [];
  for (const [id, r] of Object.entries<Json>(template.Resources)) {
    // A permission names the function it is for (by ARN), not itself.
    if (r.Type === 'AWS::Lambda::Permission') continue;
    for (const p of props) {
      const v = r.Properties?.[p];
      if (typeof v === 'string') out.push(`${r.Type}.${p}=${v}`);
      else if (v !== undefined) throw new Error(`${id}.${p} is not a plain string: ${JSON.stringify(v)}`);
    }
  }
  return out;
}

const synthesized = Object.fromEntries(
  ['dev', 'staging', 'prod'].map((env) => {
    const { stack, template } = synthesize(env);
    return [env, { stack, json: template.toJSON() }];
  }),
);

test('stack names are pkgrelay-<env>', () => {
  expect(Object.values(synthesized).map((s) => s.stack.stackName)).toEqual(['pkgrelay-dev', 'pkgrelay-staging', 'pkgrelay-prod']);
});

test('every named resource carries its environment, and no name is shared', () => {
  const seen = new Map<string, string>();
  for (const [env, { json }] of Object.entries(synthesized)) {
    const names = namesIn(json);
    expect(names.length).toBeGreaterThan(20);
    for (const name of names) {
      expect(name).toContain(`pkgrelay-${env}`);
      const value = name.split('=')[1];
      expect(seen.get(value)).toBeUndefined();
      seen.set(value, env);
    }
  }
});

test('prod keeps its tables and secret on stack deletion; dev does not', () => {
  const retained = (json: Json) =>
    Object.values<Json>(json.Resources)
      .filter((r) => ['AWS::DynamoDB::Table', 'AWS::SecretsManager::Secret'].includes(r.Type))
      .map((r) => [r.DeletionPolicy, r.Properties.DeletionProtectionEnabled ?? null]);
  // The packages table, the state table, the Homebrew mirror's packages
  // table, the signing key secret, the Slack webhook secret.
  expect(retained(synthesized.prod.json)).toEqual([
    ['Retain', true],
    ['Retain', true],
    ['Retain', true],
    ['Retain', null],
    ['Retain', null],
  ]);
  expect(retained(synthesized.dev.json)).toEqual([
    ['Delete', false],
    ['Delete', false],
    ['Delete', false],
    ['Delete', null],
    ['Delete', null],
  ]);
  // The repository bucket is kept everywhere.
  for (const { json } of Object.values(synthesized)) {
    const buckets = Object.values<Json>(json.Resources).filter((r) => r.Type === 'AWS::S3::Bucket');
    expect(buckets.every((b) => b.DeletionPolicy === 'Retain')).toBe(true);
  }
});

test('an unknown or missing environment is refused', () => {
  expect(() => environmentSettings('test')).toThrow(/unknown environment "test": pass -c env=dev\|staging\|prod/);
  const outdir = mkdtempSync(path.join(tmpdir(), 'pkgrelay-cdk-test-'));
  try {
    expect(() => createApp({ outdir, context: {} })).toThrow(/no environment given: pass -c env=dev\|staging\|prod/);
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
});

test('the public file names come from config/repository.yaml', () => {
  expect(readRepositorySettings()).toEqual({ suite: 'stable', keyringName: 'kiro-archive-keyring.gpg', convenienceCopy: 'kiro-repo' });
});
