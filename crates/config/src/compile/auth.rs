//! The `auth` policy: which credential a rule accepts, where it comes from, and what of it the
//! upstream receives.
//!
//! The CRD's schema and CEL rules refuse most bad values at `kubectl apply`; these checks repeat
//! the ones the data plane depends on, so that manifests that skipped the API server
//! (`portcullis run`, `portcullis check`) get the same answer, at the same field.

use portcullis_api::policy::{
    ApiKeyAuth, AuthPolicy, AuthType, BasicAuth, DEFAULT_API_KEY_HEADER, JwtAuth, SecretKeyRef,
    is_reserved_claim_header,
};

use super::{Ctx, Invalid};
use crate::{
    diagnostics::reason,
    snapshot::{ApiKeyLocation, AuthConfig, ClaimHeaderConfig, JwksConfig, SecretFile},
};

/// The largest clock skew a JWT rule may allow: beyond it an expired token stays good too long.
pub(crate) const MAX_JWT_LEEWAY_MS: u64 = 5 * 60 * 1000;

/// Compiles the `auth` policy written at `field`, with the consumers it admits (empty: all);
/// Secrets are looked up in `secret_namespace`.
pub(crate) fn auth(
    a: &AuthPolicy,
    ctx: &mut Ctx<'_>,
    field: &str,
    secret_namespace: &str,
) -> Result<(Option<AuthConfig>, Vec<String>), Invalid> {
    let consumers = allowed_consumers(a, ctx, field)?;
    Ok((config(a, ctx, field, secret_namespace)?, consumers))
}

/// `allowedConsumers`, sorted and without repeats.
fn allowed_consumers(
    a: &AuthPolicy,
    ctx: &mut Ctx<'_>,
    field: &str,
) -> Result<Vec<String>, Invalid> {
    let field = format!("{field}.allowedConsumers");
    if a.kind == AuthType::None && !a.allowed_consumers.is_empty() {
        ctx.error(
            field,
            reason::INVALID,
            "allowedConsumers needs an authentication type",
        );
        return Err(Invalid);
    }
    if let Some(i) = a
        .allowed_consumers
        .iter()
        .position(|c| c.is_empty() || c.len() > 256)
    {
        ctx.error(
            format!("{field}[{i}]"),
            reason::INVALID,
            "a consumer name must be 1 to 256 characters",
        );
        return Err(Invalid);
    }
    let mut consumers = a.allowed_consumers.clone();
    consumers.sort();
    consumers.dedup();
    Ok(consumers)
}

fn config(
    a: &AuthPolicy,
    ctx: &mut Ctx<'_>,
    field: &str,
    secret_namespace: &str,
) -> Result<Option<AuthConfig>, Invalid> {
    let missing = |ctx: &mut Ctx<'_>, key: &str, kind: &str| {
        ctx.error(
            format!("{field}.{key}"),
            reason::INVALID,
            format!("{key} must be set when type is {kind}"),
        );
        Invalid
    };
    Ok(match a.kind {
        AuthType::None => None,
        AuthType::ApiKey => {
            let k = a
                .api_key
                .as_ref()
                .ok_or_else(|| missing(ctx, "apiKey", "ApiKey"))?;
            Some(api_key(
                k,
                ctx,
                &format!("{field}.apiKey"),
                secret_namespace,
            )?)
        }
        AuthType::Jwt => {
            let j = a.jwt.as_ref().ok_or_else(|| missing(ctx, "jwt", "JWT"))?;
            Some(jwt(j, ctx, &format!("{field}.jwt"), secret_namespace)?)
        }
        AuthType::Basic => {
            let b = a
                .basic
                .as_ref()
                .ok_or_else(|| missing(ctx, "basic", "Basic"))?;
            Some(basic(b, secret_namespace))
        }
    })
}

fn secret(namespace: &str, r: &SecretKeyRef) -> SecretFile {
    SecretFile::new(namespace, &r.name, &r.key)
}

