//! state tests (to be written).
