//! The outbound network policy (SSRF guard): every URL the gateway fetches — connector servers,
//! OAuth endpoints, discovery and registration URLs — goes through it.
//!
//! Two checks, so DNS rebinding cannot slip between them: [`NetPolicy::check_url`] refuses a
//! scheme that is not allowed and an IP-literal host in a forbidden range (the `url` crate has
//! already normalised decimal, octal and hex IPv4 forms such as `0x7f.1`), and the resolver
//! installed into every HTTP client ([`NetPolicy::client_builder`]) drops forbidden addresses at
//! connect time, so a name that resolved public when checked and private when connecting is
//! still refused. Redirects are not followed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// Why an outbound URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("scheme `{0}` is not allowed for outbound requests")]
    Scheme(String),
    #[error("URL has no host")]
    NoHost,
    #[error("destination address {0} is not allowed (private, loopback, link-local or reserved)")]
    Address(IpAddr),
    #[error("host `{0}` resolves to no allowed address")]
    Resolved(String),
}

/// An allow-list entry: a network (`10.0.0.0/8`, `::1/128`, a bare IP) or a host name.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Allow {
    Net(IpAddr, u8),
    Host(String),
}

/// The outbound policy. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct NetPolicy {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    allow: Vec<Allow>,
    allow_http: bool,
}

impl NetPolicy {
    /// `allow`: networks (CIDR or bare IP) and host names exempt from the address check;
    /// `allow_http`: whether plain `http` is allowed besides `https`.
    pub fn new(allow: &[String], allow_http: bool) -> Result<Self, String> {
        let allow = allow
            .iter()
            .map(|s| parse_allow(s.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            inner: Arc::new(Inner { allow, allow_http }),
        })
    }

    /// A policy that allows everything (for unit tests of other modules).
    pub fn permissive() -> Self {
        Self::new(&["0.0.0.0/0".into(), "::/0".into()], true).unwrap_or_default()
    }

    /// Checks a URL before a request: scheme, and the address when the host is an IP literal.
    pub fn check_url(&self, url: &url::Url) -> Result<(), Refused> {
        match url.scheme() {
            "https" => {}
            "http" if self.inner.allow_http => {}
            other => return Err(Refused::Scheme(other.to_owned())),
        }
        match url.host() {
            None => Err(Refused::NoHost),
            Some(url::Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip)),
            Some(url::Host::Domain(_)) => Ok(()),
        }
    }

    /// Parses and checks a URL given as text.
    pub fn parse_url(&self, text: &str) -> Result<url::Url, String> {
        let url = url::Url::parse(text).map_err(|e| format!("invalid URL `{text}`: {e}"))?;
        self.check_url(&url).map_err(|e| e.to_string())?;
        Ok(url)
    }

    fn host_allowed(&self, host: &str) -> bool {
        self.inner
            .allow
            .iter()
            .any(|a| matches!(a, Allow::Host(h) if h.eq_ignore_ascii_case(host)))
    }

    /// Whether an address may be connected to.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Refused> {
        let allowed = self.inner.allow.iter().any(|a| match a {
            Allow::Net(net, prefix) => in_net(ip, *net, *prefix),
            Allow::Host(_) => false,
        });
        if allowed || is_public(ip) {
            Ok(())
        } else {
            Err(Refused::Address(ip))
        }
    }

    /// A `hyper-util` TCP connector with this policy's resolver, `TCP_NODELAY` and a connect
    /// timeout (the relay's upstream client wraps it in TLS).
    pub fn http_connector(
        &self,
        connect_timeout: std::time::Duration,
    ) -> hyper_util::client::legacy::connect::HttpConnector<GuardedResolver> {
        let mut c = hyper_util::client::legacy::connect::HttpConnector::new_with_resolver(
            GuardedResolver::system(self.clone()),
        );
        c.enforce_http(false);
        c.set_nodelay(true);
        c.set_connect_timeout(Some(connect_timeout));
        c
    }

    /// A `reqwest` client builder with this policy's resolver, no redirects, no proxies from
    /// the environment and `TCP_NODELAY`.
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .dns_resolver(Arc::new(GuardedResolver::system(self.clone())))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .tcp_nodelay(true)
    }
}

