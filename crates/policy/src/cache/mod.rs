//! Response caching (in progress).
