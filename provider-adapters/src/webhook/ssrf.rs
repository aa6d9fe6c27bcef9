//! Server-side request forgery guard for webhook URLs.
//!
//! A provider chooses where we send webhooks, so a webhook URL is attacker-controlled
//! input that makes *our* server open connections. Left unchecked it reaches the cloud
//! metadata service, the database, the admin port on loopback. The guard runs twice:
//!
//! 1. **At registration** ([`UrlPolicy::validate`], pure): the URL must parse, be `http` or
//!    `https`, carry no credentials, and its host must be a public-looking name or a
//!    public address. Every host spelling is normalised by the WHATWG parser of the `url`
//!    crate before the check — `2130706433`, `0177.0.0.1`, `0x7f000001`, `127.1` all become
//!    `127.0.0.1`; `[::ffff:7f00:1]` is unwrapped to the IPv4 address it maps.
//! 2. **At connect time** ([`GuardedResolver`]): a name that passed registration can
//!    resolve to anything later (DNS rebinding, a record changed after review). The HTTP
//!    client resolves through this resolver, which drops every forbidden address and fails
//!    when none is left, so the socket is never opened. IP literals skip DNS, which is why
//!    the client validates the whole URL again before each request.
//!
//! [`UrlPolicy::allow_loopback`] lets loopback through (and only loopback), for local
//! testing against a receiver on the same machine. It must stay off in production.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use serde::Deserialize;
use url::{Host, Url};

/// Longest webhook URL accepted, in bytes.
pub const MAX_URL_LEN: usize = 2048;

/// The address families a host may not resolve to, as reported in refusals.
///
/// Lowercase `Display` for log lines and error messages; it is also a fixed vocabulary
/// usable as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressClass {
    /// `0.0.0.0/8`, `::`.
    Unspecified,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// RFC 1918 (`10/8`, `172.16/12`, `192.168/16`) and the deprecated IPv6 site-local
    /// `fec0::/10`.
    Private,
    /// Carrier-grade NAT, `100.64.0.0/10` (RFC 6598).
    SharedAddressSpace,
    /// `169.254.0.0/16`, `fe80::/10`.
    LinkLocal,
    /// `fc00::/7` (RFC 4193).
    UniqueLocal,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// TEST-NET-1/2/3, `2001:db8::/32`, `3fff::/20`.
    Documentation,
    /// `198.18.0.0/15`, `2001:2::/48`.
    Benchmarking,
    /// Cloud instance metadata endpoints: `169.254.169.254`, `fd00:ec2::254`,
    /// `100.100.100.200`.
    CloudMetadata,
    /// Everything else that is not public unicast: IETF protocol assignments, `240/4`,
    /// 6to4 and Teredo, IPv4-compatible IPv6, anything outside `2000::/3`.
    Reserved,
}

impl AddressClass {
    /// A short lowercase name, e.g. `"loopback"`.
    ///
    /// ```
    /// use provider_adapters::webhook::ssrf::AddressClass;
    /// assert_eq!(AddressClass::CloudMetadata.as_str(), "cloud metadata");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            AddressClass::Unspecified => "unspecified",
            AddressClass::Loopback => "loopback",
            AddressClass::Private => "private",
            AddressClass::SharedAddressSpace => "shared address space",
            AddressClass::LinkLocal => "link-local",
            AddressClass::UniqueLocal => "unique-local",
            AddressClass::Multicast => "multicast",
            AddressClass::Broadcast => "broadcast",
            AddressClass::Documentation => "documentation",
            AddressClass::Benchmarking => "benchmarking",
            AddressClass::CloudMetadata => "cloud metadata",
            AddressClass::Reserved => "reserved",
        }
    }
}

