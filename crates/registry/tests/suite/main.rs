//! The registry suite: every test runs on SQLite (in memory), and on PostgreSQL when
//! `DUOPROV_TEST_POSTGRES_URL` names a database (CI sets it; with `DUOPROV_REQUIRE_EXTERNAL=1`
//! a missing URL fails the PostgreSQL half instead of skipping it).

mod support;

mod admins;
mod audit;
mod changes;
mod console;
mod console_requests;
mod duo_probe;
mod duo_users;
mod files;
mod import;
mod import_props;
mod millis;
mod mirror;
mod objects;
mod retention;
mod scoped;
mod selection;
mod source_feed;
mod sync_state;
mod tls;
