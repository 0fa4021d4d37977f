//! A 200 MiB artifact streams through the real `download-package` function on
//! the local AWS API server (moto, started by `tests/run`), and the function's
//! peak resident set size stays far below the artifact's size.
//!
//! The .deb is assembled by hand so that the test does not gzip 200 MB in a
//! debug build: `debian-binary`, the `control.tar.gz` of a small package built
//! by `DebBuilder`, and an uncompressed `data.tar` (written here, ustar) whose
//! one file is 200 MiB of xorshift output, which no layer can compress.
//!
//! The peak RSS is the binary's own `ru_maxrss` from `wait4` (its high-water
//! mark, kernel-measured), taken by a small launcher process rather than by
//! this test process (see `measured_launcher` for why);
//! `getrusage(RUSAGE_CHILDREN)` is checked to agree. A sampler reading
//! `/proc/<pid>/status` during the run, and the fixture's request log, print
//! how much memory each phase (start-up, HTTP download, S3 upload) used, which
//! is what localises a regression.
//!
//! The ar/tar writers are in tests/common/bigdeb.rs (tests/faults.rs uses
//! them too); the measured process runner and the streaming S3 hash are here.

mod common;

use common::aws::*;
use common::*;
use common::bigdeb::*;
use pkgrelay_core::store::PackageStore;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MIB: u64 = 1024 * 1024;
/// The big file inside data.tar; the .deb is this plus a few KiB.
const PAYLOAD: usize = 200 * MIB as usize;
/// download-package must stay below this, whatever the artifact's size.
const RSS_BOUND_MIB: u64 = 100;
const EXECUTION_ID: &str = "arn:aws:states:us-east-1:123456789012:execution:pkgrelay:stream";

// ---------------------------------------------------------------------------
// A large, valid .deb without compressing it.

// ---------------------------------------------------------------------------
// Running a function binary once, measuring it.
//
// Why a launcher: Linux keeps a process's ru_maxrss across execve, and at
// execve it records the high-water mark of the address space being replaced.
// A child spawned (fork or vfork/posix_spawn) by this test process, which holds
// the 200 MiB artifact for the fixture upstream, would therefore report at
// least this process's peak (237 MiB was measured that way for both
// check-sources and download-package). So the measured binary is started by a
// small process instead: this same test executable, running only
// `measured_launcher`, which spawns the binary, samples /proc while it runs,
// reaps it with wait4 and writes a report.

/// Names the launcher's directory (program, stdin in; stdout, stderr, report out).
const LAUNCH_ENV: &str = "PKGRELAY_TEST_MEASURED_LAUNCH";

