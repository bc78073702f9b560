//! bad_input tests (to be written).
