//! Outgoing webhooks against a real local HTTP server (wiremock on 127.0.0.1), through
//! the real client and worker, with an in-test outbox (a test double of the port; the
//! SQL outbox is tested with the server's storage suite). Time is injected: every round
//! runs at a chosen instant, and retries are due when the test says so.

use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use hmac::{Hmac, KeyInit, Mac};
use proptest::prelude::*;
use provider_adapters::webhook::retry::FixedJitter;
use provider_adapters::webhook::sign::{DEFAULT_TOLERANCE, signature_v1};
use provider_adapters::webhook::ssrf::{
    GuardedResolver, HostLookup, StaticLookup, SystemLookup, classify,
};
use provider_adapters::webhook::{
    AttemptOutcome, AttemptRecord, Clock, Delivery, OutboxError, RetryPolicy, RoundReport,
    SendResult, Timestamp, UrlPolicy, UrlRefused, WebhookClient, WebhookClientConfig,
    WebhookOutbox, WebhookSecret, WebhookWorker, WebhookWorkerConfig, verify,
};
use sha2::Sha256;
use tokio::sync::oneshot;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &[u8] = b"whsec_5f2b9c0e8d7a41e3b6c4a9f0d2e1c3b7";
const PYTHON_SNIPPET: &str = include_str!("../src/webhook/snippets/verify.py");
const NODE_SNIPPET: &str = include_str!("../src/webhook/snippets/verify.js");

// ---------------------------------------------------------------------------------------
// Test doubles and helpers
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Pending,
    Delivered(Timestamp),
    DeadLettered { reason: String },
}

#[derive(Debug, Clone)]
struct Row {
    delivery: Delivery,
    next_attempt_at: Option<Timestamp>,
    claimed: bool,
    state: State,
    log: Vec<(AttemptRecord, Option<Timestamp>)>,
}

/// An outbox in memory, with the semantics the SQL one must have: `due` claims, a
/// recorded attempt releases the claim and bumps the attempt count.
#[derive(Default)]
struct MemoryOutbox {
    rows: Mutex<Vec<Row>>,
}

impl MemoryOutbox {
    fn enqueue(&self, delivery: Delivery, due_at: Timestamp) {
        self.lock().push(Row {
            delivery,
            next_attempt_at: Some(due_at),
            claimed: false,
            state: State::Pending,
            log: Vec::new(),
        });
    }

