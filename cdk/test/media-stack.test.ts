// The media sync's stack (lib/media-stack.ts, statemachine/media.md): what it
// holds, and that each function's role grants exactly what media.md's
// reads/writes table says, nothing more.

import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { MEDIA_FUNCTION_NAMES } from '../lib/media-functions';
import { Json, REPO_ROOT, Statement, asArray, grants, onlyResource, render, resourceWhere, roleStatements, synthesizeMedia } from './helpers';

const { stack, template } = synthesizeMedia('dev');
const json = template.toJSON();
const resources: Record<string, Json> = json.Resources;

/** Logical ids rendered as what they are: `Bucket`, `MediaKey`, or the resource's name. */
const names: Record<string, string> = {};
for (const [id, r] of Object.entries<Json>(resources)) {
  const p = r.Properties ?? {};
  const n = p.FunctionName ?? p.TableName ?? p.Name ?? p.TopicName ?? p.QueueName ?? p.LogGroupName ?? p.StateMachineName;
  if (r.Type === 'AWS::S3::Bucket') names[id] = 'Bucket';
  else if (r.Type === 'AWS::KMS::Key') names[id] = id.startsWith('MediaKey') ? 'MediaKey' : id.startsWith('AlertKey') ? 'AlertKey' : id;
  else if (typeof n === 'string') names[id] = n;
}

const fnId = (name: string) => resourceWhere(template, 'AWS::Lambda::Function', 'FunctionName', `pkgrelay-dev-${name}`)[0];
const roleOf = (name: string) => resources[fnId(name)].Properties.Role['Fn::GetAtt'][0];
const statementsOf = (name: string): Statement[] => roleStatements(template, roleOf(name), names);
const [bucketId, bucket] = onlyResource(template, 'AWS::S3::Bucket');
const [stateMachineId, stateMachine] = onlyResource(template, 'AWS::StepFunctions::StateMachine');
const stateMachineRoleId = stateMachine.Properties.RoleArn['Fn::GetAtt'][0];
const [tableId, table] = onlyResource(template, 'AWS::DynamoDB::Table');
const [secretId, secret] = onlyResource(template, 'AWS::SecretsManager::Secret');
const [topicId, topic] = onlyResource(template, 'AWS::SNS::Topic');
const mediaKeyId = Object.keys(names).find((id) => names[id] === 'MediaKey')!;
const alertKeyId = Object.keys(names).find((id) => names[id] === 'AlertKey')!;

const LOGS = (name: string) => [`logs:CreateLogStream /aws/lambda/pkgrelay-dev-${name}.Arn`, `logs:PutLogEvents /aws/lambda/pkgrelay-dev-${name}.Arn`];
const COMMON = (name: string) => [
  ...LOGS(name),
  // Asynchronous invocations that fail land in the function's own DLQ.
  `sqs:SendMessage pkgrelay-dev-media-${name}-dlq.Arn`,
  // X-Ray has no resource-level permissions.
  'xray:PutTelemetryRecords *',
  'xray:PutTraceSegments *',
];
const SECRET = 'pkgrelay-dev-media-gopro-credentials';
const TABLE = 'pkgrelay-dev-media-status.Arn';

test('the app has the package stack and this one, pkgrelay-dev-media, written to its own template', () => {
  expect(stack.stackName).toBe('pkgrelay-dev-media');
  expect(stack.templateFile).toBe('pkgrelay-dev-media.template.json');
});

test('dev, staging and prod media stacks share no name', () => {
  const namesOf = (t: Json) =>
    Object.values<Json>(t.Resources)
      .filter((r) => r.Type !== 'AWS::Lambda::Permission')
      .flatMap((r) => ['FunctionName', 'TableName', 'StateMachineName', 'TopicName', 'QueueName', 'Name', 'AlarmName', 'AliasName', 'DashboardName', 'LogGroupName'].map((p) => r.Properties?.[p]))
      .filter((v) => typeof v === 'string');
  const all = [json, synthesizeMedia('staging').template.toJSON(), synthesizeMedia('prod').template.toJSON()].flatMap(namesOf);
  expect(new Set(all).size).toBe(all.length);
});

