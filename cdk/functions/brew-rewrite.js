// CloudFront Function (cloudfront-js-2.0, viewer request) in front of a
// Homebrew mirror's prefix: brew asks for a bottle by two names, and the
// bucket holds each bottle once, at <prefix>blobs/sha256/<hex>
// (shared/src/brew/mod.rs `rewrite` does the same for `pkgrelay serve`).
//
// - HOMEBREW_ARTIFACT_DOMAIN: <prefix>v2/homebrew/core/<image>/blobs/sha256:<hex>
//   names the digest itself;
// - HOMEBREW_BOTTLE_DOMAIN: <prefix>bottles/<name>-<pkg_version>.<tag>.bottle[.<n>].tar.gz
//   (brew sends `@` as %40) names no digest: the key value store associated
//   with this function maps `<prefix>bottles/<decoded name>` to it, written by
//   the publish step before the API files that make brew ask for the name.
//
// Anything else passes unchanged: a name not in the store reaches S3, which
// answers 403 as for any missing key. __PREFIX__ is replaced at synth time
// (cdk/lib/pkgrelay-stack.ts) with the mirror's prefix, e.g. `brew/`.
import cf from 'cloudfront';

const kvs = cf.kvs();
const PREFIX = '/__PREFIX__';
const HEX = /^[0-9a-f]{64}$/;

async function handler(event) {
  const request = event.request;
  let uri = request.uri;
  try {
    uri = decodeURIComponent(uri);
  } catch (e) {
    return request;
  }
  if (uri.indexOf(PREFIX) !== 0) {
    return request;
  }
  const rest = uri.slice(PREFIX.length);
  if (rest.indexOf('v2/homebrew/core/') === 0) {
    const m = rest.match(/\/blobs\/sha256:([0-9a-f]{64})$/);
    if (m) {
      request.uri = PREFIX + 'blobs/sha256/' + m[1];
    }
    return request;
  }
  if (rest.indexOf('bottles/') === 0 && rest.indexOf('/', 8) < 0 && rest.endsWith('.tar.gz')) {
    try {
      const hex = await kvs.get(uri.slice(1));
      if (HEX.test(hex)) {
        request.uri = PREFIX + 'blobs/sha256/' + hex;
      }
    } catch (e) {
      // Not mirrored: S3 answers.
    }
  }
  return request;
}
