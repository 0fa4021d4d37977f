// The media sync's four functions (statemachine/media.md): size per step and
// exactly the permissions each one uses, as media.md's reads/writes table says.

import { Aws, Duration, aws_dynamodb as dynamodb, aws_iam as iam, aws_kms as kms, aws_s3 as s3 } from 'aws-cdk-lib';

/** The four media functions, as named in functions/ and in the Cargo workspace. */
export const MEDIA_FUNCTION_NAMES = ['authenticate', 'list-media', 'download-media', 'summarize'] as const;
export type MediaFunctionName = (typeof MEDIA_FUNCTION_NAMES)[number];

/** Where the copies go: `media/<provider>/<yyyy>/<mm>/<dd>/<filename>` (shared/src/media/mod.rs object_key). */
export const MEDIA_OBJECTS_PREFIX = 'media/';
/** What one run leaves for its later states: items.json, the Distributed Map's results (media.md). */
export const MEDIA_RUNS_PREFIX = 'runs/media/';
/** The status table's index on (status, updated_at). */
export const STATUS_INDEX = 'by-status';
/** The one provider. */
export const MEDIA_PROVIDER = 'gopro';

export interface MediaFunctionSizing {
  readonly description: string;
  readonly memoryMiB: number;
  readonly timeout: Duration;
}

export const MEDIA_FUNCTION_SIZING: Record<MediaFunctionName, MediaFunctionSizing> = {
  authenticate: {
    description: 'Checks the GoPro credentials in the secret, refreshes an OAuth token with less than 24 h left, writes rotated tokens back',
    memoryMiB: 256,
    timeout: Duration.seconds(60),
  },
  'list-media': {
    description: 'Pages through the GoPro library, batch-reads the status table, writes the items due to runs/media/<execution>/items.json',
    memoryMiB: 512,
    timeout: Duration.minutes(5),
  },
  'download-media': {
    description: 'Copies one media item into S3 (multipart, 100 MiB parts, full-object checksum) and records it in the status table',
    // Two 100 MiB parts in memory (one read from the source while the other uploads), plus the runtime.
    memoryMiB: 1024,
    timeout: Duration.minutes(15),
  },
  summarize: {
    description: "Counts the Distributed Map's results, decides the run's outcome, writes the run's metrics (embedded metric format)",
    memoryMiB: 256,
    timeout: Duration.minutes(2),
  },
};

export interface MediaResources {
  readonly bucket: s3.IBucket;
  readonly table: dynamodb.ITable;
  readonly secretArn: string;
  /** Encrypts the bucket and the secret. */
  readonly key: kms.IKey;
}

function allow(sid: string, actions: string[], resources: string[], conditions?: Record<string, unknown>) {
  return new iam.PolicyStatement({ sid, effect: iam.Effect.ALLOW, actions, resources, conditions });
}

/** KMS through one service only (the key encrypts the bucket's objects and the secret). */
function keyVia(sid: string, key: kms.IKey, service: 's3' | 'secretsmanager', actions: string[]) {
  return allow(sid, actions, [key.keyArn], { StringEquals: { 'kms:ViaService': `${service}.${Aws.REGION}.amazonaws.com` } });
}

