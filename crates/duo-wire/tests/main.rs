//! The single integration-test binary of duoprov-duo-wire: Duo's published signing vectors
//! (duo-admin-api.md §1.8 A–H) and the cross-check against Duo's official Python client.

mod vectors;
mod crosscheck;
mod props;
