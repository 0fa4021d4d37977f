// The pkgrelay pipeline on AWS: the repository bucket behind CloudFront, the
// two DynamoDB tables, the five Rust functions with a role each, the state
// machine from statemachine/pipeline.asl.json, its two triggers, notifications
// and alarms. One stack per environment (pkgrelay-dev, -staging, -prod).

import { readFileSync } from 'node:fs';
import {
  ArnFormat,
  Aws,
  CfnOutput,
  Duration,
  RemovalPolicy,
  Size,
  Stack,
  StackProps,
  Validations,
  aws_cloudfront as cloudfront,
  aws_cloudwatch as cloudwatch,
  aws_cloudwatch_actions as cloudwatchActions,
  aws_dynamodb as dynamodb,
  aws_events as events,
  aws_events_targets as targets,
  aws_iam as iam,
  aws_kms as kms,
  aws_lambda as lambda,
  aws_logs as logs,
  aws_s3 as s3,
  aws_secretsmanager as secretsmanager,
  aws_sns as sns,
  aws_sns_subscriptions as subscriptions,
  aws_sqs as sqs,
  aws_stepfunctions as sfn,
} from 'aws-cdk-lib';
import { RustFunction } from 'cargo-lambda-cdk';
import { Construct } from 'constructs';
import { EnvironmentSettings } from './environments';
import { FUNCTION_SIZING, functionPermissions, stateMachinePermissions } from './functions';
import {
  ASL_FILE,
  BREW_REWRITE_FILE,
  CARGO_MANIFEST,
  CONFIG_LOCATION,
  FUNCTION_NAMES,
  FunctionName,
  GENERATIONS_PREFIX,
  PACKAGE_NAME_INDEX,
  RUNS_PREFIX,
  STAGING_PREFIX,
  STAGING_RULE_FILE,
  publicPaths,
  readJson,
  readRepositories,
  readRepositorySettings,
  substitutePlaceholders,
} from './repository';
import { ignoreCfnLint, skipCheckov } from './suppressions';

export interface PkgrelayStackProps extends StackProps {
  readonly environment: EnvironmentSettings;
  /** The configuration directory the stack reads (default: config/; the functions bundle config/ itself). */
  readonly configDir?: string;
}

/** `check-sources` -> `CheckSources` (logical ids, ASL placeholder names). */
export function pascalCase(name: string): string {
  return name
    .split('-')
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join('');
}

/** The ASL placeholder of a function's ARN: `${CheckSourcesFunctionArn}`. */
export function functionArnPlaceholder(name: FunctionName): string {
  return `${pascalCase(name)}FunctionArn`;
}

/**
 * An S3 origin reached through origin access control, whose bucket policy is
 * written by the stack itself (the stock S3BucketOrigin would grant CloudFront
 * every object in the bucket, staging/ included).
 */
class PrivateBucketOrigin extends cloudfront.OriginBase {
  constructor(bucket: s3.IBucket, accessControl: cloudfront.IOriginAccessControl) {
    super(bucket.bucketRegionalDomainName, { originAccessControlId: accessControl.originAccessControlId });
  }

  protected renderS3OriginConfig(): cloudfront.CfnDistribution.S3OriginConfigProperty {
    // Empty: OAC, not a legacy origin access identity.
    return { originAccessIdentity: '' };
  }
}

/** An input transformer taken verbatim (statemachine/staging-rule.json). */
class VerbatimInputTransformer extends events.RuleTargetInput {
  constructor(private readonly transformer: { InputPathsMap: Record<string, string>; InputTemplate: string }) {
    super();
  }

  public bind(_rule: events.IRule): events.RuleTargetInputProperties {
    return { inputPathsMap: this.transformer.InputPathsMap, inputTemplate: this.transformer.InputTemplate };
  }
}

export class PkgrelayStack extends Stack {
  public readonly bucket: s3.Bucket;
  public readonly distribution: cloudfront.Distribution;
  public readonly packagesTable: dynamodb.Table;
  public readonly stateTable: dynamodb.Table;
  /** The packages table of each repository besides the APT one, by name. */
  public readonly repositoryTables: Record<string, dynamodb.Table>;
  public readonly functions: Record<FunctionName, lambda.IFunction>;
  public readonly stateMachine: sfn.StateMachine;
  /** The Homebrew mirrors' flat bottle names -> sha256, read by their rewrite functions (none without a mirror). */
  public readonly bottleNames?: cloudfront.KeyValueStore;

