//! The server under test when the run starts it (`--spawn-server`): a child process on a
//! free loopback port, in a private temporary directory, stopped with SIGTERM at the end.
//! And, whenever its process id is known, its memory and CPU time sampled every second
//! from `/proc`, the same way for the load generator itself (both share the machine).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use crate::api::Api;
use crate::sampling::{self, Samples};
use crate::target::Target;

/// Linux reports process CPU time in clock ticks of `USER_HZ`, 100 on every architecture
/// this runs on.
const TICKS_PER_SECOND: f64 = 100.0;

/// Environment variables whose values are secrets: left out of reports.
const SECRET_VARIABLES: &[&str] = &["RESCUE_ADMIN_TOKEN", "RESCUE_SECRET_KEY"];

/// CPU time and resident memory of a process at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcSample {
    /// User plus system CPU time, seconds.
    pub cpu_s: f64,
    /// Resident set size, bytes.
    pub rss_bytes: u64,
}

/// Parses `/proc/<pid>/stat` (CPU time) and `/proc/<pid>/statm` (resident pages).
///
/// The command name in `stat` may contain spaces and parentheses, so the fields are
/// counted from the last `)`.
pub fn parse_proc(stat: &str, statm: &str, page_size: u64) -> Option<ProcSample> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the name: state (3rd field of the line) … utime is the 14th, stime the 15th.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let resident_pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(ProcSample {
        cpu_s: (utime + stime) as f64 / TICKS_PER_SECOND,
        rss_bytes: resident_pages * page_size,
    })
}

fn read_proc(pid: u32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    parse_proc(&stat, &statm, 4096)
}

/// Resource use of one process over a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ProcessUsage {
    /// Process id.
    pub pid: u32,
    /// Samples taken (one per second).
    pub samples: usize,
    /// Resident memory at the first sample, MiB.
    pub rss_start_mib: f64,
    /// Largest resident memory seen, MiB.
    pub rss_peak_mib: f64,
    /// Resident memory at the last sample, MiB.
    pub rss_end_mib: f64,
    /// CPU seconds used between the first and the last sample.
    pub cpu_s: f64,
    /// Average number of cores busy (CPU seconds per wall second).
    pub cpu_cores_avg: f64,
    /// Resident memory over time: `(seconds since start, MiB)`.
    pub rss_series: Vec<(f64, f64)>,
    /// Cores busy over time: `(seconds since start, cores)`.
    pub cpu_series: Vec<(f64, f64)>,
    /// Resident memory growth from the end of the warm-up (the first sixth of the run, 5
    /// minutes of a 30-minute soak) to the last sample, as a fraction: 0.05 is 5 %.
    pub rss_growth_after_warmup: Option<f64>,
}

/// The share of a run that counts as warm-up for [`rss_growth_after_warmup`].
pub const WARMUP_SHARE: f64 = 1.0 / 6.0;

/// Growth of resident memory from the sample at the end of the warm-up to the last one,
/// as a fraction; `None` with fewer than two samples after the warm-up.
pub fn rss_growth_after_warmup(series: &[(f64, f64)]) -> Option<f64> {
    let (&(first_t, _), &(last_t, last_mib)) = (series.first()?, series.last()?);
    let warmup_end = first_t + (last_t - first_t) * WARMUP_SHARE;
    let &(at_t, at_mib) = series.iter().find(|(t, _)| *t >= warmup_end)?;
    (at_t < last_t && at_mib > 0.0).then(|| (last_mib - at_mib) / at_mib)
}

/// Summarises samples taken at `(seconds since start, sample)`.
pub fn usage(pid: u32, samples: &[(f64, ProcSample)]) -> ProcessUsage {
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    let (Some((first_t, first)), Some((last_t, last))) = (samples.first(), samples.last()) else {
        return ProcessUsage {
            pid,
            ..ProcessUsage::default()
        };
    };
    let wall_s = last_t - first_t;
    let cpu_s = last.cpu_s - first.cpu_s;
    ProcessUsage {
        pid,
        samples: samples.len(),
        rss_start_mib: mib(first.rss_bytes),
        rss_peak_mib: samples
            .iter()
            .map(|(_, s)| mib(s.rss_bytes))
            .fold(0.0, f64::max),
        rss_end_mib: mib(last.rss_bytes),
        cpu_s,
        cpu_cores_avg: if wall_s > 0.0 { cpu_s / wall_s } else { 0.0 },
        rss_series: samples
            .iter()
            .map(|(t, s)| (*t, mib(s.rss_bytes)))
            .collect(),
        cpu_series: samples
            .windows(2)
            .map(|pair| {
                let (t0, s0) = pair[0];
                let (t1, s1) = pair[1];
                (
                    t1,
                    if t1 > t0 {
                        (s1.cpu_s - s0.cpu_s) / (t1 - t0)
                    } else {
                        0.0
                    },
                )
            })
            .collect(),
        rss_growth_after_warmup: None,
    }
    .with_growth()
}

