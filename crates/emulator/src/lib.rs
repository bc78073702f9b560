//! A faithful Duo Admin API server for tests, demos and integration work: it verifies signatures
//! the way Duo does, keeps users and groups in memory, and can inject faults on demand.
