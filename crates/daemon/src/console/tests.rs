//! The console in process, on a SQLite registry in a temporary folder and a real HTTP listener:
//! an approval made from the page survives a restart of the console (its state is the
//! registry's), a refused plan kept in the registry is shown after a restart (its removals
//! bounded) and approved from there, a retry is queued in the registry (on a standby too, for
//! the leading daemon), every action is in the audit trail with who asked, the Duo users page filters by
//! authentication method as `duoprov report --has/--lacks/--only` and carries the filters into
//! its CSV link, and the explain page answers an unknown subject with a page saying so.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::Arc;

use duoprov_registry::{AuthMethodCounts, DuoUserRow, Store};
use secrecy::SecretString;

use super::{Console, Mode, ProvisionerInfo};
use crate::http::Shared;
use duoprov_registry::{RefusedPlan, RequestKind, RequestedObject};

const TOKEN: &str = "t0ken-for-the-console-tests-5a1f";
const P: &str = "duoTest";

async fn store(dir: &std::path::Path) -> Arc<dyn Store> {
    let url = format!("sqlite://{}", dir.join("registry.db").display());
    Arc::from(duoprov_registry::open(&url, &Default::default()).await.unwrap())
}

/// The provisioner's sync settings, and a Duo client no test here calls (nothing reads Duo
/// without `live=1`).
fn sync_settings() -> (Arc<duoprov_sync::SyncSettings>, duoprov_duo::DuoClient) {
    let mapping = Arc::new(duoprov_plan::Mapping::compile(&duoprov_plan::MappingConfig::default(), "provisioner.duoTest").unwrap());
    let settings = duoprov_sync::SyncSettings {
        provisioner: P.into(),
        policy: Default::default(),
        mapping,
        eligible_group: None,
        subject_sources: None,
        concurrency: 1,
        incremental: Default::default(),
        load_duo_users: false,
        shares_duo_with: Vec::new(),
        sync_back: None,
        selection_rules: Default::default(),
    };
    let mut cfg = duoprov_duo::DuoConfig::new("127.0.0.1", "DIXXXXXXXXXXXXXXXXXX", "not-a-secret-not-used-by-these-tests0000".to_owned().into());
    cfg.url = Some("http://127.0.0.1:9".into());
    (Arc::new(settings), duoprov_duo::DuoClient::new(cfg).unwrap())
}

/// A console (as a daemon starts one) serving on loopback; its address and shared state.
async fn serve(store: Arc<dyn Store>) -> (String, Arc<Shared>) {
    let shared = Arc::new(Shared::default());
    let sync = sync_settings();
    let info = ProvisionerInfo { mapping: sync.0.mapping.clone(), rendering_fingerprint: Some(duoprov_sync::rendering_fingerprint(&sync.0)), settings: String::new(), schedule: "every 21600 s".into(), sync: Some(sync) };
    let console = Arc::new(Console::new(store, shared.clone(), Mode::Token(Arc::new(SecretString::from(TOKEN))), false, BTreeMap::from([(P.to_owned(), info)])));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, super::router(console)).await.unwrap() });
    (addr, shared)
}