test('named resources carry pkgrelay-dev-media-, the functions pkgrelay-dev-<binary>', () => {
  const props = ['FunctionName', 'TableName', 'StateMachineName', 'TopicName', 'QueueName', 'Name', 'AlarmName', 'AliasName', 'DashboardName'];
  const seen: string[] = [];
  for (const r of Object.values<Json>(resources)) {
    if (r.Type === 'AWS::Lambda::Permission') continue;
    for (const p of props) {
      const v = r.Properties?.[p];
      if (v === undefined) continue;
      expect(typeof v).toBe('string');
      seen.push(v);
      if (r.Type === 'AWS::Lambda::Function') expect(MEDIA_FUNCTION_NAMES.map((n) => `pkgrelay-dev-${n}`)).toContain(v);
      else if (p === 'AliasName') expect(v).toMatch(/^alias\/pkgrelay-dev-media(-|$)/);
      else expect(v).toMatch(/^pkgrelay-dev-media(-|$)/);
    }
  }
  expect(seen).toEqual(expect.arrayContaining(['pkgrelay-dev-media-status', 'pkgrelay-dev-media-gopro-credentials', 'pkgrelay-dev-media-sync', 'pkgrelay-dev-media-alerts', 'pkgrelay-dev-media-daily']));
  for (const r of Object.values<Json>(template.findResources('AWS::Logs::LogGroup'))) {
    expect(r.Properties.LogGroupName).toMatch(/^\/aws\/(lambda\/pkgrelay-dev-(authenticate|list-media|download-media|summarize)|vendedlogs\/states\/pkgrelay-dev-media-sync)$/);
    expect(r.Properties.RetentionInDays).toBe(30);
  }
});

describe('status table', () => {
  test('pk, on demand, point-in-time recovery, the by-status index', () => {
    expect(table.Properties).toMatchObject({
      TableName: 'pkgrelay-dev-media-status',
      KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
      BillingMode: 'PAY_PER_REQUEST',
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      GlobalSecondaryIndexes: [
        {
          IndexName: 'by-status',
          KeySchema: [
            { AttributeName: 'status', KeyType: 'HASH' },
            { AttributeName: 'updated_at', KeyType: 'RANGE' },
          ],
          Projection: { ProjectionType: 'ALL' },
        },
      ],
    });
    expect(table.Properties.AttributeDefinitions).toEqual(
      expect.arrayContaining([
        { AttributeName: 'pk', AttributeType: 'S' },
        { AttributeName: 'status', AttributeType: 'S' },
        { AttributeName: 'updated_at', AttributeType: 'S' },
      ]),
    );
    expect(table.DeletionPolicy).toBe('Delete');
  });

  test('kept and protected in prod', () => {
    const prod = synthesizeMedia('prod').template;
    const [, t] = onlyResource(prod, 'AWS::DynamoDB::Table');
    expect(t.DeletionPolicy).toBe('Retain');
    expect(t.Properties.DeletionProtectionEnabled).toBe(true);
    const [, s] = onlyResource(prod, 'AWS::SecretsManager::Secret');
    expect(s.DeletionPolicy).toBe('Retain');
  });
});

