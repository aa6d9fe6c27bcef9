//! JT/T 808 location frames per second through TCP into the live fleet index (issue 4,
//! "Speed"): the real server (SQLite in a temporary directory, or PostgreSQL when
//! `JT808_DATABASE_URL` is set) and 1,000 simulated terminals on one machine, sharing its
//! cores as they would in a test lab.
//!
//! ```text
//! cargo bench -p dispatcher --bench jt808_tcp
//! JT808_TERMINALS=1000 JT808_SECONDS=20 JT808_WINDOW=8 cargo bench -p dispatcher --bench jt808_tcp
//! JT808_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo bench -p dispatcher --bench jt808_tcp
//! ```
//!
//! Each terminal registers its phone number (0x0100 → 0x8100), then keeps `JT808_WINDOW`
//! location reports (0x0200) in flight, sending the next one as each 0x8001 comes back.
//! Every report is a new fix (its time moves on one second per frame from an hour ago, so
//! none is refused as not newer), so every acknowledged frame went into the live index.
//! The figure is acknowledged frames per second after a warm-up, cross-checked against
//! the server's own `rescue_fixes_accepted_total{source="jt808"}`.
//!
//! Without `--bench` (as `cargo test --benches` runs it) a few terminals run for a second,
//! to prove the benchmark works.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{Timelike, Utc};
use dispatcher::Application;
use dispatcher::config::{Config, FileConfig, ServeArgs, Settings};
use futures::StreamExt;
use provider_adapters::jt808::terminal::{Answer, LOCATION, Terminal, location_body, phone_digits};

const ADMIN_TOKEN: &str = "bench-admin-token-0123456789";

fn benchmarking() -> bool {
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|arg| arg == flag);
    has("--bench") && !has("--test") && !has("--list")
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

struct Counters {
    acked: AtomicU64,
    refused: AtomicU64,
}

async fn terminal(
    address: std::net::SocketAddr,
    index: usize,
    window: usize,
    stop_at: Instant,
    counters: Arc<Counters>,
) -> anyhow::Result<()> {
    let timeout = Duration::from_secs(10);
    let mut terminal = Terminal::register(address, &phone_digits(index), timeout).await?;
    // Spread over eastern China, moving a little with each report.
    let lat0 = 30.0 + (index % 100) as f64 * 0.02;
    let lon0 = 114.0 + (index / 100) as f64 * 0.03;
    let mut at = Utc::now().with_nanosecond(0).unwrap_or_default() - chrono::Duration::hours(1);
    let mut step = 0u32;
    let mut next_body = || {
        step += 1;
        at += chrono::Duration::seconds(1);
        let moved = f64::from(step % 1000) * 1e-6;
        location_body(lat0 + moved, lon0 + moved, 45.5, 270.0, at)
    };
    for _ in 0..window {
        terminal.feed(LOCATION, next_body()).await?;
    }
    terminal.flush().await?;
    while Instant::now() < stop_at {
        match terminal.answer(timeout).await? {
            Answer::Accepted => counters.acked.fetch_add(1, Ordering::Relaxed),
            Answer::Refused(_) => counters.refused.fetch_add(1, Ordering::Relaxed),
        };
        terminal.send(LOCATION, next_body()).await?;
    }
    Ok(())
}

