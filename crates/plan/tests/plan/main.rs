//! The planner's tests: the seed scenario step by step, matching and ownership rules, safety, and
//! a property test over generated registries and pre-existing Duo states. `sim` applies a plan to
//! an in-memory Duo the way the sync engine applies it to the real one.

mod admins;
mod props;
mod rules;
mod saved_format;
mod sim;
