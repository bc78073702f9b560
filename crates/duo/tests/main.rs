//! The single integration-test binary of duoprov-duo: fault tests over real HTTP, backoff and
//! pacing on paused time, typed operations, and the secret scan of all output.

mod backoff;
mod faults;
mod ops;
mod secrets;
mod support;
mod tls;
