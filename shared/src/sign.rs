//! OpenPGP signing of APT repository metadata.
//!
//! An APT repository is trusted through its `Release` file, which lists the
//! digests of every index. apt accepts two signed forms of it, and we produce
//! both:
//!
//! - `InRelease`: the Release text wrapped in the OpenPGP *cleartext signature
//!   framework* (RFC 9580 §7), see [`SigningKey::clearsign`];
//! - `Release.gpg`: an ASCII-armored detached signature over `Release`, see
//!   [`SigningKey::detached_sign`].
//!
//! [`SigningKey`] holds the archive's secret key (v4 Ed25519, as the `gpgv`
//! that apt runs must be able to read it) and exports the public keyring that
//! clients install for apt's `signed-by`. [`verify_clearsigned`] and
//! [`verify_detached`] check signatures against such a keyring, for
//! `pkgrelay verify` and for tests.
//!
//! The cleartext framework is written and parsed here rather than with
//! sequoia's `Signer::cleartext()`/`Verifier`, because those strip trailing
//! whitespace from the text they emit and return. The signature only covers
//! the text *without* trailing whitespace (RFC 9580 §7.2), but apt reads the
//! text as it stands, so InRelease must carry the Release bytes unchanged and
//! [`verify_clearsigned`] must give them back unchanged.

use std::fmt;
use std::io::Write;

use anyhow::{Context, Result, anyhow, bail, ensure};
use openpgp::armor;
use openpgp::cert::prelude::*;
use openpgp::crypto::KeyPair;
use openpgp::packet::signature::SignatureBuilder;
use openpgp::parse::Parse;
use openpgp::parse::stream::{
    DetachedVerifierBuilder, MessageLayer, MessageStructure, VerificationError, VerificationHelper,
};
use openpgp::policy::StandardPolicy;
use openpgp::serialize::SerializeInto;
use openpgp::serialize::stream::{Armorer, Message, Signer};
use openpgp::types::{HashAlgorithm, KeyFlags, SignatureType};
use openpgp::{Cert, KeyHandle, Profile};
use sequoia_openpgp as openpgp;

/// Digest used for every signature we make.
const HASH: HashAlgorithm = HashAlgorithm::SHA512;

const BEGIN_SIGNED: &[u8] = b"-----BEGIN PGP SIGNED MESSAGE-----";
const BEGIN_SIGNATURE: &[u8] = b"-----BEGIN PGP SIGNATURE-----";
const END_SIGNATURE: &[u8] = b"-----END PGP SIGNATURE-----";

/// An archive signing key (OpenPGP secret key) able to sign Release files.
#[derive(Clone)]
pub struct SigningKey {
    /// The full certificate, secret key material included. Invariant: it has a
    /// policy-valid, unencrypted, signing-capable secret key (checked on
    /// construction, re-selected at each signature in case it expired since).
    cert: Cert,
}

impl SigningKey {
    /// Generate a new key (Ed25519 signing-capable primary key or signing subkey, no expiry), user id e.g. "Kiro APT repository <apt@kiro.example>".
    pub fn generate(user_id: &str) -> Result<SigningKey> {
        let (cert, _revocation) = CertBuilder::new()
            // v4, not v6: gpgv 2.2 and 2.4 (Debian 12, Ubuntu 24.04) cannot read v6 keys.
            .set_profile(Profile::RFC4880)?
            .set_cipher_suite(CipherSuite::Cv25519)
            // A single key that certifies and signs: an archive key lives in
            // one secret store, so a separate signing subkey buys nothing.
            .set_primary_key_flags(KeyFlags::empty().set_certification().set_signing())
            .set_validity_period(None)
            .add_userid(user_id)
            .generate()
            .context("generating OpenPGP signing key")?;
        Self::from_cert(cert)
    }

    /// Parse an ASCII-armored (or binary) OpenPGP secret key (TSK). Clear error if the data holds no secret signing-capable key, or is not OpenPGP at all. Unencrypted keys only; if the secret key material is encrypted, error saying passphrase-protected keys are not supported.
    pub fn from_bytes(data: &[u8]) -> Result<SigningKey> {
        let cert = Cert::from_bytes(data)
            .context("signing key is not an OpenPGP key (expected one ASCII-armored or binary secret key)")?;
        Self::from_cert(cert)
    }