describe('media bucket', () => {
  test('versioned, SSE-KMS with the rotating media key and a bucket key, private, kept', () => {
    expect(bucket.Properties.VersioningConfiguration).toEqual({ Status: 'Enabled' });
    expect(bucket.Properties.BucketEncryption.ServerSideEncryptionConfiguration).toEqual([
      {
        BucketKeyEnabled: true,
        ServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: { 'Fn::GetAtt': [mediaKeyId, 'Arn'] } },
      },
    ]);
    expect(bucket.Properties.PublicAccessBlockConfiguration).toEqual({
      BlockPublicAcls: true,
      BlockPublicPolicy: true,
      IgnorePublicAcls: true,
      RestrictPublicBuckets: true,
    });
    expect(bucket.DeletionPolicy).toBe('Retain');
    expect(resources[mediaKeyId].Properties.EnableKeyRotation).toBe(true);
    expect(resources[mediaKeyId].DeletionPolicy).toBe('Retain');
  });

  test('lifecycle: media/ to Glacier IR at 7 days, Deep Archive at 90; old versions, parts and run files expire', () => {
    const rules: Json[] = bucket.Properties.LifecycleConfiguration.Rules;
    const byId = Object.fromEntries(rules.map((r) => [r.Id, r]));
    expect(byId['media-to-glacier-ir-then-deep-archive']).toMatchObject({
      Prefix: 'media/',
      Status: 'Enabled',
      Transitions: [
        { StorageClass: 'GLACIER_IR', TransitionInDays: 7 },
        { StorageClass: 'DEEP_ARCHIVE', TransitionInDays: 90 },
      ],
    });
    expect(byId['expire-noncurrent-versions'].NoncurrentVersionExpiration).toEqual({ NoncurrentDays: 30 });
    expect(byId['abort-incomplete-multipart-uploads'].AbortIncompleteMultipartUpload).toEqual({ DaysAfterInitiation: 3 });
    expect(byId['expire-run-files']).toMatchObject({ Prefix: 'runs/', ExpirationInDays: 14 });
  });

  test('policy: no Allow; plain HTTP denied; objects for list-media, download-media, summarize and the state machine only', () => {
    const [, policy] = onlyResource(template, 'AWS::S3::BucketPolicy');
    const statements: Json[] = policy.Properties.PolicyDocument.Statement;
    expect(statements.filter((s) => s.Effect !== 'Deny')).toEqual([]);
    expect(statements.some((s) => s.Condition?.Bool?.['aws:SecureTransport'] === 'false' && s.Action === 's3:*')).toBe(true);
    const only = statements.find((s) => s.Sid === 'ObjectsForTheMediaRolesOnly');
    expect(only.Principal).toEqual({ AWS: '*' });
    expect(asArray(only.Action)).toEqual(expect.arrayContaining(['s3:GetObject*', 's3:PutObject*', 's3:DeleteObject*', 's3:RestoreObject']));
    const exempt = only.Condition.ArnNotLike['aws:PrincipalArn'].map((a: Json) => render(a, names));
    const roleArn = (role: string) => `${names[role] ?? role}.Arn`;
    expect(exempt).toEqual([
      roleArn(roleOf('list-media')),
      roleArn(roleOf('download-media')),
      roleArn(roleOf('summarize')),
      roleArn(stateMachineRoleId),
      'arn:AWS::Partition:iam::AWS::AccountId:role/pkgrelay-dev-media-reader*',
    ]);
  });
});

test('the credentials secret: created without a value, encrypted with the media key', () => {
  expect(secret.Properties.Name).toBe(SECRET);
  expect(secret.Properties.SecretString).toBeUndefined();
  expect(secret.Properties.GenerateSecretString).toBeUndefined();
  expect(secret.Properties.KmsKeyId).toEqual({ 'Fn::GetAtt': [mediaKeyId, 'Arn'] });
  expect(secretId).toBeDefined();
});

