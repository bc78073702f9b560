//! The Duo Admin API protocol without I/O: canonical parameters, canonical requests for
//! signature versions 2, 4 and 5, HMAC signing and verifying, the `Date` format, and the JSON
//! envelope. Shared by the client (which signs) and the emulator (which verifies).
//!
//! Modules:
//! - [`sign`]: percent-encoding, [`sign::canon_params`], [`sign::canonical_request`],
//!   [`sign::sign`], [`sign::authorization_header`], [`sign::sign_request`];
//! - [`verify`]: the server-side acceptance rule ([`verify::parse_authorization`],
//!   [`verify::verify_signature`], [`verify::check_skew`], [`verify::host_candidates`]);
//! - [`date`]: [`date::format_date`] / [`date::parse_date`];
//! - [`params`]: where parameters travel and the Python-compatible JSON body ([`params::canon_json`]);
//! - [`envelope`]: the `stat`/`response`/`metadata` envelope and FAIL bodies;
//! - [`types`]: users, groups and group members as Duo returns them, and the id-shape check.
//!
//! Facts and test vectors: Duo's Admin API documentation and official clients (Duo's published
//! signing vectors A–H are the crate's tests).

#![warn(missing_docs)]

pub mod date;
pub mod envelope;
pub mod params;
pub mod sign;
pub mod types;
pub mod verify;

pub use sign::{Digest, SigVersion, SignatureVariant};
