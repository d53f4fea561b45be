//! Who the client is: the socket peer, or — only when the peer is a configured trusted proxy —
//! the address that proxy reports in `X-Forwarded-For`. Anything else would let clients spoof
//! their address past rate limits and logs.

use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue};

/// `X-Forwarded-For`.
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`.
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// `Forwarded` (RFC 7239).
pub static FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// The `X-Forwarded-*` and `Forwarded` fields the gateway adds to an upstream request. They travel beside the
/// request's header map, not in it: the HTTP/1.1 writer appends them as they are, which spares
/// three header-map insertions per request, and the pooled client and mirrors get them
/// inserted ([`Forwarded::apply`]). `forward::forwarded` makes them.
#[derive(Debug, Clone, Default)]
pub struct Forwarded {
    /// `X-Forwarded-For`: the client addresses, the peer's last.
    pub chain: Option<HeaderValue>,
    /// `X-Forwarded-Proto`.
    pub proto: Option<HeaderValue>,
    /// `X-Forwarded-Host`.
    pub host: Option<HeaderValue>,
    /// `Forwarded` (RFC 7239): a trusted proxy's elements, then the gateway's own.
    pub elements: Option<HeaderValue>,
}

impl Forwarded {
    /// The fields to add, as name and value.
    pub fn fields(&self) -> impl Iterator<Item = (&'static HeaderName, &HeaderValue)> {
        [
            (&X_FORWARDED_FOR, &self.chain),
            (&X_FORWARDED_PROTO, &self.proto),
            (&X_FORWARDED_HOST, &self.host),
            (&FORWARDED, &self.elements),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name, value.as_ref()?)))
    }

    /// Puts the fields into `headers`, each replacing any of its name.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for (name, value) in self.fields() {
            headers.insert(name, value.clone());
        }
    }
}

/// CIDR ranges of proxies whose `X-Forwarded-*` headers are believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl TrustedProxies {
    /// Parses `10.0.0.0/8`, `192.168.1.7`, `::1/128`, ...
    pub fn parse<S: AsRef<str>>(ranges: &[S]) -> Result<Self, String> {
        let mut parsed = Vec::new();
        for range in ranges {
            let range = range.as_ref().trim();
            let (ip, bits) = match range.split_once('/') {
                Some((ip, bits)) => (ip, Some(bits)),
                None => (range, None),
            };
            let ip: IpAddr = ip
                .parse()
                .map_err(|_| format!("trusted proxy {range:?}: not an IP address or CIDR"))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                Some(bits) => bits
                    .parse::<u8>()
                    .ok()
                    .filter(|b| *b <= max)
                    .ok_or_else(|| format!("trusted proxy {range:?}: bad prefix length"))?,
                None => max,
            };
            parsed.push((ip, bits));
        }
        Ok(Self(parsed))
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|(net, bits)| in_range(ip, *net, *bits))
    }

    /// The client's address: walking `X-Forwarded-For` from the right past trusted proxies, the
    /// first untrusted address; the peer itself when it is not trusted.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.contains(peer) {
            return peer;
        }
        let mut client = peer;
        let hops = headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        for hop in hops.iter().rev() {
            let Ok(ip) = hop.parse::<IpAddr>() else {
                break;
            };
            client = ip;
            if !self.contains(ip) {
                break;
            }
        }
        client
    }
}

fn in_range(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", xff.parse().expect("value"));
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn untrusted_peer_cannot_spoof_its_address() {
        let trusted = TrustedProxies::parse(&["10.0.0.0/8"]).expect("parse");
        assert_eq!(
            trusted.client_ip(ip("203.0.113.9"), &headers("1.2.3.4")),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn trusted_proxy_reports_the_client() {
        let trusted = TrustedProxies::parse(&["10.0.0.0/8"]).expect("parse");
        let h = headers("1.2.3.4, 198.51.100.7, 10.1.2.3");
        assert_eq!(trusted.client_ip(ip("10.0.0.1"), &h), ip("198.51.100.7"));
    }

    #[test]
    fn cidr_ranges_and_single_addresses() {
        let t = TrustedProxies::parse(&["192.168.0.0/16", "::1", "0.0.0.0/0"]).expect("parse");
        assert!(t.contains(ip("192.168.44.1")));
        assert!(t.contains(ip("::1")));
        assert!(t.contains(ip("8.8.8.8")));
        assert!(TrustedProxies::parse(&["10.0.0.0/33"]).is_err());
        assert!(TrustedProxies::parse(&["nope"]).is_err());
    }
}
