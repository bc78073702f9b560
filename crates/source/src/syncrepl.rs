//! Watching an LDAP directory for changes with content synchronization (syncrepl, RFC 4533) in
//! refreshAndPersist mode: [`LdapReader::offers_syncrepl`] asks the root DSE whether the server
//! offers the Sync Request control (OpenLDAP with the `syncprov` overlay does; Active Directory
//! does not), and [`LdapReader::persist`] starts one persistent search per base DN (users,
//! groups) asking for no attributes, waits until the server has ended each refresh phase, and
//! returns a [`Persist`] whose [`Persist::next_change`] answers each add, modify, delete or
//! rename the server reports after that. The entries are not interpreted: a change only tells the
//! daemon to read the whole source, which stays the one path that writes the registry. The cookie
//! is not kept: after a reconnection the daemon reads the whole source, since changes made while
//! disconnected are not reported.
//!
//! Answers are checked strictly: an entry without a Sync State control, an intermediate message
//! that is not a Sync Info, a Sync Info that cannot be decoded, or the server ending the search is
//! an error, and the caller reconnects. A connection that stays silent is checked every
//! [`KEEPALIVE`] with a root DSE read that must answer within the source's timeout (tested
//! against stand-in servers that answer the check, and that never do). How soon a source that
//! offers no syncrepl is asked again is the daemon's (`duoprov_daemon::sources::FEED_RECHECK`).

use std::time::Duration;

use ldap3::asn1::{parse_tag, StructureTag, TagClass, PL};
use ldap3::controls::{MakeCritical, RefreshMode, SyncRequest};
use ldap3::{Ldap, ResultEntry, Scope, SearchEntry};
use tokio::sync::mpsc;

use crate::ldap::{LdapReadError, LdapReader};

/// The Sync Request control's OID, listed in the root DSE's `supportedControl` by servers that
/// offer syncrepl.
pub const SYNC_REQUEST_OID: &str = "1.3.6.1.4.1.4203.1.9.1.1";
const SYNC_STATE_OID: &str = "1.3.6.1.4.1.4203.1.9.1.2";
const SYNC_INFO_OID: &str = "1.3.6.1.4.1.4203.1.9.1.4";

/// How often a silent persistent search's connection is checked.
pub const KEEPALIVE: Duration = Duration::from_secs(30);

/// What a Sync Info intermediate message says (RFC 4533 §2.5), as far as a watcher needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncInfoKind {
    /// `newcookie`: nothing changed.
    NewCookie,
    /// `refreshDelete` / `refreshPresent` with their `refreshDone` flag.
    Refresh { done: bool },
    /// `syncIdSet`: entries (by entryUUID) deleted or present.
    IdSet,
}

/// Decodes the Sync Info carried by an intermediate response (`[APPLICATION 25]`): its name must
/// be the Sync Info OID and its value one of the four choices.
pub fn sync_info(message: &StructureTag) -> Result<SyncInfoKind, String> {
    if message.class != TagClass::Application || message.id != 25 {
        return Err(format!("a message of tag {} where an intermediate response was expected", message.id));
    }
    let PL::C(parts) = &message.payload else { return Err("an intermediate response that is not a sequence".into()) };
    let mut name = None;
    let mut value = None;
    for p in parts {
        match (p.class, p.id, &p.payload) {
            (TagClass::Context, 0, PL::P(bytes)) => name = Some(String::from_utf8_lossy(bytes).into_owned()),
            (TagClass::Context, 1, PL::P(bytes)) => value = Some(bytes.clone()),
            _ => return Err("an intermediate response with an unexpected component".into()),
        }
    }
    if name.as_deref() != Some(SYNC_INFO_OID) {
        return Err(format!("an intermediate response named {:?}, not Sync Info ({SYNC_INFO_OID})", name.unwrap_or_default()));
    }
    let value = value.ok_or("a Sync Info without a value")?;
    let tag = match parse_tag(&value) {
        Ok((&[], tag)) => tag,
        _ => return Err("a Sync Info value that is not one BER element".into()),
    };
    if tag.class != TagClass::Context {
        return Err("a Sync Info value that is none of its four choices".into());
    }
    match (tag.id, &tag.payload) {
        (0, PL::P(_)) => Ok(SyncInfoKind::NewCookie),
        (1 | 2, PL::C(items)) => {
            // SEQUENCE { cookie OCTET STRING OPTIONAL, refreshDone BOOLEAN DEFAULT TRUE }
            let mut done = true;
            for item in items {
                match (item.class, item.id, &item.payload) {
                    (TagClass::Universal, 4, PL::P(_)) => {}
                    (TagClass::Universal, 1, PL::P(b)) if b.len() == 1 => done = b[0] != 0,
                    _ => return Err("a Sync Info refresh message with an unexpected component".into()),
                }
            }
            Ok(SyncInfoKind::Refresh { done })
        }
        (3, PL::C(_)) => Ok(SyncInfoKind::IdSet),
        _ => Err(format!("a Sync Info value of unknown choice [{}]", tag.id)),
    }
}

