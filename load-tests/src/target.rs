//! Where the load goes: a server on this machine only. Load is never sent anywhere but
//! the loopback interface, so a mistyped URL cannot turn a benchmark into an attack.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use anyhow::{Context, bail};

/// A checked base URL of a server on the loopback interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `http://host:port`, without a trailing slash.
    pub base_url: String,
    /// The socket address it resolves to (for raw connections).
    pub address: SocketAddr,
    /// The `Host` header value.
    pub host_header: String,
}

impl Target {
    /// Parses `url` and refuses it unless its host is a loopback address (`127.0.0.0/8`,
    /// `::1`) or `localhost`, and its scheme is `http`.
    ///
    /// ```text
    /// Target::parse("http://127.0.0.1:8080")  -> ok
    /// Target::parse("http://10.0.0.5:8080")   -> refused
    /// ```
    pub fn parse(url: &str) -> anyhow::Result<Target> {
        let parsed: http::Uri = url
            .parse()
            .with_context(|| format!("`{url}` is not a URL"))?;
        match parsed.scheme_str() {
            Some("http") => {}
            Some(other) => bail!("only http:// is supported (got `{other}://`)"),
            None => bail!("`{url}` has no scheme; use http://127.0.0.1:PORT"),
        }
        let host = parsed
            .host()
            .with_context(|| format!("`{url}` has no host"))?;
        if parsed.path() != "/" && !parsed.path().is_empty() {
            bail!(
                "give the server's base URL without a path (got `{}`)",
                parsed.path()
            );
        }
        let port = parsed.port_u16().unwrap_or(80);
        let bare_host = host.trim_start_matches('[').trim_end_matches(']');
        let address = if bare_host.eq_ignore_ascii_case("localhost") {
            SocketAddr::from(([127, 0, 0, 1], port))
        } else {
            let ip: IpAddr = bare_host.parse().with_context(|| {
                format!("`{host}` is not a loopback address; load tests only target 127.0.0.0/8, ::1 or localhost")
            })?;
            SocketAddr::new(ip, port)
        };
        if !address.ip().is_loopback() {
            bail!(
                "refusing to send load to {}: load tests only target this machine's loopback interface (127.0.0.0/8, ::1, localhost)",
                address.ip()
            );
        }
        // Make sure the resolver agrees (it does for literals; this guards `localhost`).
        let resolved = (bare_host, port)
            .to_socket_addrs()
            .map(|mut addresses| addresses.all(|a| a.ip().is_loopback()))
            .unwrap_or(true);
        if !resolved {
            bail!("`{host}` resolves to a non-loopback address; refusing");
        }
        let host_header = match parsed.port_u16() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        Ok(Target {
            base_url: format!("http://{host_header}"),
            address,
            host_header,
        })
    }

    /// The full URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_addresses_and_localhost_are_accepted() {
        for url in [
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8080/",
            "http://127.1.2.3:9000",
            "http://localhost:8080",
            "http://[::1]:8080",
        ] {
            let target = Target::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert!(target.address.ip().is_loopback());
        }
        let target = Target::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!(target.base_url, "http://127.0.0.1:8080");
        assert_eq!(target.url("/readyz"), "http://127.0.0.1:8080/readyz");
    }

    #[test]
    fn any_other_host_is_refused() {
        for url in [
            "http://10.0.0.5:8080",
            "http://192.168.1.1",
            "http://8.8.8.8:80",
            "http://example.com:8080",
            "https://127.0.0.1:8080",
            "127.0.0.1:8080",
            "http://127.0.0.1:8080/v1",
        ] {
            assert!(Target::parse(url).is_err(), "{url} should be refused");
        }
    }
}