/// Whether a `reqwest` error was caused by this policy (a refused destination).
pub fn refused_in(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(r) = e.downcast_ref::<Refused>() {
            return Some(r.to_string());
        }
        cur = e.source();
    }
    None
}

/// An error and its causes, `: `-joined, for a log line ("client error (Connect): dns error:
/// failed to lookup address information: …" rather than "error sending request").
pub fn cause_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let text = e.to_string();
        // Some errors repeat their source in their own text.
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = e.source();
    }
    out
}

type Lookup = Arc<
    dyn Fn(String) -> futures_util::future::BoxFuture<'static, std::io::Result<Vec<SocketAddr>>>
        + Send
        + Sync,
>;

/// Resolves with the system resolver (or, in tests, any lookup) and keeps only the addresses
/// the policy allows — on every connection, so each answer is judged afresh.
#[derive(Clone)]
pub struct GuardedResolver {
    policy: NetPolicy,
    lookup: Lookup,
}

impl GuardedResolver {
    fn system(policy: NetPolicy) -> Self {
        Self {
            policy,
            lookup: Arc::new(|host: String| {
                Box::pin(
                    async move { Ok(tokio::net::lookup_host((host.as_str(), 0)).await?.collect()) },
                )
            }),
        }
    }
}

impl GuardedResolver {
    /// The addresses of `host` this policy allows (an error naming the host when none is).
    fn allowed_addrs(
        &self,
        host: String,
    ) -> futures_util::future::BoxFuture<'static, Result<Vec<SocketAddr>, BoxError>> {
        let policy = self.policy.clone();
        let lookup = self.lookup.clone();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = lookup(host.clone()).await?;
            if policy.host_allowed(&host) {
                return Ok(addrs);
            }
            let allowed: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|a| policy.check_ip(a.ip()).is_ok())
                .collect();
            if allowed.is_empty() {
                return Err(Box::new(Refused::Resolved(host)) as BoxError);
            }
            Ok(allowed)
        })
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let addrs = self.allowed_addrs(name.as_str().to_owned());
        Box::pin(async move { Ok(Box::new(addrs.await?.into_iter()) as reqwest::dns::Addrs) })
    }
}

/// The same resolver for a `hyper-util` connector (the relay's upstream client).
impl tower::Service<hyper_util::client::legacy::connect::dns::Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = BoxError;
    type Future = futures_util::future::BoxFuture<'static, Result<Self::Response, BoxError>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: hyper_util::client::legacy::connect::dns::Name) -> Self::Future {
        let addrs = self.allowed_addrs(name.as_str().to_owned());
        Box::pin(async move { Ok(addrs.await?.into_iter()) })
    }
}

fn parse_allow(s: &str) -> Result<Allow, String> {
    if let Some((ip, prefix)) = s.split_once('/') {
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| format!("`{s}`: not an IP network"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| format!("`{s}`: prefix must be 0–{max}"))?;
        return Ok(Allow::Net(ip, prefix));
    }
    if let Ok(ip) = s.trim_matches(['[', ']']).parse::<IpAddr>() {
        let prefix = if ip.is_ipv4() { 32 } else { 128 };
        return Ok(Allow::Net(ip, prefix));
    }
    if s.is_empty()
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return Err(format!(
            "`{s}`: expected a CIDR network, an IP or a host name"
        ));
    }
    Ok(Allow::Host(s.to_ascii_lowercase()))
}

fn in_net(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => masked4(a, prefix) == masked4(n, prefix),
        (IpAddr::V6(a), IpAddr::V6(n)) => masked6(a, prefix) == masked6(n, prefix),
        (IpAddr::V6(a), IpAddr::V4(_)) => {
            embedded_v4(a).is_some_and(|v4| in_net(v4.into(), net, prefix))
        }
        (IpAddr::V4(_), IpAddr::V6(_)) => false,
    }
}

fn masked4(a: Ipv4Addr, prefix: u8) -> u32 {
    let bits = u32::from(a);
    if prefix == 0 {
        0
    } else {
        bits & (u32::MAX << (32 - u32::from(prefix)))
    }
}