struct Measured {
    success: bool,
    stdout: Vec<u8>,
    stderr: String,
    /// The child's own peak RSS (wait4's ru_maxrss), KiB.
    maxrss_kib: u64,
    /// getrusage(RUSAGE_CHILDREN) in the launcher after the wait (one child: the same figure).
    children_maxrss_kib: u64,
    /// The launcher's own peak RSS when it spawned the child: the floor the
    /// child's ru_maxrss inherits at execve.
    launcher_hwm_kib: u64,
    /// The child's VmHWM at the last sample before it exited.
    last_hwm_kib: u64,
    /// When the launcher spawned the binary, Unix ms.
    started_ms: u64,
    wall: Duration,
    /// CPU time the binary used (user, system).
    cpu: (Duration, Duration),
    /// (Unix time in ms, VmRSS KiB) every 25 ms.
    samples: Vec<(u64, u64)>,
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// A `Vm*:` line of /proc/<pid>/status, in KiB.
fn proc_status_kib(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Not a test of its own: the launcher described above, run only by
/// `invoke_measured` (as an ignored test, so that it never counts as a pass).
#[test]
#[ignore = "a helper process for a_200_mib_artifact_streams_through_download_package"]
fn measured_launcher() {
    let dir = std::path::PathBuf::from(std::env::var_os(LAUNCH_ENV).expect("started by invoke_measured"));
    let program = std::fs::read_to_string(dir.join("program")).unwrap();
    let launcher_hwm_kib = proc_status_kib("self", "VmHWM:").unwrap();
    let (t0, started) = (unix_ms(), Instant::now());
    let child = Command::new(program)
        .arg("--invoke")
        .env_remove(LAUNCH_ENV)
        .stdin(std::fs::File::open(dir.join("stdin")).unwrap())
        .stdout(std::fs::File::create(dir.join("stdout")).unwrap())
        .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
        .spawn()
        .unwrap();
    let pid = child.id();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let (mut samples, mut last_hwm) = (Vec::new(), 0);
            let pid = pid.to_string();
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                // A zombie has no Vm* lines: the run is over.
                let (Some(rss), Some(hwm)) = (proc_status_kib(&pid, "VmRSS:"), proc_status_kib(&pid, "VmHWM:")) else {
                    break;
                };
                samples.push(json!([unix_ms(), rss]));
                last_hwm = hwm;
                std::thread::sleep(Duration::from_millis(25));
            }
            (samples, last_hwm)
        })
    };
    let mut status = 0;
    // SAFETY: rusage is plain data; pid is our own unreaped child and the
    // pointers are valid for the call.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid as libc::pid_t, "wait4: {}", std::io::Error::last_os_error());
    let wall_ms = started.elapsed().as_millis() as u64;
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    drop(child); // already reaped: dropping neither waits nor kills
    let mut children: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut children) }, 0);
    let (samples, last_hwm) = sampler.join().unwrap();
    let report = json!({
        "success": libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "maxrss_kib": usage.ru_maxrss,
        "children_maxrss_kib": children.ru_maxrss,
        "launcher_hwm_kib": launcher_hwm_kib,
        "last_hwm_kib": last_hwm,
        "started_ms": t0,
        "wall_ms": wall_ms,
        "user_us": usage.ru_utime.tv_sec as u64 * 1_000_000 + usage.ru_utime.tv_usec as u64,
        "system_us": usage.ru_stime.tv_sec as u64 * 1_000_000 + usage.ru_stime.tv_usec as u64,
        "samples": samples,
    });
    std::fs::write(dir.join("report.json"), report.to_string()).unwrap();
}

/// `<binary> --invoke` with the functions' environment and `event` on stdin,
/// started and measured by `measured_launcher`. `during` is called every
/// 20 ms while it runs (the test uses it to timestamp upstream requests).
fn invoke_measured(aws: &Aws, binary: &str, event: &Value, mut during: impl FnMut()) -> Measured {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("program"), bin_dir().join(binary).to_str().unwrap()).unwrap();
    std::fs::write(dir.path().join("stdin"), event.to_string()).unwrap();
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["measured_launcher", "--exact", "--ignored", "--test-threads=1", "--nocapture"])
        .env(LAUNCH_ENV, dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    aws.function_env(binary, &mut cmd); // inherited by the binary
    let mut launcher = cmd.spawn().unwrap();
    while launcher.try_wait().unwrap().is_none() {
        during();
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = launcher.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the launcher failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).unwrap()).unwrap();
    let kib = |k: &str| report[k].as_u64().unwrap_or_else(|| panic!("{k} in {report}"));
    let measured = Measured {
        success: report["success"] == true,
        stdout: std::fs::read(dir.path().join("stdout")).unwrap(),
        stderr: std::fs::read_to_string(dir.path().join("stderr")).unwrap(),
        maxrss_kib: kib("maxrss_kib"),
        children_maxrss_kib: kib("children_maxrss_kib"),
        launcher_hwm_kib: kib("launcher_hwm_kib"),
        last_hwm_kib: kib("last_hwm_kib"),
        started_ms: kib("started_ms"),
        wall: Duration::from_millis(kib("wall_ms")),
        cpu: (Duration::from_micros(kib("user_us")), Duration::from_micros(kib("system_us"))),
        samples: report["samples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s[0].as_u64().unwrap(), s[1].as_u64().unwrap()))
            .collect(),
    };
    aws.logs.lock().unwrap().push_str(&measured.stderr);
    measured
}