impl ProcessUsage {
    fn with_growth(mut self) -> ProcessUsage {
        self.rss_growth_after_warmup = rss_growth_after_warmup(&self.rss_series);
        self
    }
}

/// Samples a process every second until cancelled.
#[derive(Debug, Clone)]
pub struct Sampler {
    pid: u32,
    samples: Samples<ProcSample>,
}

impl Sampler {
    /// Starts sampling `pid`; the clock of the samples starts at `started`.
    pub fn start(pid: u32, started: Instant, stop: CancellationToken) -> Sampler {
        Sampler {
            pid,
            samples: sampling::every_second(move || read_proc(pid), started, stop),
        }
    }

    /// Takes one more sample now and summarises.
    pub fn finish(&self, started: Instant) -> ProcessUsage {
        sampling::finish(
            &self.samples,
            || read_proc(self.pid),
            started,
            |samples| usage(self.pid, samples),
        )
    }
}

/// How to start the server.
#[derive(Debug, Clone)]
pub struct SpawnSpec {
    /// The `dispatcher` binary.
    pub binary: PathBuf,
    /// Extra environment (over the defaults below).
    pub env: BTreeMap<String, String>,
    /// Where its log goes.
    pub log_path: PathBuf,
}

/// A server started by this run.
#[derive(Debug)]
pub struct SpawnedServer {
    child: Child,
    /// Where it listens.
    pub target: Target,
    /// Its admin token.
    pub admin_token: String,
    /// The environment it was started with, secrets left out.
    pub env_shown: BTreeMap<String, String>,
    /// Its JT/T 808 port, when it listens on one.
    pub jt808_addr: Option<std::net::SocketAddr>,
    // Holds the SQLite file and the secret key until the server is stopped.
    _work_dir: tempfile::TempDir,
}

fn free_loopback_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

impl SpawnedServer {
    /// Starts `dispatcher serve` on a free loopback port and waits until it is ready.
    ///
    /// Defaults, each overridable through `spec.env`: SQLite in a temporary directory, a
    /// generated admin token and secret, and an app rate limit high enough for a load run
    /// from one address (the server limits unauthenticated clients per address).
    pub async fn start(spec: &SpawnSpec) -> anyhow::Result<SpawnedServer> {
        let binary = std::fs::canonicalize(&spec.binary)
            .with_context(|| format!("server binary {}", spec.binary.display()))?;
        let work_dir = tempfile::Builder::new()
            .prefix("load-tests-server.")
            .tempdir()
            .context("creating the server's directory")?;
        let mut last_error = None;
        // Another process may take the free port before the server binds it: try again.
        for _ in 0..3 {
            let port = free_loopback_port()?;
            let mut env: BTreeMap<String, String> = BTreeMap::new();
            env.insert("RESCUE_LISTEN".into(), format!("127.0.0.1:{port}"));
            env.insert(
                "DATABASE_URL".into(),
                format!("sqlite://{}", work_dir.path().join("rescue.db").display()),
            );
            env.insert(
                "RESCUE_SECRET_KEY_FILE".into(),
                work_dir.path().join("rescue.key").display().to_string(),
            );
            env.insert(
                "RESCUE_ADMIN_TOKEN".into(),
                format!("load-admin-{}", uuid::Uuid::new_v4().simple()),
            );
            env.insert("RESCUE_APP_RATE_PER_MIN".into(), "1000000".into());
            env.insert("RESCUE_APP_RATE_BURST".into(), "100000".into());
            env.insert("RESCUE_LOGIN_RATE_PER_MIN".into(), "1000".into());
            // Device ports of their own, so that runs side by side do not collide.
            env.insert(
                "RESCUE_JT808_ADDR".into(),
                format!("127.0.0.1:{}", free_loopback_port()?),
            );
            env.insert("RESCUE_GT06_ADDR".into(), "off".into());
            for (key, value) in &spec.env {
                env.insert(key.clone(), value.clone());
            }
            let listen = env["RESCUE_LISTEN"].clone();
            let target = Target::parse(&format!("http://{listen}"))
                .context("RESCUE_LISTEN of the spawned server must be a loopback address")?;
            match Self::start_once(&binary, &env, &spec.log_path, work_dir.path(), &target).await {
                Ok(child) => {
                    let admin_token = env["RESCUE_ADMIN_TOKEN"].clone();
                    let jt808_addr = env["RESCUE_JT808_ADDR"].parse().ok();
                    let env_shown = env
                        .iter()
                        .filter(|(key, _)| !SECRET_VARIABLES.contains(&key.as_str()))
                        .map(|(key, value)| (key.clone(), redact_url(value)))
                        .collect();
                    return Ok(SpawnedServer {
                        child,
                        target,
                        admin_token,
                        env_shown,
                        jt808_addr,
                        _work_dir: work_dir,
                    });
                }
                Err(error) => {
                    // A fixed RESCUE_LISTEN will not get better with another try.
                    if spec.env.contains_key("RESCUE_LISTEN") {
                        return Err(error);
                    }
                    last_error = Some(error);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("the server did not start")))
    }

    async fn start_once(
        binary: &Path,
        env: &BTreeMap<String, String>,
        log_path: &Path,
        work_dir: &Path,
        target: &Target,
    ) -> anyhow::Result<Child> {
        let log = std::fs::File::create(log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .current_dir(work_dir)
            .envs(env)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let api = Api::new(target.clone(), Duration::from_secs(2))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "the server exited at start ({status}); last lines of {}:\n{}",
                    log_path.display(),
                    tail(log_path, 20)
                );
            }
            if api.ready().await {
                return Ok(child);
            }
            if Instant::now() > deadline {
                let _ = child.kill().await;
                bail!(
                    "the server was not ready after 60 s; last lines of {}:\n{}",
                    log_path.display(),
                    tail(log_path, 20)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Stops the server with SIGTERM (SIGKILL after 30 s); says whether it exited cleanly.
    pub async fn stop(mut self) -> anyhow::Result<bool> {
        let Some(pid) = self.child.id() else {
            return Ok(false);
        };
        let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).context("pid out of range")?);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)
            .context("sending SIGTERM")?;
        match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(status) => Ok(status?.success()),
            Err(_) => {
                self.child.kill().await?;
                Ok(false)
            }
        }
    }
}

