//! snapshots tests (to be written).