/// Peak sampled VmRSS (MiB) among samples taken in [from, to) (Unix ms).
fn peak_between(samples: &[(u64, u64)], from: u64, to: u64) -> f64 {
    samples.iter().filter(|(t, _)| (from..to).contains(t)).map(|(_, kib)| *kib).max().unwrap_or(0) as f64 / 1024.0
}

/// A one-line picture of the RSS over time (about 16 points, seconds from the first sample).
fn rss_profile(samples: &[(u64, u64)]) -> String {
    let Some(&(t0, _)) = samples.first() else {
        return "no samples".into();
    };
    let step = samples.len().div_ceil(16).max(1);
    let points: Vec<String> = samples
        .iter()
        .step_by(step)
        .map(|(t, kib)| format!("{:.1}s:{:.0}M", (t - t0) as f64 / 1000.0, *kib as f64 / 1024.0))
        .collect();
    points.join(" ")
}

/// SHA256 and length of an S3 object, read chunk by chunk.
async fn s3_sha256(aws: &Aws, key: &str) -> (u64, String) {
    let mut object = aws.s3.get_object().bucket(&aws.bucket).key(key).send().await.unwrap();
    let (mut hasher, mut len) = (Sha256::new(), 0u64);
    while let Some(chunk) = object.body.next().await {
        let chunk = chunk.unwrap();
        len += chunk.len() as u64;
        hasher.update(&chunk);
    }
    (len, hex::encode(hasher.finalize()))
}

// ---------------------------------------------------------------------------

