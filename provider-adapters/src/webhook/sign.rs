//! Webhook signatures: what we send, and how a receiver checks it.
//!
//! Every webhook request carries four headers:
//!
//! | header | value |
//! |---|---|
//! | `Rescue-Webhook-Id` | the delivery id, the same on every retry of one delivery: receivers deduplicate on it |
//! | `Rescue-Webhook-Event` | the event type, e.g. `offer.created` |
//! | `Rescue-Webhook-Timestamp` | when this attempt was signed, in unix seconds (a decimal integer) |
//! | `Rescue-Webhook-Signature` | `v1=<hex>`: lowercase hex of HMAC-SHA256(secret, `"<timestamp>.<body>"`) |
//!
//! The signed message is the timestamp header's exact text, one `.` (0x2E), and the raw
//! request body bytes, exactly as sent (the body is JSON, but verify the bytes before
//! parsing them: re-serialised JSON is not byte-identical). The key is the provider's
//! webhook secret exactly as shown to them, as UTF-8 bytes.
//!
//! While a secret is being rotated the signature header holds one `v1=` value per active
//! secret, separated by single spaces (`v1=<hex> v1=<hex>`); a receiver accepts the
//! request when any of them matches its secret. Unknown schemes (anything but `v1`) must
//! be ignored, so new ones can be added later.
//!
//! A receiver must also refuse timestamps more than 5 minutes away from its own clock
//! (replay window), and may remember the ids it has seen for that long. The id and event
//! headers are not covered by the signature: the body carries the same `id` and `event`,
//! and that signed copy is the one to trust.
//!
//! ## Verifying in Python (3.7+, standard library only)
//!
//! ```python
#![doc = include_str!("snippets/verify.py")]
//! ```
//!
//! With Flask: `verify_rescue_webhook(SECRET, request.headers, request.get_data())`.
//!
//! ## Verifying in Node.js (16+, standard library only)
//!
//! ```js
#![doc = include_str!("snippets/verify.js")]
//! ```
//!
//! With Express, read the body raw (`express.raw({ type: "application/json" })`) and call
//! `verifyRescueWebhook(SECRET, req.headers, req.body)`.
//!
//! Both snippets are run against real signed deliveries by the test suite.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, HeaderName, HeaderValue};
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};

/// Header carrying the delivery id.
pub const HEADER_ID: &str = "Rescue-Webhook-Id";
/// Header carrying the event type, e.g. `offer.created`.
pub const HEADER_EVENT: &str = "Rescue-Webhook-Event";
/// Header carrying the signing time in unix seconds.
pub const HEADER_TIMESTAMP: &str = "Rescue-Webhook-Timestamp";
/// Header carrying the `v1=<hex>` signatures, space separated.
pub const HEADER_SIGNATURE: &str = "Rescue-Webhook-Signature";
/// The signature scheme: HMAC-SHA256 over `"<timestamp>.<body>"`, lowercase hex.
pub const SCHEME_V1: &str = "v1";
/// How far a receiver's clock may be from the timestamp: 5 minutes.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);
/// Shortest secret accepted by [`WebhookSecret::new`], in bytes.
pub const MIN_SECRET_LEN: usize = 16;
const NAME_ID: HeaderName = HeaderName::from_static("rescue-webhook-id");
const NAME_EVENT: HeaderName = HeaderName::from_static("rescue-webhook-event");
const NAME_TIMESTAMP: HeaderName = HeaderName::from_static("rescue-webhook-timestamp");
const NAME_SIGNATURE: HeaderName = HeaderName::from_static("rescue-webhook-signature");
/// Most `v1=` values [`verify`] looks at (a rotation needs two).
const MAX_SIGNATURES_CHECKED: usize = 8;

type HmacSha256 = Hmac<Sha256>;

/// A provider's webhook signing secret, as plain bytes (the server unwraps it from
/// storage). `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Vec<u8>);