/// One bearer request: the status code and the whole response.
async fn request(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let (addr, method, path, body) = (addr.to_owned(), method.to_owned(), path.to_owned(), body.to_owned());
    tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        let length = if method == "POST" { format!("Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n", body.len()) } else { String::new() };
        write!(s, "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\n{length}\r\n{body}").unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        (text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0), text)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_from_the_console_survives_a_restart_and_every_action_is_audited_with_who_asked() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let (addr, _shared) = serve(store.clone()).await;
    store
        .save_refused_plan(&RefusedPlan {
            provisioner: P.into(),
            at_ms: 1,
            kind: "full".into(),
            reasons: vec!["too many removals".into()],
            removals: vec!["delete group app:duo:g".into()],
            removal_count: 1,
            digest: "d1g35t".into(),
        })
        .await
        .unwrap();
    let (code, page) = request(&addr, "POST", "/provisioners/duoTest/approve", "digest=0ther").await;
    assert_eq!(code, 409, "another digest is refused:\n{page}");
    assert_eq!(store.pending_approval(P).await.unwrap(), None, "a refused approval saves nothing");
    let (code, page) = request(&addr, "POST", "/provisioners/duoTest/approve", "digest=d1g35t").await;
    assert_eq!(code, 303, "{page}");
    let (code, page) = request(&addr, "POST", "/provisioners/duoTest/full-sync", "").await;
    assert_eq!(code, 303, "{page}");

    // A restarted daemon: a new console on the same registry. The refusal is lifted (a run
    // succeeded meanwhile): the approval still waits, and so does the full sync asked for.
    store.clear_refused_plan(P).await.unwrap();
    let (addr, shared) = serve(store.clone()).await;
    let (code, page) = request(&addr, "GET", "/provisioners/duoTest", "").await;
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("<code class=\"digest\">d1g35t</code>, approved by console token"), "the approval still waits:\n{page}");
    assert!(page.contains("A full sync asked for by console token") && page.contains("is waiting for its turn."), "the request still waits:\n{page}");
    let log = page.split("id=\"actions\"").nth(1).expect("the action log");
    let whats: Vec<&str> = log.match_indices("<td>console token</td><td>").map(|(i, m)| log[i + m.len()..].split('<').next().unwrap()).collect();
    assert_eq!(whats, ["full sync requested", "full sync requested", "approved the removals with digest d1g35t"], "newest first, read from the registry:\n{log}");
    let approval = store.pending_approval(P).await.unwrap().expect("the approval is in the registry");
    assert_eq!((approval.digest.as_str(), approval.who.as_str()), ("d1g35t", "console token"));
    let audit = store.audit_entries(&duoprov_registry::AuditFilter { provisioner: Some(P.into()), ..Default::default() }).await.unwrap();
    let audited: Vec<(&str, &str, &str)> = audit.iter().map(|e| (e.actor.as_str(), e.object_kind.as_str(), e.action.as_str())).collect();
    assert_eq!(
        audited,
        [("console:console token", "console", "approve"), ("console:console token", "console", "full-sync"), ("console:console token", "console", "full-sync")]
    );
    // A retry of an object the registry does not hold: refused, naming it; nothing is queued.
    let (code, page) = request(&addr, "POST", "/provisioners/duoTest/retry", "kind=user&object=local%3Anobody").await;
    assert_eq!(code, 400, "{page}");
    assert!(page.contains("local:nobody"), "{page}");
    assert!(store.console_requests(P).await.unwrap().iter().all(|r| r.kind == RequestKind::FullSync), "no retry queued");
    drop(shared);
}

fn duo_user(id: &str, name: &str, methods: &[(&str, i64)]) -> DuoUserRow {
    let count = |m: &str| Some(methods.iter().find(|(k, _)| *k == m).map(|(_, n)| *n).unwrap_or(0));
    DuoUserRow {
        config_id: P.into(),
        user_id: id.into(),
        aliases: None,
        phones: None,
        is_push_enabled: None,
        email: None,
        first_name: None,
        last_name: None,
        is_enrolled: Some("T".into()),
        last_directory_sync: None,
        notes: None,
        real_name: None,
        status: Some("active".into()),
        user_name: name.into(),
        created_at: None,
        last_login_time: None,
        auth_methods: AuthMethodCounts {
            push_phone_count: count("push"),
            mobile_otp_phone_count: count("mobile_otp"),
            push_phone_last_seen: None,
            sms_phone_count: count("sms"),
            voice_phone_count: count("voice"),
            duo_hardware_token_count: count("hardware"),
            hotp_token_count: count("hotp"),
            totp_token_count: count("totp"),
            yubikey_otp_token_count: count("yubikey"),
            webauthn_count: count("webauthn"),
            u2f_count: count("u2f"),
        },
    }
}

