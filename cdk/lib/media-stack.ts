// The GoPro cloud media sync on AWS (issue 14, statemachine/media.md): the
// media bucket (SSE-KMS, lifecycle to Glacier Instant Retrieval then Deep
// Archive), the status table, the credentials secret, the four Rust functions
// with a role each, the state machine from statemachine/media.asl.json, its
// daily schedule, the alert topic, alarms and a dashboard. One stack per
// environment beside the package pipeline's: pkgrelay-<env>-media. Its named
// resources are prefixed pkgrelay-<env>-media-, except the functions
// (pkgrelay-<env>-<binary>, as the package functions: localaws maps a function
// name minus pkgrelay-<env>- to its binary).

import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import {
  ArnFormat,
  Aws,
  CfnCondition,
  CfnOutput,
  CfnParameter,
  CfnResource,
  Duration,
  Fn,
  RemovalPolicy,
  Stack,
  StackProps,
  Validations,
  aws_cloudwatch as cloudwatch,
  aws_cloudwatch_actions as cloudwatchActions,
  aws_dynamodb as dynamodb,
  aws_ec2 as ec2,
  aws_iam as iam,
  aws_kms as kms,
  aws_lambda as lambda,
  aws_logs as logs,
  aws_s3 as s3,
  aws_scheduler as scheduler,
  aws_secretsmanager as secretsmanager,
  aws_sns as sns,
  aws_sqs as sqs,
  aws_stepfunctions as sfn,
} from 'aws-cdk-lib';
import { RustFunction } from 'cargo-lambda-cdk';
import { Construct } from 'constructs';
import { EnvironmentSettings } from './environments';
import {
  MEDIA_FUNCTION_NAMES,
  MEDIA_FUNCTION_SIZING,
  MEDIA_OBJECTS_PREFIX,
  MEDIA_PROVIDER,
  MediaFunctionName,
  STATUS_INDEX,
  mediaFunctionPermissions,
  mediaStateMachinePermissions,
} from './media-functions';
import { CARGO_MANIFEST, CONFIG_LOCATION, REPO_ROOT } from './repository';
import { ignoreCfnLint, skipCheckov } from './suppressions';

export const MEDIA_ASL_FILE = path.join(REPO_ROOT, 'statemachine', 'media.asl.json');
/** The context key that turns the optional VPC on: `-c mediaVpc=true`. */
export const MEDIA_VPC_CONTEXT = 'mediaVpc';
/** The metrics summarize writes as embedded-metric log lines (media.md), dimension Environment. */
export const MEDIA_METRICS_NAMESPACE = 'pkgrelay/media';
/** Below this average a day's copies alarm (Mbit/s, the unit of TransferThroughput). */
export const THROUGHPUT_FLOOR_MBPS = 20;
/**
 * Days in Glacier Instant Retrieval before Deep Archive (day 7 + 83 = day 90):
 * Glacier IR bills at least 90 days, so a move before day 90 would pay both;
 * by then a fresh video has been looked at (IR still serves it in
 * milliseconds), afterwards it is an archive (12 h restore).
 */
export const DEEP_ARCHIVE_AFTER_DAYS = 90;

export interface MediaStackProps extends StackProps {
  readonly environment: EnvironmentSettings;
  /**
   * Put the functions in a VPC of their own (private subnets, one NAT gateway,
   * gateway endpoints for S3 and DynamoDB, an interface endpoint for Secrets
   * Manager). Off by default: the functions need only the internet and AWS
   * APIs, and the NAT gateway (about $32 a month plus $0.045 per GB it
   * carries, every downloaded byte) costs more than the sync itself.
   */
  readonly vpc?: boolean;
}

/** `list-media` -> `ListMedia` (logical ids, ASL placeholder names). */
function pascal(name: string): string {
  return name
    .split('-')
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join('');
}

export class MediaStack extends Stack {
  public readonly bucket: s3.Bucket;
  public readonly table: dynamodb.Table;
  public readonly key: kms.Key;
  public readonly alertKey: kms.Key;
  public readonly secret: secretsmanager.CfnSecret;
  public readonly topic: sns.Topic;
  public readonly functions: Record<MediaFunctionName, lambda.Function>;
  public readonly stateMachine: sfn.StateMachine;
  public readonly schedule: scheduler.CfnSchedule;
  public readonly vpc?: ec2.Vpc;