    fn from_cert(cert: Cert) -> Result<SigningKey> {
        let key = SigningKey { cert };
        key.keypair()?;
        Ok(key)
    }

    /// The key pair to sign with: the first secret key that the standard
    /// policy considers valid, alive, unrevoked and signing-capable now.
    fn keypair(&self) -> Result<KeyPair> {
        let policy = StandardPolicy::new();
        let fpr = self.fingerprint();
        let candidates =
            self.cert.keys().secret().with_policy(&policy, None).supported().alive().revoked(false).for_signing();
        let mut encrypted = false;
        for ka in candidates {
            if ka.key().has_unencrypted_secret() {
                return ka.key().clone().into_keypair();
            }
            encrypted = true;
        }
        if encrypted {
            bail!(
                "OpenPGP key {fpr}: the secret key is passphrase-protected; passphrase-protected keys are not supported (export it without a passphrase)"
            );
        }
        if !self.cert.is_tsk() {
            bail!("OpenPGP key {fpr} is a public key: it holds no secret key material");
        }
        bail!("OpenPGP key {fpr} has no secret key that can sign (valid, unexpired, unrevoked, signing-capable)")
    }

    /// The secret key, ASCII-armored (for saving to a file / a secret).
    pub fn to_armored_secret(&self) -> Result<String> {
        Ok(String::from_utf8(self.cert.as_tsk().armored().to_vec()?)?)
    }

    /// The public key as a *binary* OpenPGP keyring (what goes into /usr/share/keyrings/*.gpg and apt's signed-by).
    pub fn public_keyring(&self) -> Result<Vec<u8>> {
        // Serializing a `Cert` (not a `TSK`) drops all secret key material.
        self.cert.to_vec()
    }

    /// The public key ASCII-armored.
    pub fn public_armored(&self) -> Result<String> {
        Ok(String::from_utf8(self.cert.armored().to_vec()?)?)
    }

    /// Hex fingerprint of the primary key (upper case, no spaces).
    pub fn fingerprint(&self) -> String {
        self.cert.fingerprint().to_hex()
    }

    /// InRelease: a cleartext-signed (RFC 4880 §7 / RFC 9580 cleartext signature framework) copy of `release`, digest SHA-256 or stronger (SHA512 fine).
    ///
    /// The text is embedded byte for byte (only dash-escaped), so
    /// [`verify_clearsigned`] returns `release` unchanged, provided it ends in
    /// a newline (as Release files do; otherwise one is added).
    pub fn clearsign(&self, release: &[u8]) -> Result<Vec<u8>> {
        let keypair = self.keypair()?;
        // RFC 9580 §7.1: the Hash header is for v4 signatures only.
        let hash_header = keypair.public().version() == 4;
        let lines = csf_lines(release);
        let signature = sign_armored(keypair, SignatureType::Text, &csf_signed_text(&lines))?;

        let mut out = Vec::with_capacity(release.len() + signature.len() + 64);
        out.extend_from_slice(BEGIN_SIGNED);
        out.push(b'\n');
        if hash_header {
            writeln!(out, "Hash: {HASH}")?;
        }
        out.push(b'\n');
        for line in lines {
            // Dash-escaping: a text line starting with '-' could otherwise be
            // taken for the armor line that ends the text.
            if line.starts_with(b"-") {
                out.extend_from_slice(b"- ");
            }
            out.extend_from_slice(line);
            out.push(b'\n');
        }
        out.extend_from_slice(&signature);
        Ok(out)
    }

    /// Release.gpg: a detached, ASCII-armored signature over `release` (binary signature type is fine; apt uses it with gpgv).
    pub fn detached_sign(&self, release: &[u8]) -> Result<Vec<u8>> {
        sign_armored(self.keypair()?, SignatureType::Binary, release)
    }
}