    fn row(&self, id: &str) -> Result<Row> {
        self.lock()
            .iter()
            .find(|row| row.delivery.id == id)
            .cloned()
            .with_context(|| format!("no delivery {id}"))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Row>> {
        self.rows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn with_row(&self, id: &str, change: impl FnOnce(&mut Row)) -> Result<(), OutboxError> {
        let mut rows = self.lock();
        let row = rows
            .iter_mut()
            .find(|row| row.delivery.id == id)
            .ok_or_else(|| OutboxError::Unavailable(format!("no delivery {id}")))?;
        change(row);
        Ok(())
    }
}

#[async_trait::async_trait]
impl WebhookOutbox for MemoryOutbox {
    async fn due(&self, now: Timestamp, limit: usize) -> Result<Vec<Delivery>, OutboxError> {
        let mut rows = self.lock();
        let mut due = Vec::new();
        for row in rows.iter_mut() {
            let is_due = row.state == State::Pending
                && !row.claimed
                && row.next_attempt_at.is_some_and(|at| at <= now);
            if is_due && due.len() < limit {
                row.claimed = true;
                due.push(row.delivery.clone());
            }
        }
        Ok(due)
    }

    async fn record_attempt(
        &self,
        delivery_id: &str,
        attempt: AttemptRecord,
        next_attempt_at: Option<Timestamp>,
    ) -> Result<(), OutboxError> {
        self.with_row(delivery_id, |row| {
            row.log.push((attempt, next_attempt_at));
            row.delivery.attempts += 1;
            row.next_attempt_at = next_attempt_at;
            row.claimed = false;
        })
    }

    async fn dead_letter(
        &self,
        delivery_id: &str,
        reason: &str,
        _at: Timestamp,
    ) -> Result<(), OutboxError> {
        self.with_row(delivery_id, |row| {
            row.state = State::DeadLettered {
                reason: reason.to_owned(),
            };
            row.next_attempt_at = None;
            row.claimed = false;
        })
    }

    async fn delivered(&self, delivery_id: &str, at: Timestamp) -> Result<(), OutboxError> {
        self.with_row(delivery_id, |row| {
            row.state = State::Delivered(at);
            row.next_attempt_at = None;
            row.claimed = false;
        })
    }
}

/// A clock the test sets.
struct TestClock(Mutex<Timestamp>);

impl TestClock {
    fn set(&self, at: Timestamp) {
        *self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = at;
    }
}

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        *self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

struct Harness {
    outbox: Arc<MemoryOutbox>,
    clock: Arc<TestClock>,
    worker: WebhookWorker,
}

impl Harness {
    /// One round at `at`.
    async fn round(&self, at: Timestamp) -> Result<RoundReport> {
        self.clock.set(at);
        Ok(self.worker.run_once(at).await?)
    }

    /// Rounds at each scheduled retry until the delivery leaves the pending state.
    async fn drive(&self, id: &str, first: Timestamp) -> Result<Row> {
        let mut at = first;
        for _ in 0..50 {
            self.round(at).await?;
            let row = self.outbox.row(id)?;
            match (&row.state, row.next_attempt_at) {
                (State::Pending, Some(next)) => at = next,
                (State::Pending, None) => bail!("pending delivery {id} with no next attempt"),
                _ => return Ok(row),
            }
        }
        bail!("delivery {id} still pending after 50 rounds")
    }
}

fn t0() -> Timestamp {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
        .single()
        .unwrap_or(DateTime::UNIX_EPOCH)
}

fn seconds(count: i64) -> chrono::Duration {
    chrono::Duration::seconds(count)
}

fn secret() -> Result<WebhookSecret> {
    Ok(WebhookSecret::new(SECRET.to_vec())?)
}

fn client_config(allow_loopback: bool, request_timeout_ms: u64) -> WebhookClientConfig {
    WebhookClientConfig {
        request_timeout_ms,
        connect_timeout_ms: 1_000,
        allow_loopback,
        ..WebhookClientConfig::default()
    }
}

fn retry(base_delay_ms: u64, max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        base_delay_ms,
        max_delay_ms: 60_000,
        max_attempts,
    }
}

fn harness_with(client: WebhookClient, retry: RetryPolicy) -> Harness {
    let outbox = Arc::new(MemoryOutbox::default());
    let clock = Arc::new(TestClock(Mutex::new(t0())));
    let config = WebhookWorkerConfig {
        retry,
        ..WebhookWorkerConfig::default()
    };
    let worker = WebhookWorker::new(outbox.clone(), client, config)
        .with_clock(clock.clone())
        // The slowest schedule: each retry at exactly the backoff ceiling.
        .with_jitter(FixedJitter(1.0));
    Harness {
        outbox,
        clock,
        worker,
    }
}

fn harness(retry: RetryPolicy, request_timeout_ms: u64) -> Result<Harness> {
    let client = WebhookClient::new(&client_config(true, request_timeout_ms))?;
    Ok(harness_with(client, retry))
}

fn body(id: &str) -> Bytes {
    // Non-ASCII on purpose: the signature covers the exact UTF-8 bytes.
    Bytes::from(format!(
        r#"{{"id":"{id}","event":"offer.created","created_at":"2026-03-01T12:00:00Z","data":{{"offer_id":"off_7","case_ref":"R-1042","site":"Müllerstraße 12, Köln","expires_at":"2026-03-01T12:02:00Z"}}}}"#
    ))
}

fn delivery(id: &str, url: &str, deadline: Timestamp) -> Result<Delivery> {
    Ok(Delivery {
        id: id.to_owned(),
        provider_id: "prov_towco".to_owned(),
        url: url.to_owned(),
        secrets: vec![secret()?],
        event: "offer.created".to_owned(),
        body: body(id),
        attempts: 0,
        deadline,
    })
}

async fn hook_server(template: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hooks"))
        .respond_with(template)
        .mount(&server)
        .await;
    server
}

async fn received(server: &MockServer) -> Vec<wiremock::Request> {
    server.received_requests().await.unwrap_or_default()
}

fn header(request: &wiremock::Request, name: &str) -> Result<String> {
    Ok(request
        .headers
        .get(name)
        .with_context(|| format!("no {name} header"))?
        .to_str()?
        .to_owned())
}

fn statuses(row: &Row) -> Vec<Option<u16>> {
    row.log
        .iter()
        .map(|(record, _)| record.status_code)
        .collect()
}

// ---------------------------------------------------------------------------------------
// Signatures
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_delivery_is_signed_so_that_the_documented_algorithm_verifies_it() -> Result<()> {
    let server = hook_server(ResponseTemplate::new(204)).await;
    let harness = harness(retry(1_000, 5), 2_000)?;
    let url = format!("{}/hooks", server.uri());
    harness
        .outbox
        .enqueue(delivery("dlv_sig", &url, t0() + seconds(120))?, t0());

    let report = harness.round(t0()).await?;
    ensure!(report.delivered == 1, "{report:?}");

    let requests = received(&server).await;
    let [request] = requests.as_slice() else {
        bail!("expected one request, got {}", requests.len());
    };
    ensure!(
        request.body == body("dlv_sig").as_ref(),
        "body sent as enqueued"
    );
    assert_eq!(header(request, "rescue-webhook-id")?, "dlv_sig");
    assert_eq!(header(request, "rescue-webhook-event")?, "offer.created");
    assert_eq!(header(request, "content-type")?, "application/json");
    ensure!(header(request, "user-agent")?.starts_with("rescue-dispatch-webhooks/"));
    let timestamp = header(request, "rescue-webhook-timestamp")?;
    assert_eq!(timestamp, t0().timestamp().to_string());

    // The algorithm as documented, spelled out with the hmac crate directly.
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET)?;
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(&request.body);
    let expected = format!("v1={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(header(request, "rescue-webhook-signature")?, expected);

    let verified = verify(
        SECRET,
        &request.headers,
        &request.body,
        t0(),
        DEFAULT_TOLERANCE,
    );
    assert_eq!(verified.map(|ok| ok.timestamp_s), Ok(t0().timestamp()));
    ensure!(
        verify(
            b"whsec_some_other_secret",
            &request.headers,
            &request.body,
            t0(),
            DEFAULT_TOLERANCE
        )
        .is_err()
    );
    ensure!(
        verify(
            SECRET,
            &request.headers,
            &request.body,
            t0() + seconds(301),
            DEFAULT_TOLERANCE
        )
        .is_err()
    );
    Ok(())
}

#[tokio::test]
async fn during_a_secret_rotation_both_secrets_verify_the_same_request() -> Result<()> {
    let server = hook_server(ResponseTemplate::new(200)).await;
    let harness = harness(retry(1_000, 5), 2_000)?;
    let url = format!("{}/hooks", server.uri());
    let next_secret = b"whsec_next_0a1b2c3d4e5f60718293".to_vec();
    let mut rotating = delivery("dlv_rot", &url, t0() + seconds(120))?;
    rotating
        .secrets
        .push(WebhookSecret::new(next_secret.clone())?);
    harness.outbox.enqueue(rotating, t0());
    harness.round(t0()).await?;

    let requests = received(&server).await;
    let request = requests.first().context("no request")?;
    let signature = header(request, "rescue-webhook-signature")?;
    assert_eq!(signature.split(' ').count(), 2, "{signature}");
    for key in [SECRET, next_secret.as_slice()] {
        ensure!(
            verify(
                key,
                &request.headers,
                &request.body,
                t0(),
                DEFAULT_TOLERANCE
            )
            .is_ok()
        );
    }
    Ok(())
}

/// Sends a real signed delivery to wiremock and returns what arrived.
async fn one_signed_request() -> Result<wiremock::Request> {
    let server = hook_server(ResponseTemplate::new(200)).await;
    let harness = harness(retry(1_000, 5), 2_000)?;
    let url = format!("{}/hooks", server.uri());
    harness
        .outbox
        .enqueue(delivery("dlv_snippet", &url, t0() + seconds(120))?, t0());
    harness.round(t0()).await?;
    received(&server)
        .await
        .into_iter()
        .next()
        .context("no request reached the server")
}

/// The cases each snippet is run on: (description, body, now, expected verdict).
fn snippet_cases(request: &wiremock::Request) -> Vec<(&'static str, Vec<u8>, i64, &'static str)> {
    let now = t0().timestamp();
    let mut tampered = request.body.clone();
    tampered.extend_from_slice(b" ");
    vec![
        (
            "the delivery as received",
            request.body.clone(),
            now + 3,
            "valid",
        ),
        ("a tampered body", tampered, now, "invalid"),
        (
            "a replay after the window",
            request.body.clone(),
            now + 301,
            "invalid",
        ),
    ]
}

fn case_json(request: &wiremock::Request, body: &[u8], now_s: i64) -> Result<String> {
    let mut headers = serde_json::Map::new();
    for (name, value) in &request.headers {
        headers.insert(name.as_str().to_owned(), value.to_str()?.into());
    }
    Ok(serde_json::json!({
        "secret_hex": hex::encode(SECRET),
        "body_hex": hex::encode(body),
        "now_s": now_s,
        "headers": headers,
    })
    .to_string())
}

/// Runs `program args` with `stdin`; `None` when the program is not installed.
fn run_interpreter(program: &str, args: &[&str], stdin: &str) -> Result<Option<String>> {
    use std::io::Write;
    let spawned = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error).context(format!("spawning {program}")),
    };
    child
        .stdin
        .take()
        .context("no stdin")?
        .write_all(stdin.as_bytes())?;
    let output = child.wait_with_output()?;
    ensure!(
        output.status.success(),
        "{program} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(Some(String::from_utf8(output.stdout)?.trim().to_owned()))
}