/// A secret shorter than [`MIN_SECRET_LEN`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("webhook secret is {length_bytes} bytes, at least {MIN_SECRET_LEN} are required")]
pub struct SecretTooShort {
    /// Length of the refused secret.
    pub length_bytes: usize,
}

impl WebhookSecret {
    /// Wraps a secret; refuses one shorter than [`MIN_SECRET_LEN`] bytes, since a short
    /// HMAC key makes signatures guessable.
    ///
    /// ```
    /// use provider_adapters::webhook::sign::WebhookSecret;
    /// assert!(WebhookSecret::new(b"whsec_0123456789abcdef".to_vec()).is_ok());
    /// assert!(WebhookSecret::new(b"short".to_vec()).is_err());
    /// ```
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, SecretTooShort> {
        let bytes = bytes.into();
        if bytes.len() < MIN_SECRET_LEN {
            return Err(SecretTooShort {
                length_bytes: bytes.len(),
            });
        }
        Ok(Self(bytes))
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("WebhookSecret(<redacted>)")
    }
}

fn mac_for(secret: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length (long ones are hashed first): this never fails.
    HmacSha256::new_from_slice(secret).expect("hmac accepts keys of any length")
}

fn mac_v1(secret: &[u8], timestamp: &str, body: &[u8]) -> [u8; 32] {
    let mut mac = mac_for(secret);
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// The `v1` signature: lowercase hex of HMAC-SHA256(secret, `"<timestamp_s>.<body>"`).
///
/// ```
/// use provider_adapters::webhook::sign::signature_v1;
/// let body = br#"{"event":"offer.created"}"#;
/// assert_eq!(
///     signature_v1(b"whsec_test", 1_700_000_000, body),
///     "19f93b7311074ce256d86e1cb5821844e493417e5b0595771e1a4e26bbbfdfe4"
/// );
/// ```
pub fn signature_v1(secret: &[u8], timestamp_s: i64, body: &[u8]) -> String {
    hex::encode(mac_v1(secret, &timestamp_s.to_string(), body))
}

/// The `Rescue-Webhook-Signature` value: one `v1=<hex>` per secret, space separated
/// (several only while a secret is being rotated).
///
/// ```
/// use provider_adapters::webhook::sign::{signature_header, WebhookSecret};
/// let current = WebhookSecret::new(b"whsec_current_0123456789".to_vec()).unwrap();
/// let next = WebhookSecret::new(b"whsec_next_0123456789abc".to_vec()).unwrap();
/// let header = signature_header(&[current, next], 1_700_000_000, b"{}");
/// assert_eq!(header.split(' ').count(), 2);
/// assert!(header.starts_with("v1="));
/// ```
pub fn signature_header(secrets: &[WebhookSecret], timestamp_s: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|secret| {
            format!(
                "{SCHEME_V1}={}",
                signature_v1(secret.as_bytes(), timestamp_s, body)
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The four headers of one signed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// `Rescue-Webhook-Id`.
    pub id: String,
    /// `Rescue-Webhook-Event`.
    pub event: String,
    /// `Rescue-Webhook-Timestamp`, unix seconds.
    pub timestamp_s: i64,
    /// `Rescue-Webhook-Signature`.
    pub signature: String,
}

/// A header value that cannot be sent (an id or event with control or non-ASCII
/// characters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{header} value cannot be sent as an http header")]
pub struct InvalidHeaderValue {
    /// The header concerned.
    pub header: &'static str,
}

impl SignedHeaders {
    /// Signs `body` at `signed_at` with every secret.
    ///
    /// ```
    /// use chrono::{TimeZone, Utc};
    /// use provider_adapters::webhook::sign::{SignedHeaders, WebhookSecret};
    /// let secret = WebhookSecret::new(b"whsec_0123456789abcdef".to_vec()).unwrap();
    /// let at = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
    /// let headers = SignedHeaders::sign("dlv_1", "offer.created", at, b"{}", &[secret]);
    /// assert_eq!(headers.timestamp_s, 1_700_000_000);
    /// assert!(headers.to_header_map().is_ok());
    /// ```
    pub fn sign(
        id: &str,
        event: &str,
        signed_at: DateTime<Utc>,
        body: &[u8],
        secrets: &[WebhookSecret],
    ) -> Self {
        let timestamp_s = signed_at.timestamp();
        Self {
            id: id.to_owned(),
            event: event.to_owned(),
            timestamp_s,
            signature: signature_header(secrets, timestamp_s, body),
        }
    }

    /// The headers as an HTTP header map.
    pub fn to_header_map(&self) -> Result<HeaderMap, InvalidHeaderValue> {
        let mut map = HeaderMap::with_capacity(4);
        let entries = [
            (NAME_ID, HEADER_ID, self.id.clone()),
            (NAME_EVENT, HEADER_EVENT, self.event.clone()),
            (
                NAME_TIMESTAMP,
                HEADER_TIMESTAMP,
                self.timestamp_s.to_string(),
            ),
            (NAME_SIGNATURE, HEADER_SIGNATURE, self.signature.clone()),
        ];
        for (name, header, value) in entries {
            let value = HeaderValue::from_str(&value).map_err(|_| InvalidHeaderValue { header })?;
            map.insert(name, value);
        }
        Ok(map)
    }
}

/// Why [`verify`] refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A required header is absent or not text.
    #[error("missing or unreadable {0} header")]
    MissingHeader(&'static str),
    /// The timestamp is not a decimal integer.
    #[error("timestamp header is not unix seconds")]
    MalformedTimestamp,
    /// The timestamp is further from `now` than the tolerance (a replay, or a clock off).
    #[error("timestamp is {skew_s} s away from now, outside the replay window")]
    OutsideTolerance {
        /// `now - timestamp`, in seconds (negative: from the future).
        skew_s: i64,
    },
    /// No `v1=` value matches.
    #[error("no valid v1 signature")]
    NoValidSignature,
}

/// A request that passed [`verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// The signed timestamp, unix seconds.
    pub timestamp_s: i64,
}

/// Checks a received webhook: the timestamp is within `tolerance` of `now` (both ways),
/// and one of the `v1=` signatures is HMAC-SHA256(`secret`, `"<timestamp>.<body>"`),
/// compared in constant time. For receivers and tests.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use provider_adapters::webhook::sign::{verify, SignedHeaders, WebhookSecret, DEFAULT_TOLERANCE};
/// let secret = WebhookSecret::new(b"whsec_0123456789abcdef".to_vec()).unwrap();
/// let at = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
/// let body = br#"{"id":"dlv_1","event":"offer.created"}"#;
/// let headers = SignedHeaders::sign("dlv_1", "offer.created", at, body, &[secret.clone()])
///     .to_header_map()
///     .unwrap();
/// assert!(verify(secret.as_bytes(), &headers, body, at, DEFAULT_TOLERANCE).is_ok());
/// assert!(verify(secret.as_bytes(), &headers, b"{}", at, DEFAULT_TOLERANCE).is_err());
/// let much_later = Utc.timestamp_opt(1_700_000_000 + 301, 0).unwrap();
/// assert!(verify(secret.as_bytes(), &headers, body, much_later, DEFAULT_TOLERANCE).is_err());
/// ```
pub fn verify(
    secret: &[u8],
    headers: &HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<Verified, VerifyError> {
    let text = |name: HeaderName, header: &'static str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .ok_or(VerifyError::MissingHeader(header))
    };
    let timestamp = text(NAME_TIMESTAMP, HEADER_TIMESTAMP)?;
    let signatures = text(NAME_SIGNATURE, HEADER_SIGNATURE)?;
    if timestamp.is_empty() || !timestamp.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(VerifyError::MalformedTimestamp);
    }
    let timestamp_s: i64 = timestamp
        .parse()
        .map_err(|_| VerifyError::MalformedTimestamp)?;
    let skew_s = now.timestamp().saturating_sub(timestamp_s);
    if skew_s.unsigned_abs() > tolerance.as_secs() {
        return Err(VerifyError::OutsideTolerance { skew_s });
    }
    let expected = mac_v1(secret, timestamp, body);
    let mut matched = Choice::from(0);
    for item in signatures
        .split_ascii_whitespace()
        .take(MAX_SIGNATURES_CHECKED)
    {
        let Some((scheme, value)) = item.split_once('=') else {
            continue;
        };
        if scheme != SCHEME_V1 {
            continue;
        }
        let Ok(candidate) = hex::decode(value) else {
            continue;
        };
        if candidate.len() == expected.len() {
            matched |= candidate.as_slice().ct_eq(&expected);
        }
    }
    if bool::from(matched) {
        Ok(Verified { timestamp_s })
    } else {
        Err(VerifyError::NoValidSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const BODY: &[u8] = br#"{"id":"dlv_1","event":"offer.created","data":{}}"#;

    fn secret(text: &str) -> WebhookSecret {
        WebhookSecret(text.as_bytes().to_vec())
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(seconds, 0)
            .single()
            .unwrap_or(DateTime::UNIX_EPOCH)
    }

    fn signed(secrets: &[WebhookSecret], seconds: i64) -> HeaderMap {
        SignedHeaders::sign("dlv_1", "offer.created", at(seconds), BODY, secrets)
            .to_header_map()
            .unwrap_or_default()
    }

    #[test]
    fn the_signature_matches_a_vector_computed_by_python_hmac() {
        // python3 -c 'import hmac,hashlib; print(hmac.new(b"whsec_test",
        //   b"1700000000.{\"event\":\"offer.created\"}", hashlib.sha256).hexdigest())'
        assert_eq!(
            signature_v1(
                b"whsec_test",
                1_700_000_000,
                br#"{"event":"offer.created"}"#
            ),
            "19f93b7311074ce256d86e1cb5821844e493417e5b0595771e1a4e26bbbfdfe4"
        );
    }

    #[test]
    fn a_freshly_signed_request_verifies() {
        let key = secret("whsec_0123456789abcdef");
        let headers = signed(std::slice::from_ref(&key), 1_700_000_000);
        assert_eq!(
            verify(
                key.as_bytes(),
                &headers,
                BODY,
                at(1_700_000_010),
                DEFAULT_TOLERANCE
            ),
            Ok(Verified {
                timestamp_s: 1_700_000_000
            })
        );
    }

    #[test]
    fn either_secret_verifies_during_a_rotation_and_a_third_does_not() {
        let old = secret("whsec_old_0123456789");
        let new = secret("whsec_new_0123456789");
        let headers = signed(&[old.clone(), new.clone()], 1_700_000_000);
        let now = at(1_700_000_000);
        assert!(verify(old.as_bytes(), &headers, BODY, now, DEFAULT_TOLERANCE).is_ok());
        assert!(verify(new.as_bytes(), &headers, BODY, now, DEFAULT_TOLERANCE).is_ok());
        assert_eq!(
            verify(
                b"whsec_other_0123456789",
                &headers,
                BODY,
                now,
                DEFAULT_TOLERANCE
            ),
            Err(VerifyError::NoValidSignature)
        );
    }

    #[test]
    fn a_tampered_body_or_timestamp_does_not_verify() {
        let key = secret("whsec_0123456789abcdef");
        let mut headers = signed(std::slice::from_ref(&key), 1_700_000_000);
        let now = at(1_700_000_000);
        assert_eq!(
            verify(
                key.as_bytes(),
                &headers,
                b"{\"x\":1}",
                now,
                DEFAULT_TOLERANCE
            ),
            Err(VerifyError::NoValidSignature)
        );
        headers.insert(NAME_TIMESTAMP, HeaderValue::from_static("1700000001"));
        assert_eq!(
            verify(key.as_bytes(), &headers, BODY, now, DEFAULT_TOLERANCE),
            Err(VerifyError::NoValidSignature)
        );
    }

    #[test]
    fn stale_and_future_timestamps_are_outside_the_replay_window() {
        let key = secret("whsec_0123456789abcdef");
        let headers = signed(std::slice::from_ref(&key), 1_700_000_000);
        assert_eq!(
            verify(
                key.as_bytes(),
                &headers,
                BODY,
                at(1_700_000_301),
                DEFAULT_TOLERANCE
            ),
            Err(VerifyError::OutsideTolerance { skew_s: 301 })
        );
        assert_eq!(
            verify(
                key.as_bytes(),
                &headers,
                BODY,
                at(1_699_999_699),
                DEFAULT_TOLERANCE
            ),
            Err(VerifyError::OutsideTolerance { skew_s: -301 })
        );
        assert!(
            verify(
                key.as_bytes(),
                &headers,
                BODY,
                at(1_700_000_300),
                DEFAULT_TOLERANCE
            )
            .is_ok()
        );
    }

    #[test]
    fn malformed_headers_are_refused_without_panicking() {
        let key = secret("whsec_0123456789abcdef");
        let now = at(1_700_000_000);
        let mut headers = HeaderMap::new();
        assert_eq!(
            verify(key.as_bytes(), &headers, BODY, now, DEFAULT_TOLERANCE),
            Err(VerifyError::MissingHeader(HEADER_TIMESTAMP))
        );
        for timestamp in ["", "-5", "+1700000000", "17e8", "99999999999999999999999"] {
            headers.insert(
                NAME_TIMESTAMP,
                HeaderValue::from_str(timestamp).unwrap_or(HeaderValue::from_static("x")),
            );
            headers.insert(
                NAME_SIGNATURE,
                HeaderValue::from_static("v1=zz v1= =abc v2=00 garbage"),
            );
            assert_eq!(
                verify(key.as_bytes(), &headers, BODY, now, DEFAULT_TOLERANCE),
                Err(VerifyError::MalformedTimestamp),
                "{timestamp:?}"
            );
        }
        headers.insert(NAME_TIMESTAMP, HeaderValue::from_static("1700000000"));
        assert_eq!(
            verify(key.as_bytes(), &headers, BODY, now, DEFAULT_TOLERANCE),
            Err(VerifyError::NoValidSignature)
        );
    }

    #[test]
    fn an_unknown_scheme_next_to_v1_is_ignored() {
        let key = secret("whsec_0123456789abcdef");
        let mut headers = signed(std::slice::from_ref(&key), 1_700_000_000);
        let v1 = headers
            .get("rescue-webhook-signature")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let both = format!("v2=deadbeef {v1}");
        headers.insert(
            NAME_SIGNATURE,
            HeaderValue::from_str(&both).unwrap_or(HeaderValue::from_static("x")),
        );
        assert!(
            verify(
                key.as_bytes(),
                &headers,
                BODY,
                at(1_700_000_000),
                DEFAULT_TOLERANCE
            )
            .is_ok()
        );
    }

    #[test]
    fn ids_with_control_characters_cannot_become_headers() {
        let headers = SignedHeaders::sign(
            "dlv\n1",
            "offer.created",
            at(0),
            BODY,
            &[secret("whsec_0123456789abcdef")],
        );
        assert_eq!(
            headers.to_header_map(),
            Err(InvalidHeaderValue { header: HEADER_ID })
        );
    }

    #[test]
    fn the_secret_never_appears_in_debug_output() {
        let key = secret("whsec_0123456789abcdef");
        assert!(!format!("{key:?}").contains("0123"));
    }
}
