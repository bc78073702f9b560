//! The group registry: subjects, folders, groups, memberships and provisioning markers, stored in
//! SQLite or PostgreSQL behind one `Store` trait, with a change log written in the same
//! transaction as every mutation.