impl fmt::Display for AddressClass {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// Why a webhook URL was refused. Messages are safe to show to the provider who
/// registered the URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefused {
    /// Longer than [`MAX_URL_LEN`].
    #[error("webhook url is {length_bytes} bytes long, the limit is {MAX_URL_LEN}")]
    TooLong {
        /// Length of the refused URL.
        length_bytes: usize,
    },
    /// Not a URL at all (this includes IPv6 zone identifiers such as `[fe80::1%25eth0]`,
    /// which the URL standard does not allow).
    #[error("webhook url does not parse: {0}")]
    Unparsable(String),
    /// Not `http` or `https`.
    #[error("webhook url scheme must be https or http, not {0:?}")]
    Scheme(String),
    /// `user:password@` in the URL: secrets belong in the signature, not in the URL.
    #[error("webhook url must not carry credentials")]
    Credentials,
    /// No host, or port 0.
    #[error("webhook url has no usable host and port")]
    NoHost,
    /// A name that only makes sense inside a private network.
    #[error("webhook host {host:?} is refused: {reason}")]
    ForbiddenName {
        /// The normalised host name.
        host: String,
        /// Why, in a few lowercase words.
        reason: &'static str,
    },
    /// An address that is not public unicast.
    #[error("webhook address {address} is refused: {class} address")]
    ForbiddenAddress {
        /// The address, IPv4-mapped IPv6 already unwrapped.
        address: IpAddr,
        /// What kind of address it is.
        class: AddressClass,
    },
}

/// A URL that passed [`UrlPolicy::validate`]: parse, don't validate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(Url);

impl WebhookUrl {
    /// The normalised URL text, as it should be stored.
    ///
    /// ```
    /// use provider_adapters::webhook::ssrf::UrlPolicy;
    /// let url = UrlPolicy::default().validate("HTTPS://Hooks.Example.COM/rescue")?;
    /// assert_eq!(url.as_str(), "https://hooks.example.com/rescue");
    /// # Ok::<(), provider_adapters::webhook::ssrf::UrlRefused>(())
    /// ```
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The parsed URL.
    pub fn as_url(&self) -> &Url {
        &self.0
    }
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.0.as_str())
    }
}

/// What the guard lets through. Part of the webhook configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UrlPolicy {
    /// Let loopback addresses (`127.0.0.0/8`, `::1`) and the names `localhost` and
    /// `*.localhost` through, and nothing else that is private. For running a receiver on
    /// the same machine in development and tests; never in production.
    pub allow_loopback: bool,
}

/// Top-level labels and suffixes that only resolve inside a private network (RFC 6761,
/// RFC 8375, ICANN's `.internal`, mDNS `.local`) or never resolve at all.
const PRIVATE_SUFFIXES: &[&str] = &[
    "local",
    "internal",
    "localdomain",
    "home.arpa",
    "arpa",
    "test",
    "invalid",
    "example",
];

impl UrlPolicy {
    /// The production policy: only public names and addresses.
    pub const STRICT: UrlPolicy = UrlPolicy {
        allow_loopback: false,
    };

    /// Development policy: loopback is allowed too, nothing else private.
    pub const LOOPBACK_ALLOWED: UrlPolicy = UrlPolicy {
        allow_loopback: true,
    };