/// Prints only the fingerprint: secret material must never reach a log.
impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").field("fingerprint", &self.fingerprint()).finish()
    }
}

/// An ASCII-armored detached signature of type `typ` over `data`. For
/// `SignatureType::Text`, sequoia hashes with line endings normalized to CRLF.
fn sign_armored(keypair: KeyPair, typ: SignatureType, data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let message = Armorer::new(Message::new(&mut out)).kind(armor::Kind::Signature).build()?;
    let mut signer =
        Signer::with_template(message, keypair, SignatureBuilder::new(typ))?.hash_algo(HASH)?.detached().build()?;
    signer.write_all(data)?;
    signer.finalize()?;
    Ok(out)
}

/// The lines of `text` as the cleartext framework sees them. The framework
/// ends the last line with the line break before `-----BEGIN PGP SIGNATURE`,
/// so the text's own final newline is that break, not a line of its own.
fn csf_lines(text: &[u8]) -> Vec<&[u8]> {
    if text.is_empty() {
        return Vec::new();
    }
    text.strip_suffix(b"\n").unwrap_or(text).split(|&b| b == b'\n').collect()
}

/// The bytes a cleartext signature covers (RFC 9580 §7.2): each line without
/// trailing whitespace (spaces, tabs, and the CR of a CRLF, as GnuPG does),
/// lines joined by CRLF, no line ending after the last one.
fn csf_signed_text(lines: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\r\n");
        }
        let end = line.iter().rposition(|b| !b" \t\r".contains(b)).map_or(0, |p| p + 1);
        out.extend_from_slice(&line[..end]);
    }
    out
}

