// The five step functions: size per step and exactly the permissions each one
// uses (see shared/src/steps/*.rs and functions/aws/src/{s3,dynamo,secrets}.rs).

import { Duration, aws_dynamodb as dynamodb, aws_iam as iam, aws_s3 as s3 } from 'aws-cdk-lib';
import {
  CANDIDATES_PREFIX,
  ENTRIES_PREFIX,
  FunctionName,
  GENERATIONS_PREFIX,
  PACKAGE_NAME_INDEX,
  RESULTS_PREFIX,
  STAGING_PREFIX,
  STAGING_REJECTED_PREFIX,
  BREW_RUNS_PREFIX,
} from './repository';

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
    // A full Homebrew mirror's first generation renders and writes some 7,000
    // image indexes (tests/aws_brew_scale.rs); Lambda's maximum costs nothing
    // on the runs that need less.
    timeout: Duration.minutes(15),
    ephemeralMiB: 512,
  },
  publish: {
    description: 'Makes a built generation live, in order, unless a newer one already is',
    memoryMiB: 512,
    // A full mirror's first publish: ~14,000 manifest copies and 30,000
    // names into the key value store (tests/aws_brew_scale.rs).
    timeout: Duration.minutes(15),
    ephemeralMiB: 512,
  },
};

export interface Resources {
  readonly bucket: s3.IBucket;
  /** Every repository's packages table (the APT one first): each step treats them alike. */
  readonly packagesTables: dynamodb.ITable[];
  readonly stateTable: dynamodb.ITable;
  /** ARN of the signing key secret. */
  readonly signingKeySecretArn: string;
  /** The public root files publish writes: index.html, the convenience copy, the keyring. */
  readonly rootFiles: string[];
  /** The object whose absence means the index is lost (APT: dists/<suite>/InRelease). */
  readonly publishedMarker: string;
  /** The prefix of each Homebrew mirror (`brew/`), beside the APT repository. */
  readonly mirrorPrefixes: string[];
  /** The key value store of the mirrors' flat bottle names (CloudFront), when there is a mirror. */
  readonly bottleNamesArn?: string;
  /** Each Homebrew mirror's name: its generations and retention ledger are under generations/<name>/. */
  readonly mirrorNames: string[];
  /** The APT repository's suite: its by-hash files and generations are under it. */
  readonly suite: string;
}

/** `brew-2` -> `Brew2`: a statement id part (letters and digits only). */
function pascal(name: string): string {
  return name.split(/[^A-Za-z0-9]/).map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join('');
}

function allow(sid: string, actions: string[], resources: string[], conditions?: Record<string, unknown>) {
  return new iam.PolicyStatement({ sid, effect: iam.Effect.ALLOW, actions, resources, conditions });
}

/**
 * HeadObject on a missing key answers 404 only to a caller that may ListBucket
 * (otherwise 403, which S3Store cannot tell from a real denial). check-sources
 * heads the published marker (a lost InRelease makes the next run republish),
 * download-package its pool key before a multipart upload (write-once),
 * build-index each by-hash key to skip existing ones, publish what it may skip
 * and the source of each copy (the convenience copy is optional: a missing one
 * is a warning, not a failure). The condition keys of ListObjects do not apply
 * to that check, so this grant cannot be narrowed to a prefix; it reveals key
 * names, never contents. (It also covers check-sources' listing of staging/.)
 */
function listForNotFound(bucket: s3.IBucket) {
  return allow('MissingKeysAnswer404', ['s3:ListBucket'], [bucket.bucketArn]);
}

