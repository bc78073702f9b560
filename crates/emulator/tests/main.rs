//! The emulator's integration tests (one binary): Duo's official Python client against the
//! emulator (`conformance`), Duo's official Node client against it (`node_conformance`), what both share
//! (`official_client`), Duo behaviour and shapes through a signed client (`api`), bad input
//! (`bad_input`), generated malformed requests and byte-level junk (`malformed`), faults and
//! rate limits (`faults`), the state file and introspection (`state`), response snapshots
//! (`snapshots`) and the command-line entry (`cli`).

mod support;

mod api;
mod bad_input;
mod cli;
mod conformance;
mod faults;
mod malformed;
mod node_conformance;
mod official_client;
mod snapshots;
mod state;
