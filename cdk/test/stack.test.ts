// Assertions on the synthesized pkgrelay-dev template of the APT repository
// alone (config/ without repositories.yaml; what a Homebrew mirror adds is
// checked in repositories.test.ts): the state machine is
// statemachine/pipeline.asl.json, the staging rule is staging-rule.json, every
// role holds exactly what its step uses, and the public surface of the bucket
// is CloudFront reading the repository paths only.

import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { parse } from 'yaml';
import { CONFIG_DIR_CONTEXT } from '../lib/app';
import {
  REPO_ROOT,
  Statement,
  aptOnlyConfigDir,
  allIdentityStatements,
  asArray,
  grants,
  logicalIds,
  patternMatches,
  render,
  resourceWhere,
  roleStatements,
  synthesize,
} from './helpers';

const PREFIX = 'pkgrelay-dev';
const FUNCTIONS = ['check-sources', 'download-package', 'record-metadata', 'build-index', 'publish'];
const ASL_TEXT = readFileSync(path.join(REPO_ROOT, 'statemachine', 'pipeline.asl.json'), 'utf8');
const STAGING_RULE = JSON.parse(readFileSync(path.join(REPO_ROOT, 'statemachine', 'staging-rule.json'), 'utf8'));
const REPOSITORY_YAML = parse(readFileSync(path.join(REPO_ROOT, 'config', 'repository.yaml'), 'utf8'));

const { template, stack } = synthesize('dev', { [CONFIG_DIR_CONTEXT]: aptOnlyConfigDir() });
const json = template.toJSON();
const ids = logicalIds(template, PREFIX);
const names: Record<string, string> = {
  [ids.bucket]: 'BUCKET',
  [ids.packagesTable]: 'PACKAGES',
  [ids.stateTable]: 'STATE',
  [ids.secret]: 'SIGNING_KEY',
};

/** Replace every string that is exactly `${Name}` by `values[Name]`. */
function substitute(value: any, values: Record<string, unknown>): any {
  if (typeof value === 'string') {
    const m = /^\$\{([A-Za-z0-9]+)\}$/.exec(value);
    if (m) {
      if (!(m[1] in values)) throw new Error(`no value for ${value}`);
      return values[m[1]];
    }
    return value;
  }
  if (Array.isArray(value)) return value.map((v) => substitute(v, values));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substitute(v, values)]));
  }
  return value;
}

function functionResource(name: string) {
  const id = ids.function(name);
  return { id, props: json.Resources[id].Properties };
}