#[tokio::test]
async fn the_python_snippet_verifies_a_real_delivery() -> Result<()> {
    let request = one_signed_request().await?;
    // Frameworks hand the snippet a case-insensitive header mapping; so does this one.
    let script = format!(
        r#"{PYTHON_SNIPPET}

import json, sys

class Headers(dict):
    def get(self, key, default=None):
        for name, value in self.items():
            if name.lower() == key.lower():
                return value
        return default

case = json.load(sys.stdin)
ok = verify_rescue_webhook(bytes.fromhex(case["secret_hex"]), Headers(case["headers"]),
                           bytes.fromhex(case["body_hex"]), now_s=case["now_s"])
print("valid" if ok else "invalid")
"#
    );
    for (what, body, now_s, expected) in snippet_cases(&request) {
        let input = case_json(&request, &body, now_s)?;
        match run_interpreter("python3", &["-c", &script], &input)? {
            None => {
                println!("note: python3 is not installed; the python snippet check is skipped");
                return Ok(());
            }
            Some(verdict) => assert_eq!(verdict, expected, "python, {what}"),
        }
    }
    Ok(())
}

#[tokio::test]
async fn the_node_snippet_verifies_a_real_delivery() -> Result<()> {
    let request = one_signed_request().await?;
    let script = format!(
        r#"{NODE_SNIPPET}
const input = JSON.parse(require("node:fs").readFileSync(0, "utf8"));
const ok = verifyRescueWebhook(Buffer.from(input.secret_hex, "hex"), input.headers,
                               Buffer.from(input.body_hex, "hex"), 300, input.now_s);
console.log(ok ? "valid" : "invalid");
"#
    );
    for (what, body, now_s, expected) in snippet_cases(&request) {
        let input = case_json(&request, &body, now_s)?;
        match run_interpreter("node", &["-e", &script], &input)? {
            None => {
                println!("note: node is not installed; the node snippet check is skipped");
                return Ok(());
            }
            Some(verdict) => assert_eq!(verdict, expected, "node, {what}"),
        }
    }
    Ok(())
}