  constructor(scope: Construct, id: string, props: PkgrelayStackProps) {
    super(scope, id, props);
    const env = props.environment;
    const prefix = env.prefix;
    const removal = env.retainData ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY;
    const logRetention = logs.RetentionDays.ONE_YEAR;
    const settings = readRepositorySettings(props.configDir);
    // The repositories side by side in this deployment (config/repositories.yaml):
    // the APT one at the root, every other under its prefix, with a packages
    // table of its own (build-index reads a whole table into one index).
    const repositories = readRepositories(props.configDir);
    const repositoryPaths = publicPaths(settings, repositories);

    // ---- Storage: access logs, the repository bucket, CloudFront in front of it.

    const accessLogs = new s3.Bucket(this, 'AccessLogs', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      // CloudFront standard logging writes its files with ACLs.
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
      versioned: true,
      lifecycleRules: [
        {
          id: 'expire-access-logs',
          expiration: Duration.days(90),
          noncurrentVersionExpiration: Duration.days(1),
          abortIncompleteMultipartUploadAfter: Duration.days(1),
        },
      ],
      removalPolicy: RemovalPolicy.RETAIN,
    });
    skipCheckov(accessLogs, 'CKV_AWS_18', 'This is the access-log bucket; logging it into itself would loop');

    this.bucket = new s3.Bucket(this, 'Repository', {
      versioned: true,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      serverAccessLogsBucket: accessLogs,
      serverAccessLogsPrefix: 'repository/',
      lifecycleRules: [
        {
          // InRelease, Release, Packages*, index.html, the root copy and the
          // keyring are replaced by every publish: keep recent old versions only.
          id: 'expire-noncurrent-versions',
          noncurrentVersionExpiration: Duration.days(30),
          noncurrentVersionsToRetain: 3,
        },
        {
          // Parts left behind by a download-package killed mid-upload (s3.rs).
          id: 'abort-incomplete-multipart-uploads',
          abortIncompleteMultipartUploadAfter: Duration.days(1),
        },
        {
          // What one run leaves for its later states (candidate lists, large
          // entries, the map's results): read within the run, kept two weeks
          // for whoever inspects an execution.
          id: 'expire-run-files',
          prefix: RUNS_PREFIX,
          expiration: Duration.days(14),
          noncurrentVersionExpiration: Duration.days(1),
        },
        // Retention (shared/src/steps/collect.rs) deletes pool files no index
        // lists and manifests of replaced generations once their grace period
        // is over. The bucket is versioned, so a delete leaves the bytes as a
        // noncurrent version, which the bucket-wide rule would keep (it keeps
        // the three newest of every key): these keys are write-once, their only
        // noncurrent version is the deleted one; kept a week for recovery, then
        // the space is reclaimed, with the delete marker. (Overlapping the
        // bucket-wide rule as expire-run-files does: S3 applies the shorter.)
        ...['pool/', GENERATIONS_PREFIX].map((prefix) => ({
          id: `expire-collected-${prefix.replace('/', '')}`,
          prefix,
          noncurrentVersionExpiration: Duration.days(7),
          expiredObjectDeleteMarker: true,
        })),
      ],
      // Never deleted with the stack: it holds the published repository.
      removalPolicy: RemovalPolicy.RETAIN,
    });
    // EventBridge notifications, set on the bucket itself (the L2 property
    // `eventBridgeEnabled` deploys a custom-resource Lambda function for it).
    (this.bucket.node.defaultChild as s3.CfnBucket).notificationConfiguration = {
      eventBridgeConfiguration: { eventBridgeEnabled: true },
    };
    const bucket = this.bucket;