    /// Validates a webhook URL at registration: syntax, scheme, credentials, and the host
    /// as a name or an address (every spelling of an address normalised first).
    ///
    /// ```
    /// use provider_adapters::webhook::ssrf::{AddressClass, UrlPolicy, UrlRefused};
    /// let policy = UrlPolicy::default();
    /// assert!(policy.validate("https://hooks.towco.example.com/rescue").is_ok());
    /// // 0x7f000001 is 127.0.0.1
    /// assert!(matches!(
    ///     policy.validate("http://0x7f000001/"),
    ///     Err(UrlRefused::ForbiddenAddress { class: AddressClass::Loopback, .. })
    /// ));
    /// assert!(policy.validate("http://metadata.google.internal/").is_err());
    /// assert!(UrlPolicy::LOOPBACK_ALLOWED.validate("http://127.0.0.1:8080/hook").is_ok());
    /// ```
    pub fn validate(&self, raw: &str) -> Result<WebhookUrl, UrlRefused> {
        if raw.len() > MAX_URL_LEN {
            return Err(UrlRefused::TooLong {
                length_bytes: raw.len(),
            });
        }
        let url = Url::parse(raw).map_err(|error| UrlRefused::Unparsable(error.to_string()))?;
        if url.scheme() != "https" && url.scheme() != "http" {
            return Err(UrlRefused::Scheme(url.scheme().to_owned()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlRefused::Credentials);
        }
        if url.port_or_known_default().unwrap_or(0) == 0 {
            return Err(UrlRefused::NoHost);
        }
        match url.host() {
            None => return Err(UrlRefused::NoHost),
            Some(Host::Domain(name)) => self.check_name(name)?,
            Some(Host::Ipv4(address)) => self.check_address(IpAddr::V4(address))?,
            Some(Host::Ipv6(address)) => self.check_address(IpAddr::V6(address))?,
        }
        Ok(WebhookUrl(url))
    }

    /// Checks a host name (already lowercase, as the URL parser leaves it). Refuses
    /// `localhost` and `*.localhost` (unless loopback is allowed), single-label names
    /// (they resolve through the search domains of our own network), and private-use
    /// suffixes such as `.internal` and `.local`.
    ///
    /// ```
    /// use provider_adapters::webhook::ssrf::UrlPolicy;
    /// assert!(UrlPolicy::STRICT.check_name("hooks.example.com").is_ok());
    /// assert!(UrlPolicy::STRICT.check_name("printer.local").is_err());
    /// assert!(UrlPolicy::STRICT.check_name("intranet").is_err());
    /// ```
    pub fn check_name(&self, host: &str) -> Result<(), UrlRefused> {
        let name = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        let refuse = |reason: &'static str| UrlRefused::ForbiddenName {
            host: name.clone(),
            reason,
        };
        if name.is_empty() {
            return Err(refuse("empty name"));
        }
        if name == "localhost" || name.ends_with(".localhost") {
            return if self.allow_loopback {
                Ok(())
            } else {
                Err(refuse("localhost names point at this machine"))
            };
        }
        if !name.contains('.') {
            return Err(refuse("single-label names resolve inside our own network"));
        }
        for suffix in PRIVATE_SUFFIXES {
            let is_suffix = name
                .strip_suffix(suffix)
                .is_some_and(|rest| rest.ends_with('.'));
            if is_suffix {
                return Err(refuse("private-use or reserved domain"));
            }
        }
        Ok(())
    }

    /// Checks one address: public unicast passes, loopback passes only when
    /// [`UrlPolicy::allow_loopback`] is set, everything else is refused.
    ///
    /// ```
    /// use provider_adapters::webhook::ssrf::{AddressClass, UrlPolicy};
    /// use std::net::IpAddr;
    /// let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
    /// assert_eq!(UrlPolicy::LOOPBACK_ALLOWED.check_ip(mapped), Err(AddressClass::Private));
    /// assert_eq!(UrlPolicy::STRICT.check_ip("93.184.215.14".parse().unwrap()), Ok(()));
    /// ```
    pub fn check_ip(&self, address: IpAddr) -> Result<(), AddressClass> {
        match classify(address) {
            None => Ok(()),
            Some(AddressClass::Loopback) if self.allow_loopback => Ok(()),
            Some(class) => Err(class),
        }
    }

    fn check_address(&self, address: IpAddr) -> Result<(), UrlRefused> {
        self.check_ip(address)
            .map_err(|class| UrlRefused::ForbiddenAddress {
                address: unmap(address),
                class,
            })
    }
}

