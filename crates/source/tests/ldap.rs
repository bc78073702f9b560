//! The LDAP source against a real OpenLDAP `slapd` that each test starts on a loopback port with
//! a generated configuration (slapd.conf, mdb backend, a service account with unlimited paged
//! results) and a generated CA: initial mirror, adds, modifies, deletes and renames (modrdn) of
//! users and groups, nested groups, a member DN naming nothing, TLS (ldaps:// and StartTLS), a
//! bind failure, slapd stopping mid-read, a change found by `modifyTimestamp` polling, and changes
//! reported by a syncrepl persistent search (slapd with the syncprov overlay; one without it is
//! found not to offer syncrepl). Without slapd and ldap-utils the tests report
//! `SKIPPED` and pass, unless `DUOPROV_REQUIRE_EXTERNAL=1` (CI), where they fail.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use duoprov_model::{ChangeKind, FolderPath, GroupMember, GroupName, MirrorScope, SubjectKey};
use duoprov_registry::{OpenOptions, Store};
use duoprov_source::ldap::{GroupMap, LdapReadError, LdapReader, LdapSettings, Preset, UserMap};
use duoprov_source::{mirror, Outcome, Thresholds};
use secrecy::SecretString;

const SLAPD: &str = "/usr/sbin/slapd";
const SUFFIX: &str = "dc=example,dc=org";
const ADMIN: &str = "cn=admin,dc=example,dc=org";
const ADMIN_PW: &str = "admin-secret";
const READER: &str = "cn=reader,ou=system,dc=example,dc=org";
const READER_PW: &str = "reader-Secret-77";