/// Verify an InRelease (cleartext-signed) document against a binary or armored public keyring; return the signed text (the Release content) on success. Used by the `pkgrelay verify` command.
///
/// Like apt, this is strict about the framing: the document must start with
/// the `BEGIN PGP SIGNED MESSAGE` line, hold nothing but whitespace after the
/// signature, and have every text line that starts with '-' dash-escaped.
/// Trailing whitespace on text lines is returned as written, though no
/// cleartext signature covers it.
pub fn verify_clearsigned(inrelease: &[u8], keyring: &[u8]) -> Result<Vec<u8>> {
    // Lines with their '\n' removed (a '\r' before it is kept: it is part of
    // the text as apt sees it); `rest` is what follows.
    let mut rest = inrelease;
    let mut next_line = || -> Option<(&[u8], &[u8])> {
        if rest.is_empty() {
            return None;
        }
        let start = rest;
        let (line, tail) = match rest.iter().position(|&b| b == b'\n') {
            Some(n) => (&rest[..n], &rest[n + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = tail;
        Some((line, start))
    };

    let not_clearsigned =
        || anyhow!("not a cleartext-signed document (no leading '-----BEGIN PGP SIGNED MESSAGE-----' line)");
    let (first, _) = next_line().ok_or_else(not_clearsigned)?;
    ensure!(first.trim_ascii_end() == BEGIN_SIGNED, not_clearsigned());

    // Armor headers ("Hash: SHA512") up to an empty line. They are not signed
    // and the verifier takes the digest from the signature, so only their
    // form is checked.
    loop {
        let (line, _) =
            next_line().ok_or_else(|| anyhow!("cleartext-signed document ends inside its armor headers"))?;
        let line = line.trim_ascii_end();
        if line.is_empty() {
            break;
        }
        ensure!(
            line.contains(&b':'),
            "malformed armor header in cleartext-signed document: {:?}",
            String::from_utf8_lossy(line)
        );
    }

    // The text, up to the signature's armor; `signature` is the armor block.
    let mut lines = Vec::new();
    let signature = loop {
        let (line, start) = next_line().ok_or_else(|| anyhow!("cleartext-signed document has no signature"))?;
        if line.trim_ascii_end() == BEGIN_SIGNATURE {
            break start;
        }
        match line.strip_prefix(b"- ") {
            Some(unescaped) => lines.push(unescaped),
            None if line.starts_with(b"-") => bail!(
                "cleartext-signed document has a line starting with '-' that is not dash-escaped: {:?}",
                String::from_utf8_lossy(line)
            ),
            None => lines.push(line),
        }
    };
    let end = find(signature, END_SIGNATURE)
        .ok_or_else(|| anyhow!("cleartext-signed document: signature armor is not terminated"))?
        + END_SIGNATURE.len();
    ensure!(
        signature[end..].iter().all(u8::is_ascii_whitespace),
        "cleartext-signed document has data after its signature"
    );

    verify_detached(&csf_signed_text(&lines), &signature[..end], keyring)?;
    // Each text line was ended by a '\n' (the last by the one before the
    // signature armor): put them back.
    Ok(lines.iter().flat_map(|line| line.iter().copied().chain([b'\n'])).collect())
}

/// Verify a detached signature (armored or binary) over `data` against a keyring.
///
/// Succeeds if at least one signature is good (made by a key of the keyring
/// that the standard policy accepts) and none is cryptographically bad.
/// Signatures by keys outside the keyring are ignored, as gpgv does.
pub fn verify_detached(data: &[u8], signature: &[u8], keyring: &[u8]) -> Result<()> {
    let certs = parse_keyring(keyring)?;
    let policy = StandardPolicy::new();
    let mut verifier = DetachedVerifierBuilder::from_bytes(signature)
        .context("not an OpenPGP signature")?
        .with_policy(&policy, None, Helper { certs })?;
    verifier.verify_bytes(data).context("signature verification failed")
}

/// Reads every certificate of a keyring (binary, e.g. `*.gpg`, or armored).
fn parse_keyring(keyring: &[u8]) -> Result<Vec<Cert>> {
    let certs: Vec<Cert> = CertParser::from_bytes(keyring)
        .context("keyring is not OpenPGP data")?
        // Skip certificates sequoia cannot use; fail below if none is left.
        .filter_map(Result::ok)
        .collect();
    ensure!(!certs.is_empty(), "keyring holds no usable OpenPGP certificate");
    Ok(certs)
}

/// Byte-string search (first occurrence).
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Feeds the keyring to sequoia's verifier and decides what counts as valid.
struct Helper {
    certs: Vec<Cert>,
}

impl VerificationHelper for Helper {
    fn get_certs(&mut self, _ids: &[KeyHandle]) -> openpgp::Result<Vec<Cert>> {
        Ok(self.certs.clone())
    }

    fn check(&mut self, structure: MessageStructure) -> openpgp::Result<()> {
        let mut good = false;
        let mut problems = Vec::new();
        for layer in structure {
            let MessageLayer::SignatureGroup { results } = layer else {
                continue;
            };
            for result in results {
                match result {
                    Ok(_) => good = true,
                    // Wrong data, or a forged signature: fail even if another
                    // signature is good (gpgv fails too).
                    Err(e @ VerificationError::BadSignature { .. }) => bail!("{e}"),
                    Err(e) => problems.push(e.to_string()),
                }
            }
        }
        if good {
            Ok(())
        } else if problems.is_empty() {
            Err(anyhow!("no signature found"))
        } else {
            Err(anyhow!("no good signature by a key in the keyring: {}", problems.join("; ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::Command;

    /// Lines apt must get back byte for byte: trailing spaces and tabs, lines
    /// that need dash-escaping (one even looks like the signature armor),
    /// one that looks already escaped, empty and blank lines.
    const TRICKY: &[u8] = b"Origin: Kiro\nLabel: Kiro   \nSuite: stable\t\n-leading dash\n- looks escaped\n\
        -----BEGIN PGP SIGNATURE-----\n--\n-\nFrom here\n\n \n\t\nSHA256:\n 0123abcd 42 main/binary-amd64/Packages\n";

    fn key() -> SigningKey {
        SigningKey::generate("Kiro APT repository <apt@kiro.example>").unwrap()
    }

    #[test]
    fn generate_export_import_round_trip() {
        let key = key();
        let armored = key.to_armored_secret().unwrap();
        assert!(armored.starts_with("-----BEGIN PGP PRIVATE KEY BLOCK-----"));
        let again = SigningKey::from_bytes(armored.as_bytes()).unwrap();
        assert_eq!(again.fingerprint(), key.fingerprint());
        // Binary secret keys load too.
        let binary = key.cert.as_tsk().to_vec().unwrap();
        assert_eq!(SigningKey::from_bytes(&binary).unwrap().fingerprint(), key.fingerprint());

        let fpr = key.fingerprint();
        assert_eq!(fpr.len(), 40);
        assert!(fpr.chars().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()));
        assert_eq!(format!("{key:?}"), format!("SigningKey {{ fingerprint: {fpr:?} }}"));
        assert!(key.public_armored().unwrap().starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----"));
        // A v4 key that never expires.
        let policy = StandardPolicy::new();
        let valid = key.cert.with_policy(&policy, None).unwrap();
        assert_eq!(valid.primary_key().key().version(), 4);
        assert_eq!(valid.primary_key().key_expiration_time(), None);
    }

    #[test]
    fn public_exports_hold_no_secret() {
        let key = key();
        let public = Cert::from_bytes(&key.public_keyring().unwrap()).unwrap();
        assert!(!public.is_tsk());
        assert_eq!(public.fingerprint().to_hex(), key.fingerprint());
        assert!(!Cert::from_bytes(key.public_armored().unwrap().as_bytes()).unwrap().is_tsk());
    }

    #[test]
    fn from_bytes_rejects_garbage_public_and_protected_keys() {
        let err = SigningKey::from_bytes(b"Origin: not a key\n").unwrap_err();
        assert!(format!("{err:#}").contains("not an OpenPGP key"), "{err:#}");

        let key = key();
        let err = SigningKey::from_bytes(key.public_armored().unwrap().as_bytes()).unwrap_err();
        assert!(format!("{err:#}").contains("public key"), "{err:#}");

        // The same key with its secret encrypted under a passphrase.
        let primary = key.cert.primary_key().key().clone().parts_into_secret().unwrap();
        let encrypted = primary.encrypt_secret(&"hunter2".into()).unwrap();
        let (cert, _) = key.cert.clone().insert_packets([encrypted]).unwrap();
        let err = SigningKey::from_bytes(&cert.as_tsk().to_vec().unwrap()).unwrap_err();
        assert!(format!("{err:#}").contains("passphrase-protected"), "{err:#}");
    }

    #[test]
    fn clearsign_round_trip_is_exact() {
        let key = key();
        let keyring = key.public_keyring().unwrap();
        for text in [TRICKY, b"a\n", b"\n", b"a\n\n", b"", b"crlf\r\nline  \r\n"] {
            let inrelease = key.clearsign(text).unwrap();
            let shown = String::from_utf8(inrelease.clone()).unwrap();
            assert!(shown.starts_with("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n"), "{shown}");
            assert_eq!(verify_clearsigned(&inrelease, &keyring).unwrap(), text, "{shown}");
            // The armored keyring works as well.
            assert_eq!(verify_clearsigned(&inrelease, key.public_armored().unwrap().as_bytes()).unwrap(), text);
        }
        // Dash-escaping as written.
        let shown = String::from_utf8(key.clearsign(TRICKY).unwrap()).unwrap();
        assert!(
            shown.contains(
                "\n- -leading dash\n- - looks escaped\n- -----BEGIN PGP SIGNATURE-----\n- --\n- -\nFrom here\n"
            )
        );
    }

    #[test]
    fn clearsigned_tampering_and_wrong_keys_fail() {
        let key = key();
        let keyring = key.public_keyring().unwrap();
        let inrelease = key.clearsign(TRICKY).unwrap();

        let tampered = String::from_utf8(inrelease.clone()).unwrap().replace("Suite: stable", "Suite: stabla");
        let err = verify_clearsigned(tampered.as_bytes(), &keyring).unwrap_err();
        assert!(format!("{err:#}").contains("signature"), "{err:#}");

        let other = SigningKey::generate("Someone else <x@example.org>").unwrap();
        assert!(verify_clearsigned(&inrelease, &other.public_keyring().unwrap()).is_err());

        // Framing: junk before or after, an unescaped dash line, no signature.
        let mut junk_before = b"junk\n".to_vec();
        junk_before.extend_from_slice(&inrelease);
        assert!(verify_clearsigned(&junk_before, &keyring).is_err());
        let mut junk_after = inrelease.clone();
        junk_after.extend_from_slice(b"Origin: evil\n");
        assert!(verify_clearsigned(&junk_after, &keyring).is_err());
        let unescaped = String::from_utf8(inrelease.clone()).unwrap().replace("- -leading", "-leading");
        assert!(verify_clearsigned(unescaped.as_bytes(), &keyring).is_err());
        assert!(verify_clearsigned(b"-----BEGIN PGP SIGNED MESSAGE-----\n\nOrigin: x\n", &keyring).is_err());
        assert!(verify_clearsigned(TRICKY, &keyring).is_err());
    }

    #[test]
    fn detached_round_trip() {
        let key = key();
        let keyring = key.public_keyring().unwrap();
        let sig = key.detached_sign(TRICKY).unwrap();
        assert!(sig.starts_with(BEGIN_SIGNATURE));
        verify_detached(TRICKY, &sig, &keyring).unwrap();
        verify_detached(TRICKY, &sig, key.public_armored().unwrap().as_bytes()).unwrap();

        let mut changed = TRICKY.to_vec();
        changed[0] ^= 1;
        assert!(verify_detached(&changed, &sig, &keyring).is_err());
        let other = SigningKey::generate("Someone else <x@example.org>").unwrap();
        assert!(verify_detached(TRICKY, &sig, &other.public_keyring().unwrap()).is_err());
        assert!(verify_detached(TRICKY, b"not a signature", &keyring).is_err());
        assert!(verify_detached(TRICKY, &sig, b"not a keyring").is_err());
    }

    /// Runs the real `gpgv` (what apt uses) on `files` of `dir`, with the
    /// keyring `dir/archive.gpg`, in a throw-away GNUPGHOME; returns whether
    /// it succeeded, and its report.
    fn gpgv(dir: &Path, files: &[&str]) -> (bool, String) {
        let home = tempfile::tempdir().unwrap();
        let out = Command::new("/usr/bin/gpgv")
            .env("GNUPGHOME", home.path())
            .arg("--homedir")
            .arg(home.path())
            .arg("--keyring")
            .arg(dir.join("archive.gpg"))
            .args(files.iter().map(|f| dir.join(f)))
            .output()
            .expect("running /usr/bin/gpgv");
        let report = String::from_utf8_lossy(&out.stderr).into_owned();
        eprintln!("gpgv {files:?}: {}\n{report}", out.status);
        (out.status.success(), report)
    }

    #[test]
    fn gpgv_accepts_our_signatures_and_rejects_changes() {
        let key = key();
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name);
        std::fs::write(path("archive.gpg"), key.public_keyring().unwrap()).unwrap();
        std::fs::write(path("Release"), TRICKY).unwrap();
        std::fs::write(path("Release.gpg"), key.detached_sign(TRICKY).unwrap()).unwrap();
        let inrelease = key.clearsign(TRICKY).unwrap();
        std::fs::write(path("InRelease"), &inrelease).unwrap();

        for files in [&["InRelease"][..], &["Release.gpg", "Release"]] {
            let (ok, report) = gpgv(dir.path(), files);
            assert!(ok && report.contains("Good signature"), "{report}");
        }

        // One byte of the Release text changed, in Release and in InRelease:
        // gpgv must find the signature BAD (not merely fail to run).
        let mut changed = TRICKY.to_vec();
        changed[0] ^= 1;
        std::fs::write(path("Release"), &changed).unwrap();
        let tampered = String::from_utf8(inrelease).unwrap().replace("Suite: stable", "Suite: stabla");
        std::fs::write(path("InRelease"), tampered).unwrap();
        for files in [&["InRelease"][..], &["Release.gpg", "Release"]] {
            let (ok, report) = gpgv(dir.path(), files);
            assert!(!ok && report.contains("BAD signature"), "{report}");
        }
    }
}
