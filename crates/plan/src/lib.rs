//! The planner: turns a registry snapshot and a Duo snapshot into an exact, ordered plan of Duo
//! operations, each with its reason, and checks it against the safety rules. Pure and
//! synchronous: no runtime, no network, no database.
