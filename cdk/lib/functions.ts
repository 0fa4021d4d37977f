// The five step functions: size per step and exactly the permissions each one
// uses (see shared/src/steps/*.rs and functions/aws/src/{s3,dynamo,secrets}.rs).

import { Duration, aws_dynamodb as dynamodb, aws_iam as iam, aws_s3 as s3 } from 'aws-cdk-lib';
import { FunctionName, GENERATIONS_PREFIX, STAGING_PREFIX } from './repository';

export interface FunctionSizing {
  readonly description: string;
  readonly memoryMiB: number;
  /** Lambda's maximum is 900 s; the state machine's TimeoutSeconds (900) is the backstop. */
  readonly timeout: Duration;
  /** /tmp size; Lambda's default is 512 MiB. */
  readonly ephemeralMiB: number;
}

export const FUNCTION_SIZING: Record<FunctionName, FunctionSizing> = {
  'check-sources': {
    description: 'Asks every configured source for candidates and drops those already in the store',
    memoryMiB: 512,
    timeout: Duration.minutes(5),
    // Staged .debs are read into /tmp to read their control paragraph.
    ephemeralMiB: 2048,
  },
  'download-package': {
    description: 'Streams one candidate into the pool with one-pass digests and describes it',
    // The most of everything: upstream artifacts (hundreds of MiB) stream
    // through /tmp, four digests are computed on the way, multipart uploads follow.
    memoryMiB: 2048,
    timeout: Duration.minutes(15),
    ephemeralMiB: 10240,
  },
  'record-metadata': {
    description: 'Conditional write of one package entry to the store',
    memoryMiB: 256,
    timeout: Duration.minutes(1),
    ephemeralMiB: 512,
  },
  'build-index': {
    description: 'Allocates the next generation, renders and signs the index, stages it',
    memoryMiB: 1024,
    timeout: Duration.minutes(5),
    ephemeralMiB: 512,
  },
  publish: {
    description: 'Makes a built generation live, in order, unless a newer one already is',
    memoryMiB: 512,
    timeout: Duration.minutes(5),
    ephemeralMiB: 512,
  },
};

export interface Resources {
  readonly bucket: s3.IBucket;
  readonly packagesTable: dynamodb.ITable;
  readonly stateTable: dynamodb.ITable;
  /** ARN of the signing key secret. */
  readonly signingKeySecretArn: string;
  /** The public root files publish writes: index.html, the convenience copy, the keyring. */
  readonly rootFiles: string[];
}

function allow(sid: string, actions: string[], resources: string[], conditions?: Record<string, unknown>) {
  return new iam.PolicyStatement({ sid, effect: iam.Effect.ALLOW, actions, resources, conditions });
}

/**
 * HeadObject on a missing key answers 404 only to a caller that may ListBucket
 * (otherwise 403, which S3Store cannot tell from a real denial). download-package
 * heads its pool key before a multipart upload (write-once), build-index heads
 * each by-hash key to skip existing ones, publish heads the source of each copy
 * (the convenience copy is optional: a missing one is a warning, not a
 * failure). The condition keys of ListObjects do not apply to that check, so
 * this grant cannot be narrowed to a prefix; it reveals key names, never contents.
 */
function listForNotFound(bucket: s3.IBucket) {
  return allow('MissingKeysAnswer404', ['s3:ListBucket'], [bucket.bucketArn]);
}

/** The statements of each function's role, besides writing its own log group. */
export function functionPermissions(name: FunctionName, r: Resources): iam.PolicyStatement[] {
  const objects = (...patterns: string[]) => patterns.map((p) => r.bucket.arnForObjects(p));
  const staging = `${STAGING_PREFIX}*`;
  const generations = `${GENERATIONS_PREFIX}*`;
  switch (name) {
    case 'check-sources':
      return [
        allow('ReadStore', ['dynamodb:GetItem'], [r.packagesTable.tableArn, r.stateTable.tableArn]),
        allow('ListStaging', ['s3:ListBucket'], [r.bucket.bucketArn], {
          StringLike: { 's3:prefix': [STAGING_PREFIX, staging] },
        }),
        allow('ReadStaging', ['s3:GetObject'], objects(staging)),
      ];
    case 'download-package':
      return [
        allow('ReadStore', ['dynamodb:GetItem'], [r.packagesTable.tableArn]),
        // GetObject on pool/* also allows HeadObject of the pool key (write-once checks).
        allow('ReadStagingAndPool', ['s3:GetObject'], objects(staging, 'pool/*')),
        allow('WritePool', ['s3:PutObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts'], objects('pool/*')),
        listForNotFound(r.bucket),
      ];
    case 'record-metadata':
      return [allow('WriteStore', ['dynamodb:GetItem', 'dynamodb:PutItem'], [r.packagesTable.tableArn])];
    case 'build-index':
      return [
        allow('ReadStore', ['dynamodb:Scan'], [r.packagesTable.tableArn]),
        allow('AllocateGeneration', ['dynamodb:GetItem', 'dynamodb:UpdateItem'], [r.stateTable.tableArn]),
        // by-hash files are write-once: existing ones are skipped or compared (HeadObject).
        allow('WriteByHash', ['s3:GetObject', 's3:PutObject'], objects('dists/*')),
        allow('StageGeneration', ['s3:PutObject'], objects(generations)),
        allow('ReadSigningKey', ['secretsmanager:GetSecretValue'], [r.signingKeySecretArn]),
        listForNotFound(r.bucket),
      ];
    case 'publish':
      return [
        allow('PublishGeneration', ['dynamodb:GetItem', 'dynamodb:UpdateItem'], [r.stateTable.tableArn]),
        // The manifest and staged files, and the sources of CopyObject (by-hash -> dists, pool -> root copy).
        allow('ReadGenerationAndSources', ['s3:GetObject'], objects(generations, 'pool/*', 'dists/*')),
        allow('WritePublicFiles', ['s3:PutObject'], objects('dists/*', ...r.rootFiles)),
        listForNotFound(r.bucket),
      ];
  }
}
