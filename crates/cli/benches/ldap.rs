//! An LDAP source at scale, against a private OpenLDAP `slapd` (mdb, syncprov) loaded with
//! `slapadd`: 10 000 users, 1 000 groups of 100 members each (100 000 member values), read by a
//! service account with paged results.
//!
//! 1. Mirror: `duoprov source sync dir` into a fresh SQLite registry (the first run writes
//!    everything), then again with nothing changed — which must write nothing: its outcome is
//!    `unchanged` and the registry's change log does not move (the bench fails otherwise). Wall
//!    time and peak RSS (`/usr/bin/time -v`) of each.
//! 2. Latency: a provisioner selects five of the groups (Duo holds them after a full sync to the
//!    in-process emulator), and `duoprov run` follows the directory by syncrepl (polling off,
//!    reads otherwise hourly). 50 times, one user is added to one of those groups with
//!    `ldapmodify`, and the time from `ldapmodify` returning to the emulator holding the
//!    membership is measured (watching the tenant every 5 ms), one change at a time. Printed:
//!    p50, p90, p99 and max; target p99 ≤ 3 s.
//!
//! `cargo bench -p duoprov --bench ldap` (release build). Needs slapd and ldap-utils (and
//! `/usr/bin/time`); without them it says so and exits 0. Exits non-zero if a change never
//! arrives or a check fails, so a lost change cannot pass as a timing.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use duoprov_emulator::{Emulator, Integration};
use duoprov_model::{GroupName, Marker, MarkerScope, MarkerTarget};
use duoprov_registry::OpenOptions;
use serde_json::Value;

const IKEY: &str = "DIBENCHLDAP000000001";
const SKEY: &str = "bench-ldap-secret-key-0123456789abcdefgh";
const SUFFIX: &str = "dc=example,dc=org";
const ADMIN: &str = "cn=admin,dc=example,dc=org";
const ADMIN_PW: &str = "admin-secret";
const READER: &str = "cn=reader,ou=system,dc=example,dc=org";
const READER_PW: &str = "reader-Secret-77";
const USERS: usize = 10_000;
const GROUPS: usize = 1_000;
const PER_GROUP: usize = 100;
const SELECTED: usize = 5;
const CHANGES: usize = 50;

fn fail(message: String) -> ! {
    eprintln!("FAILED: {message}");
    std::process::exit(1);
}

fn duoprov(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_duoprov"));
    c.current_dir(dir).env_remove("DUOPROV_CONFIG").env_remove("DUOPROV_REGISTRY_URL").env_remove("RUST_LOG");
    c
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg").map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")).unwrap_or_default()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The members of group `g`: users g·100 … g·100+99 (modulo the user count).
fn members_of(g: usize) -> impl Iterator<Item = usize> {
    (0..PER_GROUP).map(move |i| (g * PER_GROUP + i) % USERS)
}

fn ldif() -> String {
    let mut s = format!(
        "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n\
         dn: ou=system,{SUFFIX}\nobjectClass: organizationalUnit\nou: system\n\n\
         dn: {READER}\nobjectClass: person\ncn: reader\nsn: reader\nuserPassword: {READER_PW}\n\n\
         dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups\n\n"
    );
    for u in 0..USERS {
        s.push_str(&format!("dn: uid=u{u:05},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: u{u:05}\ncn: User {u}\nsn: User\ngivenName: U{u}\nmail: u{u:05}@example.org\n\n"));
    }
    for g in 0..GROUPS {
        s.push_str(&format!("dn: cn=g{g:04},ou=groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: g{g:04}\ndescription: group {g}\n"));
        for u in members_of(g) {
            s.push_str(&format!("member: uid=u{u:05},ou=people,{SUFFIX}\n"));
        }
        s.push('\n');
    }
    s
}

