// KMS as AWS enforces it for the services that encrypt with a customer
// managed key (moto encrypts nothing and checks no key policy).
//
// kmsRequirements -> which KMS calls the service makes on the caller's behalf
//                    for a request (S3 with SSE-KMS, SNS with SSE, Secrets
//                    Manager with a KmsKeyId): [{ action, keyArn, context }]
// authorizeKms    -> the decision KMS makes: the key policy must allow the
//                    caller, directly or by delegating to the account's IAM
//                    policies (then an identity policy must allow it too); an
//                    explicit deny anywhere wins
// kmsAccessDenied -> the answer the calling service gives, in its own shape
//
// Which KMS operation each service call needs (AWS documentation: "Using
// server-side encryption with AWS KMS keys (SSE-KMS)" / "Permissions" in the
// S3 User Guide, the PutSecretValue and GetSecretValue API references,
// "Encryption at rest" in the SNS Developer Guide):
//
//   S3 PutObject, CopyObject (destination), CreateMultipartUpload  kms:GenerateDataKey
//   S3 UploadPart, UploadPartCopy (destination)                    kms:GenerateDataKey, kms:Decrypt
//   S3 CompleteMultipartUpload                                     kms:Decrypt
//   S3 GetObject, CopyObject/UploadPartCopy source                 kms:Decrypt
//   S3 HeadObject, ListParts, Abort, List*, DeleteObject            none
//   SNS Publish to a topic with KmsMasterKeyId                      kms:GenerateDataKey, kms:Decrypt
//   Secrets Manager GetSecretValue                                 kms:Decrypt
//   Secrets Manager PutSecretValue                                 kms:GenerateDataKey, kms:Decrypt
//
// "Multipart uploads need kms:Decrypt because S3 decrypts and reads the
// parts before completing the upload" (S3 User Guide); which of the part
// calls S3 makes the KMS call in is not documented: both part uploads and
// the completion are checked here (a role without kms:Decrypt fails its
// multipart upload on AWS either way). The key of an object is approximated
// by the bucket's default key, or the key a request names in
// x-amz-server-side-encryption-aws-kms-key-id (a later change of the
// bucket's default key is not modelled).

import { DEFAULT_ACCOUNT, authorize, normalizePrincipal } from './iam.mjs';
import { errorResponse } from './limits.mjs';

const S3_KMS = {
  PutObject: ['kms:GenerateDataKey'],
  CopyObject: ['kms:GenerateDataKey'],
  CreateMultipartUpload: ['kms:GenerateDataKey'],
  UploadPart: ['kms:GenerateDataKey', 'kms:Decrypt'],
  UploadPartCopy: ['kms:GenerateDataKey', 'kms:Decrypt'],
  CompleteMultipartUpload: ['kms:Decrypt'],
  GetObject: ['kms:Decrypt'],
};

/**
 * The KMS calls a request makes: `[{ action, keyArn, context }]` (empty when
 * none). `lookup`: `{ bucketKey(bucket), topicKey(topicArn),
 * secretKey(secretArn or id) }` -> key ARN or null.
 */