fn skipped(reason: &str) {
    use std::io::Write as _;
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED: {test} — {reason}");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A private slapd; stopped when dropped.
struct Slapd {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
    tls_port: u16,
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("running openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl Slapd {
    /// Starts slapd (with the syncprov overlay: it offers syncrepl) with the base entries
    /// loaded, or `None` after reporting the skip.
    fn start() -> Option<Slapd> {
        Self::start_with(true)
    }

    fn start_with(syncprov: bool) -> Option<Slapd> {
        let missing = [SLAPD, "/usr/bin/ldapadd", "/usr/bin/openssl"].into_iter().find(|p| !Path::new(p).exists());
        if let Some(p) = missing {
            if std::env::var("DUOPROV_REQUIRE_EXTERNAL").as_deref() == Ok("1") {
                panic!("{p} is missing but DUOPROV_REQUIRE_EXTERNAL=1 (install slapd, ldap-utils and openssl)");
            }
            skipped(&format!("{p} is not installed (apt-get install slapd ldap-utils)"));
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // A CA, a server certificate for 127.0.0.1 and localhost signed by it, and an unrelated CA.
        openssl(d, &["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=duoprov test LDAP CA", "-keyout", "ca.key", "-out", "ca.pem"]);
        openssl(d, &["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=an unrelated CA", "-keyout", "other.key", "-out", "other-ca.pem"]);
        openssl(d, &["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key", "-out", "server.csr"]);
        std::fs::write(d.join("server.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n").unwrap();
        openssl(d, &["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2", "-extfile", "server.ext", "-out", "server.pem"]);
        std::fs::create_dir(d.join("db")).unwrap();
        let p = d.display();
        std::fs::write(
            d.join("slapd.conf"),
            format!(
                "include /etc/ldap/schema/core.schema\ninclude /etc/ldap/schema/cosine.schema\ninclude /etc/ldap/schema/inetorgperson.schema\ninclude /etc/ldap/schema/nis.schema\n\
                 modulepath /usr/lib/ldap\nmoduleload back_mdb\n{load}pidfile {p}/slapd.pid\n\
                 TLSCACertificateFile {p}/ca.pem\nTLSCertificateFile {p}/server.pem\nTLSCertificateKeyFile {p}/server.key\n\
                 database mdb\nmaxsize 104857600\nsuffix \"{SUFFIX}\"\nrootdn \"{ADMIN}\"\nrootpw {ADMIN_PW}\ndirectory {p}/db\n\
                 access to attrs=userPassword by anonymous auth by * none\naccess to * by users read by * none\n\
                 limits dn.exact=\"{READER}\" size=unlimited size.prtotal=unlimited\n{overlay}"
            , load = if syncprov { "moduleload syncprov\n" } else { "" }, overlay = if syncprov { "overlay syncprov\n" } else { "" }),
        )
        .unwrap();
        let mut slapd = Slapd { child: None, dir, port: free_port(), tls_port: free_port() };
        slapd.run();
        slapd.ldif("add", &format!(
            "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n\
             dn: ou=system,{SUFFIX}\nobjectClass: organizationalUnit\nou: system\n\n\
             dn: {READER}\nobjectClass: person\ncn: reader\nsn: reader\nuserPassword: {READER_PW}\n\n\
             dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n\n\
             dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups\n"
        ));
        Some(slapd)
    }

    fn run(&mut self) {
        let d = self.dir.path();
        let child = Command::new(SLAPD)
            .args(["-d", "0", "-f"])
            .arg(d.join("slapd.conf"))
            .arg("-h")
            .arg(format!("ldap://127.0.0.1:{}/ ldaps://127.0.0.1:{}/", self.port, self.tls_port))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting slapd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                let mut err = String::new();
                use std::io::Read as _;
                let _ = self.child.as_mut().unwrap().stderr.take().unwrap().read_to_string(&mut err);
                panic!("slapd exited ({status}): {err}");
            }
            assert!(Instant::now() < deadline, "slapd did not listen on port {} within 20 s", self.port);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Runs `ldapadd` or `ldapmodify` (`-c` off: any failure fails the test) as the rootdn.
    fn ldif(&self, tool: &str, ldif: &str) {
        let path = self.dir.path().join("change.ldif");
        std::fs::write(&path, ldif).unwrap();
        let bin = if tool == "add" { "ldapadd" } else { "ldapmodify" };
        let out = Command::new(bin)
            .args(["-x", "-H", &format!("ldap://127.0.0.1:{}", self.port), "-D", ADMIN, "-w", ADMIN_PW, "-f"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{bin}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn settings(&self) -> LdapSettings {
        LdapSettings {
            url: format!("ldap://127.0.0.1:{}", self.port),
            starttls: false,
            ca_file: None,
            bind_dn: Some(READER.into()),
            password: Some(SecretString::from(READER_PW)),
            preset: Preset::Openldap,
            page_size: 2,
            timeout: Duration::from_secs(10),
            users: UserMap { base_dn: format!("ou=people,{SUFFIX}"), ..UserMap::default() },
            groups: GroupMap { base_dn: format!("ou=groups,{SUFFIX}"), ..GroupMap::default() },
        }
    }
}

fn user(uid: &str, mail: &str) -> String {
    format!("dn: uid={uid},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid} Person\nsn: Person\ngivenName: {uid}\nmail: {mail}\n\n")
}

fn group(cn: &str, members: &[&str]) -> String {
    let mut s = format!("dn: cn={cn},ou=groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: {cn}\ndescription: the {cn} group\n");
    for m in members {
        s.push_str(&format!("member: {m}\n"));
    }
    s.push('\n');
    s
}

fn udn(uid: &str) -> String {
    format!("uid={uid},ou=people,{SUFFIX}")
}

fn gdn(cn: &str) -> String {
    format!("cn={cn},ou=groups,{SUFFIX}")
}

fn scope() -> MirrorScope {
    MirrorScope { source: "dir".into(), subject_source: "ldap".into(), folder: FolderPath::parse("ldap:staff").unwrap() }
}

fn gname(ext: &str) -> GroupName {
    GroupName::parse(&format!("ldap:staff:{ext}")).unwrap()
}

fn sub(id: &str) -> GroupMember {
    GroupMember::Subject(SubjectKey::new("ldap", id))
}

async fn registry(dir: &Path) -> Box<dyn Store> {
    duoprov_registry::open(&format!("sqlite://{}", dir.join("registry.db").display()), &OpenOptions::default()).await.unwrap()
}

/// Reads the directory and mirrors it with default thresholds.
async fn sync(slapd: &Slapd, store: &dyn Store, approve: Option<&str>) -> duoprov_source::Report {
    let mut reader = LdapReader::connect(&slapd.settings()).await.expect("connect and bind");
    let snapshot = reader.read("ldap", &scope().folder, &mut |_| {}).await.expect("read the directory");
    reader.close().await;
    mirror(store, &scope(), &snapshot, &Thresholds::default(), approve, false, &duoprov_registry::AuditActor::cli()).await.expect("mirror")
}

fn base_ldif() -> String {
    let mut s = String::new();
    for u in ["alice", "bob", "carol", "dave"] {
        s.push_str(&user(u, &format!("{u}@example.org")));
    }
    s.push_str(&group("admins", &[&udn("alice")]));
    s.push_str(&group("staff", &[&udn("bob"), &udn("carol"), &gdn("admins")]));
    s.push_str(&group("ops", &[&udn("dave"), &format!("uid=ghost,ou=people,{SUFFIX}")]));
    s
}

#[tokio::test]
async fn a_directory_is_mirrored_with_nested_groups_and_a_member_naming_nothing_is_reported_not_fatal() {
    let Some(slapd) = Slapd::start() else { return };
    slapd.ldif("add", &base_ldif());
    let tmp = tempfile::tempdir().unwrap();
    let store = registry(tmp.path()).await;
    let report = sync(&slapd, &*store, None).await;
    assert_eq!(report.outcome, Outcome::Applied);
    assert_eq!(store.subjects(Some("ldap")).await.unwrap().iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["alice", "bob", "carol", "dave"]);
    let alice = store.subject(&SubjectKey::new("ldap", "alice")).await.unwrap().unwrap();
    assert_eq!((alice.email.as_deref(), alice.first_name.as_deref(), alice.name.as_deref()), (Some("alice@example.org"), Some("alice"), Some("alice Person")));
    assert_eq!(store.members(&gname("staff")).await.unwrap(), vec![sub("bob"), sub("carol"), GroupMember::Group { name: gname("admins") }]);
    let effective: Vec<String> = store.effective_members(&gname("staff")).await.unwrap().into_iter().map(|m| m.subject.id).collect();
    assert_eq!(effective, ["alice", "bob", "carol"]);
    assert_eq!(store.members(&gname("ops")).await.unwrap(), vec![sub("dave")]);
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(report.problems[0].contains("uid=ghost") && report.problems[0].contains("ldap:staff:ops"), "{:?}", report.problems);
    assert_eq!(store.group(&gname("staff")).await.unwrap().unwrap().description.as_deref(), Some("the staff group"));
    // A second run with nothing changed writes nothing.
    let seq = store.last_change_seq().await.unwrap();
    assert_eq!(sync(&slapd, &*store, None).await.outcome, Outcome::Unchanged);
    assert_eq!(store.last_change_seq().await.unwrap(), seq);
}

#[tokio::test]
async fn adds_modifies_deletes_and_renames_in_the_directory_reach_the_registry_with_one_change_entry_each() {
    let Some(slapd) = Slapd::start() else { return };
    slapd.ldif("add", &base_ldif());
    let tmp = tempfile::tempdir().unwrap();
    let store = registry(tmp.path()).await;
    sync(&slapd, &*store, None).await;
    let staff_uuid = store.group(&gname("staff")).await.unwrap().unwrap().uuid;
    let seq = store.last_change_seq().await.unwrap();

    slapd.ldif("add", &(user("erin", "erin@example.org") + &group("new", &[&udn("erin")])));
    slapd.ldif(
        "modify",
        &format!(
            "dn: {}\nchangetype: modify\nreplace: mail\nmail: bob@new.example.org\n\n\
             dn: {}\nchangetype: modify\ndelete: member\nmember: {}\n-\nadd: member\nmember: {}\n\n\
             dn: {}\nchangetype: delete\n\n\
             dn: {}\nchangetype: modrdn\nnewrdn: cn=personnel\ndeleteoldrdn: 1\n\n",
            udn("bob"),
            gdn("staff"),
            udn("carol"),
            udn("erin"),
            udn("dave"),
            gdn("staff"),
        ),
    );
    let report = sync(&slapd, &*store, None).await;
    assert_eq!(report.outcome, Outcome::Applied, "{report:?}");
    // The rename kept the group: same uuid, members intact, under its new name.
    assert!(store.group(&gname("staff")).await.unwrap().is_none());
    let personnel = store.group(&gname("personnel")).await.unwrap().unwrap();
    assert_eq!(personnel.uuid, staff_uuid);
    assert_eq!(store.members(&gname("personnel")).await.unwrap(), vec![sub("bob"), sub("erin"), GroupMember::Group { name: gname("admins") }]);
    assert_eq!(store.subject(&SubjectKey::new("ldap", "bob")).await.unwrap().unwrap().email.as_deref(), Some("bob@new.example.org"));
    assert!(store.subject(&SubjectKey::new("ldap", "dave")).await.unwrap().is_none(), "a user deleted in the directory is removed");
    assert!(store.members(&gname("ops")).await.unwrap().is_empty());
    assert_eq!(store.members(&gname("new")).await.unwrap(), vec![sub("erin")]);

    let entries = store.changes_after(seq, 1000).await.unwrap();
    let count = |k: ChangeKind| entries.iter().filter(|e| e.kind == k).count();
    assert_eq!(count(ChangeKind::SubjectAdded), 1, "erin");
    assert_eq!(count(ChangeKind::SubjectUpdated), 1, "bob's mail");
    assert_eq!(count(ChangeKind::SubjectRemoved), 1, "dave");
    assert_eq!(count(ChangeKind::GroupAdded), 1, "new");
    assert_eq!(count(ChangeKind::GroupUpdated), 1, "the rename");
    assert_eq!(count(ChangeKind::MemberRemoved), 2, "carol from personnel, dave from ops");
    assert_eq!(count(ChangeKind::MemberAdded), 2, "erin to personnel and to new");
    assert_eq!(entries.len(), 9, "{entries:?}");
    let rename = entries.iter().find(|e| e.kind == ChangeKind::GroupUpdated).unwrap();
    assert!(rename.groups.contains(&staff_uuid));
}

#[tokio::test]
async fn ldaps_and_starttls_verify_the_server_against_the_ca_file_and_refuse_an_unrelated_ca() {
    let Some(slapd) = Slapd::start() else { return };
    slapd.ldif("add", &base_ldif());
    let mut ldaps = slapd.settings();
    ldaps.url = format!("ldaps://127.0.0.1:{}", slapd.tls_port);
    ldaps.ca_file = Some(slapd.ca());
    let mut reader = LdapReader::connect(&ldaps).await.expect("ldaps with the CA file");
    let snapshot = reader.read("ldap", &scope().folder, &mut |_| {}).await.unwrap();
    assert_eq!(snapshot.subjects.len(), 4);
    let mut starttls = slapd.settings();
    starttls.starttls = true;
    starttls.ca_file = Some(slapd.ca());
    let mut reader = LdapReader::connect(&starttls).await.expect("StartTLS with the CA file");
    assert_eq!(reader.read("ldap", &scope().folder, &mut |_| {}).await.unwrap().groups.len(), 3);
    let mut wrong = ldaps.clone();
    wrong.ca_file = Some(slapd.dir.path().join("other-ca.pem"));
    let err = LdapReader::connect(&wrong).await.err().expect("an unrelated CA is refused");
    assert!(matches!(err, LdapReadError::Connect { .. }), "{err}");
    let mut wrong_starttls = starttls.clone();
    wrong_starttls.ca_file = Some(slapd.dir.path().join("other-ca.pem"));
    assert!(LdapReader::connect(&wrong_starttls).await.is_err(), "StartTLS with an unrelated CA is refused");
}

#[tokio::test]
async fn a_bind_failure_is_a_clear_error_without_the_password() {
    let Some(slapd) = Slapd::start() else { return };
    let mut s = slapd.settings();
    s.password = Some(SecretString::from("wrong-Password-123"));
    let err = LdapReader::connect(&s).await.err().expect("a wrong password fails the bind");
    let text = err.to_string();
    assert!(matches!(err, LdapReadError::Bind { .. }), "{text}");
    assert!(text.contains(READER) && text.contains("49"), "names the bind DN and the result code: {text}");
    assert!(!text.contains("wrong-Password-123") && !text.contains(READER_PW), "{text}");
}

#[tokio::test]
async fn slapd_stopping_mid_read_fails_the_run_and_changes_nothing() {
    let Some(mut slapd) = Slapd::start() else { return };
    slapd.ldif("add", &base_ldif());
    let tmp = tempfile::tempdir().unwrap();
    let store = registry(tmp.path()).await;
    sync(&slapd, &*store, None).await;
    slapd.ldif("modify", &format!("dn: {}\nchangetype: delete\n\n", udn("carol")));
    let seq = store.last_change_seq().await.unwrap();
    let before = store.mirror_owned(&scope()).await.unwrap();

    let mut reader = LdapReader::connect(&slapd.settings()).await.unwrap();
    let slapd_ref = &mut slapd;
    // Pages of 2 entries: stopping slapd after the first entry fails the next page's request.
    let result = reader.read("ldap", &scope().folder, &mut |n| if n == 1 { slapd_ref.stop() }).await;
    let err = result.expect_err("a directory that goes away fails the read");
    assert!(matches!(err, LdapReadError::Search { .. }), "{err}");
    assert!(err.to_string().contains("nothing was changed"), "{err}");
    assert_eq!(store.last_change_seq().await.unwrap(), seq);
    assert_eq!(store.mirror_owned(&scope()).await.unwrap(), before);
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

#[tokio::test]
async fn a_change_found_by_modify_timestamp_polling_is_read_and_reaches_the_registry() {
    let Some(slapd) = Slapd::start() else { return };
    slapd.ldif("add", &base_ldif());
    let tmp = tempfile::tempdir().unwrap();
    let store = registry(tmp.path()).await;
    sync(&slapd, &*store, None).await;
    let mut reader = LdapReader::connect(&slapd.settings()).await.expect("connect and bind");
    // Nothing was modified after a time to come: the filter on modifyTimestamp finds nothing.
    assert!(!reader.changed_since(now_ms() + 3_600_000).await.unwrap());
    // The daemon polls from the start of its last read, less the overlap.
    let last_read = now_ms() - 2_000;
    slapd.ldif("modify", &format!("dn: {}\nchangetype: modify\ndelete: member\nmember: {}\n\n", gdn("staff"), udn("carol")));
    assert!(reader.changed_since(last_read).await.unwrap(), "the modified group is found by its modifyTimestamp");
    reader.close().await;
    // Found, the source is read whole and mirrored: carol leaves staff.
    let report = sync(&slapd, &*store, None).await;
    assert_eq!(report.counts.members_removed, 1, "{report:?}");
    assert_eq!(store.members(&gname("staff")).await.unwrap(), vec![sub("bob"), GroupMember::Group { name: gname("admins") }]);
}

/// Waits (with a deadline) for the next change the persistent search reports.
async fn next_change(persist: &mut duoprov_source::syncrepl::Persist) -> String {
    tokio::time::timeout(Duration::from_secs(10), persist.next_change()).await.expect("a change reported within 10 s").expect("the persistent search goes on")
}

#[tokio::test]
async fn a_syncrepl_persistent_search_reports_adds_modifies_renames_and_deletes_and_ends_when_slapd_stops() {
    let Some(mut slapd) = Slapd::start() else { return };
    slapd.ldif("add", &base_ldif());
    let mut reader = LdapReader::connect(&slapd.settings()).await.expect("connect and bind");
    assert!(reader.offers_syncrepl().await.unwrap(), "slapd with syncprov offers syncrepl");
    // The refresh phase (the entries already there) reports nothing; it is over when persist returns.
    let mut persist = reader.persist().await.expect("the persistent searches start");
    slapd.ldif("add", &user("erin", "erin@example.org"));
    assert_eq!(normalize(&next_change(&mut persist).await), normalize(&udn("erin")));
    slapd.ldif("modify", &format!("dn: {}\nchangetype: modify\nadd: member\nmember: {}\n\n", gdn("ops"), udn("erin")));
    assert_eq!(normalize(&next_change(&mut persist).await), normalize(&gdn("ops")));
    slapd.ldif("modify", &format!("dn: {}\nchangetype: modrdn\nnewrdn: cn=operations\ndeleteoldrdn: 1\n\n", gdn("ops")));
    assert_eq!(normalize(&next_change(&mut persist).await), normalize(&gdn("operations")));
    slapd.ldif("modify", &format!("dn: {}\nchangetype: delete\n\n", udn("dave")));
    assert_eq!(normalize(&next_change(&mut persist).await), normalize(&udn("dave")));
    // An entry outside both bases is not reported; the next change under them is.
    slapd.ldif("add", &format!("dn: cn=elsewhere,ou=system,{SUFFIX}\nobjectClass: person\ncn: elsewhere\nsn: elsewhere\n\n"));
    slapd.ldif("modify", &format!("dn: {}\nchangetype: modify\nreplace: mail\nmail: b@example.org\n\n", udn("bob")));
    assert_eq!(normalize(&next_change(&mut persist).await), normalize(&udn("bob")));
    slapd.stop();
    let ended = tokio::time::timeout(Duration::from_secs(10), persist.next_change()).await.expect("the end noticed within 10 s");
    let err = ended.expect_err("slapd stopping ends the persistent search");
    assert!(err.to_string().contains(&format!("127.0.0.1:{}", slapd.port)) && !err.to_string().contains(READER_PW), "{err}");
}

fn normalize(dn: &str) -> String {
    duoprov_source::ldap::normalize_dn(dn)
}

#[tokio::test]
async fn a_directory_without_the_syncprov_overlay_is_found_not_to_offer_syncrepl() {
    let Some(slapd) = Slapd::start_with(false) else { return };
    let mut reader = LdapReader::connect(&slapd.settings()).await.expect("connect and bind");
    assert!(!reader.offers_syncrepl().await.unwrap());
}
