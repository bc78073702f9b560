//! Orchestration of a sync run, the only place that sequences I/O: load the registry, read Duo,
//! plan, check safety, apply, record.
