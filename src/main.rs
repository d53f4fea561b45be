//! `portcullis`: the Portcullis API gateway — operator and data plane in one binary.

fn main() {}
