//! Placeholder: this crate's purpose is stated in its Cargo.toml description until it lands.
