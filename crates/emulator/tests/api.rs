//! api tests (to be written).
