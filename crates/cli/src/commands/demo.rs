//! `duoprov demo`: the seed scenario on embedded defaults. A temporary SQLite registry and an
//! in-process Duo emulator; two people and a group marked for provisioner `duoTest`; the plan;
//! the sync with its masked HTTP traffic log; the resulting Duo state; and a second plan that is
//! empty. Nothing outside a temporary folder is touched.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use duoprov_emulator::{Emulator, Integration};
use duoprov_model::{GroupMember, GroupName, Marker, MarkerScope, MarkerTarget, SubjectKey, SubjectPatch};
use duoprov_plan::{Mapping, MappingConfig, Policy};
use duoprov_registry::NodeAttrs;

use super::Context;
use crate::config::{DuoConnection, LogHttp, Provisioner, SecretSource, Settings};

const IKEY: &str = "DIDEMO00000000000001";

fn heading(text: &str) {
    println!("\n== {text}");
}

pub async fn run(json: bool) -> Result<u8> {
    let dir = tempfile::tempdir().context("cannot create a temporary folder")?;
    // A throwaway key for a throwaway emulator, kept in a private file like a real one.
    let skey: String = (0..40).map(|i| char::from(b'a' + ((i * 7 + std::process::id() as usize) % 26) as u8)).collect();
    let skey_file = dir.path().join("duo.skey");
    crate::files::write_private(&skey_file, skey.as_bytes())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&skey_file, std::fs::Permissions::from_mode(0o600))?;
    }
    let emulator = Emulator::builder()
        .integration(Integration::new(IKEY, skey.clone()))
        .spawn_on("127.0.0.1:0")
        .await
        .context("cannot start the in-process Duo emulator")?;
    let url = format!("http://{}", emulator.addr());
    println!("duoprov demo: registry {}, Duo emulator at {url}", dir.path().join("demo.db").display());

    let provisioner = Provisioner {
        name: "duoTest".into(),
        duo: "demo".into(),
        create_users: true,
        log_http: LogHttp::Always,
        log_http_bodies: Default::default(),
        load_duo_users: false,
        eligible_group: None,
        subject_sources: None,
        policy: Policy::default(),
        mapping: Arc::new(Mapping::compile(&MappingConfig::default(), "provisioner.duoTest.templates")?),
        concurrency: 4,
        incremental: Default::default(),
        schedule: Default::default(),
        shares_duo_with: Vec::new(),
    };
    let settings = Settings {
        daemon: Default::default(),
        registry_url: format!("sqlite://{}", dir.path().join("demo.db").display()),
        registry_password: None,
        duo: BTreeMap::from([(
            "demo".to_owned(),
            DuoConnection {
                name: "demo".into(),
                // The emulator checks signatures against the host it serves on.
                api_host: "127.0.0.1".into(),
                integration_key: IKEY.into(),
                secret_key: SecretSource::File(skey_file),
                url: Some(url),
                proxy: None,
                proxy_password: None,
                ca_file: None,
                tls_roots: duoprov_duo::TlsRoots::System,
                signature_version: 5,
                timeout_secs: 30,
                writes_per_minute: None,
                single_reads_per_minute: None,
                page_reads_per_minute: None,
                list_lookups_per_minute: None,
                bulk_per_minute: None,
                adaptive_pacing: None,
                pacing_recovery_secs: None,
                max_concurrency: None,
                server_retries: None,
                bulk: duoprov_duo::BulkMode::Auto,
            },
        )]),
        provisioners: BTreeMap::from([("duoTest".to_owned(), provisioner)]),
    };
    let ctx = Context { settings, json };
    let store = ctx.open_store().await?;

    heading("Registry: the seed's people and group, folder app:duo marked for duoTest");
    for (id, name, email) in [("mchyzer", "Chris Hyzer", "mchyzer@example.edu"), ("kwilso", "Kate Wilson", "kwilso@example.edu")] {
        let patch = SubjectPatch {
            name: Some(Some(name.into())),
            login_id: Some(Some(id.into())),
            email: Some(Some(email.into())),
            description: Some(Some(name.into())),
            ..Default::default()
        };
        store.upsert_subject(&SubjectKey::local(id), &patch).await?;
        println!("subject {id}: {name} <{email}>");
    }
    let group = GroupName::parse("app:duo:testGroup")?;
    let attrs = NodeAttrs { description: Some(Some("Duo test group".into())), ..Default::default() };
    store.add_group(&group, &attrs, true).await?;
    for id in ["mchyzer", "kwilso"] {
        store.add_member(&group, &GroupMember::Subject(SubjectKey::local(id))).await?;
    }
    let folder = MarkerTarget::Folder(duoprov_model::FolderPath::parse("app:duo")?);
    store.assign_marker(&Marker { provisioner: "duoTest".into(), target: folder, scope: MarkerScope::Sub, provision: true }).await?;
    println!("group {group} with both as members; marker: folder app:duo → duoTest (scope sub)");
    drop(store);

    heading("duoprov plan duoTest");
    super::sync::plan(&ctx, "duoTest", None).await?;

    heading("duoprov sync duoTest (HTTP traffic log on standard error, Authorization masked)");
    let args = super::sync::SyncArgs { provisioner: "duoTest".into(), incremental: false, dry_run: false, plan: None, approve: None, allow_deletes: None, log_json: false };
    let code = super::sync::sync(&ctx, args).await?;

    heading("Duo after the sync");
    let state = emulator.handle().state();
    println!("{}", serde_json::to_string_pretty(&state)?);

    heading("duoprov plan duoTest (again: nothing to do)");
    super::sync::plan(&ctx, "duoTest", None).await?;
    emulator.shutdown().await.ok();
    Ok(code)
}
