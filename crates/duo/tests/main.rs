//! The single integration-test binary of duoprov-duo: fault tests over real HTTP, backoff and
//! pacing on paused time, typed operations, generated malformed responses and paging
//! (`malformed`), strict reading of bulk replies, user reads and listings with the bulk fallback
//! (`strict`), and the secret scan of all output.

mod admins;
mod backoff;
mod faults;
mod malformed;
mod ops;
mod proxy;
mod secrets;
mod strict;
mod support;
mod tls;