/// The last `lines` lines of a file.
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Hides the password of a URL (`postgres://user:secret@host` → `postgres://user:***@host`).
pub fn redact_url(value: &str) -> String {
    let Some(scheme_end) = value.find("://") else {
        return value.to_owned();
    };
    let rest = &value[scheme_end + 3..];
    let Some(at) = rest.find('@') else {
        return value.to_owned();
    };
    match rest[..at].find(':') {
        Some(colon) => format!(
            "{}://{}:***{}",
            &value[..scheme_end],
            &rest[..colon],
            &rest[at..]
        ),
        None => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_and_memory_are_read_from_proc_even_with_a_strange_process_name() {
        let stat = "4242 (dis) pat(cher) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 50 0 0 20 0 9 0 100 1000000 2000";
        let statm = "50000 2560 300 100 0 4000 0";
        let sample = parse_proc(stat, statm, 4096).unwrap();
        assert_eq!(sample.cpu_s, 3.0);
        assert_eq!(sample.rss_bytes, 2560 * 4096);
    }

    #[test]
    fn usage_reports_cpu_per_wall_second_and_the_memory_peak() {
        let mib = 1024 * 1024;
        let samples = vec![
            (
                0.0,
                ProcSample {
                    cpu_s: 1.0,
                    rss_bytes: 10 * mib,
                },
            ),
            (
                1.0,
                ProcSample {
                    cpu_s: 2.5,
                    rss_bytes: 30 * mib,
                },
            ),
            (
                2.0,
                ProcSample {
                    cpu_s: 3.0,
                    rss_bytes: 20 * mib,
                },
            ),
        ];
        let usage = usage(7, &samples);
        assert_eq!(usage.cpu_s, 2.0);
        assert_eq!(usage.cpu_cores_avg, 1.0);
        assert_eq!(
            (usage.rss_start_mib, usage.rss_peak_mib, usage.rss_end_mib),
            (10.0, 30.0, 20.0)
        );
        assert_eq!(usage.cpu_series, vec![(1.0, 1.5), (2.0, 0.5)]);
    }

    #[test]
    fn memory_growth_is_measured_from_the_end_of_the_warm_up() {
        // 60 s: the warm-up ends at 10 s (100 MiB), the run at 60 s (108 MiB).
        let series: Vec<(f64, f64)> = (0..=60)
            .map(|t| {
                let t = f64::from(t);
                (
                    t,
                    if t < 10.0 {
                        50.0 + 5.0 * t
                    } else {
                        100.0 + (t - 10.0) * 0.16
                    },
                )
            })
            .collect();
        let growth = rss_growth_after_warmup(&series).unwrap();
        assert!((growth - 0.08).abs() < 1e-9, "{growth}");
        assert_eq!(rss_growth_after_warmup(&series[..1]), None);
        assert_eq!(rss_growth_after_warmup(&[]), None);
    }

    #[test]
    fn passwords_in_database_urls_are_hidden() {
        assert_eq!(
            redact_url("postgres://rescue:s3cret@127.0.0.1:5432/db"),
            "postgres://rescue:***@127.0.0.1:5432/db"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1/test"),
            "postgres://postgres@127.0.0.1/test"
        );
        assert_eq!(
            redact_url("sqlite:///tmp/x/rescue.db"),
            "sqlite:///tmp/x/rescue.db"
        );
    }
}