struct Slapd {
    child: Child,
    port: u16,
    conf: PathBuf,
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Slapd {
    fn start(dir: &Path) -> Slapd {
        let p = dir.display();
        std::fs::create_dir_all(dir.join("db")).unwrap();
        let conf = dir.join("slapd.conf");
        std::fs::write(
            &conf,
            format!(
                "include /etc/ldap/schema/core.schema\ninclude /etc/ldap/schema/cosine.schema\ninclude /etc/ldap/schema/inetorgperson.schema\n\
                 modulepath /usr/lib/ldap\nmoduleload back_mdb\nmoduleload syncprov\npidfile {p}/slapd.pid\n\
                 database mdb\nmaxsize 1073741824\nsuffix \"{SUFFIX}\"\nrootdn \"{ADMIN}\"\nrootpw {ADMIN_PW}\ndirectory {p}/db\n\
                 index objectClass eq\nindex entryCSN,entryUUID eq\n\
                 access to attrs=userPassword by anonymous auth by * none\naccess to * by users read by * none\n\
                 limits dn.exact=\"{READER}\" size=unlimited size.prtotal=unlimited\noverlay syncprov\n"
            ),
        )
        .unwrap();
        std::fs::write(dir.join("data.ldif"), ldif()).unwrap();
        let t = Instant::now();
        let out = Command::new("/usr/sbin/slapadd").args(["-q", "-w", "-f"]).arg(&conf).arg("-l").arg(dir.join("data.ldif")).output().expect("slapadd");
        if !out.status.success() {
            fail(format!("slapadd: {}", String::from_utf8_lossy(&out.stderr)));
        }
        println!("slapadd: {USERS} users, {GROUPS} groups, {} member values in {:.1} s", GROUPS * PER_GROUP, t.elapsed().as_secs_f64());
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("/usr/sbin/slapd")
            .args(["-d", "0", "-f"])
            .arg(&conf)
            .arg("-h")
            .arg(format!("ldap://127.0.0.1:{port}/"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("slapd");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                fail("slapd did not listen within 30 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Slapd { child, port, conf }
    }

    fn modify(&self, ldif: &str) {
        let path = self.conf.with_file_name("change.ldif");
        std::fs::write(&path, ldif).unwrap();
        let out = Command::new("ldapmodify").args(["-x", "-H", &format!("ldap://127.0.0.1:{}", self.port), "-D", ADMIN, "-w", ADMIN_PW, "-f"]).arg(&path).output().unwrap();
        if !out.status.success() {
            fail(format!("ldapmodify: {}", String::from_utf8_lossy(&out.stderr)));
        }
    }
}

struct Timed {
    report: Value,
    wall: f64,
    max_rss_mib: f64,
}

fn timed_source_sync(dir: &Path) -> Timed {
    let t = Instant::now();
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(env!("CARGO_BIN_EXE_duoprov"))
        .args(["--json", "source", "sync", "dir"])
        .current_dir(dir)
        .env_remove("DUOPROV_CONFIG")
        .env_remove("DUOPROV_REGISTRY_URL")
        .env_remove("RUST_LOG")
        .output()
        .unwrap_or_else(|e| fail(format!("running /usr/bin/time duoprov: {e}")));
    let wall = t.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        fail(format!("duoprov source sync: {}: {stderr}", out.status));
    }
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| fail(format!("the report is not JSON: {e}")));
    let rss = stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):").and_then(|v| v.trim().parse::<f64>().ok()))
        .unwrap_or_else(|| fail(format!("no peak RSS in time's output: {stderr}")));
    Timed { report, wall, max_rss_mib: rss / 1024.0 }
}

fn main() {
    for p in ["/usr/sbin/slapd", "/usr/sbin/slapadd", "/usr/bin/ldapmodify", "/usr/bin/time"] {
        if !Path::new(p).exists() {
            println!("SKIPPED: the LDAP bench needs {p} (apt-get install slapd ldap-utils time)");
            return;
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(bench());
}

async fn bench() {
    println!("LDAP bench, {}, load average {}", String::from_utf8_lossy(&Command::new("date").arg("-u").output().map(|o| o.stdout).unwrap_or_default()).trim(), load());
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    let slapd = Slapd::start(&dir.join("slapd"));
    let emulator = Emulator::builder().integration(Integration::new(IKEY, SKEY)).spawn_on("127.0.0.1:0").await.expect("emulator");
    std::fs::write(dir.join("duo.skey"), SKEY).unwrap();
    std::fs::write(dir.join("ldap.pw"), READER_PW).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in ["duo.skey", "ldap.pw"] {
            std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    }
    let config = format!(
        "[registry]\nurl = \"sqlite://registry.db\"\n\n[duo.bench]\napi_host = \"127.0.0.1\"\nintegration_key = \"{IKEY}\"\nsecret_key_file = \"duo.skey\"\nurl = \"{}\"\n\
         writes_per_minute = 600000\nsingle_reads_per_minute = 600000\npage_reads_per_minute = 600000\nlist_lookups_per_minute = 600000\nbulk_per_minute = 600000\n\n\
         [provisioner.bench]\nduo = \"bench\"\n[provisioner.bench.schedule]\npoll_interval = \"200ms\"\n\n\
         [source.dir]\nkind = \"ldap\"\nsubject_source = \"ldap\"\nfolder = \"dir\"\nurl = \"ldap://127.0.0.1:{}\"\nbind_dn = \"{READER}\"\npassword_file = \"ldap.pw\"\n\
         schedule = \"every 1h\"\npoll_interval = \"off\"\nsync_mode = \"syncrepl\"\n\
         [source.dir.users]\nbase_dn = \"ou=people,{SUFFIX}\"\n[source.dir.groups]\nbase_dn = \"ou=groups,{SUFFIX}\"\n",
        emulator.base_url(),
        slapd.port
    );
    std::fs::write(dir.join("duoprov.toml"), config).unwrap();
    // The registry, created through the same API the CLI uses.
    let url = format!("sqlite://{}", dir.join("registry.db").display());
    let store = duoprov_registry::open(&url, &OpenOptions::default()).await.expect("registry");

    // 1. Mirror: the first run, then a run with nothing changed.
    let first = timed_source_sync(dir);
    let c = &first.report["counts"];
    println!(
        "mirror, first run: {} — subjects {} added, groups {} added, memberships {} added; wall {:.2} s, peak RSS {:.0} MiB (load {})",
        first.report["outcome"], c["subjects_added"], c["groups_added"], c["members_added"], first.wall, first.max_rss_mib, load()
    );
    if c["subjects_added"] != USERS || c["groups_added"] != GROUPS || c["members_added"] != GROUPS * PER_GROUP {
        fail(format!("the first run did not mirror the whole directory: {c}"));
    }
    let seq = store.last_change_seq().await.expect("change log");
    let again = timed_source_sync(dir);
    println!("mirror, no change: {}; wall {:.2} s, peak RSS {:.0} MiB (load {})", again.report["outcome"], again.wall, again.max_rss_mib, load());
    if again.report["outcome"] != "unchanged" || store.last_change_seq().await.expect("change log") != seq {
        fail(format!("the run with nothing changed wrote to the registry: {}", again.report));
    }

    // 2. Latency through the daemon: five groups provisioned.
    for g in 0..SELECTED {
        let marker = Marker { provisioner: "bench".into(), target: MarkerTarget::Group(GroupName::parse(&format!("dir:g{g:04}")).unwrap()), scope: MarkerScope::Sub, provision: true };
        store.assign_marker(&marker).await.expect("marker");
    }
    let t = Instant::now();
    let out = duoprov(dir).args(["sync", "bench"]).output().expect("full sync");
    if !out.status.success() {
        fail(format!("full sync: {}", String::from_utf8_lossy(&out.stderr)));
    }
    println!("full sync of {SELECTED} groups ({} memberships) to the emulator: {:.1} s", SELECTED * PER_GROUP, t.elapsed().as_secs_f64());
    let log = std::fs::File::create(dir.join("daemon.log")).expect("daemon log");
    let mut daemon = duoprov(dir).args(["-v", "run", "--listen", "127.0.0.1:0"]).stdout(Stdio::piped()).stderr(log).spawn().expect("daemon");
    let mut line = String::new();
    BufReader::new(daemon.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let status = line.split("http://").nth(1).and_then(|r| r.split(',').next()).unwrap_or_else(|| fail(format!("no status address in {line:?}"))).to_owned();
    let connected = || {
        let body = http_get(&status, "/readyz");
        serde_json::from_str::<Value>(&body).is_ok_and(|v| v["sources"]["dir"]["connected"] == true && v["sources"]["dir"]["last_result"].is_string())
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while !connected() {
        if Instant::now() > deadline {
            fail(format!("the daemon did not follow the directory within 120 s: {}", http_get(&status, "/readyz")));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The reads the start and the connection called for are over once no read is due.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let handle = emulator.handle().clone();
    let mut latencies = Vec::with_capacity(CHANGES);
    for k in 0..CHANGES {
        let g = k % SELECTED;
        let u = (g * PER_GROUP + PER_GROUP + k) % USERS;
        slapd.modify(&format!("dn: cn=g{g:04},ou=groups,{SUFFIX}\nchangetype: modify\nadd: member\nmember: uid=u{u:05},ou=people,{SUFFIX}\n\n"));
        let at = Instant::now();
        let (group, user) = (format!("g{g:04}"), format!("u{u:05}"));
        loop {
            let arrived = handle.with_tenant(|t| {
                let gid = t.group_order().iter().filter_map(|id| t.group(id)).find(|x| x.name == group).map(|x| x.group_id.as_str().to_owned());
                gid.is_some_and(|gid| t.user_by_name(&user).is_some_and(|x| x.groups.iter().any(|id| id.as_str() == gid)))
            });
            if arrived {
                latencies.push(at.elapsed().as_secs_f64());
                break;
            }
            if at.elapsed() > Duration::from_secs(60) {
                let _ = daemon.kill();
                fail(format!("change {k} ({user} into {group}) did not reach Duo within 60 s; see {}", dir.join("daemon.log").display()));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let _ = Command::new("kill").args(["-TERM", &daemon.id().to_string()]).status();
    let _ = daemon.wait();
    latencies.sort_by(f64::total_cmp);
    let (p50, p90, p99, max) = (percentile(&latencies, 0.5), percentile(&latencies, 0.9), percentile(&latencies, 0.99), latencies[latencies.len() - 1]);
    println!("LDAP change → Duo through syncrepl, {CHANGES} changes one at a time: p50 {p50:.2} s, p90 {p90:.2} s, p99 {p99:.2} s, max {max:.2} s (load {})", load());
    println!("  p99 ≤ 3 s: {}", if p99 <= 3.0 { "met" } else { "NOT MET" });
}

fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read as _, Write as _};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else { return String::new() };
    let _ = write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default()
}