#[test]
fn the_signature_is_hex_hmac_sha256_over_timestamp_dot_body() -> Result<()> {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET)?;
    mac.update(b"1772366400.{\"a\":1}");
    assert_eq!(
        signature_v1(SECRET, 1_772_366_400, b"{\"a\":1}"),
        hex::encode(mac.finalize().into_bytes())
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Retries, deadlines, dead letters
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_5xx_is_retried_with_backoff_and_a_later_2xx_delivers() -> Result<()> {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hooks"))
        .respond_with(ResponseTemplate::new(503).set_body_string("down for maintenance"))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/hooks"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&server)
        .await;
    let harness = harness(retry(1_000, 5), 2_000)?;
    let url = format!("{}/hooks", server.uri());
    harness
        .outbox
        .enqueue(delivery("dlv_5xx", &url, t0() + seconds(120))?, t0());

    let first = harness.round(t0()).await?;
    assert_eq!(first.retrying, 1, "{first:?}");
    let row = harness.outbox.row("dlv_5xx")?;
    // Full jitter fixed at 1.0: the first retry waits the whole base delay.
    assert_eq!(row.next_attempt_at, Some(t0() + seconds(1)));
    let (record, _) = row.log.first().context("no attempt recorded")?;
    assert_eq!(record.outcome, AttemptOutcome::HttpError);
    assert_eq!(
        record.response_excerpt.as_deref(),
        Some("down for maintenance")
    );

    // Not due yet: nothing is claimed before its time.
    let early = harness
        .round(t0() + chrono::Duration::milliseconds(999))
        .await?;
    assert_eq!(early.claimed, 0);

    let row = harness.drive("dlv_5xx", t0() + seconds(1)).await?;
    ensure!(matches!(row.state, State::Delivered(_)), "{:?}", row.state);
    assert_eq!(statuses(&row), [Some(503), Some(503), Some(200)]);
    let attempts: Vec<u32> = row.log.iter().map(|(record, _)| record.attempt).collect();
    assert_eq!(attempts, [1, 2, 3]);
    // Second retry: the ceiling doubled to 2 s.
    let schedule: Vec<Option<Timestamp>> = row.log.iter().map(|(_, next)| *next).collect();
    assert_eq!(
        schedule,
        [Some(t0() + seconds(1)), Some(t0() + seconds(3)), None]
    );
    assert_eq!(received(&server).await.len(), 3);
    Ok(())
}

#[tokio::test]
async fn a_response_slower_than_the_timeout_is_a_failed_attempt_and_retried() -> Result<()> {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hooks"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/hooks"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&server)
        .await;
    let harness = harness(retry(1_000, 5), 300)?;
    let url = format!("{}/hooks", server.uri());
    harness
        .outbox
        .enqueue(delivery("dlv_slow", &url, t0() + seconds(120))?, t0());

    let row = harness.drive("dlv_slow", t0()).await?;
    ensure!(matches!(row.state, State::Delivered(_)), "{:?}", row.state);
    let (timed_out, _) = row.log.first().context("no attempt")?;
    assert_eq!(timed_out.outcome, AttemptOutcome::Timeout);
    assert_eq!(timed_out.status_code, None);
    assert_eq!(timed_out.error.as_deref(), Some("timed out"));
    ensure!(
        (300..3_000).contains(&timed_out.latency_ms),
        "gave up after the request timeout, not the server's delay: {} ms",
        timed_out.latency_ms
    );
    assert_eq!(statuses(&row), [None, Some(200)]);
    Ok(())
}