async fn accepted_by_server(client: &reqwest::Client, base: &str) -> anyhow::Result<f64> {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .filter(|line| {
            line.starts_with("rescue_fixes_accepted_total") && line.contains("source=\"jt808\"")
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let measuring = benchmarking();
    let terminals = if measuring {
        env_or("JT808_TERMINALS", 1_000) as usize
    } else {
        8
    };
    let seconds = if measuring {
        env_or("JT808_SECONDS", 20)
    } else {
        1
    };
    let warmup_s = if measuring { 3 } else { 0 };
    let window = env_or("JT808_WINDOW", 8).max(1) as usize;

    let dir = tempfile::tempdir()?;
    let mut settings = Settings::resolve(ServeArgs::default(), FileConfig::default());
    settings.listen = "127.0.0.1:0".parse()?;
    // JT808_DATABASE_URL=postgres://… runs the server on PostgreSQL, in a fresh schema.
    let postgres = std::env::var("JT808_DATABASE_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .map(|url| (url, format!("jt808_bench_{}", std::process::id())));
    match &postgres {
        Some((url, schema)) => {
            settings.database_url = url.clone();
            settings.database_schema = schema.clone();
        }
        _ => {
            settings.database_url = format!("sqlite://{}", dir.path().join("bench.db").display());
        }
    }
    settings.admin_token = ADMIN_TOKEN.to_owned();
    settings.secret_key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff".into();
    settings.jt808_addr = "127.0.0.1:0".to_owned();
    settings.gt06_addr = "off".to_owned();
    let application = Application::build(Config::from_settings(settings)?).await?;
    let base = format!("http://{}", application.address());
    let address = application
        .jt808_address()
        .ok_or_else(|| anyhow::anyhow!("no JT/T 808 listener"))?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(application.run_until_stopped(async move {
        let _ = stop_rx.await;
    }));

    // One provider, one vehicle per terminal.
    let client = reqwest::Client::new();
    let created: serde_json::Value = client
        .post(format!("{base}/v1/admin/providers"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({"name": "JT808 Bench Towing"}))
        .send()
        .await?
        .json()
        .await?;
    let api_key = created["api_key"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no provider: {created}"))?
        .to_owned();
    let registrations = futures::stream::iter(0..terminals)
        .map(|index| {
            let (client, base, api_key) = (client.clone(), base.clone(), api_key.clone());
            async move {
                let reply = client
                    .put(format!("{base}/v1/provider/vehicles/J{index}"))
                    .bearer_auth(api_key)
                    .json(&serde_json::json!({
                        "capabilities": ["tow"], "state": "available",
                        "devices": [{"protocol": "jt808", "id": phone_digits(index)}]
                    }))
                    .send()
                    .await?;
                anyhow::ensure!(
                    reply.status().is_success(),
                    "vehicle J{index} not registered"
                );
                Ok::<_, anyhow::Error>(())
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    registrations
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()?;

    let counters = Arc::new(Counters {
        acked: AtomicU64::new(0),
        refused: AtomicU64::new(0),
    });
    let start = Instant::now();
    let stop_at = start + Duration::from_secs(warmup_s + seconds);
    let tasks: Vec<_> = (0..terminals)
        .map(|index| tokio::spawn(terminal(address, index, window, stop_at, counters.clone())))
        .collect();
    tokio::time::sleep(Duration::from_secs(warmup_s)).await;
    let (acked_0, server_0, t0) = (
        counters.acked.load(Ordering::Relaxed),
        accepted_by_server(&client, &base).await?,
        Instant::now(),
    );
    tokio::time::sleep_until((stop_at - Duration::from_millis(100)).into()).await;
    let (acked_1, server_1, t1) = (
        counters.acked.load(Ordering::Relaxed),
        accepted_by_server(&client, &base).await?,
        Instant::now(),
    );
    let mut failed = 0;
    for task in tasks {
        if !matches!(task.await, Ok(Ok(()))) {
            failed += 1;
        }
    }
    let elapsed = (t1 - t0).as_secs_f64();
    let frames_per_s = (acked_1 - acked_0) as f64 / elapsed;
    let fixes_per_s = (server_1 - server_0) / elapsed;
    println!(
        "jt808_tcp: {terminals} terminals, window {window}, {elapsed:.1} s measured after {warmup_s} s warm-up"
    );
    println!("  acknowledged location frames: {frames_per_s:.0}/s");
    println!("  fixes accepted into the live index (server metric): {fixes_per_s:.0}/s");
    println!(
        "  refused answers: {}, terminals failed: {failed}",
        counters.refused.load(Ordering::Relaxed)
    );
    let _ = stop_tx.send(());
    server.await??;
    if let Some((url, schema)) = &postgres {
        use sqlx::Connection;
        let mut connection = sqlx::PgConnection::connect(url).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA \"{schema}\" CASCADE"
        )))
        .execute(&mut connection)
        .await?;
    }
    anyhow::ensure!(
        failed == 0 && counters.refused.load(Ordering::Relaxed) == 0,
        "some frames or terminals failed"
    );
    anyhow::ensure!(
        counters.acked.load(Ordering::Relaxed) > 0,
        "nothing acknowledged"
    );
    Ok(())
}
