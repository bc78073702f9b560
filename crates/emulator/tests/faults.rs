//! faults tests (to be written).
