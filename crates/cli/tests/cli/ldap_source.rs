//! An LDAP source end to end through `duoprov run`: a private OpenLDAP `slapd` (mdb, the
//! syncprov overlay, a service account with unlimited sizes) on a loopback port, the Duo
//! emulator, and the daemon running the source and a provisioner that owns its folder. A member
//! added to or removed from a group with `ldapmodify` reaches the Duo group within seconds —
//! through syncrepl (with polling off, so nothing else could carry it; `source status` shows the
//! feed connected, down and stopped as the daemon recorded it), and through
//! `modifyTimestamp` polling with `sync_mode = "poll"`; slapd stopping leaves Duo and the
//! registry as they were while `/readyz` shows the feed down, and once slapd is back the feed
//! reconnects and changes flow again. Without slapd and ldap-utils the tests report `SKIPPED`
//! and pass, unless `DUOPROV_REQUIRE_EXTERNAL=1` (CI), where they fail.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::faults::{emulator, folder};

const SLAPD: &str = "/usr/sbin/slapd";
const SUFFIX: &str = "dc=example,dc=org";
const ADMIN: &str = "cn=admin,dc=example,dc=org";
const ADMIN_PW: &str = "admin-secret";
const READER: &str = "cn=reader,ou=system,dc=example,dc=org";
const READER_PW: &str = "reader-Secret-77";