#[tokio::test]
async fn the_attempt_budget_ends_in_a_dead_letter() -> Result<()> {
    let server = hook_server(ResponseTemplate::new(500)).await;
    let harness = harness(retry(1_000, 3), 2_000)?;
    let url = format!("{}/hooks", server.uri());
    harness
        .outbox
        .enqueue(delivery("dlv_budget", &url, t0() + seconds(3_600))?, t0());

    let row = harness.drive("dlv_budget", t0()).await?;
    let State::DeadLettered { reason } = &row.state else {
        bail!("not dead-lettered: {:?}", row.state);
    };
    assert_eq!(reason, "attempts exhausted: 3 attempt(s), last: http 500");
    assert_eq!(statuses(&row), [Some(500), Some(500), Some(500)]);
    assert_eq!(received(&server).await.len(), 3);
    Ok(())
}

#[tokio::test]
async fn no_retry_is_scheduled_past_the_offer_deadline() -> Result<()> {
    let server = hook_server(ResponseTemplate::new(502)).await;
    // The first retry would wait 5 s; the offer expires in 2.
    let harness = harness(retry(5_000, 10), 2_000)?;
    let url = format!("{}/hooks", server.uri());
    harness
        .outbox
        .enqueue(delivery("dlv_expiring", &url, t0() + seconds(2))?, t0());

    let row = harness.drive("dlv_expiring", t0()).await?;
    let State::DeadLettered { reason } = &row.state else {
        bail!("not dead-lettered: {:?}", row.state);
    };
    ensure!(reason.starts_with("deadline passed"), "{reason}");
    assert_eq!(row.log.len(), 1);
    assert_eq!(received(&server).await.len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_webhook_about_an_expired_offer_is_never_sent() -> Result<()> {
    let server = hook_server(ResponseTemplate::new(200)).await;
    let harness = harness(retry(1_000, 5), 2_000)?;
    let url = format!("{}/hooks", server.uri());
    harness.outbox.enqueue(
        delivery("dlv_late", &url, t0() - seconds(1))?,
        t0() - seconds(5),
    );

    let report = harness.round(t0()).await?;
    assert_eq!(report.dead_lettered, 1, "{report:?}");
    let row = harness.outbox.row("dlv_late")?;
    assert_eq!(
        row.state,
        State::DeadLettered {
            reason: "deadline passed: deadline passed before the attempt".to_owned()
        }
    );
    ensure!(row.log.is_empty(), "no attempt without a request");
    ensure!(received(&server).await.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_redirect_is_not_followed_and_counts_as_a_failed_attempt() -> Result<()> {
    for status in [302, 307, 308] {
        let server = MockServer::start().await;
        let target = format!("{}/elsewhere", server.uri());
        Mock::given(method("POST"))
            .and(path("/hooks"))
            .respond_with(ResponseTemplate::new(status).insert_header("location", target.as_str()))
            .mount(&server)
            .await;
        Mock::given(path("/elsewhere"))
            .respond_with(ResponseTemplate::new(200))
            .expect(0)
            .mount(&server)
            .await;
        let harness = harness(retry(1_000, 5), 2_000)?;
        let url = format!("{}/hooks", server.uri());
        harness
            .outbox
            .enqueue(delivery("dlv_redirect", &url, t0() + seconds(120))?, t0());

        let report = harness.round(t0()).await?;
        assert_eq!(report.retrying, 1, "{status}: {report:?}");
        let row = harness.outbox.row("dlv_redirect")?;
        let (record, next) = row.log.first().context("no attempt")?;
        assert_eq!(record.outcome, AttemptOutcome::HttpError, "{status}");
        assert_eq!(record.status_code, Some(status));
        ensure!(next.is_some(), "a redirect is retried like any failure");
        let paths: Vec<String> = received(&server)
            .await
            .iter()
            .map(|request| request.url.path().to_owned())
            .collect();
        assert_eq!(paths, ["/hooks"], "{status}");
        server.verify().await;
    }
    Ok(())
}

#[tokio::test]
async fn an_attempt_record_carries_status_latency_and_start_time() -> Result<()> {
    let server =
        hook_server(ResponseTemplate::new(202).set_delay(Duration::from_millis(150))).await;
    let harness = harness(retry(1_000, 5), 2_000)?;
    let url = format!("{}/hooks", server.uri());
    harness
        .outbox
        .enqueue(delivery("dlv_log", &url, t0() + seconds(120))?, t0());
    harness.round(t0()).await?;

    let row = harness.outbox.row("dlv_log")?;
    let [(record, next)] = row.log.as_slice() else {
        bail!("expected one attempt, got {}", row.log.len());
    };
    assert_eq!(record.attempt, 1);
    assert_eq!(record.started_at, t0());
    assert_eq!(record.outcome, AttemptOutcome::Delivered);
    assert_eq!(record.status_code, Some(202));
    assert_eq!(record.error, None);
    ensure!(
        (150..2_000).contains(&record.latency_ms),
        "latency {} ms",
        record.latency_ms
    );
    assert_eq!(*next, None);
    assert_eq!(row.state, State::Delivered(t0()));
    Ok(())
}

#[tokio::test]
async fn a_round_sends_every_due_delivery_and_leaves_the_rest() -> Result<()> {
    let server = hook_server(ResponseTemplate::new(200)).await;
    let harness = harness(retry(1_000, 5), 2_000)?;
    let url = format!("{}/hooks", server.uri());
    for index in 0..12 {
        harness.outbox.enqueue(
            delivery(&format!("dlv_{index}"), &url, t0() + seconds(120))?,
            t0(),
        );
    }
    harness.outbox.enqueue(
        delivery("dlv_later", &url, t0() + seconds(120))?,
        t0() + seconds(30),
    );

    let report = harness.round(t0()).await?;
    assert_eq!(report.claimed, 12);
    assert_eq!(report.delivered, 12);
    assert_eq!(received(&server).await.len(), 12);
    assert_eq!(harness.outbox.row("dlv_later")?.state, State::Pending);
    Ok(())
}

#[tokio::test]
async fn the_worker_loop_delivers_on_its_own_and_stops_on_shutdown() -> Result<()> {
    let server = hook_server(ResponseTemplate::new(200)).await;
    let outbox = Arc::new(MemoryOutbox::default());
    let client = WebhookClient::new(&client_config(true, 2_000))?;
    let config = WebhookWorkerConfig {
        poll_interval_ms: 50,
        ..WebhookWorkerConfig::default()
    };
    let worker = Arc::new(WebhookWorker::new(outbox.clone(), client, config));
    let wake = worker.waker();
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn({
        let worker = Arc::clone(&worker);
        async move {
            worker
                .run(async {
                    let _ = stopped.await;
                })
                .await;
        }
    });

    let url = format!("{}/hooks", server.uri());
    let now = Utc::now();
    outbox.enqueue(delivery("dlv_loop", &url, now + seconds(60))?, now);
    wake.notify_one();
    let mut delivered = false;
    for _ in 0..100 {
        if matches!(outbox.row("dlv_loop")?.state, State::Delivered(_)) {
            delivered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ensure!(delivered, "the loop did not deliver within 2 s");

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .context("the loop did not stop on shutdown")??;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// SSRF
// ---------------------------------------------------------------------------------------

/// URLs that must be refused at registration, whatever spelling hides the address.
const FORBIDDEN_URLS: &[&str] = &[
    // loopback in every spelling
    "http://127.0.0.1/",
    "http://127.0.0.1:8080/hooks",
    "http://2130706433/",
    "http://0177.0.0.1/",
    "http://0x7f000001/",
    "http://0x7f.0x0.0x0.0x1/",
    "http://127.1/",
    "http://017700000001/",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "https://[0:0:0:0:0:ffff:7f00:1]:8443/",
    "http://localhost/",
    "http://LOCALHOST.:80/",
    "http://admin.localhost/",
    "http://①②⑦.0.0.1/",
    // unspecified
    "http://0.0.0.0/",
    "http://0/",
    "http://[::]/",
    // private, shared, link-local, unique-local
    "http://10.0.0.1/",
    "http://172.16.5.4/",
    "http://192.168.1.1/",
    "http://3232235777/",
    "http://100.64.0.1/",
    "http://169.254.1.1/",
    "http://[fe80::1]/",
    "http://[fe80::1%25eth0]/",
    "http://[fc00::1]/",
    "http://[fd12:3456::1]/",
    "http://[::ffff:10.0.0.1]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    // cloud metadata
    "http://169.254.169.254/latest/meta-data/",
    "http://0xa9fea9fe/",
    "http://2852039166/",
    "http://[fd00:ec2::254]/",
    "http://100.100.100.200/",
    "http://metadata.google.internal/computeMetadata/v1/",
    // multicast, broadcast, reserved, documentation, benchmarking
    "http://224.0.0.1/",
    "http://[ff02::1]/",
    "http://255.255.255.255/",
    "http://240.0.0.1/",
    "http://192.0.2.10/",
    "http://198.51.100.10/",
    "http://203.0.113.10/",
    "http://[2001:db8::1]/",
    "http://198.18.0.1/",
    // private names
    "http://printer.local/",
    "http://db.internal/",
    "http://intranet/",
    // not http, or with credentials
    "ftp://hooks.example.com/",
    "file:///etc/passwd",
    "gopher://hooks.example.com/",
    "https://user:secret@hooks.example.com/",
    "https://127.0.0.1:443@hooks.example.com/",
];

#[test]
fn private_and_special_addresses_are_refused_at_registration_in_every_spelling() {
    let mut accepted = Vec::new();
    for url in FORBIDDEN_URLS {
        if let Ok(valid) = UrlPolicy::STRICT.validate(url) {
            accepted.push(format!("{url} -> {valid}"));
        }
    }
    assert!(accepted.is_empty(), "accepted: {accepted:#?}");
    assert!(FORBIDDEN_URLS.len() >= 20);
}

#[test]
fn public_urls_are_accepted_at_registration() {
    for url in [
        "https://hooks.towco.example.com/rescue",
        "https://dispatch.abschlepp-mueller.de:8443/webhooks?token=abc",
        "http://93.184.215.14/hook",
        "https://[2606:4700:4700::1111]/hook",
        "https://hooks.example.com./trailing-dot",
    ] {
        assert!(
            UrlPolicy::STRICT.validate(url).is_ok(),
            "{url}: {:?}",
            UrlPolicy::STRICT.validate(url)
        );
    }
}

#[test]
fn allowing_loopback_admits_loopback_and_nothing_else() {
    let policy = UrlPolicy::LOOPBACK_ALLOWED;
    for url in [
        "http://127.0.0.1:8080/",
        "http://2130706433/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://localhost:3000/",
    ] {
        assert!(policy.validate(url).is_ok(), "{url}");
    }
    for url in [
        "http://0.0.0.0/",
        "http://[::]/",
        "http://10.0.0.1/",
        "http://169.254.169.254/",
        "http://[fd00:ec2::254]/",
        "http://[fe80::1]/",
        "http://db.internal/",
    ] {
        assert!(policy.validate(url).is_err(), "{url}");
    }
}

#[tokio::test]
async fn a_loopback_url_fails_at_send_time_without_any_request_reaching_the_server() -> Result<()> {
    let server = hook_server(ResponseTemplate::new(200)).await;
    let port = server.address().port();
    let strict = WebhookClient::new(&client_config(false, 2_000))?;
    let harness = harness_with(strict, retry(1_000, 5));
    let urls = [
        format!("http://localhost:{port}/hooks"),
        format!("http://127.0.0.1:{port}/hooks"),
        format!("http://2130706433:{port}/hooks"),
        format!("http://[::ffff:127.0.0.1]:{port}/hooks"),
    ];
    for (index, url) in urls.iter().enumerate() {
        harness.outbox.enqueue(
            delivery(&format!("dlv_ssrf_{index}"), url, t0() + seconds(120))?,
            t0(),
        );
    }

    let report = harness.round(t0()).await?;
    assert_eq!(report.dead_lettered, urls.len(), "{report:?}");
    for index in 0..urls.len() {
        let row = harness.outbox.row(&format!("dlv_ssrf_{index}"))?;
        let State::DeadLettered { reason } = &row.state else {
            bail!("not dead-lettered: {:?}", row.state);
        };
        ensure!(reason.starts_with("permanent failure"), "{reason}");
        let (record, _) = row.log.first().context("the refusal is logged")?;
        assert_eq!(record.outcome, AttemptOutcome::Refused);
    }
    ensure!(
        received(&server).await.is_empty(),
        "a request reached the server"
    );
    Ok(())
}

#[tokio::test]
async fn a_name_that_resolves_to_loopback_is_refused_at_connect_time() -> Result<()> {
    let server = hook_server(ResponseTemplate::new(200)).await;
    let port = server.address().port();
    let loopback: IpAddr = "127.0.0.1".parse()?;
    // A public-looking name whose DNS answer was changed to point at us (rebinding).
    let lookup: Arc<dyn HostLookup> =
        Arc::new(StaticLookup::default().with("hooks.rebind.example.com", [loopback]));
    let url = format!("http://hooks.rebind.example.com:{port}/hooks");
    ensure!(
        UrlPolicy::STRICT.validate(&url).is_ok(),
        "the name itself passes registration"
    );

    let strict = WebhookClient::with_lookup(&client_config(false, 2_000), lookup.clone())?;
    let outcome = strict
        .post(&url, Default::default(), Bytes::from("{}"))
        .await;
    let SendResult::Refused { reason } = &outcome.result else {
        bail!("not refused: {outcome:?}");
    };
    ensure!(reason.contains("127.0.0.1: loopback"), "{reason}");
    ensure!(
        received(&server).await.is_empty(),
        "a request reached the server"
    );

    // Through the worker: dead-lettered at once, nothing sent.
    let harness = harness_with(strict, retry(1_000, 5));
    harness
        .outbox
        .enqueue(delivery("dlv_rebind", &url, t0() + seconds(120))?, t0());
    harness.round(t0()).await?;
    let row = harness.outbox.row("dlv_rebind")?;
    ensure!(
        matches!(row.state, State::DeadLettered { .. }),
        "{:?}",
        row.state
    );
    ensure!(
        received(&server).await.is_empty(),
        "a request reached the server"
    );

    // Control: the same name does reach the server when loopback is allowed, so the
    // refusal above is the guard's doing.
    let permissive = WebhookClient::with_lookup(&client_config(true, 2_000), lookup)?;
    let outcome = permissive
        .post(&url, Default::default(), Bytes::from("{}"))
        .await;
    assert_eq!(outcome.result, SendResult::Delivered { status: 200 });
    assert_eq!(received(&server).await.len(), 1);
    Ok(())
}

#[tokio::test]
async fn the_system_resolver_is_guarded_too() -> Result<()> {
    use reqwest::dns::{Name, Resolve};
    use std::str::FromStr;

    // The system resolver does resolve localhost to loopback here…
    let addresses = SystemLookup.lookup("localhost").await?;
    ensure!(addresses.iter().any(IpAddr::is_loopback), "{addresses:?}");
    // …and every such address is refused by the strict policy.
    for address in &addresses {
        ensure!(UrlPolicy::STRICT.check_ip(*address).is_err(), "{address}");
    }
    let strict = GuardedResolver::system(UrlPolicy::STRICT);
    let name = Name::from_str("localhost").map_err(|_| anyhow::anyhow!("bad name"))?;
    ensure!(strict.resolve(name).await.is_err());
    let permissive = GuardedResolver::system(UrlPolicy::LOOPBACK_ALLOWED);
    let name = Name::from_str("localhost").map_err(|_| anyhow::anyhow!("bad name"))?;
    let resolved: Vec<_> = permissive
        .resolve(name)
        .await
        .map_err(|error| anyhow::anyhow!("{error}"))?
        .collect();
    ensure!(resolved.iter().all(|socket| socket.ip().is_loopback()));
    Ok(())
}

#[tokio::test]
async fn a_url_refused_by_the_guard_reports_the_reason() -> Result<()> {
    let client = WebhookClient::new(&client_config(false, 2_000))?;
    let outcome = client
        .post(
            "http://169.254.169.254/latest/meta-data/",
            Default::default(),
            Bytes::new(),
        )
        .await;
    assert_eq!(
        outcome.result,
        SendResult::Refused {
            reason: UrlRefused::ForbiddenAddress {
                address: "169.254.169.254".parse()?,
                class: provider_adapters::webhook::AddressClass::CloudMetadata,
            }
            .to_string()
        }
    );
    Ok(())
}

proptest! {
    #[test]
    fn the_url_validator_never_panics_on_arbitrary_strings(raw in any::<String>()) {
        let _ = UrlPolicy::STRICT.validate(&raw);
        let _ = UrlPolicy::LOOPBACK_ALLOWED.validate(&raw);
    }

    #[test]
    fn the_url_validator_never_panics_on_url_shaped_strings(
        scheme in prop_oneof![Just("http".to_owned()), Just("https".to_owned()), Just("ftp".to_owned()), "[a-z]{0,6}"],
        host in "[0-9a-zA-Z.:%\\[\\]@_-]{0,40}",
        rest in "[ -~]{0,40}",
    ) {
        let _ = UrlPolicy::STRICT.validate(&format!("{scheme}://{host}{rest}"));
    }

    #[test]
    fn a_decimal_ipv4_host_is_judged_like_its_dotted_form(bits in any::<u32>()) {
        let dotted = std::net::Ipv4Addr::from(bits);
        let decimal = UrlPolicy::STRICT.validate(&format!("http://{bits}/")).is_ok();
        let expected = classify(IpAddr::V4(dotted)).is_none();
        prop_assert_eq!(decimal, expected, "{} ({})", bits, dotted);
    }
}