fn masked6(a: Ipv6Addr, prefix: u8) -> u128 {
    let bits = u128::from(a);
    if prefix == 0 {
        0
    } else {
        bits & (u128::MAX << (128 - u32::from(prefix)))
    }
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`)
/// or NAT64 (`64:ff9b::a.b.c.d`) IPv6 address.
fn embedded_v4(a: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = a.segments();
    let tail = Ipv4Addr::new(
        (s[6] >> 8) as u8,
        (s[6] & 0xff) as u8,
        (s[7] >> 8) as u8,
        (s[7] & 0xff) as u8,
    );
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(tail),
        [0, 0, 0, 0, 0, 0, hi, _] if hi != 0 => Some(tail),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(tail),
        _ => None,
    }
}

/// Publicly routable unicast: not loopback, private, shared (CGNAT), link-local (cloud
/// metadata lives there), multicast, broadcast, documentation, benchmarking or reserved.
fn is_public(ip: IpAddr) -> bool {
    const V4_BLOCKED: &[([u8; 4], u8)] = &[
        ([0, 0, 0, 0], 8),
        ([10, 0, 0, 0], 8),
        ([100, 64, 0, 0], 10),
        ([127, 0, 0, 0], 8),
        ([169, 254, 0, 0], 16),
        ([172, 16, 0, 0], 12),
        ([192, 0, 0, 0], 24),
        ([192, 0, 2, 0], 24),
        ([192, 88, 99, 0], 24),
        ([192, 168, 0, 0], 16),
        ([198, 18, 0, 0], 15),
        ([198, 51, 100, 0], 24),
        ([203, 0, 113, 0], 24),
        ([224, 0, 0, 0], 4),
        ([240, 0, 0, 0], 4),
    ];
    const V6_BLOCKED: &[(u128, u8)] = &[
        (0, 128),                                        // unspecified
        (1, 128),                                        // loopback
        (0x0100_0000_0000_0000_0000_0000_0000_0000, 64), // discard
        (0x2001_0db8_0000_0000_0000_0000_0000_0000, 32), // documentation
        (0xfc00_0000_0000_0000_0000_0000_0000_0000, 7),  // unique local (incl. AWS fd00:ec2::254)
        (0xfe80_0000_0000_0000_0000_0000_0000_0000, 10), // link-local
        (0xfec0_0000_0000_0000_0000_0000_0000_0000, 10), // site-local (deprecated)
        (0xff00_0000_0000_0000_0000_0000_0000_0000, 8),  // multicast
    ];
    match ip {
        IpAddr::V4(a) => !V4_BLOCKED
            .iter()
            .any(|(n, p)| in_net(a.into(), Ipv4Addr::from(*n).into(), *p)),
        IpAddr::V6(a) => {
            if let Some(v4) = embedded_v4(a) {
                return is_public(v4.into());
            }
            // 6to4 (2002::/16) carries an IPv4 address in bits 16..48.
            let bits = u128::from(a);
            if bits >> 112 == 0x2002 {
                let v4 = Ipv4Addr::from(((bits >> 80) & 0xffff_ffff) as u32);
                return is_public(v4.into());
            }
            !V6_BLOCKED
                .iter()
                .any(|(n, p)| in_net(a.into(), Ipv6Addr::from(*n).into(), *p))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cause_chains_name_the_root_cause_once() {
        let root = std::io::Error::other("failed to lookup address information");
        let outer = std::io::Error::other(Wrapped(root));
        assert_eq!(
            cause_chain(&outer),
            "dns error: failed to lookup address information"
        );
        #[derive(Debug)]
        struct Wrapped(std::io::Error);
        impl std::fmt::Display for Wrapped {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("dns error")
            }
        }
        impl std::error::Error for Wrapped {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
    }

    fn url(s: &str) -> url::Url {
        url::Url::parse(s).unwrap()
    }

    #[test]
    fn forbidden_literals_are_refused_with_an_empty_allow_list() {
        let p = NetPolicy::new(&[], true).unwrap();
        for bad in [
            "http://127.0.0.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://[::ffff:127.0.0.1]/",
            "http://0x7f.1/",
            "http://2130706433/",
            "http://0177.0.0.1/",
            "http://[::1]:8080/",
            "http://10.1.2.3/",
            "http://192.168.1.1/",
            "http://172.20.0.1/",
            "http://100.100.100.200/",
            "http://[fd00:ec2::254]/",
            "http://[fe80::1]/",
            "http://0.0.0.0/",
            "http://[::]/",
            "http://224.0.0.1/",
            "http://[64:ff9b::7f00:1]/",
            "http://[2002:7f00:1::]/",
        ] {
            assert!(
                matches!(p.check_url(&url(bad)), Err(Refused::Address(_))),
                "{bad}"
            );
        }
        for good in [
            "http://8.8.8.8/",
            "https://[2606:4700::1111]/",
            "https://example.com/",
        ] {
            assert_eq!(p.check_url(&url(good)), Ok(()), "{good}");
        }
    }

    #[test]
    fn schemes() {
        let https_only = NetPolicy::new(&[], false).unwrap();
        assert!(matches!(
            https_only.check_url(&url("http://example.com/")),
            Err(Refused::Scheme(_))
        ));
        for bad in ["ftp://example.com/", "file:///etc/passwd", "gopher://x/"] {
            assert!(https_only.check_url(&url(bad)).is_err(), "{bad}");
        }
        assert_eq!(https_only.check_url(&url("https://example.com/")), Ok(()));
    }

    #[test]
    fn allow_list_admits_networks_and_ips() {
        let p = NetPolicy::new(
            &["127.0.0.0/8".into(), "::1".into(), "10.2.0.0/16".into()],
            true,
        )
        .unwrap();
        assert_eq!(p.check_url(&url("http://127.0.0.1:9/")), Ok(()));
        assert_eq!(p.check_url(&url("http://0x7f.1/")), Ok(()));
        assert_eq!(p.check_url(&url("http://[::ffff:127.0.0.1]/")), Ok(()));
        assert_eq!(p.check_url(&url("http://[::1]/")), Ok(()));
        assert_eq!(p.check_url(&url("http://10.2.9.9/")), Ok(()));
        assert!(p.check_url(&url("http://10.3.0.1/")).is_err());
        assert!(p.check_url(&url("http://169.254.169.254/")).is_err());
        assert!(NetPolicy::new(&["10.0.0.0/33".into()], true).is_err());
        assert!(NetPolicy::new(&["bad host!".into()], true).is_err());
    }

    #[tokio::test]
    async fn resolver_refuses_names_that_resolve_private() {
        use reqwest::dns::Resolve;
        let strict = GuardedResolver::system(NetPolicy::new(&[], true).unwrap());
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let err = strict.resolve(name).await.err().expect("refused");
        assert!(err.to_string().contains("localhost"), "{err}");

        let by_host = GuardedResolver::system(NetPolicy::new(&["localhost".into()], true).unwrap());
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        assert!(by_host.resolve(name).await.is_ok());
        let by_net = GuardedResolver::system(
            NetPolicy::new(&["127.0.0.0/8".into(), "::1".into()], true).unwrap(),
        );
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        assert!(by_net.resolve(name).await.is_ok());
    }

    #[tokio::test]
    async fn a_name_that_rebinds_to_a_private_address_is_refused_at_connect_time() {
        use reqwest::dns::Resolve;
        use std::sync::atomic::{AtomicUsize, Ordering};
        // First answer public, every later one loopback: a DNS rebinding attack.
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let resolver = GuardedResolver {
            policy: NetPolicy::new(&[], true).unwrap(),
            lookup: Arc::new(move |_host: String| {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                Box::pin(async move {
                    let ip: IpAddr = if n == 0 {
                        "93.184.216.34".parse().unwrap()
                    } else {
                        "127.0.0.1".parse().unwrap()
                    };
                    Ok(vec![SocketAddr::new(ip, 0)])
                })
            }),
        };
        let name = || "rebind.example".parse::<reqwest::dns::Name>().unwrap();
        let first: Vec<SocketAddr> = resolver.resolve(name()).await.unwrap().collect();
        assert_eq!(first[0].ip().to_string(), "93.184.216.34");
        let second = resolver.resolve(name()).await;
        assert!(second.is_err(), "the private answer must be refused");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