/// A private slapd with syncprov; stopped when dropped.
pub struct Slapd {
    child: Option<Child>,
    dir: tempfile::TempDir,
    pub port: u16,
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Slapd {
    /// Starts slapd with the base entries (the suffix, `ou=people`, `ou=groups`, the service
    /// account) loaded, or `None` after reporting the skip.
    pub fn start() -> Option<Slapd> {
        if let Some(p) = [SLAPD, "/usr/bin/ldapadd", "/usr/bin/ldapmodify"].into_iter().find(|p| !Path::new(p).exists()) {
            if std::env::var("DUOPROV_REQUIRE_EXTERNAL").as_deref() == Ok("1") {
                panic!("{p} is missing but DUOPROV_REQUIRE_EXTERNAL=1 (install slapd and ldap-utils)");
            }
            crate::skipped(&format!("{p} is not installed (apt-get install slapd ldap-utils)"));
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("db")).unwrap();
        let p = d.display();
        std::fs::write(
            d.join("slapd.conf"),
            format!(
                "include /etc/ldap/schema/core.schema\ninclude /etc/ldap/schema/cosine.schema\ninclude /etc/ldap/schema/inetorgperson.schema\n\
                 modulepath /usr/lib/ldap\nmoduleload back_mdb\nmoduleload syncprov\npidfile {p}/slapd.pid\n\
                 database mdb\nmaxsize 1073741824\nsuffix \"{SUFFIX}\"\nrootdn \"{ADMIN}\"\nrootpw {ADMIN_PW}\ndirectory {p}/db\n\
                 access to attrs=userPassword by anonymous auth by * none\naccess to * by users read by * none\n\
                 limits dn.exact=\"{READER}\" size=unlimited size.prtotal=unlimited\noverlay syncprov\n"
            ),
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut slapd = Slapd { child: None, dir, port };
        slapd.run();
        slapd.ldif(&format!(
            "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n\
             dn: ou=system,{SUFFIX}\nobjectClass: organizationalUnit\nou: system\n\n\
             dn: {READER}\nobjectClass: person\ncn: reader\nsn: reader\nuserPassword: {READER_PW}\n\n\
             dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n\n\
             dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups\n\n"
        ));
        Some(slapd)
    }

    /// Starts (or restarts, on the same port and database) slapd and waits until it listens.
    pub fn run(&mut self) {
        let d = self.dir.path();
        let child = Command::new(SLAPD)
            .args(["-d", "0", "-f"])
            .arg(d.join("slapd.conf"))
            .arg("-h")
            .arg(format!("ldap://127.0.0.1:{}/", self.port))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting slapd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("slapd exited ({status})");
            }
            assert!(Instant::now() < deadline, "slapd did not listen on port {} within 20 s", self.port);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Applies LDIF change records (`changetype:` lines; plain records are adds) as the rootdn
    /// with `ldapmodify -a`; any failure fails the test.
    pub fn ldif(&self, ldif: &str) {
        let path = self.dir.path().join("change.ldif");
        std::fs::write(&path, ldif).unwrap();
        let out = Command::new("ldapmodify")
            .args(["-a", "-x", "-H", &format!("ldap://127.0.0.1:{}", self.port), "-D", ADMIN, "-w", ADMIN_PW, "-f"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "ldapmodify: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }

    /// The `[source.dir]` section reading this directory into folder `dir`.
    pub fn source_config(&self, extra: &str) -> String {
        format!(
            "\n[source.dir]\nkind = \"ldap\"\nsubject_source = \"ldap\"\nfolder = \"dir\"\nurl = \"ldap://127.0.0.1:{}\"\nbind_dn = \"{READER}\"\npassword_file = \"ldap.pw\"\ntimeout_secs = 5\n{extra}\
             [source.dir.users]\nbase_dn = \"ou=people,{SUFFIX}\"\n[source.dir.groups]\nbase_dn = \"ou=groups,{SUFFIX}\"\n",
            self.port
        )
    }
}

pub fn user(uid: &str) -> String {
    format!("dn: uid={uid},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid} Person\nsn: Person\nmail: {uid}@example.org\n\n")
}

pub fn group(cn: &str, uids: &[&str]) -> String {
    let mut s = format!("dn: cn={cn},ou=groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: {cn}\n");
    for u in uids {
        s.push_str(&format!("member: {}\n", udn(u)));
    }
    s + "\n"
}

pub fn udn(uid: &str) -> String {
    format!("uid={uid},ou=people,{SUFFIX}")
}

pub fn member_change(cn: &str, op: &str, uid: &str) -> String {
    format!("dn: cn={cn},ou=groups,{SUFFIX}\nchangetype: modify\n{op}: member\nmember: {}\n\n", udn(uid))
}

/// A folder provisioned by `duoTest` into the emulator, the directory's source reading into it,
/// and its password file.
pub fn setup(dir: &Path, emu: &duoprov_emulator::RunningEmulator, slapd: &Slapd, extra: &str) {
    let tenant = json!({"folders": [{"path": "dir"}], "markers": [{"provisioner": "duoTest", "folder": "dir"}]});
    folder(dir, emu, 2, &tenant.to_string());
    std::fs::write(dir.join("ldap.pw"), READER_PW).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("ldap.pw"), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let mut config = std::fs::read_to_string(dir.join("duoprov.toml")).unwrap();
    config.push_str(&slapd.source_config(extra));
    std::fs::write(dir.join("duoprov.toml"), config).unwrap();
}

/// Usernames of the Duo group's members (empty while the group does not exist).
pub fn duo_members(emu: &duoprov_emulator::RunningEmulator, group: &str) -> Vec<String> {
    let dump = serde_json::to_value(emu.handle().state()).unwrap();
    let Some(id) = dump["groups"].as_array().unwrap().iter().find(|g| g["name"] == group).map(|g| g["group_id"].clone()) else { return Vec::new() };
    let mut names: Vec<String> = dump["users"].as_array().unwrap().iter().filter(|u| u["groups"].as_array().unwrap().contains(&id)).map(|u| u["username"].as_str().unwrap().to_owned()).collect();
    names.sort();
    names
}

/// Polls `f` every 20 ms until it holds, failing with `what` and the last value after `timeout`.
pub fn poll<T: std::fmt::Debug>(what: &str, timeout: Duration, f: impl Fn() -> (bool, T)) {
    let deadline = Instant::now() + timeout;
    loop {
        let (ok, last) = f();
        if ok {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}; last: {last:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn readyz(status: &str) -> Value {
    let (_, body) = crate::daemon::get(status, "/readyz");
    serde_json::from_str(&body).unwrap_or(Value::Null)
}

fn staff_is<'a>(emu: &'a duoprov_emulator::RunningEmulator, want: &'a [&'a str]) -> impl Fn() -> (bool, Vec<String>) + 'a {
    move || {
        let got = duo_members(emu, "staff");
        (got == want, got)
    }
}

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldap_membership_changes_reach_duo_through_syncrepl_and_survive_slapd_stopping_and_coming_back() {
    let Some(mut slapd) = Slapd::start() else { return };
    slapd.ldif(&format!("{}{}{}", user("alice"), user("bob"), group("staff", &["alice"])));
    let emu = emulator("").await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Polling off and reads hourly: only syncrepl can carry a change within the test's deadlines.
    setup(dir, &emu, &slapd, "schedule = \"every 1h\"\npoll_interval = \"off\"\n");
    let daemon = crate::daemon::start_daemon(dir, &[]);
    let status = daemon.status.clone();
    poll("staff = alice in Duo", WAIT, staff_is(&emu, &["alice"]));
    poll("the feed connected on /readyz", WAIT, || {
        let v = readyz(&status);
        (v["sources"]["dir"]["mode"] == "syncrepl" && v["sources"]["dir"]["connected"] == true, v)
    });

    slapd.ldif(&member_change("staff", "add", "bob"));
    poll("bob added to staff in Duo", WAIT, staff_is(&emu, &["alice", "bob"]));
    slapd.ldif(&member_change("staff", "delete", "alice"));
    poll("alice removed from staff in Duo", WAIT, staff_is(&emu, &["bob"]));
    let (_, metrics) = crate::daemon::get(&status, "/metrics");
    assert!(metrics.contains("duoprov_source_feed_connected{source=\"dir\"} 1"), "{metrics}");
    // `source status` shows what /readyz shows, from the registry: connected, and the last change.
    poll("the feed connected in `source status`", WAIT, || {
        let (out, _) = crate::run(dir, &["source", "status"], 0);
        (out.lines().any(|l| l.starts_with("dir") && l.contains("syncrepl connected since") && l.contains("; last change")), out)
    });

    // slapd stops: the feed is shown down with the directory's URL, and nothing is removed.
    slapd.stop();
    poll("the feed down on /readyz", WAIT, || {
        let v = readyz(&status);
        let s = &v["sources"]["dir"];
        (s["connected"] == false && s["feed_error"].as_str().is_some_and(|e| e.contains(&format!("127.0.0.1:{}", slapd.port))), v)
    });
    let v = readyz(&status);
    assert!(!v.to_string().contains(READER_PW), "{v}");
    poll("the feed down in `source status`", WAIT, || {
        let (out, _) = crate::run(dir, &["source", "status", "--json"], 0);
        let v: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
        let feed = &v[0]["feed"];
        (feed["connected"] == false && feed["error"].as_str().is_some_and(|e| e.contains(&format!("127.0.0.1:{}", slapd.port))), v)
    });
    let (out, _) = crate::run(dir, &["source", "status"], 0);
    assert!(out.contains("syncrepl down since") && !out.contains(READER_PW), "{out}");
    assert_eq!(duo_members(&emu, "staff"), ["bob"]);
    let (out, _) = crate::run(dir, &["member", "list", "dir:staff", "--json"], 0);
    assert!(out.contains("\"bob\"") && !out.contains("\"alice\""), "{out}");

    // slapd comes back: the feed reconnects and changes flow again.
    slapd.run();
    poll("the feed reconnected on /readyz", Duration::from_secs(90), || {
        let v = readyz(&status);
        (v["sources"]["dir"]["connected"] == true && v["sources"]["dir"]["feed_error"].is_null(), v)
    });
    slapd.ldif(&member_change("staff", "add", "alice"));
    poll("alice back in staff in Duo", WAIT, staff_is(&emu, &["alice", "bob"]));
    let (code, err) = daemon.stop();
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains(READER_PW), "the log shows the bind password");
    // A daemon that stopped leaves no "connected" behind.
    let (out, _) = crate::run(dir, &["source", "status"], 0);
    assert!(out.lines().any(|l| l.starts_with("dir") && l.contains("not followed since") && l.contains("the daemon stopped")), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_sync_mode_poll_an_ldap_membership_change_reaches_duo_by_modify_timestamp_polling() {
    let Some(slapd) = Slapd::start() else { return };
    slapd.ldif(&format!("{}{}{}", user("alice"), user("bob"), group("staff", &["alice"])));
    let emu = emulator("").await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    setup(dir, &emu, &slapd, "schedule = \"every 1h\"\nsync_mode = \"poll\"\npoll_interval = \"1s\"\n");
    let daemon = crate::daemon::start_daemon(dir, &[]);
    let status = daemon.status.clone();
    poll("staff = alice in Duo", WAIT, staff_is(&emu, &["alice"]));
    let v = readyz(&status);
    assert_eq!(v["sources"]["dir"]["mode"], "polling", "{v}");
    assert!(v["sources"]["dir"]["connected"].is_null(), "{v}");
    slapd.ldif(&member_change("staff", "add", "bob"));
    poll("bob added to staff in Duo", WAIT, staff_is(&emu, &["alice", "bob"]));
    let (code, err) = daemon.stop();
    assert_eq!(code, Some(0), "{err}");
}