/// The hand-made .deb is one dpkg accepts, and pkgrelay reads its control
/// paragraph; a small, odd-sized payload exercises the padding.
#[test]
fn hand_built_deb_is_valid() {
    let deb = big_deb("kiro", "0.7.45", "amd64", 100_003);
    let control = pkgrelay_core::deb::read_control_from(&deb[..]).unwrap();
    assert_eq!(control.get("Package"), Some("kiro"));
    assert_eq!(control.get("Version"), Some("0.7.45"));
    assert_eq!(control.get("Architecture"), Some("amd64"));
    assert_eq!(control.get("Installed-Size"), Some("98"));
    // dpkg-deb is the independent judge (Debian package dpkg; .ci/run installs it).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kiro_0.7.45_amd64.deb");
    std::fs::write(&path, &deb).unwrap();
    let out = Command::new("dpkg-deb").arg("--contents").arg(&path).output().unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "dpkg-deb --contents: {}", String::from_utf8_lossy(&out.stderr));
    assert!(listing.contains("100003") && listing.contains(BIG_FILE), "{listing}");
    let out = Command::new("dpkg-deb").arg("--fsys-tarfile").arg(&path).output().unwrap();
    assert!(out.status.success(), "dpkg-deb --fsys-tarfile: {}", String::from_utf8_lossy(&out.stderr));
    let tar = out.stdout;
    let in_deb = deb.len() - (100_003usize.div_ceil(512) * 512 + 2 * 512);
    let (head, _) = big_deb_frame("kiro", "0.7.45", "amd64", 100_003);
    assert_eq!(in_deb, head.len(), "the frame ends where the big file starts");
    assert_eq!(&tar[4 * 512..][..100_003], &deb[in_deb..][..100_003], "the big file's bytes");
    let out = Command::new("dpkg-deb").args(["--field"]).arg(&path).arg("Package").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "kiro");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_200_mib_artifact_streams_through_download_package() {
    let up = Upstream::start();
    let ws = Workspace::new(&up);
    let aws = Aws::setup(&ws).await;

    let version = "0.7.45";
    let t = Instant::now();
    let deb = big_deb("kiro", version, "amd64", PAYLOAD);
    let (size, sha256) = (deb.len() as u64, sha256(&deb));
    assert!(size >= 200 * MIB);
    assert_eq!(pkgrelay_core::deb::read_control_from(&deb[..]).unwrap().get("Package"), Some("kiro"));
    eprintln!("built a {size}-byte .deb (SHA256 {sha256}) in {:.1}s", t.elapsed().as_secs_f64());
    let deb_path = format!("/signed/{version}/deb/kiro-ide-{version}-stable-linux-x64.deb");
    let pem_path = format!("/signed/{version}/certificate.pem");
    up.set(&deb_path, Reply::Body(deb)); // moved: the fixture holds the only copy
    up.set(&pem_path, Reply::Body(format!("CERT {version}\n").into_bytes()));
    up.set(&format!("/signed/{version}/signature.bin"), Reply::Body(format!("SIG {version}").into_bytes()));
    up.set("/stable/metadata.json", Reply::Body(kiro_metadata(&up, version, &deb_path)));

    // check-sources first, as the state machine runs it: its candidate is
    // download-package's input.
    let event = json!({"payload": {"trigger": "manual"}, "execution_id": EXECUTION_ID});
    let checked = invoke_measured(&aws, "check-sources", &event, || {});
    assert!(checked.success, "check-sources failed: {}\n{}", String::from_utf8_lossy(&checked.stdout), checked.stderr);
    let sources: Value = serde_json::from_slice(&checked.stdout).unwrap();
    // The candidates wait in the bucket for the Distributed Map's ItemReader.
    let list = aws.get(sources["candidates_key"].as_str().unwrap_or_else(|| panic!("{sources:#}"))).await.unwrap();
    let candidates: Vec<Value> = serde_json::from_slice(&list).unwrap();
    assert_eq!(candidates.len(), 1, "{sources:#}");
    let candidate = candidates[0].clone();
    assert_eq!(candidate["package"], "kiro");
    assert_eq!(candidate["version"], version);
    assert_eq!(candidate["url"], up.url(&deb_path));
    eprintln!(
        "check-sources: peak RSS {:.1} MiB, {:.1}s",
        checked.maxrss_kib as f64 / 1024.0,
        checked.wall.as_secs_f64()
    );

    // The measured run. The fixture's request log marks the phases: the .deb's
    // GET starts the download; the certificate's GET comes after the .deb is
    // on disk, checked and described, just before the upload to S3.
    let (mut deb_at, mut pem_at) = (None, None);
    let event = json!({"payload": candidate, "execution_id": EXECUTION_ID});
    let run = invoke_measured(&aws, "download-package", &event, || {
        if deb_at.is_none() && up.hits(&deb_path) > 0 {
            deb_at = Some(unix_ms());
        }
        if pem_at.is_none() && up.hits(&pem_path) > 0 {
            pem_at = Some(unix_ms());
        }
    });
    eprintln!("download-package log:\n{}", run.stderr);
    assert!(run.success, "download-package failed: {}\n{}", String::from_utf8_lossy(&run.stdout), run.stderr);
    assert_eq!(up.hits(&deb_path), 1, "downloaded once, no retries");

    let rss_mib = run.maxrss_kib as f64 / 1024.0;
    let secs = run.wall.as_secs_f64();
    let (mib_per_s, mb_per_s) = (size as f64 / MIB as f64 / secs, size as f64 / 1e6 / secs);
    let end = run.started_ms + run.wall.as_millis() as u64;
    let (deb_at, pem_at) = (deb_at.expect("the .deb was requested"), pem_at.expect("the certificate was requested"));
    let phase = |name: &str, from: u64, to: u64| {
        let s = (to.saturating_sub(from)) as f64 / 1000.0;
        format!("{name} {s:.1}s (sampled peak {:.1} MiB)", peak_between(&run.samples, from, to))
    };
    eprintln!("download-package RSS over time: {}", rss_profile(&run.samples));
    eprintln!(
        "download-package phases: {}; {}, {:.1} MiB/s; {}, {:.1} MiB/s",
        phase("start-up + configuration", run.started_ms, deb_at),
        phase("HTTP download + describe", deb_at, pem_at),
        size as f64 / MIB as f64 / ((pem_at - deb_at) as f64 / 1000.0),
        phase("companions + S3 upload", pem_at, end + 1),
        size as f64 / MIB as f64 / ((end - pem_at) as f64 / 1000.0),
    );
    eprintln!(
        "download-package: ru_maxrss {rss_mib:.1} MiB (RUSAGE_CHILDREN {:.1} MiB, last VmHWM {:.1} MiB, \
         floor inherited from the launcher {:.1} MiB); CPU user {:.1}s + system {:.1}s of {secs:.1}s wall",
        run.children_maxrss_kib as f64 / 1024.0,
        run.last_hwm_kib as f64 / 1024.0,
        run.launcher_hwm_kib as f64 / 1024.0,
        run.cpu.0.as_secs_f64(),
        run.cpu.1.as_secs_f64(),
    );
    eprintln!(
        "download-package peak RSS: {rss_mib:.0} MiB for a 200 MiB artifact ({size} bytes) in {secs:.1}s, \
         {mib_per_s:.1} MiB/s ({mb_per_s:.1} MB/s), debug build against moto on 127.0.0.1"
    );
    assert_eq!(run.children_maxrss_kib, run.maxrss_kib, "the launcher waited for one child");
    // Both come from the same kernel counters, which are approximate by a few pages.
    assert!(
        run.last_hwm_kib <= run.maxrss_kib + 1024,
        "VmHWM {} KiB, ru_maxrss {} KiB",
        run.last_hwm_kib,
        run.maxrss_kib
    );

    // The result describes the artifact that was served.
    let result: Value = serde_json::from_slice(&run.stdout).unwrap();
    let entry = &result["entry"];
    let key = "pool/main/k/kiro/kiro_0.7.45_amd64.deb";
    assert_eq!(entry["package_id"], "kiro#0.7.45#amd64", "{result:#}");
    assert_eq!(entry["filename"], key);
    assert_eq!(entry["size"], size, "{entry}");
    assert_eq!(entry["sha256"], sha256.as_str());
    assert_eq!(entry["control"]["fields"][0], json!(["Package", "kiro"]), "{entry}");
    let companions: Vec<&str> =
        entry["companions"].as_array().unwrap().iter().map(|c| c["key"].as_str().unwrap()).collect();
    assert_eq!(companions, ["pool/main/k/kiro/kiro_0.7.45_amd64.pem", "pool/main/k/kiro/kiro_0.7.45_amd64.sig"]);
    assert_eq!(aws.get(companions[0]).await.unwrap(), b"CERT 0.7.45\n");

    // The object in the pool: its size, its metadata, and its bytes.
    let head = aws.s3.head_object().bucket(&aws.bucket).key(key).send().await.unwrap();
    assert_eq!(head.content_length(), Some(size as i64));
    assert_eq!(head.metadata().and_then(|m| m.get("sha256")).map(String::as_str), Some(sha256.as_str()));
    assert_eq!(head.content_type(), Some("application/vnd.debian.binary-package"));
    assert_eq!(s3_sha256(&aws, key).await, (size, sha256.clone()));

    assert!(
        run.maxrss_kib < RSS_BOUND_MIB * 1024,
        "download-package peaked at {rss_mib:.1} MiB (bound {RSS_BOUND_MIB} MiB) for a {size}-byte artifact; RSS over time: {}",
        rss_profile(&run.samples)
    );
    assert!(!aws.logs.lock().unwrap().contains(SECRET_ACCESS_KEY), "no secret in the logs");
}