  constructor(scope: Construct, id: string, props: MediaStackProps) {
    super(scope, id, props);
    const env = props.environment;
    // pkgrelay-<env>: the functions' prefix; pkgrelay-<env>-media: every other name's.
    const envPrefix = env.prefix;
    const prefix = `${envPrefix}-media`;
    const removal = env.retainData ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY;
    const logRetention = logs.RetentionDays.ONE_MONTH;

    // ---- Encryption: the media key (bucket, secret), the alert key (topic).

    // Kept whatever the environment: the bucket is kept, and its objects are
    // unreadable without this key.
    this.key = new kms.Key(this, 'MediaKey', {
      alias: `alias/${prefix}`,
      description: `${prefix}: encrypts the media bucket and the GoPro credentials secret`,
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN,
      pendingWindow: Duration.days(30),
    });
    const key = this.key;

    this.alertKey = new kms.Key(this, 'AlertKey', {
      alias: `alias/${prefix}-alerts`,
      description: `${prefix}: encrypts the alert topic`,
      enableKeyRotation: true,
      removalPolicy: removal,
      pendingWindow: Duration.days(7),
    });
    // CloudWatch alarms publish to the topic: the service needs the key (the
    // state machine's role is granted it by grantPublish, through IAM).
    this.alertKey.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'CloudWatchAlarmsUseTheKey',
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        resources: ['*'],
        conditions: { StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID } },
      }),
    );

    // ---- The status table: one item per media item, keyed provider#media_id.

    this.table = new dynamodb.Table(this, 'StatusTable', {
      tableName: `${prefix}-status`,
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      deletionProtection: env.retainData,
      removalPolicy: removal,
    });
    this.table.addGlobalSecondaryIndex({
      indexName: STATUS_INDEX,
      partitionKey: { name: 'status', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'updated_at', type: dynamodb.AttributeType.STRING },
      projectionType: dynamodb.ProjectionType.ALL,
    });
    skipCheckov(this.table, 'CKV_AWS_119', 'Encrypted with the AWS managed key; status records hold ids, keys and digests, never media or tokens');
    const table = this.table;

    // ---- The media bucket.

    this.bucket = new s3.Bucket(this, 'MediaBucket', {
      versioned: true,
      encryption: s3.BucketEncryption.KMS,
      encryptionKey: key,
      // One data key per bucket, not per object: fewer KMS requests (each part of a multipart upload would make one).
      bucketKeyEnabled: true,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [
        {
          // A copy is looked at in its first days; then it is an archive.
          id: 'media-to-glacier-ir-then-deep-archive',
          prefix: MEDIA_OBJECTS_PREFIX,
          transitions: [
            { storageClass: s3.StorageClass.GLACIER_INSTANT_RETRIEVAL, transitionAfter: Duration.days(7) },
            { storageClass: s3.StorageClass.DEEP_ARCHIVE, transitionAfter: Duration.days(DEEP_ARCHIVE_AFTER_DAYS) },
          ],
        },
        {
          // Copies are write-once; an overwritten or deleted one stays a month for recovery.
          id: 'expire-noncurrent-versions',
          noncurrentVersionExpiration: Duration.days(30),
          expiredObjectDeleteMarker: true,
        },
        {
          // Parts left behind by a download-media killed mid-upload that no
          // later run resumed (it resumes within a day: the next run).
          id: 'abort-incomplete-multipart-uploads',
          abortIncompleteMultipartUploadAfter: Duration.days(3),
        },
        {
          // items.json and the Map's results: read within the run, kept two
          // weeks for whoever inspects an execution.
          id: 'expire-run-files',
          prefix: 'runs/',
          expiration: Duration.days(14),
          noncurrentVersionExpiration: Duration.days(1),
        },
      ],
      // Never deleted with the stack: it holds the user's videos.
      removalPolicy: RemovalPolicy.RETAIN,
    });
    skipCheckov(
      this.bucket,
      'CKV_AWS_18',
      'Only four roles of this stack (and an operator reader role) may touch objects (bucket policy); a log bucket for one library is noise. CloudTrail data events can be enabled if needed',
    );
    const bucket = this.bucket;

    // ---- The credentials secret, created without a value.

    this.secret = new secretsmanager.CfnSecret(this, 'GoProCredentials', {
      name: `${prefix}-gopro-credentials`,
      description:
        'GoPro cloud credentials (OAuth tokens or cookies, one JSON document: README "GoPro media sync"). Created without a value: ' +
        'aws secretsmanager put-secret-value --secret-id <arn> --secret-string file://gopro-credentials.json. ' +
        'authenticate writes refreshed OAuth tokens back as new versions.',
      kmsKeyId: key.keyArn,
    });
    this.secret.applyRemovalPolicy(removal);
    skipCheckov(this.secret, 'CKV2_AWS_57', 'Rotated by the authenticate function itself (OAuth refresh under 24 h), not by a rotation Lambda');
    const secretArn = this.secret.ref;

    // ---- Alerts: the encrypted topic, an optional email subscription.

    this.topic = new sns.Topic(this, 'AlertTopic', {
      topicName: `${prefix}-alerts`,
      displayName: `${prefix} alerts`,
      masterKey: this.alertKey,
      enforceSSL: true,
    });
    const topic = this.topic;
    topic.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'CloudWatchAlarmsOfThisAccount',
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['sns:Publish'],
        resources: [topic.topicArn],
        conditions: {
          StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID },
          ArnLike: { 'aws:SourceArn': `arn:${Aws.PARTITION}:cloudwatch:${Aws.REGION}:${Aws.ACCOUNT_ID}:alarm:*` },
        },
      }),
    );
    const alertEmail = new CfnParameter(this, 'AlertEmail', {
      type: 'String',
      default: '',
      description: 'Email address that receives the media sync alerts (confirm the subscription by email). Empty: no subscription.',
      allowedPattern: '^$|^[^@\\s]+@[^@\\s]+$',
      constraintDescription: 'an email address, or empty',
    });
    const hasAlertEmail = new CfnCondition(this, 'HasAlertEmail', {
      expression: Fn.conditionNot(Fn.conditionEquals(alertEmail.valueAsString, '')),
    });
    const emailSubscription = new sns.CfnSubscription(this, 'AlertEmailSubscription', {
      topicArn: topic.topicArn,
      protocol: 'email',
      endpoint: alertEmail.valueAsString,
    });
    emailSubscription.cfnOptions.condition = hasAlertEmail;

    // ---- The optional VPC (off by default: a NAT gateway costs more than the sync).

    let vpcPlacement: Pick<lambda.FunctionProps, 'vpc' | 'vpcSubnets' | 'securityGroups'> = {};
    if (props.vpc) {
      const flowLogs = new logs.LogGroup(this, 'VpcFlowLogs', {
        logGroupName: `/${prefix}/vpc-flow-logs`,
        retention: logRetention,
        removalPolicy: removal,
      });
      skipCheckov(flowLogs, 'CKV_AWS_158', 'Flow logs hold addresses and ports, no secrets; the service key suffices');
      this.vpc = new ec2.Vpc(this, 'Vpc', {
        vpcName: `${prefix}-vpc`,
        maxAzs: 2,
        // The functions reach api.gopro.com and its presigned download host: one NAT gateway.
        natGateways: 1,
        subnetConfiguration: [
          { name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24, mapPublicIpOnLaunch: false },
          { name: 'functions', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 22 },
        ],
        // Free, and the media bytes to S3 stay off the NAT gateway (they would double its charge).
        gatewayEndpoints: {
          S3: { service: ec2.GatewayVpcEndpointAwsService.S3 },
          DynamoDB: { service: ec2.GatewayVpcEndpointAwsService.DYNAMODB },
        },
        flowLogs: { all: { destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogs), trafficType: ec2.FlowLogTrafficType.ALL } },
      });
      const endpointSecurityGroup = new ec2.SecurityGroup(this, 'EndpointSecurityGroup', {
        vpc: this.vpc,
        description: `${prefix}: HTTPS from the functions to the interface endpoints`,
        allowAllOutbound: false,
      });
      endpointSecurityGroup.addIngressRule(ec2.Peer.ipv4(this.vpc.vpcCidrBlock), ec2.Port.tcp(443), 'HTTPS from the VPC');
      this.vpc.addInterfaceEndpoint('SecretsManagerEndpoint', {
        service: ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
        privateDnsEnabled: true,
        securityGroups: [endpointSecurityGroup],
      });
      const functionsSecurityGroup = new ec2.SecurityGroup(this, 'FunctionsSecurityGroup', {
        vpc: this.vpc,
        description: `${prefix}: the functions, HTTPS out only (GoPro, AWS APIs)`,
        allowAllOutbound: false,
      });
      functionsSecurityGroup.addEgressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(443), 'HTTPS to GoPro and AWS APIs');
      // The VPC's default security group is emptied by a CDK custom resource
      // (feature flag restrictDefaultSecurityGroup): its provider function runs
      // at deployment only.
      const provider = this.node.tryFindChild('Custom::VpcRestrictDefaultSGCustomResourceProvider');
      for (const c of provider?.node.findAll() ?? []) {
        if (c instanceof CfnResource && c.cfnResourceType === 'AWS::Lambda::Function') {
          skipCheckov(c, 'CKV_AWS_116', 'CDK custom resource provider, invoked synchronously by CloudFormation at deployment only');
          skipCheckov(c, 'CKV_AWS_117', 'CDK custom resource provider: calls the EC2 API once at deployment');
          skipCheckov(c, 'CKV_AWS_115', 'CDK custom resource provider: one invocation a deployment');
          ignoreCfnLint(c, 'W3005', 'CDK adds an explicit DependsOn on the role, which the Role GetAtt implies anyway');
        }
      }
      vpcPlacement = {
        vpc: this.vpc,
        vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
        securityGroups: [functionsSecurityGroup],
      };
    }

    // ---- The four functions, each with its own role, log group and DLQ.

    const functions = {} as Record<MediaFunctionName, lambda.Function>;
    const deadLetterQueues: Record<string, sqs.Queue> = {};
    const deadLetterQueue = (id: string, queueName: string) => {
      const q = new sqs.Queue(this, id, {
        queueName,
        encryption: sqs.QueueEncryption.SQS_MANAGED,
        enforceSSL: true,
        retentionPeriod: Duration.days(14),
      });
      skipCheckov(q, 'CKV_AWS_27', 'Encrypted at rest with SSE-SQS (SqsManagedSseEnabled); the check only recognises a KMS key');
      return q;
    };
    for (const name of MEDIA_FUNCTION_NAMES) {
      const id = pascal(name);
      const sizing = MEDIA_FUNCTION_SIZING[name];
      const functionName = `${envPrefix}-${name}`;
      const logGroup = new logs.LogGroup(this, `${id}Logs`, {
        logGroupName: `/aws/lambda/${functionName}`,
        retention: logRetention,
        removalPolicy: removal,
      });
      skipCheckov(logGroup, 'CKV_AWS_158', 'Logs hold no secrets (tokens are redacted, never logged); the service key suffices');
      const role = new iam.Role(this, `${id}Role`, {
        assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
        description: `${functionName}: only what the ${name} step uses (statemachine/media.md)`,
        inlinePolicies: {
          [name]: new iam.PolicyDocument({
            statements: [
              new iam.PolicyStatement({
                sid: 'WriteOwnLogs',
                actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
                resources: [logGroup.logGroupArn],
              }),
              ...mediaFunctionPermissions(name, { bucket, table, secretArn, key }),
            ],
          }),
        },
      });
      // Asynchronous invocations (a console test, a future trigger) that fail
      // every attempt land here; Step Functions invokes synchronously and
      // catches its own failures.
      const dlq = deadLetterQueue(`${id}DeadLetterQueue`, `${prefix}-${name}-dlq`);
      deadLetterQueues[name] = dlq;
      const fn = new RustFunction(this, id, {
        functionName,
        description: sizing.description,
        manifestPath: CARGO_MANIFEST,
        binaryName: name,
        runtime: 'provided.al2023',
        architecture: lambda.Architecture.ARM_64,
        memorySize: sizing.memoryMiB,
        timeout: sizing.timeout,
        role,
        logGroup,
        tracing: lambda.Tracing.ACTIVE,
        deadLetterQueue: dlq,
        ...vpcPlacement,
        environment: {
          MEDIA_BUCKET: bucket.bucketName,
          MEDIA_STATUS_TABLE: table.tableName,
          ...(name === 'summarize' ? {} : { MEDIA_SECRET_ARN: secretArn }),
          CONFIG_LOCATION,
          MEDIA_PROVIDER,
          // The metrics' Environment dimension (summarize), and the logs'.
          PKGRELAY_ENV: env.name,
          PKGRELAY_LOG: 'info',
        },
        bundling: {
          // The workspace root is the package of the CLI: name the function's package.
          cargoLambdaFlags: ['--package', name],
          commandHooks: {
            beforeBundling: () => [],
            // config/ (media.yaml) next to bootstrap: /var/task/config at run time.
            afterBundling: (inputDir: string, outputDir: string) => [`cp -R "${inputDir}/config" "${outputDir}/config"`],
          },
        },
      });
      if (!props.vpc) {
        skipCheckov(fn, 'CKV_AWS_117', 'Needs the internet (GoPro) and AWS APIs only; a VPC needs a NAT gateway that costs more than the sync (the mediaVpc option)');
      }
      skipCheckov(fn, 'CKV_AWS_115', 'Concurrency is bounded by the state machine (Map MaxConcurrency 5); reserving it can fail in small accounts');
      skipCheckov(fn, 'CKV_AWS_173', 'The environment holds resource names only, no secrets; the Lambda service key encrypts it');
      ignoreCfnLint(fn, 'W3005', 'CDK adds an explicit DependsOn on the role, which the Role GetAtt implies anyway');
      functions[name] = fn;
    }
    this.functions = functions;

    // ---- The state machine, from the one ASL file the tests execute.

    const stateMachineName = `${prefix}-sync`;
    const definition = readFileSync(MEDIA_ASL_FILE, 'utf8');
    const substitutions: Record<string, string> = {
      AlertTopicArn: topic.topicArn,
      MediaBucketName: bucket.bucketName,
    };
    for (const name of MEDIA_FUNCTION_NAMES) {
      substitutions[`${pascal(name)}FunctionArn`] = functions[name].functionArn;
    }
    const placeholders = new Set([...definition.matchAll(/\$\{([A-Za-z0-9]+)\}/g)].map((m) => m[1]));
    const known = Object.keys(substitutions);
    if (placeholders.size !== known.length || !known.every((k) => placeholders.has(k))) {
      throw new Error(
        `${MEDIA_ASL_FILE} has placeholders ${[...placeholders].sort().join(', ')}; the stack substitutes ${known.sort().join(', ')}`,
      );
    }
    const stateMachineLogs = new logs.LogGroup(this, 'SyncLogs', {
      logGroupName: `/aws/vendedlogs/states/${stateMachineName}`,
      retention: logRetention,
      removalPolicy: removal,
    });
    skipCheckov(stateMachineLogs, 'CKV_AWS_158', 'Execution data holds keys, ids and a secret version id, never a token; the service key suffices');
    this.stateMachine = new sfn.StateMachine(this, 'Sync', {
      stateMachineName,
      stateMachineType: sfn.StateMachineType.STANDARD,
      definitionBody: sfn.DefinitionBody.fromString(definition),
      definitionSubstitutions: substitutions,
      logs: { destination: stateMachineLogs, level: sfn.LogLevel.ALL, includeExecutionData: true },
      tracingEnabled: true,
    });
    const sync = this.stateMachine;
    const placeholderReason = 'The ${Name} placeholders of the definition are filled by DefinitionSubstitutions, not Fn::Sub';
    Validations.of(sync).acknowledge({ id: 'CloudFormation-Validate::E1029', reason: placeholderReason });
    ignoreCfnLint(sync, 'E1029', placeholderReason);
    ignoreCfnLint(sync, 'W3005', 'CDK adds an explicit DependsOn on the role, which the RoleArn GetAtt implies anyway');
    // The ARNs are built from the name: the role cannot refer to the state machine it belongs to without a cycle.
    const stateMachineArn = this.formatArn({
      service: 'states',
      resource: 'stateMachine',
      resourceName: stateMachineName,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    const executionsArn = this.formatArn({
      service: 'states',
      resource: 'execution',
      resourceName: `${stateMachineName}/*`,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    for (const statement of mediaStateMachinePermissions(bucket, key, stateMachineArn, executionsArn)) {
      sync.addToRolePolicy(statement);
    }
    for (const name of MEDIA_FUNCTION_NAMES) {
      functions[name].grantInvoke(sync);
    }
    topic.grantPublish(sync);

    // ---- The bucket: objects for this stack's roles only.

    // Besides the deny on insecure transport (enforceSSL): no principal but
    // list-media, download-media, summarize and the state machine may read,
    // write or delete an object, whatever its own policy says. An
    // operator who wants to fetch a video assumes a role named
    // <prefix>-reader… (created outside the stack, with its own grant on the
    // bucket and kms:Decrypt on the media key).
    // (authenticate touches no object: it is not among them.)
    const allowedRoles = [
      ...MEDIA_FUNCTION_NAMES.filter((n) => n !== 'authenticate').map((n) => functions[n].role!.roleArn),
      sync.role.roleArn,
    ];
    bucket.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'ObjectsForTheMediaRolesOnly',
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        // Every object-level data action (versions, tags, ACLs, attributes included).
        actions: [
          's3:GetObject*',
          's3:PutObject*',
          's3:DeleteObject*',
          's3:AbortMultipartUpload',
          's3:ListMultipartUploadParts',
          's3:RestoreObject',
          's3:ReplicateObject',
        ],
        resources: [bucket.arnForObjects('*')],
        conditions: {
          ArnNotLike: {
            'aws:PrincipalArn': [...allowedRoles, `arn:${Aws.PARTITION}:iam::${Aws.ACCOUNT_ID}:role/${prefix}-reader*`],
          },
        },
      }),
    );

    // ---- The daily schedule: 02:00 Europe/Paris (EventBridge Scheduler follows the DST changes).

    const scheduleDeadLetters = deadLetterQueue('ScheduleDeadLetterQueue', `${prefix}-schedule-dlq`);
    const schedulerRole = new iam.Role(this, 'ScheduleRole', {
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID } },
      }),
      description: `${prefix}-daily: starts ${stateMachineName}, nothing else`,
      inlinePolicies: {
        schedule: new iam.PolicyDocument({
          statements: [
            new iam.PolicyStatement({ sid: 'StartTheSync', actions: ['states:StartExecution'], resources: [sync.stateMachineArn] }),
            new iam.PolicyStatement({ sid: 'DeadLetters', actions: ['sqs:SendMessage'], resources: [scheduleDeadLetters.queueArn] }),
          ],
        }),
      },
    });
    this.schedule = new scheduler.CfnSchedule(this, 'DailySchedule', {
      name: `${prefix}-daily`,
      description: `Runs ${stateMachineName} every day at 02:00 Europe/Paris`,
      scheduleExpression: 'cron(0 2 * * ? *)',
      scheduleExpressionTimezone: 'Europe/Paris',
      flexibleTimeWindow: { mode: 'OFF' },
      state: 'ENABLED',
      target: {
        arn: sync.stateMachineArn,
        roleArn: schedulerRole.roleArn,
        input: JSON.stringify({ trigger: 'schedule' }),
        deadLetterConfig: { arn: scheduleDeadLetters.queueArn },
        retryPolicy: { maximumEventAgeInSeconds: 6 * 3600, maximumRetryAttempts: 8 },
      },
    });
    deadLetterQueues.schedule = scheduleDeadLetters;

    // ---- Alarms, to the alert topic.

    const alarmAction = new cloudwatchActions.SnsAction(topic);
    const hour = Duration.hours(1);
    const day = Duration.days(1);
    const alarms: cloudwatch.Alarm[] = [];
    const alarm = (
      id: string,
      alarmName: string,
      description: string,
      metric: cloudwatch.IMetric,
      options: { threshold?: number; comparison?: cloudwatch.ComparisonOperator } = {},
    ) => {
      const a = new cloudwatch.Alarm(this, id, {
        alarmName: `${prefix}-${alarmName}`,
        alarmDescription: description,
        metric,
        threshold: options.threshold ?? 1,
        evaluationPeriods: 1,
        comparisonOperator: options.comparison ?? cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        // One run a day: no data is the normal state between runs.
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      a.addAlarmAction(alarmAction);
      alarms.push(a);
      return a;
    };

    // Execution failures, and their rate over a day (manual runs count too).
    const failed = sync.metricFailed({ period: day, statistic: 'Sum' });
    const timedOut = sync.metricTimedOut({ period: day, statistic: 'Sum' });
    const started = sync.metricStarted({ period: day, statistic: 'Sum' });
    alarm('SyncFailedAlarm', 'sync-failed', `A ${stateMachineName} execution failed (critical, login required, or a step)`, sync.metricFailed({ period: hour, statistic: 'Sum' }));
    alarm('SyncTimedOutAlarm', 'sync-timed-out', `A ${stateMachineName} execution ran into its 12 h timeout`, sync.metricTimedOut({ period: hour, statistic: 'Sum' }));
    alarm(
      'SyncFailureRateAlarm',
      'sync-failure-rate',
      `Half or more of the day's ${stateMachineName} executions failed or timed out`,
      new cloudwatch.MathExpression({
        expression: '100 * (failed + timedOut) / started',
        usingMetrics: { failed, timedOut, started },
        period: day,
        label: 'failed executions (%)',
      }),
      { threshold: 50 },
    );

    // Authentication failures: executions that ended LoginRequired (the
    // state machine's log lines; a person must log in again).
    // (The metric name carries the environment: a filter's dimensions can only come from the log line.)
    const authFailures = new logs.MetricFilter(this, 'AuthFailuresFilter', {
      logGroup: stateMachineLogs,
      filterPattern: logs.FilterPattern.all(
        logs.FilterPattern.stringValue('$.type', '=', 'ExecutionFailed'),
        logs.FilterPattern.stringValue('$.details.error', '=', 'LoginRequired'),
      ),
      metricNamespace: MEDIA_METRICS_NAMESPACE,
      metricName: `AuthFailures-${env.name}`,
      metricValue: '1',
    });
    const authFailuresMetric = authFailures.metric({ period: hour, statistic: "Sum" });
    alarm('AuthFailuresAlarm', 'auth-failures', 'The GoPro login was refused and cannot be refreshed: log in again', authFailuresMetric);

    for (const name of MEDIA_FUNCTION_NAMES) {
      const id = pascal(name);
      // download-media's MediaTransient errors are retried by the Map (30/60/120 s): a few an hour are normal.
      const errorThreshold = name === 'download-media' ? 5 : 1;
      alarm(
        `${id}ErrorsAlarm`,
        `${name}-errors`,
        `${envPrefix}-${name} returned errors${errorThreshold > 1 ? ` (${errorThreshold} or more in an hour; transient ones are retried)` : ''}`,
        functions[name].metricErrors({ period: hour, statistic: 'Sum' }),
        { threshold: errorThreshold },
      );
      alarm(`${id}ThrottlesAlarm`, `${name}-throttles`, `${envPrefix}-${name} was throttled`, functions[name].metricThrottles({ period: hour, statistic: 'Sum' }));
    }
    for (const [name, queue] of Object.entries(deadLetterQueues)) {
      alarm(
        `${pascal(name)}DeadLettersAlarm`,
        `${name}-dead-letters`,
        name === 'schedule'
          ? `The daily schedule could not start ${stateMachineName}: see ${queue.node.id}`
          : `An asynchronous invocation of ${envPrefix}-${name} failed every attempt: see its dead-letter queue`,
        queue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(5), statistic: 'Maximum' }),
      );
    }

    // summarize's embedded-metric lines (media.md), dimension Environment.
    const mediaMetric = (metricName: string, statistic: string, label?: string) =>
      new cloudwatch.Metric({ namespace: MEDIA_METRICS_NAMESPACE, metricName, dimensionsMap: { Environment: env.name }, period: day, statistic, label });
    const throughput = mediaMetric('TransferThroughput', 'Average', 'throughput (Mbit/s)');
    alarm(
      'ThroughputAlarm',
      'throughput-low',
      `The day's copies averaged under ${THROUGHPUT_FLOOR_MBPS} Mbit/s (TransferThroughput)`,
      mediaMetric('TransferThroughput', 'Average'),
      { threshold: THROUGHPUT_FLOOR_MBPS, comparison: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD },
    );

    // ---- The dashboard: the same metrics.

    const dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: `${prefix}`,
      defaultInterval: Duration.days(14),
    });
    const fnMetric = (name: MediaFunctionName, what: 'errors' | 'throttles' | 'duration') => {
      const f = functions[name];
      const opts = { period: hour, label: name };
      return what === 'errors' ? f.metricErrors({ ...opts, statistic: 'Sum' }) : what === 'throttles' ? f.metricThrottles({ ...opts, statistic: 'Sum' }) : f.metricDuration({ ...opts, statistic: 'Maximum' });
    };
    dashboard.addWidgets(
      new cloudwatch.AlarmStatusWidget({ title: 'Alarms', alarms, width: 24, height: 4 }),
    );
    dashboard.addWidgets(
      new cloudwatch.GraphWidget({ title: 'Videos synced', left: [mediaMetric('VideosSynced', 'Sum', 'videos')], width: 8 }),
      new cloudwatch.GraphWidget({ title: 'Bytes transferred', left: [mediaMetric('BytesTransferred', 'Sum', 'bytes')], width: 8 }),
      new cloudwatch.GraphWidget({
        title: 'Transfer throughput (Mbit/s)',
        left: [throughput],
        leftAnnotations: [{ value: THROUGHPUT_FLOOR_MBPS, label: 'alarm floor', color: cloudwatch.Color.RED }],
        width: 8,
      }),
    );
    dashboard.addWidgets(
      new cloudwatch.GraphWidget({ title: 'Transfer duration (s)', left: [mediaMetric('TransferDuration', 'Sum', 'seconds')], width: 8 }),
      new cloudwatch.GraphWidget({ title: 'Time to first byte (ms)', left: [mediaMetric('TimeToFirstByte', 'Average', 'ms')], width: 8 }),
      new cloudwatch.GraphWidget({
        title: 'Executions',
        left: [
          sync.metricStarted({ period: day, statistic: 'Sum', label: 'started' }),
          sync.metricSucceeded({ period: day, statistic: 'Sum', label: 'succeeded' }),
          sync.metricFailed({ period: day, statistic: 'Sum', label: 'failed' }),
          sync.metricTimedOut({ period: day, statistic: 'Sum', label: 'timed out' }),
          authFailuresMetric.with({ period: day, label: 'login required' }),
        ],
        width: 8,
      }),
    );
    dashboard.addWidgets(
      new cloudwatch.GraphWidget({ title: 'Lambda errors', left: MEDIA_FUNCTION_NAMES.map((n) => fnMetric(n, 'errors')), width: 8 }),
      new cloudwatch.GraphWidget({ title: 'Lambda throttles', left: MEDIA_FUNCTION_NAMES.map((n) => fnMetric(n, 'throttles')), width: 8 }),
      new cloudwatch.GraphWidget({ title: 'Lambda duration (max, ms)', left: MEDIA_FUNCTION_NAMES.map((n) => fnMetric(n, 'duration')), width: 8 }),
    );
    dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Dead-letter queues',
        left: Object.entries(deadLetterQueues).map(([n, q]) =>
          q.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(5), statistic: 'Maximum', label: n }),
        ),
        width: 24,
      }),
    );

    // ---- Outputs.

    new CfnOutput(this, 'StateMachineArn', { value: sync.stateMachineArn });
    new CfnOutput(this, 'MediaBucketName', { value: bucket.bucketName, description: 'The copies: media/<provider>/<yyyy>/<mm>/<dd>/<filename>' });
    new CfnOutput(this, 'StatusTableName', { value: table.tableName });
    new CfnOutput(this, 'CredentialsSecretArn', { value: secretArn, description: 'Put the GoPro credentials here' });
    new CfnOutput(this, 'AlertTopicArn', { value: topic.topicArn });
  }
}

/** Whether `-c mediaVpc=true` (or a boolean true in cdk.json) asks for the VPC. */
export function mediaVpcFromContext(value: unknown): boolean {
  if (value === undefined || value === null || value === false || value === 'false' || value === '') return false;
  if (value === true || value === 'true') return true;
  throw new Error(`-c ${MEDIA_VPC_CONTEXT}=${JSON.stringify(value)}: expected true or false`);
}