/** The statements of each media function's role, besides writing its own log group. */
export function mediaFunctionPermissions(name: MediaFunctionName, r: MediaResources): iam.PolicyStatement[] {
  const objects = (prefix: string) => [r.bucket.arnForObjects(`${prefix}*`)];
  const readSecret = () => [
    allow('ReadCredentials', ['secretsmanager:GetSecretValue'], [r.secretArn]),
    keyVia('DecryptCredentials', r.key, 'secretsmanager', ['kms:Decrypt']),
  ];
  switch (name) {
    case 'authenticate':
      return [
        // Rotated OAuth tokens are written back as a new version (its id goes into the state).
        allow('ReadAndRotateCredentials', ['secretsmanager:GetSecretValue', 'secretsmanager:PutSecretValue'], [r.secretArn]),
        keyVia('EncryptCredentials', r.key, 'secretsmanager', ['kms:Decrypt', 'kms:GenerateDataKey']),
      ];
    case 'list-media':
      return [
        ...readSecret(),
        // What the table holds of the listed items, 100 keys a request; items
        // gone upstream become SOURCE_DELETED, new ones PENDING.
        allow('ReadAndMarkStatus', ['dynamodb:BatchGetItem', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'], [r.table.tableArn]),
        // The items not yet SOURCE_DELETED (StatusTable::ids_not_deleted, to
        // find what left the library): one query a status on the by-status
        // index; never a scan, never the base table.
        allow('ListRecordedItems', ['dynamodb:Query'], [`${r.table.tableArn}/index/${STATUS_INDEX}`]),
        // runs/media/<execution name>/items.json, read by the Distributed Map.
        allow('WriteItemList', ['s3:PutObject'], objects(MEDIA_RUNS_PREFIX)),
        keyVia('EncryptItemList', r.key, 's3', ['kms:GenerateDataKey']),
      ];
    case 'download-media':
      return [
        ...readSecret(),
        // PENDING -> IN_PROGRESS (with the multipart upload in progress) -> COMPLETED | FAILED | SOURCE_DELETED.
        allow('TrackStatus', ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'], [r.table.tableArn]),
        // HeadObject (an object already complete is not copied again: GetObject
        // allows HEAD), PutObject (also CreateMultipartUpload, UploadPart,
        // CompleteMultipartUpload), ListParts to resume a crashed upload, abort one.
        allow(
          'CopyMedia',
          ['s3:GetObject', 's3:PutObject', 's3:ListMultipartUploadParts', 's3:AbortMultipartUpload'],
          objects(MEDIA_OBJECTS_PREFIX),
        ),
        // HeadObject on a key not yet copied answers 404 only to a caller that
        // may ListBucket (403 otherwise, which cannot be told from a denial).
        // ListObjects' condition keys do not apply to that check, so the grant
        // cannot be narrowed to media/; it reveals key names, never contents.
        allow('MissingKeysAnswer404', ['s3:ListBucket'], [r.bucket.bucketArn]),
        // SSE-KMS: new data keys for the parts, and Decrypt to complete a
        // multipart upload and to read an object's checksum back.
        keyVia('EncryptMedia', r.key, 's3', ['kms:Decrypt', 'kms:GenerateDataKey']),
      ];
    case 'summarize':
      return [
        // The Map's manifest.json and result files (runs/media/<execution name>/results/<map run>/…).
        allow('ReadItemResults', ['s3:GetObject'], objects(MEDIA_RUNS_PREFIX)),
        allow('ListItemResults', ['s3:ListBucket'], [r.bucket.bucketArn], { StringLike: { 's3:prefix': [`${MEDIA_RUNS_PREFIX}*`] } }),
        keyVia('DecryptItemResults', r.key, 's3', ['kms:Decrypt']),
      ];
  }
}

/**
 * What the state machine's role needs beyond invoking the functions and
 * publishing to the topic: the Distributed Map reads items.json (ItemReader),
 * writes the results (ResultWriter), both SSE-KMS, and runs each item as a
 * child execution of the same state machine.
 */
export function mediaStateMachinePermissions(
  bucket: s3.IBucket,
  key: kms.IKey,
  stateMachineArn: string,
  executionsArn: string,
): iam.PolicyStatement[] {
  const runs = [bucket.arnForObjects(`${MEDIA_RUNS_PREFIX}*`)];
  return [
    allow('ReadItemList', ['s3:GetObject'], runs),
    allow('WriteItemResults', ['s3:PutObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts'], runs),
    keyVia('EncryptRunFiles', key, 's3', ['kms:Decrypt', 'kms:GenerateDataKey']),
    allow('RunItemsAsChildExecutions', ['states:StartExecution'], [stateMachineArn]),
    allow('FollowChildExecutions', ['states:DescribeExecution', 'states:StopExecution'], [executionsArn]),
  ];
}