/** The statements of each function's role, besides writing its own log group. */
export function functionPermissions(name: FunctionName, r: Resources): iam.PolicyStatement[] {
  const objects = (...patterns: string[]) => patterns.map((p) => r.bucket.arnForObjects(p));
  const packages = r.packagesTables.map((t) => t.tableArn);
  const staging = `${STAGING_PREFIX}*`;
  const generations = `${GENERATIONS_PREFIX}*`;
  // staging/ is an inbox (shared/src/sources/staging_upload.rs): a refused
  // upload moves to staging/rejected/ (CopyObject, its reason beside it,
  // DeleteObject); a recorded one is removed. The steps that refuse or record
  // staged files may do exactly that, and write nothing else under staging/.
  const moveRefusedUploads = () =>
    allow('MoveRefusedUploads', ['s3:PutObject'], objects(`${STAGING_REJECTED_PREFIX}*`));
  const removeFromInbox = () => allow('RemoveFromInbox', ['s3:DeleteObject'], objects(staging));
  // A Homebrew mirror (shared/src/brew/mod.rs) keeps, under its prefix:
  // by-hash/SHA256/<hex> (the API files check-sources fetched, image indexes
  // and bottles_hash.json build-index rendered: write-once, staged there
  // until publish copies them to their names), blobs/sha256/<hex> (each
  // bottle once, written by download-package), and the published names
  // (bottles/, v2/, api/, bottles_hash.json). Its API snapshot (which API
  // files a run fetched, and the bottles they reference) is private, under
  // runs/brew/<name>/.
  const mirror = (...rel: string[]) => r.mirrorPrefixes.flatMap((p) => rel.map((x) => `${p}${x}`));
  const mirrorGrants = (sid: string, actions: string[], ...rel: string[]) =>
    r.mirrorPrefixes.length === 0 ? [] : [allow(sid, actions, objects(...mirror(...rel)))];
  const brewSnapshots = `${BREW_RUNS_PREFIX}*`;
  // A refused candidate is remembered in the state table (`rejected#<id>`).
  switch (name) {
    case 'check-sources':
      return [
        // The suite's record, and each latest_url source's (`source#<package>`:
        // the validators its conditional request sends).
        allow('ReadSuite', ['dynamodb:GetItem'], [r.stateTable.tableArn]),
        // Every candidate's id at once, 100 keys a request.
        allow('ReadStore', ['dynamodb:BatchGetItem'], packages),
        // A candidate not found by id may be a vendor build recorded under the
        // .deb's own version (announced 0.6.0, recorded 0.6.0-1762210000): the
        // recorded versions of its package, one query a package.
        allow('ReadRecordedVersions', ['dynamodb:Query'], packages.map((t) => `${t}/index/${PACKAGE_NAME_INDEX}`)),
        // Refusals remembered (`rejected#<id>`) for the candidates found: one batch read.
        allow('ReadRefusals', ['dynamodb:BatchGetItem'], [r.stateTable.tableArn]),
        // staging/ uploads, and whether the published index is still there.
        allow('ReadStagingAndMarker', ['s3:GetObject'], objects(staging, r.publishedMarker)),
        // The candidate list goes to the bucket; the Distributed Map reads it.
        allow('WriteCandidateList', ['s3:PutObject'], objects(`${CANDIDATES_PREFIX}*`)),
        // An unreadable upload, or one no package takes, leaves the inbox.
        moveRefusedUploads(),
        removeFromInbox(),
        // A mirror's API files, kept by digest until publish (write-once:
        // an existing one is checked, not written again), whether its
        // published marker (api/formula.jws.json) is still there, and the
        // run's API snapshot.
        ...mirrorGrants('KeepMirrorApiFiles', ['s3:GetObject', 's3:PutObject'], 'by-hash/*'),
        ...mirrorGrants('ReadMirrorMarker', ['s3:GetObject'], 'api/formula.jws.json'),
        ...(r.mirrorPrefixes.length === 0 ? [] : [allow('WriteMirrorSnapshot', ['s3:PutObject'], objects(brewSnapshots))]),
        listForNotFound(r.bucket),
      ];
    case 'download-package':
      return [
        allow('ReadStore', ['dynamodb:GetItem'], packages),
        // GetObject on pool/* also allows HeadObject of the pool key (write-once checks).
        allow('ReadStagingAndPool', ['s3:GetObject'], objects(staging, 'pool/*')),
        allow('WritePool', ['s3:PutObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts'], objects('pool/*')),
        // A mirror's bottles, once each by digest (HeadObject first: write-once).
        ...mirrorGrants(
          'WriteMirrorBlobs',
          ['s3:GetObject', 's3:PutObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts'],
          'blobs/*',
        ),
        // An entry too large to travel inline (a big control paragraph) waits here for record-metadata.
        allow('WriteLargeEntries', ['s3:PutObject'], objects(`${ENTRIES_PREFIX}*`)),
        // A candidate refused for its content is remembered (`rejected#<id>`)…
        allow('RememberRefusals', ['dynamodb:UpdateItem'], [r.stateTable.tableArn]),
        // …or, staged, moved to staging/rejected/.
        moveRefusedUploads(),
        removeFromInbox(),
        listForNotFound(r.bucket),
      ];
    case 'record-metadata':
      return [
        // One transaction: the entry (conditional put) and the suite's recorded mark.
        allow('WriteStore', ['dynamodb:GetItem', 'dynamodb:PutItem'], packages),
        // The recorded mark, and (same action, same table) a latest_url
        // source's record (`source#<package>`) once its file is recorded.
        allow('RaiseRecordedMark', ['dynamodb:UpdateItem'], [r.stateTable.tableArn]),
        allow('ReadLargeEntries', ['s3:GetObject'], objects(`${ENTRIES_PREFIX}*`)),
        // A recorded upload leaves the inbox; one refused as a conflict moves
        // to staging/rejected/ (its CopyObject reads the staged file).
        allow('ReadStaged', ['s3:GetObject'], objects(staging)),
        moveRefusedUploads(),
        removeFromInbox(),
      ];
    case 'build-index':
      return [
        allow('ReadStore', ['dynamodb:Scan'], packages),
        allow('AllocateGeneration', ['dynamodb:GetItem', 'dynamodb:UpdateItem'], [r.stateTable.tableArn]),
        // by-hash files are write-once: existing ones are skipped or compared (HeadObject).
        allow('WriteByHash', ['s3:GetObject', 's3:PutObject'], objects('dists/*')),
        // A mirror's rendered files (image indexes, bottles_hash.json) by
        // hash, beside its API files, and the API snapshot it publishes from.
        ...mirrorGrants('WriteMirrorByHash', ['s3:GetObject', 's3:PutObject'], 'by-hash/*'),
        ...(r.mirrorPrefixes.length === 0 ? [] : [allow('ReadMirrorSnapshot', ['s3:GetObject'], objects(brewSnapshots))]),
        // Its own manifest, and the live one (compressed files to reuse).
        allow('StageGeneration', ['s3:GetObject', 's3:PutObject'], objects(generations)),
        // Retention deletes pool files no index lists; an entry listed again
        // (a raised keep) is checked to still have its file (HeadObject, which
        // S3 authorizes as GetObject) and left out if it is gone.
        allow('CheckListedArtifacts', ['s3:GetObject'], objects('pool/*')),
        ...mirrorGrants('CheckListedMirrorBlobs', ['s3:GetObject'], 'blobs/*'),
        // The Distributed Map's results, summarised into the run's report.
        allow('ReadItemResults', ['s3:GetObject'], objects(`${RESULTS_PREFIX}*`)),
        allow('ReadSigningKey', ['secretsmanager:GetSecretValue'], [r.signingKeySecretArn]),
        listForNotFound(r.bucket),
      ];
    case 'publish':
      return [
        allow('PublishGeneration', ['dynamodb:GetItem', 'dynamodb:UpdateItem'], [r.stateTable.tableArn]),
        // The manifests, the sources of CopyObject (by-hash -> dists, pool -> root
        // copy), and the root files it skips when the live generation put them there.
        allow('ReadGenerationAndSources', ['s3:GetObject'], objects(generations, 'pool/*', 'dists/*', ...r.rootFiles)),
        allow('WritePublicFiles', ['s3:PutObject'], objects('dists/*', ...r.rootFiles)),
        // A mirror's published names, copied from by-hash/ (and read to skip
        // what the live generation already put there).
        ...mirrorGrants('ReadMirrorSources', ['s3:GetObject'], 'by-hash/*', 'bottles/*', 'v2/*', 'api/*', 'bottles_hash.json'),
        ...mirrorGrants('WriteMirrorNames', ['s3:PutObject'], 'bottles/*', 'v2/*', 'api/*', 'bottles_hash.json'),
        // The flat bottle names' digests for the rewrite in front of S3,
        // before the API files that make brew ask for them.
        ...(r.bottleNamesArn
          ? [
              allow(
                'KeepBottleNames',
                ['cloudfront-keyvaluestore:DescribeKeyValueStore', 'cloudfront-keyvaluestore:UpdateKeys'],
                [r.bottleNamesArn],
              ),
            ]
          : []),
        // Retention (shared/src/steps/collect.rs): the suite's ledger of what
        // no generation references any more, rewritten by each publish…
        allow('WriteRetentionLedger', ['s3:PutObject'], objects(`${GENERATIONS_PREFIX}${r.suite}/retention.json`)),
        // …and what is past its grace period leaves: pool files no index lists,
        // the suite's by-hash index files, replaced generations' manifests.
        // Nothing else: never a fixed name (InRelease, Packages, the root files).
        allow(
          'CollectUnreferenced',
          ['s3:DeleteObject'],
          objects('pool/*', `dists/${r.suite}/*/by-hash/*`, `${GENERATIONS_PREFIX}${r.suite}/*`),
        ),
        // The same for each mirror: its ledger, and its bottles, by-hash files
        // and manifests once past the grace period.
        ...r.mirrorNames.map((name) =>
          allow(`WriteRetentionLedger${pascal(name)}`, ['s3:PutObject'], objects(`${GENERATIONS_PREFIX}${name}/retention.json`)),
        ),
        ...(r.mirrorPrefixes.length === 0
          ? []
          : [
              allow(
                'CollectUnreferencedMirrorFiles',
                ['s3:DeleteObject'],
                objects(...mirror('blobs/*', 'by-hash/*'), ...r.mirrorNames.map((n) => `${GENERATIONS_PREFIX}${n}/*`)),
              ),
            ]),
        listForNotFound(r.bucket),
      ];
  }
}

/**
 * What the state machine's own role needs beyond invoking the functions and
 * publishing to the topics (which CDK grants): the Distributed Map reads the
 * candidate list (ItemReader), writes the items' results (ResultWriter) and
 * runs each item as a child execution of the same state machine.
 */
export function stateMachinePermissions(bucket: s3.IBucket, stateMachineArn: string, executionsArn: string): iam.PolicyStatement[] {
  return [
    allow('ReadCandidateList', ['s3:GetObject'], [bucket.arnForObjects(`${CANDIDATES_PREFIX}*`)]),
    allow(
      'WriteItemResults',
      ['s3:PutObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts'],
      [bucket.arnForObjects(`${RESULTS_PREFIX}*`)],
    ),
    allow('RunItemsAsChildExecutions', ['states:StartExecution'], [stateMachineArn]),
    allow('FollowChildExecutions', ['states:DescribeExecution', 'states:StopExecution'], [executionsArn]),
  ];
}
