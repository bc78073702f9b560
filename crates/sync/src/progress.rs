//! Progress reporting without printing: the engine tells a `Progress` what phase it is in and how
//! far along; the command line draws a bar on a terminal, tests and daemons ignore it.

pub trait Progress: Send + Sync {
    /// A phase starts with `total` units of work.
    fn phase(&self, name: &str, total: u64);
    /// `n` more units are done.
    fn advance(&self, n: u64);
    /// The run is over.
    fn finish(&self);
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {
    fn phase(&self, _: &str, _: u64) {}
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
}