describe('function roles grant exactly what media.md lists', () => {
  test('authenticate: reads and rotates the secret, nothing else', () => {
    expect(grants(statementsOf('authenticate'))).toEqual(
      [
        ...COMMON('authenticate'),
        `secretsmanager:GetSecretValue ${SECRET}`,
        `secretsmanager:PutSecretValue ${SECRET}`,
        'kms:Decrypt MediaKey.Arn',
        'kms:GenerateDataKey MediaKey.Arn',
      ].sort(),
    );
  });

  test('list-media: reads the secret, reads and marks the status table, writes runs/media/', () => {
    expect(grants(statementsOf('list-media'))).toEqual(
      [
        ...COMMON('list-media'),
        `secretsmanager:GetSecretValue ${SECRET}`,
        'kms:Decrypt MediaKey.Arn',
        `dynamodb:BatchGetItem ${TABLE}`,
        `dynamodb:GetItem ${TABLE}`,
        `dynamodb:PutItem ${TABLE}`,
        `dynamodb:UpdateItem ${TABLE}`,
        // ids_not_deleted: what left the library becomes SOURCE_DELETED.
        `dynamodb:Query ${TABLE}/index/by-status`,
        's3:PutObject Bucket.Arn/runs/media/*',
        'kms:GenerateDataKey MediaKey.Arn',
      ].sort(),
    );
  });

  test('download-media: reads the secret, tracks the status table, copies into media/ (multipart)', () => {
    expect(grants(statementsOf('download-media'))).toEqual(
      [
        ...COMMON('download-media'),
        `secretsmanager:GetSecretValue ${SECRET}`,
        'kms:Decrypt MediaKey.Arn',
        `dynamodb:GetItem ${TABLE}`,
        `dynamodb:PutItem ${TABLE}`,
        `dynamodb:UpdateItem ${TABLE}`,
        's3:GetObject Bucket.Arn/media/*',
        's3:PutObject Bucket.Arn/media/*',
        's3:ListMultipartUploadParts Bucket.Arn/media/*',
        's3:AbortMultipartUpload Bucket.Arn/media/*',
        // HeadObject of a key not copied yet answers 404 only with ListBucket.
        's3:ListBucket Bucket.Arn',
        'kms:Decrypt MediaKey.Arn',
        'kms:GenerateDataKey MediaKey.Arn',
      ].sort(),
    );
  });

  test('summarize: reads the results under runs/media/, nothing else', () => {
    expect(grants(statementsOf('summarize'))).toEqual(
      [...COMMON('summarize'), 's3:GetObject Bucket.Arn/runs/media/*', 's3:ListBucket Bucket.Arn', 'kms:Decrypt MediaKey.Arn'].sort(),
    );
    const list = statementsOf('summarize').find((s) => s.Action.includes('s3:ListBucket'))!;
    expect(list.Condition).toEqual({ StringLike: { 's3:prefix': ['runs/media/*'] } });
  });

  test('every use of the media key goes through S3 or Secrets Manager', () => {
    for (const name of MEDIA_FUNCTION_NAMES) {
      for (const s of statementsOf(name).filter((s) => s.Action.some((a) => a.startsWith('kms:')))) {
        const via = render(s.Condition?.StringEquals?.['kms:ViaService']);
        expect(via).toMatch(/^(s3|secretsmanager)\.AWS::Region\.amazonaws\.com$/);
      }
    }
  });

  test.each([
    ['secretsmanager:PutSecretValue', ['authenticate']],
    ['secretsmanager:GetSecretValue', ['authenticate', 'list-media', 'download-media']],
    ['dynamodb:BatchGetItem', ['list-media']],
    ['dynamodb:UpdateItem', ['list-media', 'download-media']],
    ['s3:PutObject', ['list-media', 'download-media']],
    ['s3:GetObject', ['download-media', 'summarize']],
  ])('only the functions media.md names may %s', (action, allowed) => {
    const holders = MEDIA_FUNCTION_NAMES.filter((n) => statementsOf(n).some((s) => s.Effect === 'Allow' && s.Action.includes(action)));
    expect(holders).toEqual(allowed);
  });

  test('no function may delete, scan, or hold a wildcard action; only list-media queries, the index only; "*" resources are X-Ray only', () => {
    for (const name of MEDIA_FUNCTION_NAMES) {
      for (const s of statementsOf(name)) {
        for (const a of s.Action) {
          expect(a).not.toMatch(/\*/);
          expect(a).not.toMatch(/^(dynamodb:(DeleteItem|Scan|BatchWriteItem)|s3:Delete|secretsmanager:(DeleteSecret|UpdateSecret)|kms:(Encrypt|CreateGrant))/);
        }
        if (s.Action.includes('dynamodb:Query')) {
          expect(name).toBe('list-media');
          expect(s.Resource).toEqual([`${TABLE}/index/by-status`]);
        }
        if (s.Resource.includes('*')) expect(s.Action.every((a) => a.startsWith('xray:'))).toBe(true);
        // Object grants are under media/ or runs/media/, never the whole bucket.
        for (const r of s.Resource.filter((x) => x.startsWith('Bucket.Arn/'))) expect(r).toMatch(/^Bucket\.Arn\/(media|runs\/media)\/\*$/);
      }
    }
  });
});

