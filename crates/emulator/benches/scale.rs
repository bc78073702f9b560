//! Scale benchmark (placeholder until written).
fn main() {}