fn api_key(
    k: &ApiKeyAuth,
    ctx: &mut Ctx<'_>,
    field: &str,
    secret_namespace: &str,
) -> Result<AuthConfig, Invalid> {
    let location = match (&k.header, &k.query_parameter) {
        (Some(_), Some(_)) => {
            ctx.error(
                format!("{field}.queryParameter"),
                reason::INVALID,
                "set header or queryParameter, not both: the key is read from one place",
            );
            return Err(Invalid);
        }
        (None, Some(name)) => {
            if name.is_empty() || !name.bytes().all(is_unreserved) {
                ctx.error(
                    format!("{field}.queryParameter"),
                    reason::INVALID,
                    format!(
                        "{name:?} is not a query parameter name Portcullis can match as written; \
                         use letters, digits, '-', '.', '_' and '~'"
                    ),
                );
                return Err(Invalid);
            }
            ApiKeyLocation::QueryParameter(name.clone())
        }
        (header, None) => {
            let name = header.as_deref().unwrap_or(DEFAULT_API_KEY_HEADER);
            ApiKeyLocation::Header(header_name(name, ctx, &format!("{field}.header"))?)
        }
    };
    Ok(AuthConfig::ApiKey {
        keys: secret(secret_namespace, &k.secret_ref),
        location,
        keep_credential: k.keep_credential,
    })
}

fn jwt(
    j: &JwtAuth,
    ctx: &mut Ctx<'_>,
    field: &str,
    secret_namespace: &str,
) -> Result<AuthConfig, Invalid> {
    let mut ok = true;
    let jwks = match (&j.jwks_secret_ref, &j.jwks_uri) {
        (Some(r), None) => Some(JwksConfig::Secret(secret(secret_namespace, r))),
        (None, Some(uri)) if is_https_url(uri) => Some(JwksConfig::Uri(uri.clone())),
        (None, Some(uri)) => {
            ctx.error(
                format!("{field}.jwksUri"),
                reason::INVALID,
                format!(
                    "{uri:?} is not an https:// URL with a host; the key set must be fetched \
                     over TLS (or put it in a Secret and use jwksSecretRef)"
                ),
            );
            None
        }
        _ => {
            ctx.error(
                field,
                reason::INVALID,
                "set exactly one of jwksSecretRef and jwksUri",
            );
            None
        }
    };
    let mut algorithms = Vec::new();
    for alg in &j.algorithms {
        if !algorithms.contains(alg) {
            algorithms.push(*alg);
        }
    }
    if algorithms.is_empty() {
        ctx.error(
            format!("{field}.algorithms"),
            reason::INVALID,
            "list at least one accepted algorithm",
        );
        ok = false;
    }
    if let Some(hmac) = algorithms.iter().find(|alg| alg.is_hmac())
        && j.jwks_uri.is_some()
    {
        ctx.error(
            format!("{field}.algorithms"),
            reason::INVALID,
            format!(
                "{hmac:?} needs its shared secret in jwksSecretRef: a JWKS fetched from jwksUri \
                 holds only public keys"
            ),
        );
        ok = false;
    }
    let leeway_ms = ctx.millis(&j.leeway, &format!("{field}.leeway"));
    if let Ok(ms) = leeway_ms
        && ms > MAX_JWT_LEEWAY_MS
    {
        ctx.error(
            format!("{field}.leeway"),
            reason::INVALID,
            format!(
                "leeway {:?} is longer than 5m: an expired token would stay good that long",
                j.leeway
            ),
        );
        ok = false;
    }
    let claims_to_headers = claim_headers(j, ctx, field);
    let (Some(jwks), Ok(leeway_ms), Ok(claims_to_headers), true) =
        (jwks, leeway_ms, claims_to_headers, ok)
    else {
        return Err(Invalid);
    };
    Ok(AuthConfig::Jwt {
        issuer: j.issuer.clone(),
        audiences: j.audiences.clone(),
        jwks,
        algorithms,
        leeway_ms,
        claims_to_headers,
        keep_authorization: j.keep_authorization,
    })
}