    const accessControl = new cloudfront.S3OriginAccessControl(this, 'OriginAccessControl', {
      description: `${prefix}: CloudFront reads the repository paths of the bucket`,
      signing: cloudfront.Signing.SIGV4_ALWAYS,
    });
    const origin = new PrivateBucketOrigin(bucket, accessControl);
    const behavior = {
      origin,
      viewerProtocolPolicy: cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
      allowedMethods: cloudfront.AllowedMethods.ALLOW_GET_HEAD,
      cachedMethods: cloudfront.CachedMethods.CACHE_GET_HEAD,
      // Honours the objects' Cache-Control (immutable pool/by-hash/blobs, a minute for the index files).
      cachePolicy: cloudfront.CachePolicy.CACHING_OPTIMIZED,
      responseHeadersPolicy: cloudfront.ResponseHeadersPolicy.SECURITY_HEADERS,
      compress: true,
    };
    // Each Homebrew mirror's prefix has a behavior of its own whose viewer
    // request function maps brew's two bottle names onto the one stored blob
    // (cdk/functions/brew-rewrite.js): no bottle is stored twice. The flat
    // names' digests live in one key value store (keys carry the prefix),
    // which publish keeps in step with bottles_hash.json.
    const mirrors = repositories.filter((r) => r.format === 'homebrew');
    this.bottleNames = mirrors.length === 0 ? undefined : new cloudfront.KeyValueStore(this, 'BottleNames', {
      keyValueStoreName: `${prefix}-bottle-names`,
      comment: `${prefix}: Homebrew bottle file name -> sha256 (publish writes it)`,
    });
    const additionalBehaviors: Record<string, cloudfront.BehaviorOptions> = {};
    for (const mirror of mirrors) {
      const rewrite = new cloudfront.Function(this, `${pascalCase(mirror.name)}BottleRewrite`, {
        functionName: `${prefix}-${mirror.name}-bottle-rewrite`,
        comment: `${prefix}: brew's bottle names under ${mirror.prefix} -> ${mirror.prefix}blobs/sha256/<hex>`,
        runtime: cloudfront.FunctionRuntime.JS_2_0,
        code: cloudfront.FunctionCode.fromInline(
          readFileSync(BREW_REWRITE_FILE, 'utf8').replace(/__PREFIX__/g, mirror.prefix),
        ),
        keyValueStore: this.bottleNames,
      });
      additionalBehaviors[`${mirror.prefix}*`] = {
        ...behavior,
        functionAssociations: [{ function: rewrite, eventType: cloudfront.FunctionEventType.VIEWER_REQUEST }],
      };
    }
    this.distribution = new cloudfront.Distribution(this, 'Cdn', {
      comment: `${prefix} APT repository`,
      defaultRootObject: 'index.html',
      defaultBehavior: behavior,
      additionalBehaviors,
      httpVersion: cloudfront.HttpVersion.HTTP2_AND_3,
      priceClass: cloudfront.PriceClass.PRICE_CLASS_100,
      enableLogging: true,
      logBucket: accessLogs,
      logFilePrefix: 'cloudfront/',
    });
    const distribution = this.distribution;
    skipCheckov(distribution, 'CKV_AWS_68', 'Read-only static APT repository of public packages; no WAF (cost), CloudFront absorbs floods');
    skipCheckov(distribution, 'CKV_AWS_174', 'Default *.cloudfront.net certificate: its TLS policy cannot be chosen; a custom domain is out of scope');

