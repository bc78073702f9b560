//! The single integration-test binary of duoprov-duo: fault tests over real HTTP, backoff and
//! pacing on paused time, typed operations, generated malformed responses and paging
//! (`malformed`), and the secret scan of all output.

mod backoff;
mod faults;
mod malformed;
mod ops;
mod secrets;
mod support;
mod tls;