/// What one persistent search reported.
#[derive(Debug)]
enum Event {
    RefreshDone,
    Change(String),
    Failed(String),
}

/// Sorts one message of a persistent search; `Ok(None)` for one that reports no change.
fn classify(entry: &ResultEntry, refreshing: bool) -> Result<Option<Event>, String> {
    if entry.is_intermediate() {
        return Ok(match sync_info(&entry.0)? {
            SyncInfoKind::Refresh { done: true } if refreshing => Some(Event::RefreshDone),
            SyncInfoKind::Refresh { .. } | SyncInfoKind::NewCookie => None,
            // Deletions reported as a set of entryUUIDs.
            SyncInfoKind::IdSet if refreshing => None,
            SyncInfoKind::IdSet => Some(Event::Change("entries deleted (reported by entryUUID)".into())),
        });
    }
    if entry.is_ref() {
        return Err("a referral, which a sync search does not follow".into());
    }
    if !entry.1.iter().any(|c| c.1.ctype == SYNC_STATE_OID) {
        return Err("an entry without a Sync State control".into());
    }
    if refreshing {
        return Ok(None);
    }
    let dn = SearchEntry::construct(entry.clone()).dn;
    Ok(Some(Event::Change(dn)))
}

/// Persistent searches under a directory's base DNs; dropping it ends them.
pub struct Persist {
    ldap: Ldap,
    url: String,
    timeout: Duration,
    /// How long the searches may stay silent before the connection is checked ([`KEEPALIVE`];
    /// shorter in tests).
    keepalive: Duration,
    events: mpsc::Receiver<Event>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Persist {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Persist {
    /// Waits for the next change the server reports and returns the DN it names (or a
    /// description for deletions reported by entryUUID). An `Err` means the searches ended: the
    /// connection dropped, the server ended a search, or it answered something unexpected;
    /// reconnect.
    pub async fn next_change(&mut self) -> Result<String, LdapReadError> {
        let err = |reason: String| LdapReadError::Search { url: self.url.clone(), what: "changes (syncrepl)".into(), reason };
        loop {
            tokio::select! {
                event = self.events.recv() => match event {
                    Some(Event::Change(dn)) => return Ok(dn),
                    Some(Event::RefreshDone) => {}
                    Some(Event::Failed(reason)) => return Err(err(reason)),
                    None => return Err(err("the persistent searches ended".into())),
                },
                _ = tokio::time::sleep(self.keepalive) => {
                    let mut ldap = self.ldap.clone();
                    let check = tokio::time::timeout(self.timeout, ldap.search("", Scope::Base, "(objectClass=*)", vec!["1.1"])).await;
                    match check {
                        Ok(Ok(r)) if r.1.rc == 0 => {}
                        Ok(Ok(r)) => return Err(err(format!("the connection check answered {}", r.1))),
                        Ok(Err(e)) => return Err(err(format!("the connection check failed: {e}"))),
                        Err(_) => return Err(err(format!("the connection check had no answer within {:.1} s", self.timeout.as_secs_f64()))),
                    }
                }
            }
        }
    }
}

impl LdapReader {
    /// Whether the server lists the Sync Request control (syncrepl) in its root DSE.
    pub async fn offers_syncrepl(&mut self) -> Result<bool, LdapReadError> {
        let url = self.url().to_string();
        let err = |reason: String| LdapReadError::Search { url: url.clone(), what: "the root DSE's supportedControl".into(), reason };
        let timeout = self.timeout();
        let ldap = self.ldap();
        ldap.with_timeout(timeout);
        let (entries, _) = ldap.search("", Scope::Base, "(objectClass=*)", vec!["supportedControl"]).await.map_err(|e| err(e.to_string()))?.success().map_err(|e| err(e.to_string()))?;
        let Some(dse) = entries.into_iter().next() else { return Err(err("the server returned no root DSE; the bind account may not read it".into())) };
        let dse = SearchEntry::construct(dse);
        Ok(dse.attrs.iter().filter(|(k, _)| k.eq_ignore_ascii_case("supportedControl")).flat_map(|(_, v)| v).any(|oid| oid == SYNC_REQUEST_OID))
    }

    /// Starts a refreshAndPersist search under the users' and the groups' base DNs (with their
    /// filters) and returns once the server has ended both refresh phases (within the source's
    /// timeout per base, plus the time the refresh takes to stream).
    pub async fn persist(mut self) -> Result<Persist, LdapReadError> {
        let url = self.url().to_string();
        let timeout = self.timeout();
        let (user_filter, group_filter) = self.filters();
        let bases = [("users", self.settings().users.base_dn.clone(), user_filter), ("groups", self.settings().groups.base_dn.clone(), group_filter)];
        let (tx, mut events) = mpsc::channel(64);
        let mut tasks = Vec::new();
        for (what, base, filter) in bases {
            let mut ldap = self.ldap().clone();
            let err = |reason: String| LdapReadError::Search { url: url.clone(), what: format!("{what} (syncrepl search under {base})"), reason };
            ldap.with_controls(SyncRequest { mode: RefreshMode::RefreshAndPersist, cookie: None, reload_hint: false }.critical());
            ldap.with_search_options(ldap3::SearchOptions::new().deref(ldap3::DerefAliases::Never));
            let mut stream = ldap.streaming_search(&base, Scope::Subtree, &filter, vec!["1.1".to_string()]).await.map_err(|e| err(e.to_string()))?;
            let tx = tx.clone();
            tasks.push(tokio::spawn(async move {
                let mut refreshing = true;
                loop {
                    let event = match stream.next().await {
                        Ok(Some(entry)) => match classify(&entry, refreshing) {
                            Ok(None) => continue,
                            Ok(Some(e)) => e,
                            Err(reason) => Event::Failed(format!("{what}: the server answered {reason}")),
                        },
                        Ok(None) => {
                            let done = stream.finish().await;
                            Event::Failed(format!("{what}: the server ended the persistent search ({done})"))
                        }
                        Err(e) => Event::Failed(format!("{what}: {e}")),
                    };
                    if matches!(event, Event::RefreshDone) {
                        refreshing = false;
                    }
                    let last = matches!(event, Event::Failed(_));
                    if tx.send(event).await.is_err() || last {
                        return;
                    }
                }
            }));
        }
        drop(tx);
        let persist_err = |reason: String| LdapReadError::Search { url: url.clone(), what: "changes (syncrepl)".into(), reason };
        let mut refreshed = 0;
        // Changes seen while refreshing are covered by the full read that follows connecting.
        while refreshed < 2 {
            match tokio::time::timeout(timeout.max(Duration::from_secs(60)), events.recv()).await {
                Ok(Some(Event::RefreshDone)) => refreshed += 1,
                Ok(Some(Event::Change(_))) => {}
                Ok(Some(Event::Failed(reason))) => {
                    tasks.iter().for_each(|t| t.abort());
                    return Err(persist_err(reason));
                }
                Ok(None) => return Err(persist_err("the persistent searches ended during their refresh".into())),
                Err(_) => {
                    tasks.iter().for_each(|t| t.abort());
                    return Err(persist_err("the server did not finish the refresh phase in time".into()));
                }
            }
        }
        let ldap = self.ldap().clone();
        Ok(Persist { ldap, url, timeout, keepalive: KEEPALIVE, events, tasks })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intermediate(name: &str, value: Option<&[u8]>) -> StructureTag {
        let mut parts = vec![StructureTag { class: TagClass::Context, id: 0, payload: PL::P(name.as_bytes().to_vec()) }];
        if let Some(v) = value {
            parts.push(StructureTag { class: TagClass::Context, id: 1, payload: PL::P(v.to_vec()) });
        }
        StructureTag { class: TagClass::Application, id: 25, payload: PL::C(parts) }
    }

    #[test]
    fn sync_info_messages_are_decoded_and_anything_else_is_an_error() {
        // The values as BER: refreshPresent {} (refreshDone TRUE by default); refreshDelete
        // { cookie "c", refreshDone FALSE }; newcookie "csn"; syncIdSet {}.
        let info = |v: &[u8]| sync_info(&intermediate(SYNC_INFO_OID, Some(v)));
        assert_eq!(info(&[0xa2, 0x00]), Ok(SyncInfoKind::Refresh { done: true }));
        assert_eq!(info(&[0xa1, 0x06, 0x04, 0x01, b'c', 0x01, 0x01, 0x00]), Ok(SyncInfoKind::Refresh { done: false }));
        assert_eq!(info(&[0x80, 0x03, b'c', b's', b'n']), Ok(SyncInfoKind::NewCookie));
        assert_eq!(info(&[0xa3, 0x00]), Ok(SyncInfoKind::IdSet));
        // Another intermediate response, a missing value, an unknown choice, trailing bytes, a
        // refresh message with a component it cannot hold.
        assert!(sync_info(&intermediate("1.3.6.1.4.1.4203.1.11.3", Some(&[0xa2, 0x00]))).unwrap_err().contains("not Sync Info"));
        assert!(sync_info(&intermediate(SYNC_INFO_OID, None)).is_err());
        assert!(info(&[0xa4, 0x00]).unwrap_err().contains("unknown choice"));
        assert!(info(&[0xa2, 0x00, 0x00]).is_err());
        assert!(info(&[0xa2, 0x03, 0x02, 0x01, 0x05]).is_err());
    }

    /// A stand-in LDAP server on a local port: it reads requests and, if `answer`, replies to each
    /// with a successful SearchResultDone of the same message id; otherwise it never answers.
    /// Returns its URL and how many requests it has read.
    async fn fake_server(answer: bool) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ldap://{}", listener.local_addr().unwrap());
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = seen.clone();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            loop {
                let n = match socket.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                // Whole LDAPMessages: SEQUENCE, length (short or long form), then messageID.
                while let Ok((rest, message)) = parse_tag(&buf) {
                    let used = buf.len() - rest.len();
                    let PL::C(parts) = &message.payload else { panic!("an LDAPMessage that is not a sequence") };
                    let PL::P(id) = &parts[0].payload else { panic!("an LDAPMessage without a message id") };
                    let id = id.clone();
                    buf.drain(..used);
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if answer {
                        // SearchResultDone { resultCode success, matchedDN "", diagnosticMessage "" }
                        let mut reply = vec![0x02, id.len() as u8];
                        reply.extend_from_slice(&id);
                        reply.extend_from_slice(&[0x65, 0x07, 0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00]);
                        let mut framed = vec![0x30, reply.len() as u8];
                        framed.extend_from_slice(&reply);
                        socket.write_all(&framed).await.unwrap();
                    }
                }
            }
        });
        (url, seen)
    }

