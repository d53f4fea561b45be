//! Offline validation of manifests (filled in by `portcullis check`).
