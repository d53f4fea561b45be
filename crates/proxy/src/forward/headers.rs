//! Header handling between client and upstream: hop-by-hop headers, `X-Forwarded-*`, upgrades.

use std::net::IpAddr;

use http::{
    HeaderMap, HeaderName, HeaderValue, Version,
    header::{CONNECTION, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE, TRANSFER_ENCODING, UPGRADE},
};

use crate::{
    filters::Scheme,
    forwarded::{FORWARDED, Forwarded, X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO},
    wire::tokens,
};

/// Headers that describe one connection and never travel through a proxy (RFC 9110 §7.6.1),
/// besides those the `Connection` header names. `Trailer` is not one of them: it announces the
/// trailer fields end to end (RFC 9110 §6.6.2), and an HTTP/1.1 client only gets trailer fields
/// that the response announced.
static HOP_BY_HOP: [HeaderName; 8] = [
    CONNECTION,
    TE,
    TRANSFER_ENCODING,
    UPGRADE,
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
];

/// A peer address as the value `X-Forwarded-For` gives it.
pub fn peer_value(peer: IpAddr) -> HeaderValue {
    HeaderValue::try_from(peer.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Whether `name` is one of the fields that only concern one connection (besides those a
/// `Connection` header names).
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name)
}

/// Removes hop-by-hop headers, including every header the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none: one pass over the names instead of a lookup per name.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    // Names the `Connection` header lists besides the usual `keep-alive` and `close` (rare:
    // the common case allocates nothing). `HeaderName::from_bytes` lowercases; a token that is
    // not a valid header name names nothing.
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .flat_map(|v| tokens(v.as_bytes()))
        .filter(|token| {
            !token.eq_ignore_ascii_case(b"keep-alive") && !token.eq_ignore_ascii_case(b"close")
        })
        .filter_map(|token| HeaderName::from_bytes(token).ok())
        .collect();
    for name in &named {
        headers.remove(name);
    }
    // Only the names present are removed: one lookup each, none for the absent ones.
    while let Some(name) = headers
        .keys()
        .find(|name| HOP_BY_HOP.contains(name))
        .cloned()
    {
        headers.remove(&name);
    }
}

/// The `Upgrade` header of an HTTP/1.1 request asking to switch to protocols the rule allows
/// (`allowed`, lower case: `websocket` unless the rule says otherwise), if the request is one.
/// An upgrade to anything else is refused here and the request is served as an ordinary one,
/// its `Upgrade` dropped with the other hop-by-hop fields: above all `h2c`, which would give
/// the client an HTTP/2 session with the backend past every route rule and policy (RFC 9110
/// §7.8 lets a server ignore an upgrade it does not want). Every protocol offered must be
/// allowed, by name (`websocket`) or by name and version (`foo/2`).
pub fn upgrade_request(
    version: Version,
    headers: &HeaderMap,
    allowed: &[String],
) -> Option<HeaderValue> {
    if version != Version::HTTP_11 || allowed.is_empty() {
        return None;
    }
    let asks = headers
        .get_all(CONNECTION)
        .iter()
        .any(|v| tokens(v.as_bytes()).any(|token| token.eq_ignore_ascii_case(b"upgrade")));
    let mut offered = headers.get_all(UPGRADE).iter();
    let upgrade = offered.next()?;
    let is_allowed = |protocol: &[u8]| {
        let name = protocol.split(|&b| b == b'/').next().unwrap_or_default();
        !name.eq_ignore_ascii_case(b"h2c")
            && allowed.iter().any(|a| {
                a.as_bytes().eq_ignore_ascii_case(protocol)
                    || a.as_bytes().eq_ignore_ascii_case(name)
            })
    };
    let permitted = offered.next().is_none()
        && tokens(upgrade.as_bytes()).next().is_some()
        && tokens(upgrade.as_bytes()).all(is_allowed);
    (asks && permitted).then(|| upgrade.clone())
}