export function kmsRequirements(c, headers, lookup, { region = 'us-east-1', accountId = DEFAULT_ACCOUNT } = {}) {
  const out = [];
  const ctxFor = (service, extra) => ({
    'kms:ViaService': `${service}.${region}.amazonaws.com`,
    'kms:CallerAccount': accountId,
    ...extra,
  });
  if (c.service === 's3') {
    const actions = S3_KMS[c.operation];
    if (actions && c.bucket) {
      const named = headers?.['x-amz-server-side-encryption-aws-kms-key-id'];
      const writes = ['PutObject', 'CopyObject', 'CreateMultipartUpload'].includes(c.operation);
      const keyArn = writes && named ? lookup.keyArn?.(named) ?? named : lookup.bucketKey?.(c.bucket);
      if (keyArn) {
        const context = ctxFor('s3', { 'kms:EncryptionContext:aws:s3:arn': `arn:aws:s3:::${c.bucket}/${c.key ?? ''}` });
        for (const action of actions) out.push({ action, keyArn, context });
      }
    }
    // The source of a copy is read (decrypted) with its own bucket's key.
    if ((c.operation === 'CopyObject' || c.operation === 'UploadPartCopy') && c.copySource) {
      const src = lookup.bucketKey?.(c.copySource.bucket);
      if (src) {
        out.push({
          action: 'kms:Decrypt',
          keyArn: src,
          context: ctxFor('s3', { 'kms:EncryptionContext:aws:s3:arn': `arn:aws:s3:::${c.copySource.bucket}/${c.copySource.key}` }),
        });
      }
    }
  } else if (c.service === 'sns' && (c.operation === 'Publish' || c.operation === 'PublishBatch') && c.topicArn) {
    const keyArn = lookup.topicKey?.(c.topicArn);
    if (keyArn) {
      const context = ctxFor('sns', { 'kms:EncryptionContext:aws:sns:topicArn': c.topicArn });
      out.push({ action: 'kms:GenerateDataKey', keyArn, context }, { action: 'kms:Decrypt', keyArn, context });
    }
  } else if (c.service === 'secretsmanager' && (c.operation === 'GetSecretValue' || c.operation === 'PutSecretValue')) {
    const secretArn = c.authorizations[0]?.resource;
    const keyArn = lookup.secretKey?.(secretArn) ?? (c.secretId ? lookup.secretKey?.(c.secretId) : null);
    if (keyArn) {
      const context = ctxFor('secretsmanager', { 'kms:EncryptionContext:SecretARN': secretArn });
      if (c.operation === 'PutSecretValue') out.push({ action: 'kms:GenerateDataKey', keyArn, context });
      out.push({ action: 'kms:Decrypt', keyArn, context });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// authorizeKms
// ---------------------------------------------------------------------------

const asList = (v) => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

function wildcardMatch(pattern, value) {
  const re = new RegExp(`^${String(pattern).split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`, 'i');
  return re.test(value);
}

/**
 * Whether the key policy hands the decision for `action` to the account's
 * IAM policies: an Allow statement whose principal is the account
 * (`arn:aws:iam::ACCOUNT:root` or the bare account id) and whose Action
 * covers `action` ("Allows access to the AWS account and enables IAM
 * policies", the default key policy). Conditions of that statement are not
 * evaluated (the default key policy has none).
 */
export function keyPolicyDelegates(policy, action, accountId = DEFAULT_ACCOUNT) {
  for (const st of asList(policy?.Statement)) {
    if (st.Effect !== 'Allow') continue;
    const aws = st.Principal === '*' ? [] : asList(st.Principal?.AWS);
    if (!aws.some((p) => p === accountId || p === `arn:aws:iam::${accountId}:root`)) continue;
    if (st.NotAction !== undefined) {
      if (!asList(st.NotAction).some((a) => wildcardMatch(a, action))) return true;
      continue;
    }
    if (asList(st.Action).some((a) => wildcardMatch(a, action))) return true;
  }
  return false;
}

/**
 * KMS's decision for one call (see "Determining access to an AWS KMS key",
 * AWS KMS Developer Guide): `key` is `{ arn, policy, enabled }`.
 *  1. an explicit deny in the key policy or an identity policy: denied;
 *  2. the key policy allows the principal itself: allowed;
 *  3. the key policy delegates to the account: an identity policy must allow;
 *  4. otherwise denied, whatever the identity policies say.
 * Returns iam.authorize's shape, with `reason` in KMS's words.
 */
export async function authorizeKms({ principal, identityPolicies = [], key, action, context = {}, accountId = DEFAULT_ACCOUNT, region }) {
  principal = normalizePrincipal(principal);
  const resource = key.arn;
  const base = { allowed: false, action, resource, explicit: false, policyType: 'resource' };
  if (key.enabled === false) return { ...base, reason: `the KMS key ${resource} is disabled`, disabled: true };
  const request = [{ action, resource, context }];
  const both = await authorize(request, { principal, identityPolicies, resourcePolicyFor: () => key.policy, accountId, region });
  if (!both.allowed && both.explicit) return { ...both, resource };
  if (both.validationError) return both;
  const keyOnly = await authorize(request, { principal, identityPolicies: [], resourcePolicyFor: () => key.policy, accountId, region });
  if (keyOnly.allowed) return { allowed: true, via: 'key policy' };
  if (!keyPolicyDelegates(key.policy, action, accountId)) {
    return { ...base, reason: `no resource-based policy allows the ${action} action (the key policy neither names the caller nor lets IAM policies grant it)` };
  }
  // (iam-simulate evaluates a key policy as KMS does: without one, or when it
  // does not delegate, no identity policy grants anything; `both` is the
  // evaluation of the identity policies under the delegating key policy.)
  if (both.allowed) return { allowed: true, via: 'IAM policy (the key policy delegates to the account)' };
  return { ...both, resource, policyType: 'identity' };
}

// ---------------------------------------------------------------------------
// kmsAccessDenied
// ---------------------------------------------------------------------------

/**
 * The answer of the calling service when KMS refused its call:
 * - S3: 403 AccessDenied, "User: <arn> is not authorized to perform:
 *   kms:GenerateDataKey on resource: <key arn> because …" (S3 names the KMS
 *   action and the key; HEAD: no body);
 * - SNS: 400 KMSAccessDenied (Publish's KMSAccessDeniedException, "The
 *   ciphertext references a key that doesn't exist or that you don't have
 *   access to");
 * - Secrets Manager: 400 AccessDeniedException "Access to KMS is not allowed".
 * A disabled key: S3 403 KMS.DisabledException, SNS 400 KMSDisabled,
 * Secrets Manager 400 DecryptionFailure.
 */
export function kmsAccessDenied({ service, method = 'GET', principalArn, decision }) {
  const tail = decision.reason ? (decision.explicit ? ` with an ${decision.reason}` : ` because ${decision.reason}`) : '';
  if (service === 's3') {
    if (decision.disabled) return errorResponse('s3', { status: 403, code: 'KMS.DisabledException', message: `${decision.resource} is disabled.`, method });
    return errorResponse('s3', {
      status: 403,
      code: 'AccessDenied',
      message: `User: ${principalArn} is not authorized to perform: ${decision.action} on resource: ${decision.resource}${tail}`,
      method,
    });
  }
  if (service === 'sns') {
    if (decision.disabled) return errorResponse('sns', { status: 400, code: 'KMSDisabled', message: `${decision.resource} is disabled.` });
    return errorResponse('sns', {
      status: 400,
      code: 'KMSAccessDenied',
      message: `User: ${principalArn} is not authorized to perform: ${decision.action} on resource: ${decision.resource}${tail} (Service: AWSKMS; Status Code: 400; Error Code: AccessDeniedException)`,
    });
  }
  if (service === 'secretsmanager') {
    if (decision.disabled) return errorResponse('secretsmanager', { status: 400, code: 'DecryptionFailure', message: `${decision.resource} is disabled.` });
    return errorResponse('secretsmanager', { status: 400, code: 'AccessDeniedException', message: 'Access to KMS is not allowed' });
  }
  return errorResponse('dynamodb', { status: 400, code: 'AccessDeniedException', message: `User: ${principalArn} is not authorized to perform: ${decision.action}${tail}` });
}