    // The bucket stays private: CloudFront (this distribution only) may read
    // the repository paths, nothing else; staging/, generations/ and the rest
    // are never readable from outside.
    bucket.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'CloudFrontReadsRepositoryPaths',
        effect: iam.Effect.ALLOW,
        principals: [new iam.ServicePrincipal('cloudfront.amazonaws.com')],
        actions: ['s3:GetObject'],
        resources: repositoryPaths.map((p) => bucket.arnForObjects(p)),
        conditions: { StringEquals: { 'AWS:SourceArn': distribution.distributionArn } },
      }),
    );

    // ---- Store: packages (the source of truth) and the per-suite state.

    // Both tables: a string partition key, on demand, point-in-time recovery,
    // the AWS managed key, deletion protection and removal as the environment says.
    const table = (id: string, tableName: string, partitionKey: string): dynamodb.Table => {
      const t = new dynamodb.Table(this, id, {
        tableName,
        partitionKey: { name: partitionKey, type: dynamodb.AttributeType.STRING },
        billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
        pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
        encryption: dynamodb.TableEncryption.AWS_MANAGED,
        deletionProtection: env.retainData,
        removalPolicy: removal,
      });
      skipCheckov(t, 'CKV_AWS_119', 'Encrypted with the AWS managed key; a customer managed key adds no control here');
      return t;
    };
    this.packagesTable = table('PackagesTable', `${prefix}-packages`, 'package_id');
    this.packagesTable.addGlobalSecondaryIndex({
      indexName: PACKAGE_NAME_INDEX,
      partitionKey: { name: 'package_name', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'version', type: dynamodb.AttributeType.STRING },
      projectionType: dynamodb.ProjectionType.ALL,
    });
    this.stateTable = table('StateTable', `${prefix}-state`, 'suite');
    // The other repositories' packages tables, by repository name (their
    // state records share the state table, keyed by name).
    this.repositoryTables = {};
    for (const r of repositories.filter((r) => r.format !== 'apt')) {
      const t = table(`${pascalCase(r.name)}PackagesTable`, `${prefix}-${r.name}-packages`, 'package_id');
      t.addGlobalSecondaryIndex({
        indexName: PACKAGE_NAME_INDEX,
        partitionKey: { name: 'package_name', type: dynamodb.AttributeType.STRING },
        sortKey: { name: 'version', type: dynamodb.AttributeType.STRING },
        projectionType: dynamodb.ProjectionType.ALL,
      });
      this.repositoryTables[r.name] = t;
    }
    const packagesTables = [this.packagesTable, ...Object.values(this.repositoryTables)];

    // ---- The signing key: created empty, the operator puts the armored key in.

    // A secret created without a value (neither SecretString nor
    // GenerateSecretString): the operator puts it in; one function reads it.
    const emptySecret = (id: string, name: string, description: string, reader: string) => {
      const secret = new secretsmanager.CfnSecret(this, id, { name, description });
      secret.applyRemovalPolicy(removal);
      skipCheckov(secret, 'CKV_AWS_149', `Encrypted with the Secrets Manager AWS managed key; only ${reader} may read it`);
      return secret;
    };
    const signingKey = emptySecret(
      'SigningKey',
      `${prefix}-signing-key`,
      'Armored OpenPGP secret key that signs the APT repository (build-index reads it). Created without a value: ' +
        'aws secretsmanager put-secret-value --secret-id <arn> --secret-string file://signing-key.asc',
      'build-index',
    );
    const signingKeySecretArn = signingKey.ref;

    // ---- Notifications (SNS, encrypted) and the triggers' dead-letter queue.

    const notificationsKey = new kms.Key(this, 'NotificationsKey', {
      alias: `alias/${prefix}-notifications`,
      description: `${prefix}: encrypts the success and failure topics`,
      enableKeyRotation: true,
      removalPolicy: removal,
      pendingWindow: Duration.days(7),
    });
    // CloudWatch alarms publish to the failure topic: the service needs the key.
    notificationsKey.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'CloudWatchAlarmsUseTheKey',
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        resources: ['*'],
      }),
    );
    const successTopic = new sns.Topic(this, 'SuccessTopic', {
      topicName: `${prefix}-success`,
      displayName: `${prefix} published`,
      masterKey: notificationsKey,
      enforceSSL: true,
    });
    const failureTopic = new sns.Topic(this, 'FailureTopic', {
      topicName: `${prefix}-failure`,
      displayName: `${prefix} failed`,
      masterKey: notificationsKey,
      enforceSSL: true,
    });
    failureTopic.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'CloudWatchAlarmsOfThisAccount',
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['sns:Publish'],
        resources: [failureTopic.topicArn],
        conditions: {
          StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID },
          ArnLike: { 'aws:SourceArn': `arn:${Aws.PARTITION}:cloudwatch:${Aws.REGION}:${Aws.ACCOUNT_ID}:alarm:*` },
        },
      }),
    );

    const triggerDeadLetters = new sqs.Queue(this, 'TriggerDeadLetterQueue', {
      queueName: `${prefix}-trigger-dlq`,
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    skipCheckov(triggerDeadLetters, 'CKV_AWS_27', 'Encrypted at rest with SSE-SQS (SqsManagedSseEnabled); the check only recognises a KMS key');

    // ---- The five functions, each with its own role.

    const rootFiles = repositoryPaths.filter((p) => !p.endsWith('/*'));
    const functions = {} as Record<FunctionName, lambda.Function>;
    for (const name of FUNCTION_NAMES) {
      const id = pascalCase(name);
      const sizing = FUNCTION_SIZING[name];
      const functionName = `${prefix}-${name}`;
      const logGroup = new logs.LogGroup(this, `${id}Logs`, {
        logGroupName: `/aws/lambda/${functionName}`,
        retention: logRetention,
        removalPolicy: removal,
      });
      skipCheckov(logGroup, 'CKV_AWS_158', 'Logs hold no secrets (the functions never log the key); the service key suffices');
      const role = new iam.Role(this, `${id}Role`, {
        assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
        description: `${functionName}: only what the ${name} step uses`,
        inlinePolicies: {
          [name]: new iam.PolicyDocument({
            statements: [
              new iam.PolicyStatement({
                sid: 'WriteOwnLogs',
                actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
                resources: [logGroup.logGroupArn],
              }),
              ...functionPermissions(name, {
                bucket,
                packagesTables,
                stateTable: this.stateTable,
                signingKeySecretArn,
                rootFiles,
                publishedMarker: `dists/${settings.suite}/InRelease`,
                mirrorPrefixes: mirrors.map((r) => r.prefix),
                bottleNamesArn: this.bottleNames?.keyValueStoreArn,
                mirrorNames: mirrors.map((r) => r.name),
                suite: settings.suite,
              }),
            ],
          }),
        },
      });
      const fn = new RustFunction(this, id, {
        functionName,
        description: sizing.description,
        manifestPath: CARGO_MANIFEST,
        binaryName: name,
        runtime: 'provided.al2023',
        architecture: lambda.Architecture.ARM_64,
        memorySize: sizing.memoryMiB,
        timeout: sizing.timeout,
        ephemeralStorageSize: Size.mebibytes(sizing.ephemeralMiB),
        role,
        logGroup,
        environment: {
          PACKAGES_TABLE: this.packagesTable.tableName,
          // The other repositories' tables (functions/aws/src/env.rs), when there are any.
          ...(Object.keys(this.repositoryTables).length > 0
            ? {
                PACKAGES_TABLES: Stack.of(this).toJsonString(
                  Object.fromEntries(Object.entries(this.repositoryTables).map(([n, t]) => [n, t.tableName])),
                ),
              }
            : {}),
          STATE_TABLE: this.stateTable.tableName,
          BUCKET: bucket.bucketName,
          CONFIG_LOCATION,
          // Selects `environments.<env>` in repository.yaml (the repository URL).
          PKGRELAY_ENV: env.name,
          ...(name === 'build-index' ? { SIGNING_KEY_SECRET_ARN: signingKeySecretArn } : {}),
          // The Homebrew mirrors' flat bottle names, kept by publish (functions/aws/src/kvs.rs).
          ...(name === 'publish' && this.bottleNames ? { BOTTLE_NAMES_KVS_ARN: this.bottleNames.keyValueStoreArn } : {}),
          PKGRELAY_LOG: 'info',
        },
        bundling: {
          // The workspace root is the package of the CLI: name the function's package.
          cargoLambdaFlags: ['--package', name],
          commandHooks: {
            beforeBundling: () => [],
            // config/ next to bootstrap: /var/task/config at run time.
            afterBundling: (inputDir: string, outputDir: string) => [`cp -R "${inputDir}/config" "${outputDir}/config"`],
          },
        },
      });
      skipCheckov(fn, 'CKV_AWS_116', 'Invoked synchronously by Step Functions, which retries and catches failures; a DLQ never receives anything');
      skipCheckov(fn, 'CKV_AWS_117', 'Needs the internet (upstream downloads) and AWS APIs only; a VPC would add NAT cost and nothing else');
      skipCheckov(fn, 'CKV_AWS_115', 'Concurrency is bounded by the state machine (Map MaxConcurrency); reserving it can fail in small accounts');
      ignoreCfnLint(fn, 'W3005', 'CDK adds an explicit DependsOn on the role, which the Role GetAtt implies anyway');
      skipCheckov(fn, 'CKV_AWS_173', 'The environment holds resource names only, no secrets; the Lambda service key encrypts it');
      functions[name] = fn;
    }
    this.functions = functions;

    // ---- The state machine, loaded from the one ASL file the tests execute.

    const definition = readFileSync(ASL_FILE, 'utf8');
    const substitutions: Record<string, string> = {
      SuccessTopicArn: successTopic.topicArn,
      FailureTopicArn: failureTopic.topicArn,
      BucketName: bucket.bucketName,
    };
    for (const name of FUNCTION_NAMES) {
      substitutions[functionArnPlaceholder(name)] = functions[name].functionArn;
    }
    const placeholders = new Set([...definition.matchAll(/\$\{([A-Za-z0-9]+)\}/g)].map((m) => m[1]));
    const known = Object.keys(substitutions);
    if (placeholders.size !== known.length || !known.every((k) => placeholders.has(k))) {
      throw new Error(
        `${ASL_FILE} has placeholders ${[...placeholders].sort().join(', ')}; the stack substitutes ${known.sort().join(', ')}`,
      );
    }
    const stateMachineLogs = new logs.LogGroup(this, 'PipelineLogs', {
      logGroupName: `/aws/vendedlogs/states/${prefix}-pipeline`,
      retention: logRetention,
      removalPolicy: removal,
    });
    skipCheckov(stateMachineLogs, 'CKV_AWS_158', 'Execution data holds keys and ids, never secrets; the service key suffices');
    this.stateMachine = new sfn.StateMachine(this, 'Pipeline', {
      stateMachineName: `${prefix}-pipeline`, // = stateMachineName below
      stateMachineType: sfn.StateMachineType.STANDARD,
      definitionBody: sfn.DefinitionBody.fromString(definition),
      definitionSubstitutions: substitutions,
      logs: { destination: stateMachineLogs, level: sfn.LogLevel.ALL, includeExecutionData: true },
      tracingEnabled: true,
    });
    const pipeline = this.stateMachine;
    // The ${...} in DefinitionString are DefinitionSubstitutions, not Fn::Sub parameters.
    const placeholderReason = 'The ${Name} placeholders of the definition are filled by DefinitionSubstitutions, not Fn::Sub';
    Validations.of(pipeline).acknowledge({ id: 'CloudFormation-Validate::E1029', reason: placeholderReason });
    ignoreCfnLint(pipeline, 'E1029', placeholderReason);
    ignoreCfnLint(pipeline, 'W3005', 'CDK adds an explicit DependsOn on the role, which the RoleArn GetAtt implies anyway');
    // The Distributed Map's needs. The ARNs are built from the name: the role
    // cannot refer to the state machine it belongs to without a cycle.
    const stateMachineName = `${prefix}-pipeline`;
    for (const statement of stateMachinePermissions(
      bucket,
      Stack.of(this).formatArn({ service: 'states', resource: 'stateMachine', resourceName: stateMachineName, arnFormat: ArnFormat.COLON_RESOURCE_NAME }),
      Stack.of(this).formatArn({ service: 'states', resource: 'execution', resourceName: `${stateMachineName}/*`, arnFormat: ArnFormat.COLON_RESOURCE_NAME }),
    )) {
      pipeline.addToRolePolicy(statement);
    }
    for (const name of FUNCTION_NAMES) {
      functions[name].grantInvoke(pipeline);
    }
    successTopic.grantPublish(pipeline);
    failureTopic.grantPublish(pipeline);

    // ---- The optional Slack notifier (environments.ts slackNotifications):
    // every notification of both topics, posted to the webhook in its secret.

    if (env.slackNotifications) {
      const webhook = emptySecret(
        'SlackWebhook',
        `${prefix}-slack-webhook`,
        'Slack incoming webhook URL the notify-slack function posts the notifications to. Created without a value: ' +
          'aws secretsmanager put-secret-value --secret-id <arn> --secret-string https://hooks.slack.com/services/...',
        'notify-slack',
      );
      const functionName = `${prefix}-notify-slack`;
      const logGroup = new logs.LogGroup(this, 'NotifySlackLogs', {
        logGroupName: `/aws/lambda/${functionName}`,
        retention: logRetention,
        removalPolicy: removal,
      });
      skipCheckov(logGroup, 'CKV_AWS_158', 'Logs hold no secrets (the webhook URL is never logged); the service key suffices');
      const role = new iam.Role(this, 'NotifySlackRole', {
        assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
        description: `${functionName}: its logs and the webhook secret, nothing else`,
        inlinePolicies: {
          'notify-slack': new iam.PolicyDocument({
            statements: [
              new iam.PolicyStatement({
                sid: 'WriteOwnLogs',
                actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
                resources: [logGroup.logGroupArn],
              }),
              new iam.PolicyStatement({ sid: 'ReadWebhook', actions: ['secretsmanager:GetSecretValue'], resources: [webhook.ref] }),
            ],
          }),
        },
      });
      const notifier = new RustFunction(this, 'NotifySlack', {
        functionName,
        description: 'Posts the pipeline notifications (start, summary, failure) to a Slack incoming webhook',
        manifestPath: CARGO_MANIFEST,
        binaryName: 'notify-slack',
        runtime: 'provided.al2023',
        architecture: lambda.Architecture.ARM_64,
        memorySize: 128,
        timeout: Duration.seconds(30),
        role,
        logGroup,
        environment: { SLACK_WEBHOOK_SECRET_ARN: webhook.ref, PKGRELAY_LOG: 'info' },
        bundling: { cargoLambdaFlags: ['--package', 'notify-slack'] },
      });
      skipCheckov(notifier, 'CKV_AWS_116', 'Invoked asynchronously by SNS, which retries; a lost chat message is not worth a queue');
      skipCheckov(notifier, 'CKV_AWS_117', 'Needs the internet (the webhook) only; a VPC would add NAT cost and nothing else');
      skipCheckov(notifier, 'CKV_AWS_115', 'At most a few invocations a run');
      skipCheckov(notifier, 'CKV_AWS_173', 'The environment holds the secret ARN only, never the URL');
      ignoreCfnLint(notifier, 'W3005', 'CDK adds an explicit DependsOn on the role, which the Role GetAtt implies anyway');
      successTopic.addSubscription(new subscriptions.LambdaSubscription(notifier));
      failureTopic.addSubscription(new subscriptions.LambdaSubscription(notifier));
      new CfnOutput(this, 'SlackWebhookSecretArn', { value: webhook.ref, description: 'Put the Slack incoming webhook URL here' });
    }

    // ---- Triggers: a .deb under staging/, and every hour; failures to start go to the DLQ.

    const stagingRuleFile = readJson(STAGING_RULE_FILE);
    const stagingRule = substitutePlaceholders(
      { EventPattern: stagingRuleFile.EventPattern, InputTransformer: stagingRuleFile.InputTransformer },
      { BucketName: bucket.bucketName },
    );
    const targetOptions = { deadLetterQueue: triggerDeadLetters, retryAttempts: 8, maxEventAge: Duration.hours(6) };
    const onStagingUpload = new events.Rule(this, 'StagingUploadRule', {
      ruleName: `${prefix}-staging-upload`,
      description: `Starts ${prefix}-pipeline when a .deb lands in ${STAGING_PREFIX} (statemachine/staging-rule.json)`,
      // Replaced just below by the pattern of staging-rule.json, verbatim.
      eventPattern: { source: ['aws.s3'] },
      targets: [
        new targets.SfnStateMachine(pipeline, {
          input: new VerbatimInputTransformer(stagingRule.InputTransformer),
          ...targetOptions,
        }),
      ],
    });
    (onStagingUpload.node.defaultChild as events.CfnRule).addPropertyOverride('EventPattern', stagingRule.EventPattern);
    new events.Rule(this, 'HourlySchedule', {
      ruleName: `${prefix}-hourly`,
      description: `Runs ${prefix}-pipeline every hour (new upstream releases, Release refresh)`,
      schedule: events.Schedule.rate(Duration.hours(1)),
      targets: [
        new targets.SfnStateMachine(pipeline, {
          input: events.RuleTargetInput.fromObject({ trigger: 'schedule' }),
          ...targetOptions,
        }),
      ],
    });

    // Each Homebrew mirror: weekly, Sunday 03:00 UTC (the design documents'
    // ECS task is replaced by the same pipeline; formulae change daily, but a
    // weekly mirror is what its users asked for). The run says on the success
    // topic that it started, then what it published; failures go to the
    // failure topic as for the APT repository.
    for (const mirror of repositories.filter((r) => r.format === 'homebrew')) {
      new events.Rule(this, `${pascalCase(mirror.name)}WeeklySchedule`, {
        ruleName: `${prefix}-${mirror.name}-weekly`,
        description: `Runs ${prefix}-pipeline for the Homebrew mirror ${mirror.name} every Sunday at 03:00 UTC`,
        schedule: events.Schedule.cron({ minute: '0', hour: '3', weekDay: 'SUN' }),
        targets: [
          new targets.SfnStateMachine(pipeline, {
            input: events.RuleTargetInput.fromObject({
              trigger: 'schedule',
              repository: mirror.name,
              notify_start: true,
              max_concurrency: mirror.maxConcurrency,
            }),
            ...targetOptions,
          }),
        ],
      });
    }

    // ---- Alarms, to the failure topic.

    const alarmAction = new cloudwatchActions.SnsAction(failureTopic);
    const period = Duration.minutes(5);
    const alarm = (id: string, alarmName: string, description: string, metric: cloudwatch.IMetric) => {
      const a = new cloudwatch.Alarm(this, id, {
        alarmName: `${prefix}-${alarmName}`,
        alarmDescription: description,
        metric,
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      a.addAlarmAction(alarmAction);
      return a;
    };
    alarm('PipelineFailedAlarm', 'pipeline-failed', 'A pipeline execution failed', pipeline.metricFailed({ period, statistic: 'Sum' }));
    alarm('PipelineTimedOutAlarm', 'pipeline-timed-out', 'A pipeline execution timed out', pipeline.metricTimedOut({ period, statistic: 'Sum' }));
    for (const name of FUNCTION_NAMES) {
      const id = pascalCase(name);
      alarm(`${id}ErrorsAlarm`, `${name}-errors`, `${prefix}-${name} returned errors`, functions[name].metricErrors({ period, statistic: 'Sum' }));
      alarm(`${id}ThrottlesAlarm`, `${name}-throttles`, `${prefix}-${name} was throttled`, functions[name].metricThrottles({ period, statistic: 'Sum' }));
    }
    alarm(
      'TriggerDeadLettersAlarm',
      'trigger-dead-letters',
      'A trigger (staging upload or schedule) could not start the pipeline: see the dead-letter queue',
      triggerDeadLetters.metricApproximateNumberOfMessagesVisible({ period, statistic: 'Maximum' }),
    );

    // ---- Outputs (read by `pkgrelay config-package publish --outputs-file`).

    new CfnOutput(this, 'BucketName', { value: bucket.bucketName, description: 'Repository bucket' });
    new CfnOutput(this, 'PackagesTableName', { value: this.packagesTable.tableName });
    new CfnOutput(this, 'StateTableName', { value: this.stateTable.tableName });
    // The other repositories' tables, for the CLI against the stack (`pkgrelay brew import-hash --outputs-file`).
    if (Object.keys(this.repositoryTables).length > 0) {
      new CfnOutput(this, 'PackagesTables', {
        value: Stack.of(this).toJsonString(
          Object.fromEntries(Object.entries(this.repositoryTables).map(([n, t]) => [n, t.tableName])),
        ),
      });
    }
    new CfnOutput(this, 'StateMachineArn', { value: pipeline.stateMachineArn });
    new CfnOutput(this, 'StagingPrefix', { value: STAGING_PREFIX, description: 'Drop .deb files here to have them published' });
    new CfnOutput(this, 'RepositoryUrl', { value: `https://${distribution.distributionDomainName}/`, description: 'Where apt reaches the repository' });
    new CfnOutput(this, 'SigningKeySecretArn', { value: signingKeySecretArn, description: 'Put the armored signing key here' });
    new CfnOutput(this, 'SuccessTopicArn', { value: successTopic.topicArn });
    new CfnOutput(this, 'FailureTopicArn', { value: failureTopic.topicArn });
    new CfnOutput(this, 'DistributionId', { value: distribution.distributionId });
  }
}