/// The `X-Forwarded-For`, `-Proto` and `-Host` and the `Forwarded` (RFC 7239) fields for a
/// request from a peer whose address as a header value is `peer` ([`peer_value`], made once per
/// connection). Values from the client are kept (and `X-Forwarded-For` and `Forwarded`
/// extended) only when the peer is a trusted proxy; otherwise they are replaced, so a client
/// cannot spoof them. The client's fields that are replaced, or that have no replacement
/// (`X-Forwarded-Host` without a host), are removed from `headers`; the ones kept stay there.
pub fn forwarded(
    headers: &mut HeaderMap,
    peer: &HeaderValue,
    trusted: bool,
    scheme: Scheme,
    original_host: Option<HeaderValue>,
) -> Forwarded {
    let element = element(peer, scheme, original_host.as_ref());
    let mut fields = Forwarded {
        chain: Some(peer.clone()),
        proto: Some(HeaderValue::from_static(scheme.as_str())),
        host: original_host,
        elements: Some(element.clone()),
    };
    // Most requests carry none of them: one pass over the names finds which are there.
    let (mut has_for, mut has_proto, mut has_host, mut has_forwarded) =
        (false, false, false, false);
    for name in headers.keys() {
        has_for |= *name == X_FORWARDED_FOR;
        has_proto |= *name == X_FORWARDED_PROTO;
        has_host |= *name == X_FORWARDED_HOST;
        has_forwarded |= *name == FORWARDED;
    }
    if trusted && has_for {
        fields.chain = extended(headers, &X_FORWARDED_FOR, peer);
    }
    if trusted && has_forwarded {
        fields.elements = extended(headers, &FORWARDED, &element);
    }
    // A trusted proxy's own -Proto and -Host are kept as they are.
    if trusted && has_proto {
        fields.proto = None;
    }
    if trusted && has_host {
        fields.host = None;
    }
    // The client's fields that Portcullis replaces go.
    if has_for && fields.chain.is_some() {
        headers.remove(&X_FORWARDED_FOR);
    }
    if has_forwarded && fields.elements.is_some() {
        headers.remove(FORWARDED.clone());
    }
    if has_proto && fields.proto.is_some() {
        headers.remove(&X_FORWARDED_PROTO);
    }
    if has_host && !trusted {
        headers.remove(&X_FORWARDED_HOST);
    }
    fields
}

/// A trusted proxy's list field `name` (every line of it, in order) with `last` appended;
/// `None` when the result is no valid value (the proxy's field is then left as it is).
fn extended(headers: &HeaderMap, name: &HeaderName, last: &HeaderValue) -> Option<HeaderValue> {
    let mut joined = Vec::new();
    for value in headers.get_all(name) {
        joined.extend_from_slice(value.as_bytes());
        joined.extend_from_slice(b", ");
    }
    joined.extend_from_slice(last.as_bytes());
    HeaderValue::from_bytes(&joined).ok()
}

