//! The JWS algorithms a rule may accept, by their JOSE names.

use std::str::FromStr;

use jsonwebtoken::Algorithm;

use crate::auth::ConfigError;

/// A JWS signing algorithm Portcullis verifies (RFC 7518 names). `none` is not one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum JwtAlgorithm {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

const ALL: [JwtAlgorithm; 12] = [
    JwtAlgorithm::HS256,
    JwtAlgorithm::HS384,
    JwtAlgorithm::HS512,
    JwtAlgorithm::RS256,
    JwtAlgorithm::RS384,
    JwtAlgorithm::RS512,
    JwtAlgorithm::PS256,
    JwtAlgorithm::PS384,
    JwtAlgorithm::PS512,
    JwtAlgorithm::ES256,
    JwtAlgorithm::ES384,
    JwtAlgorithm::EdDSA,
];

impl JwtAlgorithm {
    /// The JOSE name: `RS256`, `EdDSA`, ...
    pub fn name(self) -> &'static str {
        match self {
            Self::HS256 => "HS256",
            Self::HS384 => "HS384",
            Self::HS512 => "HS512",
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::EdDSA => "EdDSA",
        }
    }

    /// Whether this is an HMAC algorithm (a shared secret, not a public key).
    pub fn is_hmac(self) -> bool {
        matches!(self, Self::HS256 | Self::HS384 | Self::HS512)
    }

    pub(crate) fn to_jose(self) -> Algorithm {
        match self {
            Self::HS256 => Algorithm::HS256,
            Self::HS384 => Algorithm::HS384,
            Self::HS512 => Algorithm::HS512,
            Self::RS256 => Algorithm::RS256,
            Self::RS384 => Algorithm::RS384,
            Self::RS512 => Algorithm::RS512,
            Self::PS256 => Algorithm::PS256,
            Self::PS384 => Algorithm::PS384,
            Self::PS512 => Algorithm::PS512,
            Self::ES256 => Algorithm::ES256,
            Self::ES384 => Algorithm::ES384,
            Self::EdDSA => Algorithm::EdDSA,
        }
    }
}

impl FromStr for JwtAlgorithm {
    type Err = ConfigError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        ALL.into_iter()
            .find(|alg| alg.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = ALL.iter().map(|alg| alg.name()).collect();
                ConfigError::Setting(format!(
                    "JWT algorithm {name:?} is not accepted; use one of {}",
                    names.join(", ")
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_none_is_refused() {
        for alg in ALL {
            assert_eq!(alg.name().parse::<JwtAlgorithm>(), Ok(alg));
        }
        assert!("none".parse::<JwtAlgorithm>().is_err());
    }
}