/// The claim headers, lowercase; every bad entry is reported.
fn claim_headers(
    j: &JwtAuth,
    ctx: &mut Ctx<'_>,
    field: &str,
) -> Result<Vec<ClaimHeaderConfig>, Invalid> {
    let mut ok = true;
    let mut out: Vec<ClaimHeaderConfig> = Vec::new();
    for (i, pair) in j.claims_to_headers.iter().enumerate() {
        let at = format!("{field}.claimsToHeaders[{i}]");
        if pair.claim.is_empty() {
            ctx.error(
                format!("{at}.claim"),
                reason::INVALID,
                "name the claim to forward",
            );
            ok = false;
        }
        let Ok(header) = header_name(&pair.header, ctx, &format!("{at}.header")) else {
            ok = false;
            continue;
        };
        if is_reserved_claim_header(&header) {
            ctx.error(
                format!("{at}.header"),
                reason::INVALID,
                format!(
                    "claim {:?} cannot be forwarded in {}: that header frames the request or \
                     carries credentials; choose another name, like x-jwt-{}",
                    pair.claim, pair.header, pair.claim
                ),
            );
            ok = false;
            continue;
        }
        if out.iter().any(|c| c.header == header) {
            ctx.error(
                format!("{at}.header"),
                reason::INVALID,
                format!("header {} already carries another claim", pair.header),
            );
            ok = false;
            continue;
        }
        out.push(ClaimHeaderConfig {
            claim: pair.claim.clone(),
            header,
        });
    }
    if ok { Ok(out) } else { Err(Invalid) }
}

fn basic(b: &BasicAuth, secret_namespace: &str) -> AuthConfig {
    AuthConfig::Basic {
        users: secret(secret_namespace, &b.secret_ref),
        keep_authorization: b.keep_authorization,
    }
}

/// `name` lowercased when it is an HTTP field name (RFC 9110 token), else an error at `field`.
fn header_name(name: &str, ctx: &mut Ctx<'_>, field: &str) -> Result<String, Invalid> {
    if !name.is_empty() && name.len() <= 256 && name.bytes().all(is_tchar) {
        return Ok(name.to_ascii_lowercase());
    }
    ctx.error(
        field,
        reason::INVALID,
        format!(
            "{name:?} is not an HTTP header name; use letters, digits and !#$%&'*+-.^_`|~, \
             like X-Api-Key"
        ),
    );
    Err(Invalid)
}

/// RFC 9110 `tchar`: a byte of a token (a field name, a parameter value that needs no quotes).
pub fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// RFC 3986 unreserved characters: a query parameter name made of them reads the same
/// percent-encoded or not.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~".contains(&b)
}

/// An `https://` URL with a non-empty host, no user info, no whitespace and no fragment (the
/// shape the CRD's pattern accepts).
fn is_https_url(uri: &str) -> bool {
    let Some(rest) = uri.strip_prefix("https://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    !authority.is_empty()
        && !authority.contains('@')
        && !uri.contains('#')
        && !uri.chars().any(char::is_whitespace)
        && uri.len() <= 2048
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_urls_must_be_https_with_a_host() {
        assert!(is_https_url(
            "https://issuer.example.com/.well-known/jwks.json"
        ));
        assert!(is_https_url("https://issuer.example.com:8443"));
        assert!(!is_https_url("http://issuer.example.com/jwks"));
        assert!(!is_https_url("https:///jwks"));
        assert!(!is_https_url("https://user@issuer.example.com/jwks"));
        assert!(!is_https_url("https://issuer.example.com/jwks#keys"));
        assert!(!is_https_url("https://issuer example.com/"));
    }

    #[test]
    fn header_names_are_rfc_9110_tokens() {
        assert!("X-Jwt-Sub".bytes().all(is_tchar));
        assert!(!"X Jwt".bytes().all(is_tchar));
        assert!(!"x-jwt:sub".bytes().all(is_tchar));
    }
}
