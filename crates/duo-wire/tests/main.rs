//! The single integration-test binary of duoprov-duo-wire: Duo's published signing vectors
//! (A–H), the cross-check against Duo's official Python client, signing
//! properties (`props`) and generated malformed envelopes, credentials and dates (`malformed`).

mod vectors;
mod crosscheck;
mod props;
mod malformed;