describe('functions', () => {
  const expected: Record<string, [number, number]> = {
    authenticate: [256, 60],
    'list-media': [512, 300],
    'download-media': [1024, 900],
    summarize: [256, 120],
  };
  test.each(MEDIA_FUNCTION_NAMES)('%s: provided.al2023 arm64, its size, X-Ray, a DLQ, the environment of media.md', (name) => {
    const p = resources[fnId(name)].Properties;
    expect(p.Runtime).toBe('provided.al2023');
    expect(p.Architectures).toEqual(['arm64']);
    expect([p.MemorySize, p.Timeout]).toEqual(expected[name]);
    expect(p.TracingConfig).toEqual({ Mode: 'Active' });
    expect(render(p.DeadLetterConfig.TargetArn, names)).toBe(`pkgrelay-dev-media-${name}-dlq.Arn`);
    const env = p.Environment.Variables;
    expect(render(env.MEDIA_BUCKET, names)).toBe('Bucket');
    expect(render(env.MEDIA_STATUS_TABLE, names)).toBe('pkgrelay-dev-media-status');
    expect(env.CONFIG_LOCATION).toBe('/var/task/config');
    expect(env.MEDIA_PROVIDER).toBe('gopro');
    expect(env.PKGRELAY_ENV).toBe('dev');
    if (name === 'summarize') expect(env.MEDIA_SECRET_ARN).toBeUndefined();
    else expect(render(env.MEDIA_SECRET_ARN, names)).toBe(SECRET);
    expect(p.VpcConfig).toBeUndefined();
  });
});

describe('state machine', () => {
  const asl = readFileSync(path.join(REPO_ROOT, 'statemachine', 'media.asl.json'), 'utf8');

  test('the definition is statemachine/media.asl.json verbatim, 12 h timeout, substitutions for this stack', () => {
    expect(stateMachine.Properties.DefinitionString).toBe(asl);
    expect(JSON.parse(asl).TimeoutSeconds).toBe(43200);
    const subs = Object.fromEntries(Object.entries<Json>(stateMachine.Properties.DefinitionSubstitutions).map(([k, v]) => [k, render(v, names)]));
    expect(subs).toEqual({
      AlertTopicArn: 'pkgrelay-dev-media-alerts',
      MediaBucketName: 'Bucket',
      AuthenticateFunctionArn: 'pkgrelay-dev-authenticate.Arn',
      ListMediaFunctionArn: 'pkgrelay-dev-list-media.Arn',
      DownloadMediaFunctionArn: 'pkgrelay-dev-download-media.Arn',
      SummarizeFunctionArn: 'pkgrelay-dev-summarize.Arn',
    });
    expect(stateMachine.Properties.StateMachineName).toBe('pkgrelay-dev-media-sync');
  });

  test('logs everything to its own log group, traced with X-Ray', () => {
    expect(stateMachine.Properties.TracingConfiguration).toEqual({ Enabled: true });
    expect(stateMachine.Properties.LoggingConfiguration).toMatchObject({ Level: 'ALL', IncludeExecutionData: true });
  });

  test('its role invokes the four functions, publishes the alerts, runs the Distributed Map over runs/media/; nothing else', () => {
    const g = grants(roleStatements(template, stateMachineRoleId, names)).filter(
      (x) => !/^(logs:(Create|Delete|Get|Update)LogDelivery|logs:ListLogDeliveries|logs:Describe|logs:PutResourcePolicy|xray:)/.test(x),
    );
    const sm = 'arn:AWS::Partition:states:AWS::Region:AWS::AccountId';
    expect(g).toEqual(
      [
        ...MEDIA_FUNCTION_NAMES.flatMap((n) => [`lambda:InvokeFunction pkgrelay-dev-${n}.Arn`, `lambda:InvokeFunction pkgrelay-dev-${n}.Arn:*`]),
        'sns:Publish pkgrelay-dev-media-alerts',
        'kms:Decrypt AlertKey.Arn',
        'kms:GenerateDataKey* AlertKey.Arn',
        's3:GetObject Bucket.Arn/runs/media/*',
        's3:PutObject Bucket.Arn/runs/media/*',
        's3:AbortMultipartUpload Bucket.Arn/runs/media/*',
        's3:ListMultipartUploadParts Bucket.Arn/runs/media/*',
        'kms:Decrypt MediaKey.Arn',
        'kms:GenerateDataKey MediaKey.Arn',
        `states:StartExecution ${sm}:stateMachine:pkgrelay-dev-media-sync`,
        `states:DescribeExecution ${sm}:execution:pkgrelay-dev-media-sync/*`,
        `states:StopExecution ${sm}:execution:pkgrelay-dev-media-sync/*`,
      ].sort(),
    );
  });
});

