// Several repositories side by side (config/repositories.yaml): the stack
// reads the same list as the CLI and the functions, and gives every
// repository besides the APT one a packages table of its own, names it to
// the functions, and lets CloudFront read its prefix.

import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { CONFIG_DIR_CONTEXT } from '../lib/app';
import { readRepositories } from '../lib/repository';
import { REPO_ROOT, allIdentityStatements, asArray, render, resourceWhere, roleStatements, synthesize } from './helpers';

function configWith(repositoriesYaml: string | undefined): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'pkgrelay-config-'));
  cpSync(path.join(REPO_ROOT, 'config'), dir, { recursive: true });
  rmSync(path.join(dir, 'repositories.yaml'), { force: true });
  if (repositoriesYaml !== undefined) writeFileSync(path.join(dir, 'repositories.yaml'), repositoriesYaml);
  return dir;
}

const WITH_MIRROR = `repositories:
  - {name: apt, format: apt}
  - {name: brew, format: homebrew, prefix: brew/, config: homebrew.yaml}
`;

test('without repositories.yaml the deployment is the APT repository alone, at the root', () => {
  const dir = configWith(undefined);
  try {
    expect(readRepositories(dir)).toEqual([{ name: 'apt', format: 'apt', prefix: '' }]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the shipped list is the one the CLI and the functions read: the APT repository and the brew mirror', () => {
  expect(readRepositories()).toEqual([
    { name: 'apt', format: 'apt', prefix: '' },
    { name: 'brew', format: 'homebrew', prefix: 'brew/', maxConcurrency: 10 },
  ]);
});

test.each([
  ['repositories:\n  - {name: brew, format: homebrew, prefix: brew/, config: homebrew.yaml}\n', 'exactly one APT repository'],
  ['repositories:\n  - {name: apt, format: apt}\n  - {name: brew, format: homebrew, prefix: brew/}\n', 'names its settings file'],
  ['repositories:\n  - {name: apt, format: apt}\n  - {name: brew, format: homebrew, prefix: brew/, config: nothing.yaml}\n', 'does not exist'],
  ['repositories:\n  - {name: apt, format: apt, prefix: x/}\n', 'lives at the root'],
  ['repositories:\n  - {name: apt, format: apt}\n  - {name: b, format: homebrew, prefix: pool/b/}\n', 'a directory of its own'],
  ['repositories:\n  - {name: apt, format: apt}\n  - {name: b, format: homebrew, prefix: b}\n', 'a directory of its own'],
  ['repositories:\n  - {name: apt, format: apt}\n  - {name: b, format: rpm, prefix: b/}\n', 'apt or homebrew'],
  ['repositories:\n  - {name: apt, format: apt}\n  - {name: Brew, format: homebrew, prefix: b/}\n', 'lower-case'],
  ['repositories:\n  - {name: apt, format: apt}\n  - {name: a, format: homebrew, prefix: b/, config: homebrew.yaml}\n  - {name: c, format: homebrew, prefix: b/c/, config: homebrew.yaml}\n', 'overlaps'],
])('a bad list is refused: %s', (yaml, message) => {
  const dir = configWith(yaml);
  try {
    expect(() => readRepositories(dir)).toThrow(message);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

describe('a Homebrew mirror beside the APT repository', () => {
  const dir = configWith(WITH_MIRROR);
  const { template } = synthesize('dev', { [CONFIG_DIR_CONTEXT]: dir });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('has a packages table of its own, keyed and indexed like the APT one', () => {
    const [id, table] = resourceWhere(template, 'AWS::DynamoDB::Table', 'TableName', 'pkgrelay-dev-brew-packages');
    expect(table.Properties.KeySchema).toEqual([{ AttributeName: 'package_id', KeyType: 'HASH' }]);
    expect(table.Properties.GlobalSecondaryIndexes.map((i: any) => i.IndexName)).toEqual(['package-name-index']);
    // Every function is told where it is, by repository name.
    for (const fn of Object.values(template.findResources('AWS::Lambda::Function'))) {
      const tables = (fn as any).Properties.Environment?.Variables?.PACKAGES_TABLES;
      if (tables === undefined) continue;
      expect(render(tables)).toContain('"brew":"');
      expect(JSON.stringify(tables)).toContain(id);
    }
    const withTables = Object.values(template.findResources('AWS::Lambda::Function')).filter(
      (fn: any) => fn.Properties.Environment?.Variables?.PACKAGES_TABLES !== undefined,
    );
    expect(withTables).toHaveLength(5);
    // And the CLI against the stack (`pkgrelay brew import-hash --outputs-file`), by the same names.
    const output = template.toJSON().Outputs.PackagesTables.Value;
    expect(render(output)).toContain('"brew":"');
    expect(JSON.stringify(output)).toContain(id);
    // The steps may use it as they use the APT one's.
    const onTable = allIdentityStatements(template).filter((s) => s.Resource.some((r: string) => r.includes(id)));
    expect(new Set(onTable.flatMap((s) => s.Action))).toEqual(
      new Set(['dynamodb:BatchGetItem', 'dynamodb:Query', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Scan']),
    );
  });

  test('runs weekly, Sunday 03:00 UTC, announcing its start, at its settings\' concurrency', () => {
    const [, rule] = resourceWhere(template, 'AWS::Events::Rule', 'Name', 'pkgrelay-dev-brew-weekly');
    expect(rule.Properties.ScheduleExpression).toBe('cron(0 3 ? * SUN *)');
    expect(JSON.parse(rule.Properties.Targets[0].Input)).toEqual({
      trigger: 'schedule',
      repository: 'brew',
      notify_start: true,
      max_concurrency: 10,
    });
  });

  test('its prefix has a behavior whose viewer-request function maps brew\'s two bottle names through the key value store', () => {
    const [kvsId] = resourceWhere(template, 'AWS::CloudFront::KeyValueStore', 'Name', 'pkgrelay-dev-bottle-names');
    const [fnId, fn] = resourceWhere(template, 'AWS::CloudFront::Function', 'Name', 'pkgrelay-dev-brew-bottle-rewrite');
    expect(fn.Properties.FunctionConfig.Runtime).toBe('cloudfront-js-2.0');
    expect(fn.Properties.FunctionConfig.KeyValueStoreAssociations).toEqual([{ KeyValueStoreARN: { 'Fn::GetAtt': [kvsId, 'Arn'] } }]);
    expect(fn.Properties.FunctionCode).toContain("const PREFIX = '/brew/';");
    expect(fn.Properties.FunctionCode).not.toContain('__PREFIX__');
    const dist: any = Object.values(template.findResources('AWS::CloudFront::Distribution'))[0];
    const behaviors = dist.Properties.DistributionConfig.CacheBehaviors;
    expect(behaviors.map((b: any) => b.PathPattern)).toEqual(['brew/*']);
    expect(behaviors[0].FunctionAssociations).toEqual([{ EventType: 'viewer-request', FunctionARN: { 'Fn::GetAtt': [fnId, 'FunctionARN'] } }]);
    // Only publish writes the names, and is told where.
    const kvsStatements = allIdentityStatements(template).filter((s) => JSON.stringify(s.Resource).includes(kvsId));
    expect(kvsStatements.map((s) => s.Sid)).toEqual(['KeepBottleNames']);
    expect(new Set(kvsStatements.flatMap((s) => s.Action))).toEqual(
      new Set(['cloudfront-keyvaluestore:DescribeKeyValueStore', 'cloudfront-keyvaluestore:UpdateKeys']),
    );
    const withKvs = Object.values(template.findResources('AWS::Lambda::Function')).filter(
      (f: any) => f.Properties.Environment?.Variables?.BOTTLE_NAMES_KVS_ARN !== undefined,
    );
    expect(withKvs.map((f: any) => f.Properties.FunctionName)).toEqual(['pkgrelay-dev-publish']);
  });

  test('its steps write under its prefix only what they write for it', () => {
    const writes = (fn: string) => {
      const [, f] = resourceWhere(template, 'AWS::Lambda::Function', 'FunctionName', `pkgrelay-dev-${fn}`);
      return roleStatements(template, f.Properties.Role['Fn::GetAtt'][0])
        .filter((s) => s.Sid?.startsWith('WriteMirror') || s.Sid === 'KeepMirrorApiFiles')
        .flatMap((s) => s.Resource.map((r) => r.replace(/^[^/]*\//, '')));
    };
    expect(writes('download-package').sort()).toEqual(['brew/blobs/*']);
    expect(writes('publish').sort()).toEqual(['brew/api/*', 'brew/bottles/*', 'brew/bottles_hash.json', 'brew/v2/*']);
    expect(writes('build-index').sort()).toEqual(['brew/by-hash/*']);
    expect(writes('check-sources').sort()).toEqual(['brew/by-hash/*', 'runs/brew/*']);
  });

  test('CloudFront may read its prefix', () => {
    const resources = Object.values(template.findResources('AWS::S3::BucketPolicy'))
      .flatMap((p: any) => p.Properties.PolicyDocument.Statement)
      .filter((s: any) => s.Effect === 'Allow' && s.Principal?.Service === 'cloudfront.amazonaws.com')
      .flatMap((s: any) => asArray(s.Resource).map((r: any) => render(r)));
    expect(resources.some((r: string) => r.endsWith('/brew/*'))).toBe(true);
  });
});