/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`) as the IPv4 address it is; anything else as is.
fn unmap(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        IpAddr::V4(v4) => IpAddr::V4(v4),
    }
}

const METADATA_V4: [Ipv4Addr; 2] = [
    Ipv4Addr::new(169, 254, 169, 254),
    Ipv4Addr::new(100, 100, 100, 200),
];
const METADATA_V6: [Ipv6Addr; 1] = [Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254)];

/// IPv4 ranges, first match wins (so the broadcast address comes before `240/4`).
const V4_RANGES: &[([u8; 4], u32, AddressClass)] = &[
    ([0, 0, 0, 0], 8, AddressClass::Unspecified),
    ([10, 0, 0, 0], 8, AddressClass::Private),
    ([100, 64, 0, 0], 10, AddressClass::SharedAddressSpace),
    ([127, 0, 0, 0], 8, AddressClass::Loopback),
    ([169, 254, 0, 0], 16, AddressClass::LinkLocal),
    ([172, 16, 0, 0], 12, AddressClass::Private),
    ([192, 0, 0, 0], 24, AddressClass::Reserved),
    ([192, 0, 2, 0], 24, AddressClass::Documentation),
    ([192, 88, 99, 0], 24, AddressClass::Reserved),
    ([192, 168, 0, 0], 16, AddressClass::Private),
    ([198, 18, 0, 0], 15, AddressClass::Benchmarking),
    ([198, 51, 100, 0], 24, AddressClass::Documentation),
    ([203, 0, 113, 0], 24, AddressClass::Documentation),
    ([224, 0, 0, 0], 4, AddressClass::Multicast),
    ([255, 255, 255, 255], 32, AddressClass::Broadcast),
    ([240, 0, 0, 0], 4, AddressClass::Reserved),
];

/// IPv6 ranges, first match wins; checked after the special cases in [`classify_v6`].
const V6_RANGES: &[(u128, u32, AddressClass)] = &[
    (0x2001_0db8 << 96, 32, AddressClass::Documentation),
    (0x3fff << 112, 20, AddressClass::Documentation),
    (0x2001_0002 << 96, 48, AddressClass::Benchmarking),
    // IETF protocol assignments, Teredo (2001::/32) among them.
    (0x2001 << 112, 23, AddressClass::Reserved),
    // 6to4: the embedded IPv4 address could be anything; the mechanism is deprecated.
    (0x2002 << 112, 16, AddressClass::Reserved),
    (0xfc00 << 112, 7, AddressClass::UniqueLocal),
    (0xfe80 << 112, 10, AddressClass::LinkLocal),
    (0xfec0 << 112, 10, AddressClass::Private),
    (0xff00 << 112, 8, AddressClass::Multicast),
];

/// The class of a non-public address, or `None` for a public unicast address.
///
/// ```
/// use provider_adapters::webhook::ssrf::{classify, AddressClass};
/// assert_eq!(classify("169.254.169.254".parse().unwrap()), Some(AddressClass::CloudMetadata));
/// assert_eq!(classify("::ffff:127.0.0.1".parse().unwrap()), Some(AddressClass::Loopback));
/// assert_eq!(classify("1.1.1.1".parse().unwrap()), None);
/// ```
pub fn classify(address: IpAddr) -> Option<AddressClass> {
    match address {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(address: Ipv4Addr) -> Option<AddressClass> {
    if METADATA_V4.contains(&address) {
        return Some(AddressClass::CloudMetadata);
    }
    let bits = u32::from(address);
    V4_RANGES
        .iter()
        .find(|(network, prefix_len, _)| {
            let mask = u32::MAX.checked_shl(32 - prefix_len).unwrap_or(0);
            bits & mask == u32::from_be_bytes(*network) & mask
        })
        .map(|(_, _, class)| *class)
}

fn classify_v6(address: Ipv6Addr) -> Option<AddressClass> {
    if METADATA_V6.contains(&address) {
        return Some(AddressClass::CloudMetadata);
    }
    if address.is_unspecified() {
        return Some(AddressClass::Unspecified);
    }
    if address.is_loopback() {
        return Some(AddressClass::Loopback);
    }
    if let Some(v4) = address.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    let bits = u128::from(address);
    // NAT64 well-known prefix 64:ff9b::/96: the last 32 bits are the IPv4 destination.
    if bits >> 32 == 0x0064_ff9b_0000_0000_0000_0000 {
        let embedded = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
        return classify_v4(embedded);
    }
    let in_range = |network: u128, prefix_len: u32| {
        let mask = u128::MAX.checked_shl(128 - prefix_len).unwrap_or(0);
        bits & mask == network & mask
    };
    if let Some((_, _, class)) = V6_RANGES
        .iter()
        .find(|(network, prefix_len, _)| in_range(*network, *prefix_len))
    {
        return Some(*class);
    }
    // Global unicast is 2000::/3; everything else (IPv4-compatible ::/96, discard-only
    // 100::/64, local-use NAT64 64:ff9b:1::/48, unassigned space) is not a webhook target.
    if in_range(0x2000 << 112, 3) {
        None
    } else {
        Some(AddressClass::Reserved)
    }
}

/// How the resolver turns a host name into addresses. The system resolver in production
/// ([`SystemLookup`]); a fixed table in tests ([`StaticLookup`]).
#[async_trait::async_trait]
pub trait HostLookup: Send + Sync {
    /// Every address the name resolves to.
    async fn lookup(&self, host: &str) -> io::Result<Vec<IpAddr>>;
}

/// The operating system's resolver, through `tokio::net::lookup_host`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemLookup;

#[async_trait::async_trait]
impl HostLookup for SystemLookup {
    async fn lookup(&self, host: &str) -> io::Result<Vec<IpAddr>> {
        let addresses = tokio::net::lookup_host((host, 0)).await?;
        Ok(addresses.map(|socket| socket.ip()).collect())
    }
}

/// A fixed name → addresses table, for tests (e.g. a public-looking name that
/// "rebinds" to `127.0.0.1`). Unknown names fail like NXDOMAIN.
///
/// ```
/// use provider_adapters::webhook::ssrf::StaticLookup;
/// let lookup = StaticLookup::default().with("hooks.example.com", ["127.0.0.1".parse().unwrap()]);
/// ```
#[derive(Debug, Clone, Default)]
pub struct StaticLookup {
    table: HashMap<String, Vec<IpAddr>>,
}

impl StaticLookup {
    /// Adds (or replaces) a name.
    pub fn with(mut self, host: &str, addresses: impl IntoIterator<Item = IpAddr>) -> Self {
        self.table
            .insert(host.to_ascii_lowercase(), addresses.into_iter().collect());
        self
    }
}

#[async_trait::async_trait]
impl HostLookup for StaticLookup {
    async fn lookup(&self, host: &str) -> io::Result<Vec<IpAddr>> {
        self.table
            .get(&host.to_ascii_lowercase())
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such host"))
    }
}

/// Returned by [`GuardedResolver`] when a host resolves only to forbidden addresses. The
/// HTTP client reports it as a connect error whose source chain contains this value;
/// [`is_forbidden_resolution`] finds it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("webhook host {host:?} resolves only to refused addresses ({})", describe(.refused))]
pub struct ForbiddenResolution {
    /// The name that was resolved.
    pub host: String,
    /// Every address it resolved to, with its class.
    pub refused: Vec<(IpAddr, AddressClass)>,
}

fn describe(refused: &[(IpAddr, AddressClass)]) -> String {
    refused
        .iter()
        .map(|(address, class)| format!("{address}: {class}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Walks an error's source chain looking for a refusal by the guard: a
/// [`ForbiddenResolution`], or a [`UrlRefused`] raised by the resolver's name check.
/// Such a failure is permanent (retrying sends nothing either).
pub fn is_forbidden_resolution(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if error.is::<ForbiddenResolution>() || error.is::<UrlRefused>() {
            return true;
        }
        current = error.source();
    }
    false
}

/// A `reqwest` DNS resolver that applies the [`UrlPolicy`] to every resolved address:
/// forbidden ones are dropped, and when none is left the connection fails with
/// [`ForbiddenResolution`] before any socket is opened.
///
/// ```
/// use provider_adapters::webhook::ssrf::{GuardedResolver, UrlPolicy};
/// let resolver = GuardedResolver::system(UrlPolicy::STRICT);
/// let client = reqwest::Client::builder().dns_resolver(resolver);
/// ```
#[derive(Clone)]
pub struct GuardedResolver {
    policy: UrlPolicy,
    lookup: Arc<dyn HostLookup>,
}

impl fmt::Debug for GuardedResolver {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("GuardedResolver")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl GuardedResolver {
    /// Resolves with the operating system's resolver.
    pub fn system(policy: UrlPolicy) -> Self {
        Self::new(policy, Arc::new(SystemLookup))
    }

    /// Resolves with any [`HostLookup`].
    pub fn new(policy: UrlPolicy, lookup: Arc<dyn HostLookup>) -> Self {
        Self { policy, lookup }
    }

    /// Resolves `host` and keeps only the addresses the policy allows.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use provider_adapters::webhook::ssrf::{GuardedResolver, StaticLookup, UrlPolicy};
    /// use std::sync::Arc;
    /// let lookup = StaticLookup::default()
    ///     .with("mixed.example.com", ["10.0.0.7".parse().unwrap(), "93.184.215.14".parse().unwrap()]);
    /// let resolver = GuardedResolver::new(UrlPolicy::STRICT, Arc::new(lookup));
    /// let kept = resolver.resolve_allowed("mixed.example.com").await.unwrap();
    /// assert_eq!(kept, vec!["93.184.215.14".parse::<std::net::IpAddr>().unwrap()]);
    /// # }
    /// ```
    pub async fn resolve_allowed(&self, host: &str) -> Result<Vec<IpAddr>, ResolveError> {
        self.policy
            .check_name(host)
            .map_err(ResolveError::Refused)?;
        let resolved = self
            .lookup
            .lookup(host)
            .await
            .map_err(ResolveError::Lookup)?;
        if resolved.is_empty() {
            let no_address = io::Error::new(io::ErrorKind::NotFound, "no address for this name");
            return Err(ResolveError::Lookup(no_address));
        }
        let mut allowed = Vec::with_capacity(resolved.len());
        let mut refused = Vec::new();
        for address in resolved {
            match self.policy.check_ip(address) {
                Ok(()) => allowed.push(address),
                Err(class) => refused.push((unmap(address), class)),
            }
        }
        if allowed.is_empty() {
            return Err(ResolveError::Forbidden(ForbiddenResolution {
                host: host.to_owned(),
                refused,
            }));
        }
        Ok(allowed)
    }
}

/// Why [`GuardedResolver::resolve_allowed`] gave no address.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The name itself is refused.
    #[error(transparent)]
    Refused(UrlRefused),
    /// Every address is refused (or the name has none).
    #[error(transparent)]
    Forbidden(ForbiddenResolution),
    /// The lookup failed.
    #[error("dns lookup failed: {0}")]
    Lookup(io::Error),
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let resolver = self.clone();
        Box::pin(async move {
            let host = name.as_str();
            match resolver.resolve_allowed(host).await {
                Ok(addresses) => {
                    // Port 0 is replaced by the URL's port by the connector.
                    let sockets: Addrs = Box::new(
                        addresses
                            .into_iter()
                            .map(|address| SocketAddr::new(address, 0)),
                    );
                    Ok(sockets)
                }
                Err(ResolveError::Refused(refused)) => Err(refused.into()),
                Err(ResolveError::Forbidden(forbidden)) => Err(forbidden.into()),
                Err(ResolveError::Lookup(error)) => Err(error.into()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    fn refusal_class(policy: UrlPolicy, url: &str) -> Option<AddressClass> {
        match policy.validate(url) {
            Err(UrlRefused::ForbiddenAddress { class, .. }) => Some(class),
            _ => None,
        }
    }

    #[test]
    fn every_spelling_of_loopback_is_normalised_and_refused() {
        for url in [
            "http://127.0.0.1/",
            "http://2130706433/",
            "http://0177.0.0.1/",
            "http://0x7f000001/",
            "http://0x7f.0.0.1/",
            "http://127.1/",
            "http://017700000001/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://[0:0:0:0:0:ffff:7f00:0001]/",
        ] {
            assert_eq!(
                refusal_class(UrlPolicy::STRICT, url),
                Some(AddressClass::Loopback),
                "{url}"
            );
        }
    }

    #[test]
    fn allowing_loopback_lets_loopback_through_and_nothing_else_private() {
        let policy = UrlPolicy::LOOPBACK_ALLOWED;
        assert!(policy.validate("http://127.0.0.1:8080/hook").is_ok());
        assert!(policy.validate("http://[::1]:8080/hook").is_ok());
        assert!(policy.validate("http://localhost:8080/hook").is_ok());
        assert!(policy.validate("http://10.0.0.1/").is_err());
        assert!(policy.validate("http://169.254.169.254/").is_err());
        assert!(policy.validate("http://0.0.0.0/").is_err());
        assert!(policy.validate("http://[::]/").is_err());
        assert!(policy.validate("http://printer.local/").is_err());
    }

    #[test]
    fn metadata_endpoints_are_named_as_such() {
        assert_eq!(
            classify(ip("169.254.169.254")),
            Some(AddressClass::CloudMetadata)
        );
        assert_eq!(
            classify(ip("100.100.100.200")),
            Some(AddressClass::CloudMetadata)
        );
        assert_eq!(
            classify(ip("fd00:ec2::254")),
            Some(AddressClass::CloudMetadata)
        );
    }

    #[test]
    fn ranges_are_classified_at_their_edges() {
        let cases = [
            ("0.0.0.0", Some(AddressClass::Unspecified)),
            ("9.255.255.255", None),
            ("10.255.255.255", Some(AddressClass::Private)),
            ("100.63.255.255", None),
            ("100.64.0.0", Some(AddressClass::SharedAddressSpace)),
            ("100.127.255.255", Some(AddressClass::SharedAddressSpace)),
            ("100.128.0.0", None),
            ("172.15.255.255", None),
            ("172.16.0.0", Some(AddressClass::Private)),
            ("172.31.255.255", Some(AddressClass::Private)),
            ("172.32.0.0", None),
            ("192.0.2.1", Some(AddressClass::Documentation)),
            ("192.168.1.1", Some(AddressClass::Private)),
            ("198.18.0.1", Some(AddressClass::Benchmarking)),
            ("198.19.255.255", Some(AddressClass::Benchmarking)),
            ("198.20.0.0", None),
            ("198.51.100.7", Some(AddressClass::Documentation)),
            ("203.0.113.9", Some(AddressClass::Documentation)),
            ("224.0.0.1", Some(AddressClass::Multicast)),
            ("239.255.255.250", Some(AddressClass::Multicast)),
            ("240.0.0.1", Some(AddressClass::Reserved)),
            ("255.255.255.255", Some(AddressClass::Broadcast)),
            ("8.8.8.8", None),
            ("::", Some(AddressClass::Unspecified)),
            ("fe80::1", Some(AddressClass::LinkLocal)),
            ("febf::1", Some(AddressClass::LinkLocal)),
            ("fc00::1", Some(AddressClass::UniqueLocal)),
            ("fdff::1", Some(AddressClass::UniqueLocal)),
            ("ff02::1", Some(AddressClass::Multicast)),
            ("2001:db8::1", Some(AddressClass::Documentation)),
            ("3fff::1", Some(AddressClass::Documentation)),
            ("2001:2::1", Some(AddressClass::Benchmarking)),
            ("2001::1", Some(AddressClass::Reserved)),
            ("2002:7f00:1::1", Some(AddressClass::Reserved)),
            ("::7f00:1", Some(AddressClass::Reserved)),
            ("64:ff9b::a00:1", Some(AddressClass::Private)),
            ("64:ff9b::808:808", None),
            ("2606:4700:4700::1111", None),
            ("2a00:1450:4001::200e", None),
        ];
        for (text, expected) in cases {
            assert_eq!(classify(ip(text)), expected, "{text}");
        }
    }

    #[test]
    fn scheme_credentials_and_syntax_are_checked_before_the_host() {
        let policy = UrlPolicy::STRICT;
        assert!(matches!(
            policy.validate("ftp://hooks.example.com/"),
            Err(UrlRefused::Scheme(_))
        ));
        assert!(matches!(
            policy.validate("file:///etc/passwd"),
            Err(UrlRefused::Scheme(_))
        ));
        assert!(matches!(
            policy.validate("https://user:pass@hooks.example.com/"),
            Err(UrlRefused::Credentials)
        ));
        assert!(matches!(
            policy.validate("https://127.0.0.1:80@hooks.example.com/"),
            Err(UrlRefused::Credentials)
        ));
        assert!(matches!(
            policy.validate("not a url"),
            Err(UrlRefused::Unparsable(_))
        ));
        assert!(matches!(
            policy.validate("http://[fe80::1%25eth0]/"),
            Err(UrlRefused::Unparsable(_))
        ));
        assert!(matches!(
            policy.validate("https://hooks.example.com:0/"),
            Err(UrlRefused::NoHost)
        ));
        let long = format!("https://hooks.example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(matches!(
            policy.validate(&long),
            Err(UrlRefused::TooLong { .. })
        ));
    }

    #[test]
    fn private_names_are_refused_even_with_a_trailing_dot_or_capitals() {
        for url in [
            "http://localhost/",
            "http://LOCALHOST./",
            "http://api.localhost/",
            "http://metadata.google.internal/",
            "http://printer.local/",
            "http://router.home.arpa/",
            "http://db.localdomain/",
            "http://intranet/",
        ] {
            assert!(
                matches!(
                    UrlPolicy::STRICT.validate(url),
                    Err(UrlRefused::ForbiddenName { .. })
                ),
                "{url}"
            );
        }
        // A suffix match is on whole labels only.
        assert!(UrlPolicy::STRICT.check_name("notlocal.com").is_ok());
        assert!(
            UrlPolicy::STRICT
                .check_name("my-internal.example.com")
                .is_ok()
        );
    }

    #[test]
    fn public_urls_are_kept_in_normalised_form() {
        let url = UrlPolicy::STRICT.validate("https://Hooks.Example.com:443/a?b=c");
        assert_eq!(
            url.map(|url| url.as_str().to_owned()),
            Ok("https://hooks.example.com/a?b=c".to_owned())
        );
    }

    #[tokio::test]
    async fn the_resolver_drops_forbidden_addresses_and_fails_when_none_is_left() {
        let lookup = StaticLookup::default()
            .with("mixed.example.com", [ip("10.0.0.7"), ip("93.184.215.14")])
            .with("rebound.example.com", [ip("127.0.0.1"), ip("::1")]);
        let resolver = GuardedResolver::new(UrlPolicy::STRICT, Arc::new(lookup));
        let kept = resolver.resolve_allowed("mixed.example.com").await;
        assert_eq!(kept.ok(), Some(vec![ip("93.184.215.14")]));
        let refused = resolver.resolve_allowed("rebound.example.com").await;
        assert!(matches!(refused, Err(ResolveError::Forbidden(_))));
        let unknown = resolver.resolve_allowed("unknown.example.com").await;
        assert!(matches!(unknown, Err(ResolveError::Lookup(_))));
    }
}