    /// A `Persist` over a connection to `url`, with its events fed by the returned sender.
    async fn persist_on(url: &str, keepalive: Duration, timeout: Duration) -> (Persist, mpsc::Sender<Event>) {
        let (conn, ldap) = ldap3::LdapConnAsync::new(url).await.unwrap();
        ldap3::drive!(conn);
        let (tx, events) = mpsc::channel(4);
        (Persist { ldap, url: url.to_owned(), timeout, keepalive, events, tasks: Vec::new() }, tx)
    }

    #[tokio::test]
    async fn a_silent_connection_whose_check_gets_no_answer_is_reported_after_the_keepalive_and_the_timeout() {
        let (url, seen) = fake_server(false).await;
        let (keepalive, timeout) = (Duration::from_millis(100), Duration::from_millis(300));
        let (mut persist, _tx) = persist_on(&url, keepalive, timeout).await;
        let started = tokio::time::Instant::now();
        let e = persist.next_change().await.unwrap_err().to_string();
        assert!(e.contains("the connection check had no answer within 0.3 s") && e.contains(&url), "{e}");
        assert!(started.elapsed() >= keepalive + timeout, "reported after {:?}", started.elapsed());
        assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 1, "one root DSE check was sent");
    }

    #[tokio::test]
    async fn a_silent_connection_that_answers_its_checks_stays_followed_and_reports_the_next_change() {
        let (url, seen) = fake_server(true).await;
        let (mut persist, tx) = persist_on(&url, Duration::from_millis(20), Duration::from_secs(5)).await;
        let waiting = tokio::spawn(async move { (persist.next_change().await, persist) });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while seen.load(std::sync::atomic::Ordering::SeqCst) < 3 {
            assert!(!waiting.is_finished(), "next_change ended while the checks were answered");
            assert!(tokio::time::Instant::now() < deadline, "three connection checks were not sent within 10 s");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(!waiting.is_finished(), "next_change ended while the checks were answered");
        tx.send(Event::Change("uid=alice,ou=people,dc=example,dc=org".into())).await.unwrap();
        let (change, _persist) = waiting.await.unwrap();
        assert_eq!(change.unwrap(), "uid=alice,ou=people,dc=example,dc=org");
    }
}