/// A 2 GiB artifact through the whole pipeline, each function run as Lambda
/// runs it: download-package under the 2048 MB memory size and 900 s timeout
/// CDK gives it (a memory cgroup in localaws: the page cache of its /tmp counts,
/// as in Lambda's microVM), streaming the upstream file to /tmp with its
/// digests and to S3 by multipart. The one slow scenario of this file (a few
/// minutes, most of it moto taking 2 GiB of parts in Python).
#[tokio::test(flavor = "multi_thread")]
async fn a_2_gib_artifact_goes_through_the_pipeline_within_the_memory_size_cdk_gives() {
    const SIZE: u64 = 2 << 30;
    let up = Upstream::start();
    let ws = Workspace::new(&up);
    let aws = Aws::setup(&ws).await;
    let memory = aws.info["functions"]["download-package"]["memory_mib"].as_u64().unwrap();
    assert_eq!(memory, 2048, "the memory size CDK gives download-package");

    // The .deb on disk: the frame around 2 GiB of a 1 MiB pseudo-random block
    // repeated, each copy stamped with its index (no compression involved: the
    // data member is a plain tar).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kiro.deb");
    let version = "0.9.0";
    let (head, tail) = big_deb_frame("kiro", version, "amd64", SIZE);
    {
        let mut f = std::io::BufWriter::with_capacity(4 << 20, std::fs::File::create(&path).unwrap());
        use std::io::Write as _;
        f.write_all(&head).unwrap();
        let mut block = vec![0u8; 1 << 20];
        fill_pseudo_random(&mut block, 0x5DEE_CE66_D1CE_4E5B);
        for i in 0..SIZE >> 20 {
            block[..8].copy_from_slice(&i.to_le_bytes());
            f.write_all(&block).unwrap();
        }
        f.write_all(&tail).unwrap();
        f.flush().unwrap();
    }
    let size = std::fs::metadata(&path).unwrap().len();
    let out = Command::new("sha256sum").arg(&path).output().unwrap();
    let sha256 = String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap().to_owned();
    let deb_path = format!("/signed/{version}/deb/kiro-ide-{version}-stable-linux-x64.deb");
    up.set(&deb_path, Reply::File(path.clone()));
    up.set(&format!("/signed/{version}/certificate.pem"), Reply::Body(b"CERT\n".to_vec()));
    up.set(&format!("/signed/{version}/signature.bin"), Reply::Body(b"SIG".to_vec()));
    up.set("/stable/metadata.json", Reply::Body(kiro_metadata(&up, version, &deb_path)));

    let t = Instant::now();
    let r = aws.execute(json!({"trigger": "manual"})).await;
    eprintln!("2 GiB run: {:.0}s; invocations {:#}", t.elapsed().as_secs_f64(), r["invocations"]);
    assert_eq!(r["status"], "SUCCEEDED", "{r:#}");
    assert_eq!(r["output"]["summary"]["items"]["inserted"], json!([format!("kiro#{version}#amd64")]), "{r:#}");
    assert_states_within_limit(&r);
    let download = r["invocations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["function"] == "download-package")
        .expect("download-package ran")
        .clone();
    assert_eq!(download["ok"], true, "{download}");
    assert_eq!(download["memoryMiB"], 2048, "{download}");
    eprintln!(
        "download-package: {:.0}s, peak memory {} MiB of {} MiB ({}; the page cache of /tmp counts), peak RSS {} MiB",
        download["durationMs"].as_f64().unwrap() / 1000.0,
        download["maxMemoryMiB"],
        download["memoryMiB"],
        aws.info["lambda_limits"],
        download["maxRssMiB"]
    );
    assert!(download["maxRssMiB"].as_u64().unwrap() < 256, "download-package's own memory stays small: {download}");
    let key = format!("pool/main/k/kiro/kiro_{version}_amd64.deb");
    let head = aws.s3.head_object().bucket(&aws.bucket).key(&key).send().await.unwrap();
    assert_eq!(head.content_length(), Some(size as i64));
    assert_eq!(head.metadata().and_then(|m| m.get("sha256")).map(String::as_str), Some(sha256.as_str()));
    let entry = aws.store().await.get(&format!("kiro#{version}#amd64")).await.unwrap().unwrap();
    assert_eq!((entry.checksums.size, entry.checksums.sha256.as_str()), (size, sha256.as_str()));
    assert_eq!(up.hits(&deb_path), 1, "downloaded once");

    // moto keeps objects in its own process: give the 2 GiB back (every
    // version: the bucket is versioned) so the tests after this one have it.
    let versions = aws.s3.list_object_versions().bucket(&aws.bucket).prefix(&key).send().await.unwrap();
    for v in versions.versions() {
        aws.s3.delete_object().bucket(&aws.bucket).key(&key).set_version_id(v.version_id().map(str::to_owned)).send().await.unwrap();
    }
}
