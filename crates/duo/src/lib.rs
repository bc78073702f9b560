//! The asynchronous Duo Admin API client: signed transport, paging, pacing, retries, bulk
//! operations and the masked HTTP traffic log.
//!
//! - [`DuoConfig`] describes one Duo connection (host, keys, optional emulator URL, proxy, CA
//!   file, timeouts, signature variant, retry schedule, pacing, traffic log).
//! - [`DuoClient`] makes the calls. It signs with v5 by default (JSON bodies for POST, parameters
//!   in the query for GET/DELETE; v2 with HMAC-SHA1 is selectable), sends exactly the bytes it
//!   signed, signs every attempt afresh, retries 429 on the official schedule and 5xx/transport
//!   errors only where repeating is safe, and never lets the secret key or a signature reach a
//!   log, an error or a `Debug` string.
//! - Typed operations: users ([`DuoClient::list_users`], [`DuoClient::get_user`],
//!   [`DuoClient::get_user_by_username`], [`DuoClient::get_users_by_usernames`],
//!   [`DuoClient::get_users_by_ids`], [`DuoClient::create_user`], [`DuoClient::modify_user`],
//!   [`DuoClient::delete_user`], [`DuoClient::bulk_create_users`]), memberships
//!   ([`DuoClient::list_user_groups`], [`DuoClient::add_user_to_group`],
//!   [`DuoClient::remove_user_from_group`]), groups ([`DuoClient::list_groups`],
//!   [`DuoClient::get_group`], [`DuoClient::get_groups_by_ids`], [`DuoClient::list_group_members`], [`DuoClient::create_group`],
//!   [`DuoClient::modify_group`], [`DuoClient::delete_group`]), [`DuoClient::run_ops`] (user and
//!   membership writes through bulk with a single-call fallback, per [`BulkMode`]),
//!   [`DuoClient::bulk`], Trash
//!   ([`DuoClient::send_users_to_trash`], [`DuoClient::restore_users`]).
//! - [`probe`]: a sandbox account's answers to the questions the evidence leaves open (bulk,
//!   username case, duplicate group names), and [`DuoClient::apply_probe`] to act on them.
//! - Errors are [`DuoError`]: the call plus a classified [`ErrorKind`] ([`ErrorClass`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), duoprov_duo::DuoError> {
//! use duoprov_duo::{DuoClient, DuoConfig, GroupFields, TrafficLogMode};
//! let mut cfg = DuoConfig::new("api-xxxxxxxx.duosecurity.com", "DIXXXXXXXXXXXXXXXXXX", "secret".into());
//! cfg.traffic_log = TrafficLogMode::OnError;
//! let duo = DuoClient::new(cfg)?;
//! let group = duo.create_group(&GroupFields::named("staff").desc("All staff")).await?;
//! for user in duo.list_users().await? {
//!     if user.email.ends_with("@example.edu") {
//!         duo.add_user_to_group(&user.user_id, &group.group_id).await?;
//!     }
//! }
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod admins;
pub mod bulk;
pub mod client;
pub mod config;
pub mod error;
pub mod groups;
pub mod pace;
pub mod paging;
pub mod probe;
pub mod retry;
pub mod traffic;
pub mod transport;
pub mod users;

pub use admins::{AdminUpdate, NewAdmin, ADMINS_PAGE};
pub use bulk::{BulkOp, BulkOpResult, MAX_BULK_OPS, OpsOutcome};
pub use client::{CallSpec, Clock, DuoClient, Params, Reply, SystemClock};
pub use config::{BulkMode, CallObserver, DuoConfig, PacingConfig, RetryConfig, TlsRoots, TrafficLogMode};
pub use duoprov_duo_wire::SignatureVariant;
pub use duoprov_duo_wire::envelope::Failure;
pub use duoprov_duo_wire::types::{Admin, Group, GroupMember, User};
pub use error::{DuoError, ErrorClass, ErrorKind};
pub use groups::GroupFields;
pub use pace::{CallClass, ClassProfile, ClassStats, ClassTotals, MIN_RATE_PER_MINUTE};
pub use paging::PageProgress;
pub use probe::{GroupNameReading, ProbeReport, Reading, UsernameReading};
pub use retry::Safety;
pub use traffic::{BodyLog, TrafficFormat};
pub use transport::{FailureCause, HttpRequest, HttpResponse, ReqwestTransport, Transport, TransportError, install_crypto_provider};
pub use users::{NewUser, UserFields};
