//! The `duoprov` binary: command-line parsing, configuration, output and exit codes.
fn main() {}
