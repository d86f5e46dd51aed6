//! Where alerts may be posted. A webhook URL is typed by an operator, but it is still a request
//! Faultline makes from inside the network: without a guard, a URL naming a loopback, private,
//! link-local or cloud-metadata address would let anyone who can add a channel probe them.
//! Every name is resolved through [`GuardedResolver`], so a name that resolves to a public
//! address when saved and to a private one when sent (DNS rebinding) is refused too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Why a webhook URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefusedTarget {
    #[error("the webhook URL is not a valid http:// or https:// address")]
    NotHttp,
    #[error("the webhook URL points to a private, loopback or link-local address ({0}); set FAULTLINE_ALLOW_PRIVATE_WEBHOOKS=true to allow it")]
    Private(IpAddr),
    #[error("the webhook's host name does not resolve")]
    Unresolved,
}

/// Checks a URL's form, and its host when it is an IP address (names are checked as they
/// are resolved, by [`GuardedResolver`]).
pub fn check_url(url: &str, allow_private: bool) -> Result<reqwest::Url, RefusedTarget> {
    let parsed = reqwest::Url::parse(url).map_err(|_| RefusedTarget::NotHttp)?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(RefusedTarget::NotHttp);
    }
    match literal_ip(&parsed) {
        Some(ip) if !allow_private && is_private(ip) => Err(RefusedTarget::Private(ip)),
        _ => Ok(parsed),
    }
}

/// The URL's host when it is an IP address (`[…]` around IPv6 in URLs).
fn literal_ip(url: &reqwest::Url) -> Option<IpAddr> {
    let host = url.host_str()?;
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// Resolves a URL's host now and checks every address (for refusing a channel when it is
/// saved; sending checks again through the resolver).
pub async fn check_resolved(url: &str, allow_private: bool) -> Result<(), RefusedTarget> {
    let parsed = check_url(url, allow_private)?;
    if allow_private || literal_ip(&parsed).is_some() {
        return Ok(());
    }
    let host = parsed.host_str().unwrap_or_default();
    let port = parsed.port_or_known_default().unwrap_or(443);
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|_| RefusedTarget::Unresolved)?
        .collect();
    refuse_private(&addrs).map(|_| ())
}

fn refuse_private(addrs: &[SocketAddr]) -> Result<&[SocketAddr], RefusedTarget> {
    match addrs.iter().find(|a| is_private(a.ip())) {
        Some(a) => Err(RefusedTarget::Private(a.ip())),
        None if addrs.is_empty() => Err(RefusedTarget::Unresolved),
        None => Ok(addrs),
    }
}

/// The HTTP client's resolver: refuses a name when any of its addresses is not public.
pub struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            refuse_private(&addrs)?;
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// Not a public internet address: loopback, private, link-local (cloud metadata lives at
/// 169.254.169.254), carrier-grade NAT, unspecified, multicast, documentation, reserved.
/// An IPv6 address that carries an IPv4 one (mapped, compatible, NAT64, 6to4) is judged by
/// that one too: a gateway may deliver it to the IPv4 address.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_private_v4(v4),
        IpAddr::V6(v6) => is_private_v6(v6) || embedded_v4(v6).is_some_and(is_private_v4),
    }
}

/// The IPv4 address an IPv6 one carries: `::ffff:a.b.c.d` (mapped), `::a.b.c.d` (compatible,
/// deprecated), `64:ff9b::a.b.c.d` and `64:ff9b:1::/48` (NAT64), `2002:a.b.c.d::/16` (6to4).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let last_32 = || Ipv4Addr::from(((s[6] as u32) << 16) | s[7] as u32);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0, 0, 0, 0, 0, 0, _, _] => Some(last_32()),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(last_32()),
        [0x64, 0xff9b, 1, ..] => Some(last_32()),
        [0x2002, high, low, ..] => Some(Ipv4Addr::from(((high as u32) << 16) | low as u32)),
        _ => None,
    }
}

fn is_private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240
}

fn is_private_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        // Site-local (deprecated, but still routed inside some networks).
        || (first & 0xffc0) == 0xfec0
        || (first == 0x2001 && ip.segments()[1] == 0x0db8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_link_local_and_metadata_addresses_are_refused() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::a00:1",
            "2002:a00:1::1",
            "2002:7f00:1::",
            "fec0::1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "100.128.0.1",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn urls_are_checked_for_scheme_and_literal_addresses() {
        assert!(check_url("https://hooks.slack.com/services/x", false).is_ok());
        assert_eq!(
            check_url("http://169.254.169.254/latest/meta-data", false).unwrap_err(),
            RefusedTarget::Private("169.254.169.254".parse().unwrap())
        );
        assert!(check_url("http://[::1]:8080/hook", false).is_err());
        assert!(check_url("http://127.0.0.1:8080/hook", true).is_ok());
        assert_eq!(
            check_url("file:///etc/passwd", true).unwrap_err(),
            RefusedTarget::NotHttp
        );
        assert_eq!(
            check_url("not a url", true).unwrap_err(),
            RefusedTarget::NotHttp
        );
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_refused() {
        assert!(matches!(
            check_resolved("http://localhost:9/hook", false).await,
            Err(RefusedTarget::Private(_))
        ));
        assert!(check_resolved("http://localhost:9/hook", true)
            .await
            .is_ok());
    }
}