describe('schedule', () => {
  const [, schedule] = onlyResource(template, 'AWS::Scheduler::Schedule');

  test('daily at 02:00 Europe/Paris, {"trigger": "schedule"}, with retries and a DLQ', () => {
    expect(schedule.Properties).toMatchObject({
      Name: 'pkgrelay-dev-media-daily',
      ScheduleExpression: 'cron(0 2 * * ? *)',
      ScheduleExpressionTimezone: 'Europe/Paris',
      FlexibleTimeWindow: { Mode: 'OFF' },
      State: 'ENABLED',
    });
    const target = schedule.Properties.Target;
    expect(render(target.Arn, names)).toBe('pkgrelay-dev-media-sync');
    expect(JSON.parse(target.Input)).toEqual({ trigger: 'schedule' });
    expect(render(target.DeadLetterConfig.Arn, names)).toBe('pkgrelay-dev-media-schedule-dlq.Arn');
    expect(target.RetryPolicy).toEqual({ MaximumEventAgeInSeconds: 21600, MaximumRetryAttempts: 8 });
  });

  test('its role may start this state machine and send to its DLQ, nothing else', () => {
    const roleId = schedule.Properties.Target.RoleArn['Fn::GetAtt'][0];
    expect(resources[roleId].Properties.AssumeRolePolicyDocument.Statement[0].Principal).toEqual({ Service: 'scheduler.amazonaws.com' });
    expect(grants(roleStatements(template, roleId, names))).toEqual([
      'sqs:SendMessage pkgrelay-dev-media-schedule-dlq.Arn',
      'states:StartExecution pkgrelay-dev-media-sync',
    ]);
  });
});

describe('alerts', () => {
  test('the topic is encrypted with a rotating customer managed key CloudWatch may use', () => {
    expect(topic.Properties.TopicName).toBe('pkgrelay-dev-media-alerts');
    expect(topic.Properties.KmsMasterKeyId).toEqual({ 'Fn::GetAtt': [alertKeyId, 'Arn'] });
    expect(resources[alertKeyId].Properties.EnableKeyRotation).toBe(true);
    const keyPolicy = resources[alertKeyId].Properties.KeyPolicy.Statement;
    expect(keyPolicy.some((s: Json) => s.Principal?.Service === 'cloudwatch.amazonaws.com')).toBe(true);
  });

  test('an email subscription only when the AlertEmail parameter is set', () => {
    expect(json.Parameters.AlertEmail).toMatchObject({ Type: 'String', Default: '' });
    const [, sub] = onlyResource(template, 'AWS::SNS::Subscription');
    expect(sub.Condition).toBe('HasAlertEmail');
    expect(sub.Properties).toMatchObject({ Protocol: 'email', Endpoint: { Ref: 'AlertEmail' }, TopicArn: { Ref: topicId } });
    expect(json.Conditions.HasAlertEmail).toEqual({ 'Fn::Not': [{ 'Fn::Equals': [{ Ref: 'AlertEmail' }, ''] }] });
  });

  test('alarms: failures, failure rate, auth failures, Lambda errors and throttles, dead letters, low throughput; all to the topic', () => {
    const alarms = Object.values<Json>(template.findResources('AWS::CloudWatch::Alarm'));
    const byName = Object.fromEntries(alarms.map((a) => [a.Properties.AlarmName, a.Properties]));
    expect(Object.keys(byName).sort()).toEqual(
      [
        'sync-failed',
        'sync-timed-out',
        'sync-failure-rate',
        'auth-failures',
        ...MEDIA_FUNCTION_NAMES.flatMap((n) => [`${n}-errors`, `${n}-throttles`]),
        ...MEDIA_FUNCTION_NAMES.map((n) => `${n}-dead-letters`),
        'schedule-dead-letters',
        'throughput-low',
      ]
        .map((n) => `pkgrelay-dev-media-${n}`)
        .sort(),
    );
    for (const a of alarms) expect(a.Properties.AlarmActions).toEqual([{ Ref: topicId }]);
    const throughput = byName['pkgrelay-dev-media-throughput-low'];
    expect(throughput).toMatchObject({
      Namespace: 'pkgrelay/media',
      MetricName: 'TransferThroughput',
      Dimensions: [{ Name: 'Environment', Value: 'dev' }],
      Threshold: 20,
      ComparisonOperator: 'LessThanThreshold',
      TreatMissingData: 'notBreaching',
    });
    expect(byName['pkgrelay-dev-media-auth-failures']).toMatchObject({ Namespace: 'pkgrelay/media', MetricName: 'AuthFailures-dev' });
    const [, filter] = onlyResource(template, 'AWS::Logs::MetricFilter');
    expect(filter.Properties.FilterPattern).toContain('LoginRequired');
  });

  test('a dashboard shows the same metrics', () => {
    const [, dashboard] = onlyResource(template, 'AWS::CloudWatch::Dashboard');
    const body = JSON.stringify(dashboard.Properties.DashboardBody);
    for (const m of ['VideosSynced', 'BytesTransferred', 'TransferDuration', 'TransferThroughput', 'TimeToFirstByte', 'AuthFailures-dev', 'ExecutionsFailed', 'Errors', 'Throttles', 'ApproximateNumberOfMessagesVisible']) {
      expect(body).toContain(m);
    }
  });
});

