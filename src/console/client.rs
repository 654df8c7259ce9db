//! Who a request comes from: the TCP peer, or, when that peer is one of
//! `http.console_trusted_proxies`, the client its `X-Forwarded-For` names.
//! Rate limiting and the audit records use this address, so behind a
//! reverse proxy one bad client is limited alone instead of locking out
//! every operator, and a client cannot pick its address by forging the
//! header: entries are read from the right, where the proxies append, and
//! the first one that is not a trusted proxy is the client.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use axum::http::HeaderMap;

/// The address a request comes from, as worked out by the console's
/// middleware.
#[derive(Clone, Copy, Debug)]
pub struct Client(pub IpAddr);

/// An address block: `10.0.0.0/8`, `2001:db8::/32`, or one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{0}` is not an IP address or a CIDR block (like 10.0.0.0/8 or 2001:db8::/32)")]
pub struct CidrError(String);

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        let bad = || CidrError(s.to_owned());
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let network = addr.parse::<IpAddr>().map_err(|_| bad())?.to_canonical();
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(Cidr {
            network: masked(network, prefix),
            prefix,
        })
    }
}

/// `ip` with all but its first `prefix` bits cleared.
fn masked(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            // A shift by the whole width (prefix 0) leaves no bits.
            let bits = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & bits))
        }
        IpAddr::V6(v6) => {
            let bits = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & bits))
        }
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.network.is_ipv4() && masked(ip, self.prefix) == self.network
    }
}

/// The proxies whose forwarded addresses are believed.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    pub fn parse(list: &[String]) -> Result<TrustedProxies, CidrError> {
        list.iter()
            .map(|s| s.parse())
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// The client's address: `peer` unless it is a trusted proxy; then the
    /// right-most `X-Forwarded-For` entry (over all its header lines, in
    /// order) that is not a trusted proxy. An entry that is not an address
    /// ends the walk at the last proxy that vouched for it.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.trusts(client) {
            return client;
        }
        // Split as bytes: a client's non-ASCII entry must not hide the
        // entries its proxies appended after it.
        let hops: Vec<&[u8]> = headers
            .get_all("x-forwarded-for")
            .iter()
            .flat_map(|v| v.as_bytes().split(|b| *b == b','))
            .collect();
        for hop in hops.into_iter().rev() {
            let Some(ip) = std::str::from_utf8(hop)
                .ok()
                .and_then(|h| h.trim().parse::<IpAddr>().ok())
            else {
                return client;
            };
            client = ip.to_canonical();
            if !self.trusts(client) {
                return client;
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_and_blocks_parse() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains(ip("10.255.0.1")));
        assert!(!c.contains(ip("11.0.0.1")));
        // Host bits are cleared; one address is a /32 or /128.
        assert_eq!("10.1.2.3/8".parse::<Cidr>().unwrap(), c);
        let one: Cidr = "192.0.2.7".parse().unwrap();
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.1")) && !all.contains(ip("::1")));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:1::5")) && !v6.contains(ip("2001:db9::1")));
        assert!("::1".parse::<Cidr>().unwrap().contains(ip("::1")));
        // An IPv4 peer seen on an IPv6 socket is the IPv4 address.
        assert!(c.contains(ip("::ffff:10.0.0.1")));
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "x",
            "10.0.0.0/-1",
            "10.0.0.0/",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        let e = TrustedProxies::parse(&["10.0.0.0/8".into(), "nope".into()]).unwrap_err();
        assert!(e.to_string().contains("`nope`"), "{e}");
    }

    fn forwarded(lines: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append(
                "x-forwarded-for",
                axum::http::HeaderValue::from_bytes(l).unwrap(),
            );
        }
        h
    }

    #[test]
    fn the_client_is_the_right_most_untrusted_forwarded_address() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8".into(), "127.0.0.1".into()]).unwrap();
        let via_proxy = ip("10.0.0.5");
        let h = forwarded(&[b"198.51.100.1, 203.0.113.7, 10.0.0.9"]);
        assert_eq!(proxies.client(via_proxy, &h), ip("203.0.113.7"));
        // Over several header lines, in order.
        let h = forwarded(&[b"198.51.100.1", b"203.0.113.7", b"10.0.0.9"]);
        assert_eq!(proxies.client(via_proxy, &h), ip("203.0.113.7"));
        // Not from a trusted proxy: the header means nothing.
        assert_eq!(proxies.client(ip("192.0.2.1"), &h), ip("192.0.2.1"));
        // No header, or only proxies in it: the left-most proxy.
        assert_eq!(proxies.client(via_proxy, &HeaderMap::new()), via_proxy);
        let h = forwarded(&[b"127.0.0.1, 10.0.0.9"]);
        assert_eq!(proxies.client(via_proxy, &h), ip("127.0.0.1"));
        // Garbage stops the walk at the proxy that passed it on...
        let h = forwarded(&[b"203.0.113.7, garbage, 10.0.0.9"]);
        assert_eq!(proxies.client(via_proxy, &h), ip("10.0.0.9"));
        // ...but a client's garbage left of its proxy's entry changes nothing.
        let h = forwarded(&[b"\xff\xfe, 203.0.113.8, 10.0.0.9"]);
        assert_eq!(proxies.client(via_proxy, &h), ip("203.0.113.8"));
        // Nothing trusted: always the peer.
        let none = TrustedProxies::default();
        assert_eq!(none.client(via_proxy, &h), via_proxy);
        assert_eq!(none.client(ip("::ffff:192.0.2.1"), &h), ip("192.0.2.1"));
    }
}
