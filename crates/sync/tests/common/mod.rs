//! What the sync's emulator-backed tests share: an emulator that lets an unpaced client through
//! (its whole minute's quota as the burst), a client for it with quick retries, the default
//! settings of one provisioner and the marker selecting the `app:duo` folder for it. Each test
//! binary uses a part of it.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use duoprov_duo::{DuoClient, DuoConfig, PacingConfig, RetryConfig};
use duoprov_emulator::{Emulator, Integration, RunningEmulator};
use duoprov_model::{FolderPath, Marker, MarkerScope, MarkerTarget};
use duoprov_plan::{Mapping, MappingConfig, Policy};
use duoprov_sync::SyncSettings;

/// An emulator for integration `ikey` whose limits never hold an unpaced client back (these tests
/// are not about rate limits).
pub async fn unlimited_emulator(ikey: &str, skey: &str) -> RunningEmulator {
    Emulator::builder()
        .integration(Integration::new(ikey, skey))
        .configure(|s| s.rate_limits.burst_fraction = Some(1.0))
        .spawn_on("127.0.0.1:0")
        .await
        .expect("emulator")
}

/// An unpaced client of `emulator`, retrying after milliseconds rather than seconds.
pub fn unpaced_client(emulator: &RunningEmulator, ikey: &str, skey: &str) -> DuoClient {
    let mut cfg = DuoConfig::new("127.0.0.1", ikey, skey.to_owned().into());
    cfg.url = Some(emulator.base_url());
    cfg.pacing = PacingConfig::unlimited();
    cfg.retry = RetryConfig { initial_backoff: Duration::from_millis(5), max_backoff: Duration::from_millis(40), max_jitter: Duration::ZERO, max_server_retries: 3 };
    DuoClient::new(cfg).expect("client")
}

/// Provisioner `provisioner` at its defaults, `concurrency` calls at once.
pub fn settings(provisioner: &str, concurrency: usize) -> SyncSettings {
    SyncSettings {
        provisioner: provisioner.into(),
        policy: Policy::default(),
        mapping: Arc::new(Mapping::compile(&MappingConfig::default(), provisioner).unwrap()),
        eligible_group: None,
        subject_sources: None,
        concurrency,
        incremental: Default::default(),
        load_duo_users: false,
        shares_duo_with: Vec::new(),
        sync_back: None,
        selection_rules: Default::default(),
    }
}

/// The marker provisioning everything under `app:duo` with `provisioner`.
pub fn app_duo_marker(provisioner: &str) -> Marker {
    Marker { provisioner: provisioner.into(), target: MarkerTarget::Folder(FolderPath::parse("app:duo").unwrap()), scope: MarkerScope::Sub, provision: true }
}