/// The gateway's own `Forwarded` element: `for=<peer>;proto=<scheme>[;host=<host>]`, an IPv6
/// address as `"[..]"` and a host that is not a token (a port, an IP literal) quoted (RFC 7239
/// §4, §6). The host was validated before routing, so it holds no `"` or `\`.
fn element(peer: &HeaderValue, scheme: Scheme, host: Option<&HeaderValue>) -> HeaderValue {
    let peer = peer.as_bytes();
    let mut out = Vec::with_capacity(48);
    if peer.contains(&b':') {
        out.extend_from_slice(b"for=\"[");
        out.extend_from_slice(peer);
        out.extend_from_slice(b"]\"");
    } else {
        out.extend_from_slice(b"for=");
        out.extend_from_slice(peer);
    }
    out.extend_from_slice(b";proto=");
    out.extend_from_slice(scheme.as_str().as_bytes());
    if let Some(host) = host {
        let host = host.as_bytes();
        let token = host.iter().all(|&b| portcullis_config::is_tchar(b));
        out.extend_from_slice(b";host=");
        if !token {
            out.push(b'"');
        }
        out.extend_from_slice(host);
        if !token {
            out.push(b'"');
        }
    }
    HeaderValue::from_bytes(&out).unwrap_or_else(|_| HeaderValue::from_static("for=unknown"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::field_pairs;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn hop_by_hop_headers_and_connection_named_headers_are_removed() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers"),
            ("x-kept", "yes"),
        ]);
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert_eq!(h["x-kept"], "yes");
    }

    #[test]
    fn connection_names_are_matched_whatever_their_case_and_spacing() {
        let mut h = map(&[
            ("connection", " X-Secret ,,Close"),
            ("x-secret", "1"),
            ("x-kept", "yes"),
        ]);
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert_eq!(h["x-kept"], "yes");
        let mut untouched = map(&[("x-kept", "yes"), ("content-length", "2")]);
        strip_hop_by_hop(&mut untouched);
        assert_eq!(untouched.len(), 2);
    }

    #[test]
    fn untrusted_client_forwarded_headers_are_replaced() {
        let mut h = map(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil"),
        ]);
        let peer: IpAddr = "203.0.113.1".parse().expect("ip");
        forwarded(
            &mut h,
            &peer_value(peer),
            false,
            Scheme::Http,
            Some(HeaderValue::from_static("shop.example")),
        )
        .apply(&mut h);
        assert_eq!(h["x-forwarded-for"], "203.0.113.1");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "shop.example");
    }

    #[test]
    fn forwarded_fields_travel_beside_the_map_and_spoofed_ones_leave_it() {
        let mut h = map(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-host", "evil"),
            ("x-kept", "yes"),
        ]);
        let peer = peer_value("203.0.113.1".parse().expect("ip"));
        let fields = forwarded(&mut h, &peer, false, Scheme::Https, None);
        let left: Vec<&str> = h.keys().map(|n| n.as_str()).collect();
        assert_eq!(left, ["x-kept"]);
        assert_eq!(
            field_pairs(fields.fields()),
            [
                ("x-forwarded-for", "203.0.113.1"),
                ("x-forwarded-proto", "https"),
                ("forwarded", "for=203.0.113.1;proto=https"),
            ]
        );
    }

    #[test]
    fn trusted_proxy_forwarded_headers_are_extended() {
        let mut h = map(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "shop.example"),
        ]);
        let peer: IpAddr = "10.0.0.2".parse().expect("ip");
        let fields = forwarded(
            &mut h,
            &peer_value(peer),
            true,
            Scheme::Http,
            Some(HeaderValue::from_static("inner.example")),
        );
        // The proxy's -Proto and -Host stay in the map and nothing replaces them.
        assert!(
            fields.proto.is_none() && fields.host.is_none(),
            "{fields:?}"
        );
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "shop.example");
        fields.apply(&mut h);
        assert_eq!(h["x-forwarded-for"], "1.1.1.1, 10.0.0.2");
        assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "shop.example");
    }

    #[test]
    fn a_trusted_proxy_without_forwarded_fields_gets_the_gateways() {
        let mut h = map(&[("x-kept", "yes")]);
        let peer = peer_value("10.0.0.2".parse().expect("ip"));
        let fields = forwarded(&mut h, &peer, true, Scheme::Https, None);
        assert_eq!(h.len(), 1);
        assert_eq!(
            field_pairs(fields.fields()),
            [
                ("x-forwarded-for", "10.0.0.2"),
                ("x-forwarded-proto", "https"),
                ("forwarded", "for=10.0.0.2;proto=https"),
            ]
        );
    }

    #[test]
    fn a_forwarded_field_is_replaced_from_a_client_and_extended_from_a_trusted_proxy() {
        // RFC 7239: from an untrusted peer, only the gateway's element reaches the backend.
        let mut h = map(&[
            ("forwarded", "for=6.6.6.6;host=evil"),
            ("forwarded", "for=7.7.7.7"),
        ]);
        let peer = peer_value("2001:db8::1".parse().expect("ip"));
        let host = HeaderValue::from_static("shop.example:8443");
        forwarded(&mut h, &peer, false, Scheme::Https, Some(host.clone())).apply(&mut h);
        assert_eq!(
            h.get_all("forwarded").iter().collect::<Vec<_>>(),
            [r#"for="[2001:db8::1]";proto=https;host="shop.example:8443""#]
        );
        // From a trusted proxy, its elements stay, in order, and the gateway's follows.
        let mut h = map(&[
            ("forwarded", "for=192.0.2.60;proto=https"),
            ("forwarded", "for=198.51.100.17"),
        ]);
        let peer = peer_value("10.0.0.2".parse().expect("ip"));
        let host = HeaderValue::from_static("shop.example");
        forwarded(&mut h, &peer, true, Scheme::Http, Some(host)).apply(&mut h);
        assert_eq!(
            h["forwarded"],
            "for=192.0.2.60;proto=https, for=198.51.100.17, for=10.0.0.2;proto=http;host=shop.example"
        );
    }

    #[test]
    fn websocket_upgrade_is_recognized() {
        let websocket = ["websocket".to_owned()];
        let h = map(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
        ]);
        assert!(upgrade_request(Version::HTTP_11, &h, &websocket).is_some());
        assert!(upgrade_request(Version::HTTP_2, &h, &websocket).is_none());
        assert!(
            upgrade_request(Version::HTTP_11, &h, &[]).is_none(),
            "[] allows none"
        );
        let no_connection = map(&[("upgrade", "websocket")]);
        assert!(upgrade_request(Version::HTTP_11, &no_connection, &websocket).is_none());
        for other in ["h2c", "websocket, h2c", "h2c, websocket", "TLS/1.0", ""] {
            let asked = map(&[("connection", "upgrade"), ("upgrade", other)]);
            assert!(
                upgrade_request(Version::HTTP_11, &asked, &websocket).is_none(),
                "{other:?} is not tunnelled"
            );
        }
        let shouted = map(&[("connection", "Upgrade"), ("upgrade", "WebSocket")]);
        assert!(upgrade_request(Version::HTTP_11, &shouted, &websocket).is_some());
    }

    #[test]
    fn a_rule_may_allow_other_protocols_but_never_h2c() {
        let allowed = ["mqtt".to_owned(), "foo/2".to_owned(), "h2c".to_owned()];
        let asking = |protocol: &'static str| {
            let h = map(&[("connection", "upgrade"), ("upgrade", protocol)]);
            upgrade_request(Version::HTTP_11, &h, &allowed).is_some()
        };
        assert!(asking("mqtt"));
        assert!(asking("MQTT/5"), "by name, any version");
        assert!(asking("foo/2"));
        assert!(!asking("foo/3"), "by name and version");
        assert!(!asking("websocket"), "not in the rule's list");
        assert!(!asking("h2c"), "never, even when listed");
    }
}
