//! Where deliveries may go. `https` only, unless the operator allows `http`; never to an
//! address in a loopback, private, link-local (cloud metadata), shared or otherwise non-public
//! range, unless the operator allows private targets. The name is resolved once per connection
//! by [`CheckedResolver`], which hands the HTTP client only addresses that passed, so the
//! connection goes where the check looked (no DNS rebinding between check and use).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// What the operator allows beyond public `https` targets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    pub allow_http: bool,
    pub allow_private: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    #[error("'{0}' is not an absolute URL")]
    NotAUrl(String),
    #[error("the scheme must be https (this server does not allow {0})")]
    Scheme(String),
    #[error("the URL has no host")]
    NoHost,
    #[error("the URL must not carry a user name or password")]
    Credentials,
    #[error("{0} is a loopback, private, link-local or otherwise non-public address")]
    Private(IpAddr),
    #[error("{0} does not resolve")]
    Unresolved(String),
    #[error("{0} resolves only to loopback, private, link-local or otherwise non-public addresses")]
    OnlyPrivate(String),
}

impl TargetPolicy {
    /// Checks a target URL as registered: its form, and where it leads now.
    pub async fn check(&self, url: &str) -> Result<Url, TargetError> {
        let parsed = self.check_form(url)?;
        match parsed.host() {
            Some(url::Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip))?,
            Some(url::Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip))?,
            Some(url::Host::Domain(name)) => {
                self.resolve(name).await?;
            }
            None => return Err(TargetError::NoHost),
        }
        Ok(parsed)
    }

    /// The URL's form: absolute, an allowed scheme, a host, no credentials.
    pub fn check_form(&self, url: &str) -> Result<Url, TargetError> {
        let parsed = Url::parse(url).map_err(|_| TargetError::NotAUrl(url.to_owned()))?;
        match parsed.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            other => return Err(TargetError::Scheme(other.to_owned())),
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(TargetError::Credentials);
        }
        if parsed.host().is_none() {
            return Err(TargetError::NoHost);
        }
        Ok(parsed)
    }

    pub fn check_ip(&self, ip: IpAddr) -> Result<(), TargetError> {
        if self.allow_private || is_public(ip) {
            Ok(())
        } else {
            Err(TargetError::Private(ip))
        }
    }

    /// The name's addresses that may be connected to; an error if there is none.
    pub async fn resolve(&self, name: &str) -> Result<Vec<SocketAddr>, TargetError> {
        let all: Vec<SocketAddr> = tokio::net::lookup_host((name, 0))
            .await
            .map_err(|_| TargetError::Unresolved(name.to_owned()))?
            .collect();
        if all.is_empty() {
            return Err(TargetError::Unresolved(name.to_owned()));
        }
        let allowed: Vec<SocketAddr> = all
            .into_iter()
            .filter(|a| self.check_ip(a.ip()).is_ok())
            .collect();
        if allowed.is_empty() {
            return Err(TargetError::OnlyPrivate(name.to_owned()));
        }
        Ok(allowed)
    }
}

/// The HTTP client's resolver: only addresses the policy allows.
pub struct CheckedResolver(pub TargetPolicy);

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0;
        Box::pin(async move {
            let addrs = policy
                .resolve(name.as_str())
                .await
                .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { Box::new(e) })?;
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

impl CheckedResolver {
    pub fn shared(policy: TargetPolicy) -> Arc<Self> {
        Arc::new(Self(policy))
    }
}

/// An address anyone on the internet could reach: not loopback, private, link-local (where
/// cloud metadata services live), shared (carrier-grade NAT), unspecified, broadcast,
/// multicast, documentation or reserved; IPv6 alike, and IPv4 inside IPv6 by its IPv4 rules.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local (fc00::/7)
                || (s[0] & 0xffc0) == 0xfe80 // link-local (fe80::/10)
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x0064 && s[1] == 0xff9b) // NAT64 (reaches IPv4 inside)
                || v6 == Ipv6Addr::UNSPECIFIED)
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, _, _] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space
        || (a == 192 && b == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_public_ranges_are_refused() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn targets_are_checked_by_form_and_by_address() {
        let strict = TargetPolicy::default();
        assert_eq!(
            strict.check("http://example.com/hook").await,
            Err(TargetError::Scheme("http".into()))
        );
        assert_eq!(
            strict.check("https://127.0.0.1/hook").await,
            Err(TargetError::Private("127.0.0.1".parse().unwrap()))
        );
        assert_eq!(
            strict.check("https://[::1]:8443/hook").await,
            Err(TargetError::Private("::1".parse().unwrap()))
        );
        assert_eq!(
            strict.check("https://localhost/hook").await,
            Err(TargetError::OnlyPrivate("localhost".into()))
        );
        assert_eq!(
            strict.check("https://user:pw@example.com/").await,
            Err(TargetError::Credentials)
        );
        assert!(matches!(
            strict.check("/relative").await,
            Err(TargetError::NotAUrl(_))
        ));
        let open = TargetPolicy {
            allow_http: true,
            allow_private: true,
        };
        assert!(open.check("http://127.0.0.1:9/hook").await.is_ok());
    }
}