test('dead-letter queues are encrypted and refuse plain HTTP', () => {
  const queues = Object.values<Json>(template.findResources('AWS::SQS::Queue'));
  expect(queues.map((q) => q.Properties.QueueName).sort()).toEqual(
    [...MEDIA_FUNCTION_NAMES.map((n) => `pkgrelay-dev-media-${n}-dlq`), 'pkgrelay-dev-media-schedule-dlq'].sort(),
  );
  for (const q of queues) expect(q.Properties.SqsManagedSseEnabled).toBe(true);
  expect(Object.keys(template.findResources('AWS::SQS::QueuePolicy'))).toHaveLength(queues.length);
});

describe('the optional VPC', () => {
  test('off by default', () => {
    expect(Object.keys(template.findResources('AWS::EC2::VPC'))).toHaveLength(0);
    expect(Object.keys(template.findResources('AWS::EC2::NatGateway'))).toHaveLength(0);
  });

  test('-c mediaVpc=true: private subnets, one NAT gateway, S3 and DynamoDB gateway endpoints, a Secrets Manager endpoint', () => {
    const t = synthesizeMedia('dev', { mediaVpc: 'true' }).template;
    expect(Object.keys(t.findResources('AWS::EC2::VPC'))).toHaveLength(1);
    expect(Object.keys(t.findResources('AWS::EC2::NatGateway'))).toHaveLength(1);
    const endpoints = Object.values<Json>(t.findResources('AWS::EC2::VPCEndpoint'));
    const services = endpoints.map((e) => `${e.Properties.VpcEndpointType ?? 'Gateway'} ${render(e.Properties.ServiceName)}`).sort();
    expect(services.join('\n')).toMatch(/Gateway .*dynamodb/);
    expect(services.join('\n')).toMatch(/Gateway .*s3/);
    expect(services.join('\n')).toMatch(/Interface .*secretsmanager/);
    for (const name of MEDIA_FUNCTION_NAMES) {
      const [, fn] = resourceWhere(t, 'AWS::Lambda::Function', 'FunctionName', `pkgrelay-dev-${name}`);
      expect(fn.Properties.VpcConfig.SubnetIds.length).toBeGreaterThan(0);
    }
  });

  test('any other value is refused', () => {
    expect(() => synthesizeMedia('dev', { mediaVpc: 'yes' })).toThrow(/mediaVpc/);
  });
});

test('outputs: state machine, bucket, table, secret, topic', () => {
  expect(Object.keys(json.Outputs).filter((k) => !k.startsWith('Export')).sort()).toEqual(
    ['AlertTopicArn', 'CredentialsSecretArn', 'MediaBucketName', 'StateMachineArn', 'StatusTableName'].sort(),
  );
  expect(render(json.Outputs.MediaBucketName.Value, names)).toBe('Bucket');
  expect(bucketId).toBeDefined();
  expect(tableId).toBeDefined();
  expect(stateMachineId).toBeDefined();
});