/// The usernames in the Duo users page's table.
fn usernames(page: &str) -> Vec<String> {
    let Some(body) = page.split("<tbody>").nth(1) else { return Vec::new() };
    body.split("<tr><td>").skip(1).map(|r| r.split('<').next().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_duo_users_page_filters_by_method_as_the_report_does_and_its_csv_link_keeps_the_filters() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let rows = vec![
        duo_user("DU1", "ann", &[("push", 1), ("sms", 1)]),
        duo_user("DU2", "bob", &[("sms", 1), ("voice", 1)]),
        duo_user("DU3", "cid", &[("webauthn", 2)]),
    ];
    store.replace_duo_users(P, &rows).await.unwrap();
    let (addr, _) = serve(store.clone()).await;
    for (query, want) in [
        ("has=sms", vec!["ann", "bob"]),
        ("has=SMS&lacks=push", vec!["bob"]),
        ("only=sms%2Cvoice", vec!["bob"]),
        ("lacks=sms", vec!["cid"]),
        ("has=webauthn", vec!["cid"]),
    ] {
        let (code, page) = request(&addr, "GET", &format!("/duo-users?provisioner=duoTest&{query}"), "").await;
        assert_eq!(code, 200, "{query}:\n{page}");
        assert_eq!(usernames(&page), want, "{query}");
    }
    let (_, page) = request(&addr, "GET", "/duo-users?provisioner=duoTest&has=sms&lacks=push", "").await;
    let csv_link = page.split("href=\"/duo-users.csv").nth(1).and_then(|r| r.split('"').next()).expect("the CSV link").replace("&amp;", "&");
    assert!(csv_link.contains("has=sms") && csv_link.contains("lacks=push"), "{csv_link}");
    let (code, csv) = request(&addr, "GET", &format!("/duo-users.csv{csv_link}"), "").await;
    assert_eq!(code, 200, "{csv}");
    let body = csv.split("\r\n\r\n").nth(1).unwrap();
    assert_eq!(body.lines().count(), 2, "the header and bob only:\n{body}");
    assert!(body.lines().nth(1).unwrap().contains("bob"), "{body}");
    let (code, page) = request(&addr, "GET", "/duo-users?provisioner=duoTest&has=fax", "").await;
    assert_eq!(code, 400, "{page}");
    assert!(page.contains("has &quot;fax&quot;: not an authentication method"), "the field and the value are named:\n{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_explain_page_shows_a_nested_membership_chain_and_its_marker_and_an_unknown_subject_is_a_page_not_a_server_error() {
    use duoprov_model::{FolderPath, GroupMember, GroupName, Marker, MarkerScope, MarkerTarget, SubjectKey, SubjectPatch};
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let outer = GroupName::parse("app:duo:staff").unwrap();
    let inner = GroupName::parse("ref:hr:nurses").unwrap();
    for g in [&outer, &inner] {
        store.add_group(g, &Default::default(), true).await.unwrap();
    }
    let ann = SubjectKey::local("ann");
    let patch = SubjectPatch { login_id: Some(Some("ann".into())), email: Some(Some("ann@example.edu".into())), name: Some(Some("Ann <b>Lee</b>".into())), ..Default::default() };
    store.upsert_subject(&ann, &patch).await.unwrap();
    store.add_member(&inner, &GroupMember::Subject(ann.clone())).await.unwrap();
    store.add_member(&outer, &GroupMember::Group { name: inner.clone() }).await.unwrap();
    let marker = Marker { provisioner: P.into(), target: MarkerTarget::Folder(FolderPath::parse("app:duo").unwrap()), scope: MarkerScope::Sub, provision: true };
    store.assign_marker(&marker).await.unwrap();
    let (addr, _) = serve(store).await;

    let (code, page) = request(&addr, "GET", "/explain", "").await;
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("name=\"subject\""), "the form:\n{page}");
    let (code, page) = request(&addr, "GET", "/explain?provisioner=duoTest&subject=ann", "").await;
    assert_eq!(code, 200, "{page}");
    for needle in [
        "<td>app:duo:staff</td>",
        "through app:duo:staff ⊃ ref:hr:nurses ⊃ ann",
        "the marker on folder app:duo (scope sub) includes it",
        "Eligible: ann is one of duoTest",
        "ann@example.edu",
        "Ann &lt;b&gt;Lee&lt;/b&gt;",
        "no Duo group linked yet",
        "None linked",
    ] {
        assert!(page.contains(needle), "missing {needle:?}:\n{page}");
    }
    let (code, page) = request(&addr, "GET", "/explain?provisioner=duoTest&subject=nobody", "").await;
    assert_eq!(code, 404, "{page}");
    assert!(page.contains("no subject with id or login &#39;nobody&#39;"), "{page}");
    let (code, page) = request(&addr, "GET", "/explain?provisioner=duoTest&subject=ann&group=app%3Aduo%3Anone", "").await;
    assert_eq!(code, 404, "{page}");
    assert!(page.contains("group &#39;app:duo:none&#39; not found"), "{page}");
    let (code, page) = request(&addr, "GET", "/explain?provisioner=nobody&subject=ann", "").await;
    assert_eq!(code, 404, "{page}");
    assert!(page.contains("no provisioner named nobody"), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_link_in_error_offers_a_retry_which_is_queued_for_the_leading_loop_and_audited() {
    use duoprov_model::{EpochMillis, SubjectKey, SubjectPatch};
    use duoprov_registry::{StateError, UserState};
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let ann = SubjectKey::local("ann");
    store.upsert_subject(&ann, &SubjectPatch { login_id: Some(Some("ann".into())), ..Default::default() }).await.unwrap();
    let link = UserState {
        pending_name: None,
        pending_at: None,
        subject: ann.clone(),
        duo_user_id: None,
        in_target: true,
        created_by_us: false,
        provisioned_at: Some(EpochMillis(1_796_007_540_000)),
        error: Some(StateError { code: "ERR".into(), message: "Duo answered 400: Invalid request parameters (email)".into() }),
    };
    store.record(P, &[], &[link], &[]).await.unwrap();
    let (addr, shared) = serve(store.clone()).await;
    let (_, page) = request(&addr, "GET", "/provisioners/duoTest?kind=users", "").await;
    let errors = page.split("<h2>Objects in error</h2>").nth(1).expect("the errors section");
    assert!(
        errors.contains("action=\"/provisioners/duoTest/retry\"><input type=\"hidden\" name=\"kind\" value=\"user\"><input type=\"hidden\" name=\"object\" value=\"local:ann\">"),
        "the errored user offers a retry:\n{errors}"
    );
    assert!(page.contains("href=\"/explain?provisioner=duoTest&amp;subject=local%3Aann\""), "the user's row links to its explanation:\n{page}");
    let (code, response) = request(&addr, "POST", "/provisioners/duoTest/retry", "kind=user&object=local%3Aann").await;
    assert_eq!(code, 303, "{response}");
    let queued = store.console_requests(P).await.unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!((&queued[0].kind, queued[0].who.as_str()), (&RequestKind::Retry(RequestedObject::Subject("local:ann".into())), "console token"), "queued in the registry");
    let (_, page) = request(&addr, "GET", "/provisioners/duoTest", "").await;
    assert!(page.contains("A retry of subject local:ann asked for by console token") && page.contains("is waiting for its turn."), "{page}");
    assert!(page.contains("<td>console token</td><td>retry of subject local:ann requested</td>"), "{page}");
    // A daemon standing by (another leads the provisioner) stores the request for the leader,
    // which finds it in the registry at its next poll; the page says who will run it.
    store.add_group(&duoprov_model::GroupName::parse("app:duo:g").unwrap(), &Default::default(), true).await.unwrap();
    shared.update(P, |s| s.role = "standby".into());
    let (code, page) = request(&addr, "POST", "/provisioners/duoTest/retry", "kind=group&object=app%3Aduo%3Ag").await;
    assert_eq!(code, 303, "{page}");
    let queued = store.console_requests(P).await.unwrap();
    assert_eq!(queued.iter().map(|r| r.kind.clone()).collect::<Vec<_>>(), [RequestKind::Retry(RequestedObject::Subject("local:ann".into())), RequestKind::Retry(RequestedObject::Group("app:duo:g".into()))]);
    let (_, page) = request(&addr, "GET", "/provisioners/duoTest", "").await;
    assert!(page.contains("A retry of group app:duo:g asked for by console token") && page.contains("is waiting for the daemon leading it."), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_plan_kept_in_the_registry_is_shown_after_a_restart_and_approved_from_there() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    // What a daemon's refused run kept, before this daemon started.
    let removals: Vec<String> = (0..duoprov_registry::REFUSAL_REMOVALS_KEPT + 2).map(|i| format!("remove u{i:03} from app:duo:g")).collect();
    store
        .save_refused_plan(&RefusedPlan {
            provisioner: P.into(),
            at_ms: duoprov_sync::now_ms() - 60_000,
            kind: "incremental".into(),
            reasons: vec!["502 removals exceed max_removals = 100".into()],
            removals: removals.clone(),
            removal_count: removals.len() as i64,
            digest: "d1g35t".into(),
        })
        .await
        .unwrap();
    let (addr, _shared) = serve(store.clone()).await;
    let (code, page) = request(&addr, "GET", "/provisioners/duoTest", "").await;
    assert_eq!(code, 200, "{page}");
    let refused = page.split("<h2>Last refused plan</h2>").nth(1).expect("the refused plan section");
    for needle in [
        "The incremental sync",
        "502 removals exceed max_removals = 100",
        "It would make 502 removals, digest <code class=\"digest\">d1g35t</code>",
        "<li>remove u000 from app:duo:g</li>",
        "<li>remove u499 from app:duo:g</li>",
        "… and 2 more (see <code>duoprov plan duoTest</code>)",
        "name=\"digest\" value=\"d1g35t\"",
    ] {
        assert!(refused.contains(needle), "missing {needle:?}:\n{refused}");
    }
    assert!(!refused.contains("remove u500 "), "the removals shown are bounded");
    // The approval is checked against the kept plan, saved, and asks for the full sync that
    // applies it; both wait in the registry.
    let (code, page) = request(&addr, "POST", "/provisioners/duoTest/approve", "digest=d1g35t").await;
    assert_eq!(code, 303, "{page}");
    assert_eq!(store.pending_approval(P).await.unwrap().map(|a| a.digest).as_deref(), Some("d1g35t"));
    let queued = store.console_requests(P).await.unwrap();
    assert_eq!(queued.iter().map(|r| (r.kind.clone(), r.who.as_str())).collect::<Vec<_>>(), [(RequestKind::FullSync, "console token")]);
    // A run that succeeds lifts it: the page says so.
    assert!(store.clear_refused_plan(P).await.unwrap());
    let (_, page) = request(&addr, "GET", "/provisioners/duoTest", "").await;
    assert!(page.contains("No refused plan"), "{page}");
    let (code, _) = request(&addr, "POST", "/provisioners/duoTest/approve", "digest=d1g35t").await;
    assert_eq!(code, 409, "nothing refused is left to approve");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_in_the_registry_reads_the_recorded_usernames_when_current_and_renders_the_template_otherwise_saying_which() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    for id in ["ann", "bob"] {
        let patch = duoprov_model::SubjectPatch { login_id: Some(Some(id.to_owned())), ..duoprov_model::SubjectPatch::default() };
        store.upsert_subject(&duoprov_model::SubjectKey::local(id), &patch).await.unwrap();
    }
    store.replace_duo_users(P, &[duo_user("DU1", "Ann", &[]), duo_user("DU2", "bob", &[]), duo_user("DU3", "carl", &[])]).await.unwrap();
    let (addr, _) = serve(store.clone()).await;
    let look = || async {
        let (code, page) = request(&addr, "GET", "/duo-users?provisioner=duoTest&not_in_registry=1", "").await;
        assert_eq!(code, 200, "{page}");
        let note = page.split("id=\"not-in-registry\">").nth(1).and_then(|r| r.split("</p>").next()).expect("the page says how").to_owned();
        (usernames(&page), note)
    };

    // Nothing recorded: the template is rendered for every registry subject (bob is one).
    let (names, note) = look().await;
    assert_eq!(names, ["carl"]);
    assert!(note.contains("rendered now") && note.contains("no run of the provisioner has recorded"), "{note}");

    // Recorded under the provisioner's current settings (ann alone is selected): SQL, by the
    // recorded usernames — bob, whom the provisioner does not select, is not in it.
    let fingerprint = duoprov_sync::rendering_fingerprint(&sync_settings().0);
    let ann = duoprov_registry::RenderedName { subject: duoprov_model::SubjectKey::local("ann"), username_key: "ann".into() };
    store.replace_rendered(P, &fingerprint, std::slice::from_ref(&ann)).await.unwrap();
    let (names, note) = look().await;
    assert_eq!(names, ["bob", "carl"]);
    assert!(note.contains("by the usernames its runs recorded"), "{note}");

    // Recorded under other settings: not used.
    store.replace_rendered(P, "another-fingerprint", &[ann]).await.unwrap();
    let (names, note) = look().await;
    assert_eq!(names, ["carl"]);
    assert!(note.contains("rendered now") && note.contains("other templates or selection settings"), "{note}");
}