function functionRoleStatements(name: string): Statement[] {
  const { props } = functionResource(name);
  const roleId = props.Role['Fn::GetAtt'][0];
  const role = json.Resources[roleId];
  expect(role.Properties.ManagedPolicyArns).toBeUndefined();
  expect(role.Properties.AssumeRolePolicyDocument.Statement).toEqual([
    { Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' } },
  ]);
  const [logGroupId] = resourceWhere(template, 'AWS::Logs::LogGroup', 'LogGroupName', `/aws/lambda/${PREFIX}-${name}`);
  return roleStatements(template, roleId, { ...names, [logGroupId]: 'OWN_LOG_GROUP' });
}

const OWN_LOGS = ['logs:CreateLogStream OWN_LOG_GROUP.Arn', 'logs:PutLogEvents OWN_LOG_GROUP.Arn'];
const S3_WRITE = /^s3:(Put|Delete|Restore|Replicate|Abort|Create|Copy|Upload|Complete|\*)|^s3:.*Write/;

describe('state machine', () => {
  const sm = json.Resources[ids.stateMachine].Properties;

  test('the definition is statemachine/pipeline.asl.json, inlined verbatim', () => {
    expect(sm.DefinitionS3Location).toBeUndefined();
    expect(typeof sm.DefinitionString).toBe('string');
    expect(sm.DefinitionString).toBe(ASL_TEXT);
  });

  test('after substitution it equals the ASL with the functions and topics of this stack', () => {
    const expected: Record<string, unknown> = {
      SuccessTopicArn: { Ref: ids.successTopic },
      FailureTopicArn: { Ref: ids.failureTopic },
      BucketName: { Ref: ids.bucket },
    };
    for (const name of FUNCTIONS) {
      const placeholder = `${name.replace(/(^|-)(\w)/g, (_, __, c: string) => c.toUpperCase())}FunctionArn`;
      expected[placeholder] = { 'Fn::GetAtt': [ids.function(name), 'Arn'] };
    }
    expect(sm.DefinitionSubstitutions).toEqual(expected);
    const deployed = substitute(JSON.parse(sm.DefinitionString), sm.DefinitionSubstitutions);
    expect(deployed).toEqual(substitute(JSON.parse(ASL_TEXT), expected));
    // Spot checks of the result: each task reaches the function it names.
    expect(deployed.States.CheckSources.Resource).toEqual({ 'Fn::GetAtt': [ids.function('check-sources'), 'Arn'] });
    expect(deployed.States.DownloadAll.ItemProcessor.States.RecordMetadata.Resource).toEqual({
      'Fn::GetAtt': [ids.function('record-metadata'), 'Arn'],
    });
    expect(deployed.States.NotifyFailure.Parameters.TopicArn).toEqual({ Ref: ids.failureTopic });
    expect(JSON.stringify(deployed)).not.toMatch(/\$\{[A-Za-z0-9]+\}/);
  });

  test('logs everything with execution data to its own log group, traced with X-Ray', () => {
    expect(sm.LoggingConfiguration.Level).toBe('ALL');
    expect(sm.LoggingConfiguration.IncludeExecutionData).toBe(true);
    const [logGroupId] = resourceWhere(template, 'AWS::Logs::LogGroup', 'LogGroupName', `/aws/vendedlogs/states/${PREFIX}-pipeline`);
    expect(sm.LoggingConfiguration.Destinations[0].CloudWatchLogsLogGroup.LogGroupArn).toEqual({
      'Fn::GetAtt': [logGroupId, 'Arn'],
    });
    expect(sm.TracingConfiguration).toEqual({ Enabled: true });
    expect(sm.StateMachineType).toBe('STANDARD');
  });

  test('its role invokes the five functions, publishes to the two topics, and runs the Distributed Map; nothing else', () => {
    const roleId = sm.RoleArn['Fn::GetAtt'][0];
    const statements = roleStatements(template, roleId, names);
    const invoked = statements.filter((s) => s.Action.includes('lambda:InvokeFunction')).flatMap((s) => s.Resource);
    const fnIds = FUNCTIONS.map((f) => ids.function(f));
    expect(new Set(invoked)).toEqual(new Set(fnIds.flatMap((id) => [`${id}.Arn`, `${id}.Arn:*`])));
    const published = statements.filter((s) => s.Action.includes('sns:Publish')).flatMap((s) => s.Resource);
    expect(new Set(published)).toEqual(new Set([ids.successTopic, ids.failureTopic]));
    // The map reads the candidate list, writes its results, and starts children of this state machine only.
    const s3 = statements.filter((s) => s.Action.some((a) => a.startsWith('s3:')));
    expect(s3.flatMap((s) => s.Action.map((a) => `${a} ${s.Resource.join(',')}`)).sort()).toEqual(
      [
        's3:GetObject BUCKET.Arn/runs/candidates/*',
        's3:PutObject BUCKET.Arn/runs/results/*',
        's3:AbortMultipartUpload BUCKET.Arn/runs/results/*',
        's3:ListMultipartUploadParts BUCKET.Arn/runs/results/*',
      ].sort(),
    );
    const started = statements.filter((s) => s.Action.includes('states:StartExecution')).flatMap((s) => s.Resource);
    expect(started).toEqual([`arn:AWS::Partition:states:AWS::Region:AWS::AccountId:stateMachine:${PREFIX}-pipeline`]);
    for (const s of statements) {
      const other = s.Action.filter(
        (a) => !/^(lambda:InvokeFunction|sns:Publish|kms:Decrypt|kms:GenerateDataKey\*|logs:.*|xray:.*|s3:(GetObject|PutObject|AbortMultipartUpload|ListMultipartUploadParts)|states:(StartExecution|DescribeExecution|StopExecution))$/.test(a),
      );
      expect(other).toEqual([]);
      if (s.Resource.includes('*')) {
        // Only log delivery and X-Ray, which take no resource.
        expect(s.Action.every((a) => /^(logs|xray):/.test(a))).toBe(true);
      }
    }
  });
});

describe('function roles grant exactly what each step uses', () => {
  test('check-sources: reads the store, staging/ and the published marker; writes its candidate list only', () => {
    const statements = functionRoleStatements('check-sources');
    expect(grants(statements)).toEqual(
      [
        'dynamodb:BatchGetItem PACKAGES.Arn',
        // The recorded versions of a package (vendor builds), through the index only.
        'dynamodb:Query PACKAGES.Arn/index/package-name-index',
        'dynamodb:GetItem STATE.Arn',
        's3:GetObject BUCKET.Arn/staging/*',
        `s3:GetObject BUCKET.Arn/dists/${REPOSITORY_YAML.suite}/InRelease`,
        's3:PutObject BUCKET.Arn/runs/candidates/*',
        // The refusals remembered for the candidates found.
        'dynamodb:BatchGetItem STATE.Arn',
        // staging/ is an inbox: a refused upload moves to staging/rejected/.
        's3:PutObject BUCKET.Arn/staging/rejected/*',
        's3:DeleteObject BUCKET.Arn/staging/*',
        // HeadObject of a lost InRelease must answer 404, not 403 (and staging/ is listed).
        's3:ListBucket BUCKET.Arn',
        ...OWN_LOGS,
      ].sort(),
    );
    // No other write: not to the bucket, not to a table.
    const writes = statements.filter((s) => s.Action.some((a) => S3_WRITE.test(a))).flatMap((s) => s.Resource);
    expect(new Set(writes)).toEqual(new Set(['BUCKET.Arn/runs/candidates/*', 'BUCKET.Arn/staging/rejected/*', 'BUCKET.Arn/staging/*']));
    const actions = statements.flatMap((s) => s.Action);
    expect(actions.filter((a) => /^dynamodb:(Put|Update|Delete|BatchWrite|TransactWrite)/.test(a))).toEqual([]);
  });

  test('download-package: reads staging/ and the pool, writes the pool only', () => {
    expect(grants(functionRoleStatements('download-package'))).toEqual(
      [
        'dynamodb:GetItem PACKAGES.Arn',
        's3:GetObject BUCKET.Arn/staging/*',
        's3:GetObject BUCKET.Arn/pool/*',
        's3:PutObject BUCKET.Arn/pool/*',
        's3:AbortMultipartUpload BUCKET.Arn/pool/*',
        's3:ListMultipartUploadParts BUCKET.Arn/pool/*',
        's3:PutObject BUCKET.Arn/runs/entries/*',
        // Refused candidates: remembered, or (staged) moved to staging/rejected/.
        'dynamodb:UpdateItem STATE.Arn',
        's3:PutObject BUCKET.Arn/staging/rejected/*',
        's3:DeleteObject BUCKET.Arn/staging/*',
        // HeadObject of a missing pool key must answer 404, not 403.
        's3:ListBucket BUCKET.Arn',
        ...OWN_LOGS,
      ].sort(),
    );
  });

  test('record-metadata: puts and gets package items, raises the recorded mark, records sources, reads large entries', () => {
    const statements = functionRoleStatements('record-metadata');
    expect(grants(statements)).toEqual(
      [
        'dynamodb:GetItem PACKAGES.Arn',
        'dynamodb:PutItem PACKAGES.Arn',
        'dynamodb:UpdateItem STATE.Arn',
        's3:GetObject BUCKET.Arn/runs/entries/*',
        // A recorded upload leaves the inbox; one refused as a conflict moves to staging/rejected/.
        's3:GetObject BUCKET.Arn/staging/*',
        's3:PutObject BUCKET.Arn/staging/rejected/*',
        's3:DeleteObject BUCKET.Arn/staging/*',
        ...OWN_LOGS,
      ].sort(),
    );
  });

  test('build-index: scans packages, allocates in the state table, writes dists/ and generations/, reads the key', () => {
    expect(grants(functionRoleStatements('build-index'))).toEqual(
      [
        'dynamodb:Scan PACKAGES.Arn',
        'dynamodb:GetItem STATE.Arn',
        'dynamodb:UpdateItem STATE.Arn',
        's3:GetObject BUCKET.Arn/dists/*',
        's3:PutObject BUCKET.Arn/dists/*',
        's3:GetObject BUCKET.Arn/generations/*',
        's3:PutObject BUCKET.Arn/generations/*',
        's3:GetObject BUCKET.Arn/runs/results/*',
        // Retention: an entry listed again is checked to still have its pool file.
        's3:GetObject BUCKET.Arn/pool/*',
        'secretsmanager:GetSecretValue SIGNING_KEY',
        // HeadObject of a by-hash key not written yet must answer 404, not 403.
        's3:ListBucket BUCKET.Arn',
        ...OWN_LOGS,
      ].sort(),
    );
  });

  test('publish: reads generations/, pool/, dists/; writes dists/, the root files and the retention ledger; deletes only pool files, by-hash files and manifests', () => {
    const keyring = REPOSITORY_YAML.keyring_name;
    expect(keyring).toBe('kiro-archive-keyring.gpg');
    expect(grants(functionRoleStatements('publish'))).toEqual(
      [
        'dynamodb:GetItem STATE.Arn',
        'dynamodb:UpdateItem STATE.Arn',
        's3:GetObject BUCKET.Arn/generations/*',
        's3:GetObject BUCKET.Arn/pool/*',
        's3:GetObject BUCKET.Arn/dists/*',
        's3:GetObject BUCKET.Arn/index.html',
        `s3:GetObject BUCKET.Arn/${REPOSITORY_YAML.convenience_copy}.deb`,
        `s3:GetObject BUCKET.Arn/${keyring}`,
        's3:PutObject BUCKET.Arn/dists/*',
        's3:PutObject BUCKET.Arn/index.html',
        `s3:PutObject BUCKET.Arn/${REPOSITORY_YAML.convenience_copy}.deb`,
        `s3:PutObject BUCKET.Arn/${keyring}`,
        `s3:PutObject BUCKET.Arn/generations/${REPOSITORY_YAML.suite}/retention.json`,
        's3:DeleteObject BUCKET.Arn/pool/*',
        `s3:DeleteObject BUCKET.Arn/dists/${REPOSITORY_YAML.suite}/*/by-hash/*`,
        `s3:DeleteObject BUCKET.Arn/generations/${REPOSITORY_YAML.suite}/*`,
        's3:ListBucket BUCKET.Arn',
        ...OWN_LOGS,
      ].sort(),
    );
  });

  test('only the signing step can read the signing key', () => {
    for (const name of FUNCTIONS) {
      const reads = functionRoleStatements(name).filter((s) => s.Action.some((a) => a.startsWith('secretsmanager:')));
      expect(reads.length).toBe(name === 'build-index' ? 1 : 0);
    }
  });
});

describe('nobody in the stack', () => {
  const statements = allIdentityStatements(template, names);

  test('can delete table items, or holds a wildcard action', () => {
    const actions = statements.flatMap((s) => s.Action);
    expect(actions.filter((a) => /^dynamodb:(DeleteItem|BatchWriteItem|\*)$/.test(a))).toEqual([]);
    expect(actions.filter((a) => a === '*' || a === 's3:*' || a === 'dynamodb:*' || /^s3:(Delete|Put)\w*\*$/.test(a))).toEqual([]);
    // The only deletions: a staged upload leaving the inbox (recorded, or
    // moved to staging/rejected/), and publish's retention (write-once
    // objects past their grace period; never a fixed name such as InRelease).
    const deletes = statements.filter((s) => s.Action.some((a) => /^s3:Delete/.test(a)));
    expect(new Set(deletes.flatMap((s) => s.Action))).toEqual(new Set(['s3:DeleteObject']));
    const suite = REPOSITORY_YAML.suite;
    expect(new Set(deletes.flatMap((s) => s.Resource))).toEqual(
      new Set([
        'BUCKET.Arn/staging/*',
        'BUCKET.Arn/pool/*',
        `BUCKET.Arn/dists/${suite}/*/by-hash/*`,
        `BUCKET.Arn/generations/${suite}/*`,
      ]),
    );
    for (const fixed of [`dists/${suite}/InRelease`, `dists/${suite}/main/binary-amd64/Packages`, 'index.html']) {
      expect(deletes.flatMap((s) => s.Resource).some((r) => patternMatches(r, `BUCKET.Arn/${fixed}`))).toBe(false);
    }
  });

  test('can put anything into staging/ (only uploads by the operator land there; refused ones move to staging/rejected/)', () => {
    const writers = statements.filter(
      (s) =>
        s.Effect === 'Allow' &&
        s.Action.some((a) => /^s3:(Put|Copy|Upload|Complete|\*)/.test(a)) &&
        s.Resource.some((r) => r === '*' || patternMatches(r, 'BUCKET.Arn/staging/kiro-repo_1.1_all.deb')),
    );
    expect(writers).toEqual([]);
  });

  test('writes to the bucket but check-sources (runs/candidates/), download-package (pool/, runs/entries/), record-metadata (the inbox), build-index (dists/, generations/), publish and the state machine (runs/results/)', () => {
    const writersByRole: Record<string, string[]> = {};
    for (const [roleId] of Object.entries(template.findResources('AWS::IAM::Role'))) {
      const written = roleStatements(template, roleId, names)
        .filter((s) => s.Effect === 'Allow' && s.Action.some((a) => S3_WRITE.test(a)))
        .flatMap((s) => s.Resource);
      if (written.length) writersByRole[roleId] = written;
    }
    const roleOf = (name: string) => functionResource(name).props.Role['Fn::GetAtt'][0];
    const stateMachineRole = json.Resources[ids.stateMachine].Properties.RoleArn['Fn::GetAtt'][0];
    expect(Object.keys(writersByRole).sort()).toEqual(
      [
        roleOf('check-sources'),
        roleOf('download-package'),
        roleOf('record-metadata'),
        roleOf('build-index'),
        roleOf('publish'),
        stateMachineRole,
      ].sort(),
    );
    const inbox = ['BUCKET.Arn/staging/rejected/*', 'BUCKET.Arn/staging/*'];
    expect(new Set(writersByRole[roleOf('check-sources')])).toEqual(new Set(['BUCKET.Arn/runs/candidates/*', ...inbox]));
    expect(new Set(writersByRole[roleOf('download-package')])).toEqual(
      new Set(['BUCKET.Arn/pool/*', 'BUCKET.Arn/runs/entries/*', ...inbox]),
    );
    expect(new Set(writersByRole[roleOf('record-metadata')])).toEqual(new Set(inbox));
    expect(new Set(writersByRole[stateMachineRole])).toEqual(new Set(['BUCKET.Arn/runs/results/*']));
  });
});

describe('the public surface: CloudFront reads the repository paths, nothing else', () => {
  const [, policy] = Object.entries(template.findResources('AWS::S3::BucketPolicy')).find(
    ([, p]) => p.Properties.Bucket.Ref === ids.bucket,
  )!;
  const statements: Statement[] = policy.Properties.PolicyDocument.Statement.map((s: any) => ({
    ...s,
    Action: asArray(s.Action),
    Resource: asArray(s.Resource).map((r: any) => render(r, names)),
  }));
  const allows = statements.filter((s) => s.Effect === 'Allow');
  const repositoryPaths = ['pool/*', 'dists/*', 'index.html', `${REPOSITORY_YAML.convenience_copy}.deb`, REPOSITORY_YAML.keyring_name];

  test('the only Allow is CloudFront, for this distribution, GetObject on the five repository paths', () => {
    expect(allows).toHaveLength(1);
    const [allow] = allows;
    expect(allow.Principal).toEqual({ Service: 'cloudfront.amazonaws.com' });
    expect(allow.Action).toEqual(['s3:GetObject']);
    expect(new Set(allow.Resource)).toEqual(new Set(repositoryPaths.map((p) => `BUCKET.Arn/${p}`)));
    expect(render(allow.Condition.StringEquals['AWS:SourceArn'])).toBe(
      `arn:AWS::Partition:cloudfront::AWS::AccountId:distribution/${ids.distribution}`,
    );
    expect(Object.keys(allow.Condition)).toEqual(['StringEquals']);
  });

  test.each([
    ['pool/main/k/kiro/kiro_0.7.45_amd64.deb', true],
    ['pool/main/k/kiro/kiro_0.7.45_amd64.sig', true],
    ['dists/stable/InRelease', true],
    ['dists/stable/main/binary-amd64/by-hash/SHA256/ab12', true],
    ['index.html', true],
    ['kiro-repo.deb', true],
    ['kiro-archive-keyring.gpg', true],
    ['staging/kiro-repo_1.1_all.deb', false],
    ['staging/', false],
    ['generations/stable/00000003/manifest.json', false],
    ['generations/stable/00000003/InRelease', false],
    ['config/repository.yaml', false],
    ['tmp/download-1', false],
    ['other.html', false],
  ])('CloudFront may read %s: %s', (key, readable) => {
    const arn = `BUCKET.Arn/${key}`;
    const canRead = allows.some((s) => s.Action.includes('s3:GetObject') && s.Resource.some((r) => patternMatches(r, arn)));
    expect(canRead).toBe(readable);
  });

  test('no anonymous or account-wide Allow; plain HTTP and old TLS are denied', () => {
    for (const s of allows) {
      expect(JSON.stringify(s.Principal)).not.toContain('"*"');
      expect(s.Principal.AWS).toBeUndefined();
    }
    const denies = statements.filter((s) => s.Effect === 'Deny');
    expect(denies.some((s) => s.Condition?.Bool?.['aws:SecureTransport'] === 'false')).toBe(true);
    expect(denies.some((s) => s.Condition?.NumericLessThan?.['s3:TlsVersion'] === 1.2)).toBe(true);
  });

  test('the bucket blocks public access, is versioned, encrypted, sends events, expires old versions and parts', () => {
    const bucket = json.Resources[ids.bucket].Properties;
    expect(bucket.PublicAccessBlockConfiguration).toEqual({
      BlockPublicAcls: true,
      BlockPublicPolicy: true,
      IgnorePublicAcls: true,
      RestrictPublicBuckets: true,
    });
    expect(bucket.VersioningConfiguration).toEqual({ Status: 'Enabled' });
    expect(bucket.BucketEncryption.ServerSideEncryptionConfiguration[0].ServerSideEncryptionByDefault.SSEAlgorithm).toBe('AES256');
    expect(bucket.OwnershipControls.Rules).toEqual([{ ObjectOwnership: 'BucketOwnerEnforced' }]);
    expect(bucket.NotificationConfiguration).toEqual({ EventBridgeConfiguration: { EventBridgeEnabled: true } });
    const rules = bucket.LifecycleConfiguration.Rules;
    expect(rules.some((r: any) => r.NoncurrentVersionExpiration?.NoncurrentDays > 0)).toBe(true);
    expect(rules.some((r: any) => r.AbortIncompleteMultipartUpload?.DaysAfterInitiation > 0)).toBe(true);
    // What retention deletes (pool files, manifests) is reclaimed, not kept as noncurrent versions.
    for (const prefix of ['pool/', 'generations/']) {
      const rule = rules.find((r: any) => r.Prefix === prefix);
      expect(rule).toMatchObject({ Status: 'Enabled', NoncurrentVersionExpiration: { NoncurrentDays: 7 }, ExpiredObjectDeleteMarker: true });
    }
    expect(bucket.LoggingConfiguration.DestinationBucketName).toBeDefined();
    expect(bucket.WebsiteConfiguration).toBeUndefined();
  });

  test('the distribution reaches the bucket through origin access control over HTTPS', () => {
    const cfg = json.Resources[ids.distribution].Properties.DistributionConfig;
    expect(cfg.Origins).toHaveLength(1);
    const [origin] = cfg.Origins;
    expect(origin.DomainName).toEqual({ 'Fn::GetAtt': [ids.bucket, 'RegionalDomainName'] });
    expect(origin.S3OriginConfig).toEqual({ OriginAccessIdentity: '' });
    const oacId = origin.OriginAccessControlId['Fn::GetAtt'][0];
    expect(json.Resources[oacId].Properties.OriginAccessControlConfig).toMatchObject({
      OriginAccessControlOriginType: 's3',
      SigningBehavior: 'always',
      SigningProtocol: 'sigv4',
    });
    expect(cfg.DefaultCacheBehavior.ViewerProtocolPolicy).toBe('redirect-to-https');
    expect(cfg.DefaultCacheBehavior.AllowedMethods).toEqual(['GET', 'HEAD']);
    expect(cfg.DefaultRootObject).toBe('index.html');
    expect(template.findResources('AWS::CloudFront::CloudFrontOriginAccessIdentity')).toEqual({});
  });
});

describe('triggers', () => {
  const rules = template.findResources('AWS::Events::Rule');

  test('the staging rule is staging-rule.json with the bucket name, starting the state machine', () => {
    const [, rule] = resourceWhere(template, 'AWS::Events::Rule', 'Name', `${PREFIX}-staging-upload`);
    const expected = substitute(STAGING_RULE, { BucketName: { Ref: ids.bucket } });
    expect(rule.Properties.EventPattern).toEqual(expected.EventPattern);
    expect(rule.Properties.Targets).toHaveLength(1);
    const [target] = rule.Properties.Targets;
    expect(target.InputTransformer).toEqual(expected.InputTransformer);
    expect(target.Arn).toEqual({ Ref: ids.stateMachine });
    expect(target.DeadLetterConfig).toEqual({ Arn: { 'Fn::GetAtt': [ids.deadLetterQueue, 'Arn'] } });
  });

  test('an hourly schedule starts it with {"trigger": "schedule"}', () => {
    const [, rule] = resourceWhere(template, 'AWS::Events::Rule', 'Name', `${PREFIX}-hourly`);
    expect(rule.Properties.ScheduleExpression).toBe('rate(1 hour)');
    const [target] = rule.Properties.Targets;
    expect(JSON.parse(target.Input)).toEqual({ trigger: 'schedule' });
    expect(target.Arn).toEqual({ Ref: ids.stateMachine });
    expect(target.DeadLetterConfig).toEqual({ Arn: { 'Fn::GetAtt': [ids.deadLetterQueue, 'Arn'] } });
    expect(Object.keys(rules)).toHaveLength(2);
  });

  test('EventBridge may send to the dead-letter queue for these two rules only', () => {
    const [, queuePolicy] = Object.entries(template.findResources('AWS::SQS::QueuePolicy'))[0];
    const allows = queuePolicy.Properties.PolicyDocument.Statement.filter((s: any) => s.Effect === 'Allow');
    const sources = allows.map((s: any) => render(s.Condition.ArnEquals['aws:SourceArn']));
    expect(new Set(sources)).toEqual(new Set(Object.keys(rules).map((id) => `${id}.Arn`)));
    for (const s of allows) expect(s.Principal).toEqual({ Service: 'events.amazonaws.com' });
  });
});

describe('store', () => {
  test('packages table: package_id, on demand, point-in-time recovery, package-name-index', () => {
    const t = json.Resources[ids.packagesTable].Properties;
    expect(t.KeySchema).toEqual([{ AttributeName: 'package_id', KeyType: 'HASH' }]);
    expect(t.BillingMode).toBe('PAY_PER_REQUEST');
    expect(t.PointInTimeRecoverySpecification).toEqual({ PointInTimeRecoveryEnabled: true });
    expect(t.GlobalSecondaryIndexes).toEqual([
      {
        IndexName: 'package-name-index',
        KeySchema: [
          { AttributeName: 'package_name', KeyType: 'HASH' },
          { AttributeName: 'version', KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'ALL' },
      },
    ]);
    expect(new Set(t.AttributeDefinitions)).toEqual(
      new Set(['package_id', 'package_name', 'version'].map((n) => ({ AttributeName: n, AttributeType: 'S' }))),
    );
  });

  test('state table: suite, on demand, point-in-time recovery', () => {
    const t = json.Resources[ids.stateTable].Properties;
    expect(t.KeySchema).toEqual([{ AttributeName: 'suite', KeyType: 'HASH' }]);
    expect(t.AttributeDefinitions).toEqual([{ AttributeName: 'suite', AttributeType: 'S' }]);
    expect(t.BillingMode).toBe('PAY_PER_REQUEST');
    expect(t.PointInTimeRecoverySpecification).toEqual({ PointInTimeRecoveryEnabled: true });
  });

  test('the signing key secret is created without any value', () => {
    const secret = json.Resources[ids.secret].Properties;
    expect(secret.SecretString).toBeUndefined();
    expect(secret.GenerateSecretString).toBeUndefined();
    expect(secret.Name).toBe(`${PREFIX}-signing-key`);
  });
});

describe('functions', () => {
  test.each(FUNCTIONS)('%s: arm64, provided.al2023, its environment, at most 900 s', (name) => {
    const { props } = functionResource(name);
    expect(props.Architectures).toEqual(['arm64']);
    expect(props.Runtime).toBe('provided.al2023');
    expect(props.Handler).toBe('bootstrap');
    expect(props.Timeout).toBeLessThanOrEqual(900);
    const env = props.Environment.Variables;
    const expected: Record<string, unknown> = {
      PACKAGES_TABLE: { Ref: ids.packagesTable },
      STATE_TABLE: { Ref: ids.stateTable },
      BUCKET: { Ref: ids.bucket },
      CONFIG_LOCATION: '/var/task/config',
      PKGRELAY_ENV: 'dev',
      PKGRELAY_LOG: 'info',
    };
    if (name === 'build-index') expected.SIGNING_KEY_SECRET_ARN = { Ref: ids.secret };
    expect(env).toEqual(expected);
    const [logGroupId] = resourceWhere(template, 'AWS::Logs::LogGroup', 'LogGroupName', `/aws/lambda/${PREFIX}-${name}`);
    expect(props.LoggingConfig).toEqual({ LogGroup: { Ref: logGroupId } });
  });

  test('download-package has the most memory and ephemeral storage', () => {
    const memory = (n: string) => functionResource(n).props.MemorySize;
    const storage = (n: string) => functionResource(n).props.EphemeralStorage?.Size ?? 512;
    for (const name of FUNCTIONS.filter((n) => n !== 'download-package')) {
      expect(memory('download-package')).toBeGreaterThan(memory(name));
      expect(storage('download-package')).toBeGreaterThan(storage(name));
    }
    expect(functionResource('download-package').props.Timeout).toBe(900);
  });
});

describe('notifications and alarms', () => {
  test('dev posts both topics to Slack: notify-slack reads only its webhook secret, created without a value', () => {
    const [secretId, secret] = resourceWhere(template, 'AWS::SecretsManager::Secret', 'Name', `${PREFIX}-slack-webhook`);
    expect(secret.Properties.SecretString).toBeUndefined();
    expect(secret.Properties.GenerateSecretString).toBeUndefined();
    const [fnId, fn] = resourceWhere(template, 'AWS::Lambda::Function', 'FunctionName', `${PREFIX}-notify-slack`);
    expect(fn.Properties.Environment.Variables).toEqual({ SLACK_WEBHOOK_SECRET_ARN: { Ref: secretId }, PKGRELAY_LOG: 'info' });
    const statements = roleStatements(template, fn.Properties.Role['Fn::GetAtt'][0], { [secretId]: 'WEBHOOK' });
    expect(grants(statements).filter((g) => !g.startsWith('logs:'))).toEqual(['secretsmanager:GetSecretValue WEBHOOK']);
    // Nobody else reads it.
    const readers = allIdentityStatements(template, { [secretId]: 'WEBHOOK' }).filter((s) => s.Resource.includes('WEBHOOK'));
    expect(readers).toHaveLength(1);
    const topics = Object.values(template.findResources('AWS::SNS::Subscription'))
      .filter((r: any) => r.Properties.Protocol === 'lambda' && r.Properties.Endpoint['Fn::GetAtt'][0] === fnId)
      .map((r: any) => r.Properties.TopicArn.Ref)
      .sort();
    expect(topics).toEqual([ids.successTopic, ids.failureTopic].sort());
  });

  test('both topics are encrypted with a rotating customer managed key', () => {
    for (const id of [ids.successTopic, ids.failureTopic]) {
      const keyId = json.Resources[id].Properties.KmsMasterKeyId['Fn::GetAtt'][0];
      expect(json.Resources[keyId].Properties.EnableKeyRotation).toBe(true);
    }
  });

  test('alarms on failed executions, each function errors and throttles, dead letters; all notify the failure topic', () => {
    const alarms = Object.values(template.findResources('AWS::CloudWatch::Alarm')).map((a) => a.Properties);
    const has = (namespace: string, metric: string, dimension: unknown) =>
      alarms.filter(
        (a) => a.Namespace === namespace && a.MetricName === metric && JSON.stringify(a.Dimensions).includes(JSON.stringify(dimension)),
      ).length;
    expect(has('AWS/States', 'ExecutionsFailed', { Ref: ids.stateMachine })).toBe(1);
    for (const name of FUNCTIONS) {
      expect(has('AWS/Lambda', 'Errors', { Ref: ids.function(name) })).toBe(1);
      expect(has('AWS/Lambda', 'Throttles', { Ref: ids.function(name) })).toBe(1);
    }
    expect(has('AWS/SQS', 'ApproximateNumberOfMessagesVisible', { 'Fn::GetAtt': [ids.deadLetterQueue, 'QueueName'] })).toBe(1);
    for (const a of alarms) {
      expect(a.AlarmActions).toEqual([{ Ref: ids.failureTopic }]);
      expect(a.AlarmName).toMatch(new RegExp(`^${PREFIX}-`));
    }
  });
});

test('outputs: bucket, tables, state machine, staging prefix, repository URL, signing key secret', () => {
  const outputs = json.Outputs;
  expect(outputs.BucketName.Value).toEqual({ Ref: ids.bucket });
  expect(outputs.PackagesTableName.Value).toEqual({ Ref: ids.packagesTable });
  expect(outputs.StateTableName.Value).toEqual({ Ref: ids.stateTable });
  expect(outputs.StateMachineArn.Value).toEqual({ Ref: ids.stateMachine });
  expect(outputs.StagingPrefix.Value).toBe('staging/');
  expect(render(outputs.RepositoryUrl.Value)).toBe(`https://${ids.distribution}.DomainName/`);
  expect(outputs.SigningKeySecretArn.Value).toEqual({ Ref: ids.secret });
  expect(stack.stackName).toBe(PREFIX);
});
