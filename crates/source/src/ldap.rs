//! Reading an LDAP directory (OpenLDAP, Active Directory) into a [`SourceSnapshot`]: connect over
//! `ldap://` (optionally upgraded with StartTLS) or `ldaps://`, verifying the server against a CA
//! file or the system's roots; simple bind with a password that is never logged; users and groups
//! read with paged results (RFC 2696) under their base DNs and filters; attributes mapped to
//! subjects and groups by an attribute map (OpenLDAP and AD presets); members by DN or by uid,
//! nested groups by DN; Active Directory's ranged `member;range=LOW-HIGH` values followed to the
//! end; [`LdapReader::changed_since`] asks by `modifyTimestamp` whether anything changed since a
//! time (the daemon's polling; `syncrepl.rs` watches a directory that offers RFC 4533). A member that names no user or group read is reported and left out; any failure of the
//! connection or of a search fails the whole read, so a partial directory is never mirrored.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use duoprov_model::{FolderPath, Subject};
use ldap3::adapters::{EntriesOnly, PagedResults};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::mirror::{SnapshotGroup, SnapshotMember, SourceSnapshot};

/// Which directory's conventions fill the attribute map's defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    #[default]
    Openldap,
    /// Active Directory: `sAMAccountName`, `userPrincipalName`, `objectGUID`, disabled accounts
    /// (`userAccountControl` bit 2) left out.
    Ad,
}

/// How group members are named in the member attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberBy {
    /// The member's DN (`member`, `uniqueMember`): users and nested groups.
    Dn,
    /// The user's id attribute value (`memberUid` of posixGroup): users only.
    Uid,
}

/// Where users are and how their attributes map to a subject. `None` takes the preset's value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UserMap {
    pub base_dn: String,
    pub filter: Option<String>,
    /// The subject id (and what `memberUid` names).
    pub id: Option<String>,
    pub login_id: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub description: Option<String>,
}

/// Where groups are and how their attributes map to a registry group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GroupMap {
    pub base_dn: String,
    pub filter: Option<String>,
    /// The group's extension under the source's folder.
    pub name: Option<String>,
    pub description: Option<String>,
    pub member: Option<String>,
    pub member_by: Option<MemberBy>,
    /// The attribute that stays the same across renames (`entryUUID`, `objectGUID`).
    pub key: Option<String>,
}

/// Everything needed to read one directory.
#[derive(Debug, Clone)]
pub struct LdapSettings {
    /// `ldap://HOST:PORT` or `ldaps://HOST:PORT`.
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS before binding.
    pub starttls: bool,
    /// PEM file of the CA(s) that sign the server's certificate; the system's roots otherwise.
    pub ca_file: Option<PathBuf>,
    pub bind_dn: Option<String>,
    pub password: Option<SecretString>,
    pub preset: Preset,
    pub page_size: i32,
    pub timeout: Duration,
    pub users: UserMap,
    pub groups: GroupMap,
}

/// The attribute names in effect after the preset filled the gaps.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Resolved {
    user_filter: String,
    id: String,
    login_id: String,
    name: String,
    email: String,
    first_name: String,
    last_name: String,
    description: String,
    user_key_disabled: Option<String>,
    group_filter: String,
    group_name: String,
    group_description: String,
    member: String,
    member_by: MemberBy,
    key: String,
}

fn resolve(s: &LdapSettings) -> Resolved {
    let (u, g) = (&s.users, &s.groups);
    let pick = |v: &Option<String>, openldap: &str, ad: &str| v.clone().unwrap_or_else(|| if s.preset == Preset::Ad { ad } else { openldap }.to_string());
    Resolved {
        user_filter: pick(&u.filter, "(objectClass=inetOrgPerson)", "(&(objectCategory=person)(objectClass=user)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))"),
        id: pick(&u.id, "uid", "sAMAccountName"),
        login_id: pick(&u.login_id, "uid", "userPrincipalName"),
        name: pick(&u.name, "cn", "displayName"),
        email: pick(&u.email, "mail", "mail"),
        first_name: pick(&u.first_name, "givenName", "givenName"),
        last_name: pick(&u.last_name, "sn", "sn"),
        description: pick(&u.description, "description", "description"),
        user_key_disabled: (s.preset == Preset::Ad).then(|| "userAccountControl".to_string()),
        group_filter: pick(&g.filter, "(objectClass=groupOfNames)", "(objectClass=group)"),
        group_name: pick(&g.name, "cn", "cn"),
        group_description: pick(&g.description, "description", "description"),
        member: pick(&g.member, "member", "member"),
        member_by: g.member_by.unwrap_or(MemberBy::Dn),
        key: pick(&g.key, "entryUUID", "objectGUID"),
    }
}

/// A failure to read the directory; never carries the password.
#[derive(Debug, thiserror::Error)]
pub enum LdapReadError {
    #[error("cannot connect to LDAP server {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("binding to LDAP server {url} as {who} failed: {reason}; check the bind DN and the password (its file or environment variable)")]
    Bind { url: String, who: String, reason: String },
    #[error("reading {what} from LDAP server {url} failed: {reason}; nothing was changed")]
    Search { url: String, what: String, reason: String },
    #[error("LDAP entry {dn}: {problem}")]
    Entry { dn: String, problem: String },
    #[error("LDAP settings: {0}")]
    Settings(String),
}

/// A DN compared case-insensitively and without the spaces around separators that directories
/// keep as written.
pub fn normalize_dn(dn: &str) -> String {
    let mut out = String::with_capacity(dn.len());
    for part in dn.split(',') {
        if !out.is_empty() {
            out.push(',');
        }
        let mut kv = part.splitn(2, '=');
        let k = kv.next().unwrap_or("").trim().to_lowercase();
        match kv.next() {
            Some(v) => {
                out.push_str(&k);
                out.push('=');
                out.push_str(&v.trim().to_lowercase());
            }
            None => out.push_str(&k),
        }
    }
    out
}

/// The range of an attribute description such as `member;range=0-1499` (`None` as the end for
/// `*`, the last range), for the attribute `base`.
pub fn range_of(description: &str, base: &str) -> Option<(u64, Option<u64>)> {
    let (name, opts) = description.split_once(';')?;
    if !name.eq_ignore_ascii_case(base) {
        return None;
    }
    let range = opts.split(';').find_map(|o| o.strip_prefix("range=").or_else(|| o.strip_prefix("Range=")))?;
    let (lo, hi) = range.split_once('-')?;
    let lo = lo.parse().ok()?;
    let hi = if hi == "*" { None } else { Some(hi.parse().ok()?) };
    Some((lo, hi))
}

/// Reads one more range of an attribute of an entry (`member;range=1500-*`), as Active Directory
/// serves large multi-valued attributes.
pub trait RangeReader {
    /// The entry's attributes as the server returns them for the request of `attribute`.
    fn read_range(&mut self, dn: &str, attribute: &str) -> impl std::future::Future<Output = Result<HashMap<String, Vec<String>>, LdapReadError>> + Send;
}

/// Every value of `base` for an entry whose first answer is `attrs`: plain values as they are, or,
/// when the server answered with a range, every following range until the one ending in `*`.
pub async fn complete_values<R: RangeReader>(reader: &mut R, dn: &str, base: &str, attrs: &HashMap<String, Vec<String>>) -> Result<Vec<String>, LdapReadError> {
    if let Some((_, v)) = attrs.iter().find(|(k, _)| k.eq_ignore_ascii_case(base)) {
        return Ok(v.clone());
    }
    let Some((mut end, mut values)) = attrs.iter().find_map(|(k, v)| range_of(k, base).map(|(_, hi)| (hi, v.clone()))) else {
        return Ok(Vec::new());
    };
    while let Some(hi) = end {
        let next = hi + 1;
        let answer = reader.read_range(dn, &format!("{base};range={next}-*")).await?;
        let Some((lo, new_end, more)) = answer.iter().find_map(|(k, v)| range_of(k, base).map(|(lo, hi)| (lo, hi, v.clone()))) else {
            return Err(LdapReadError::Entry { dn: dn.to_string(), problem: format!("the server answered the request for {base};range={next}-* without that range") });
        };
        if lo != next || more.is_empty() && new_end.is_some() {
            return Err(LdapReadError::Entry { dn: dn.to_string(), problem: format!("the server answered range {lo}- of {base} when {next}- was asked; the values cannot be read completely") });
        }
        values.extend(more);
        end = new_end;
    }
    Ok(values)
}

/// A bound connection to a directory.
pub struct LdapReader {
    ldap: Ldap,
    url: String,
    settings: LdapSettings,
    resolved: Resolved,
}

struct LdapRange<'a>(&'a mut Ldap, &'a str);

impl RangeReader for LdapRange<'_> {
    async fn read_range(&mut self, dn: &str, attribute: &str) -> Result<HashMap<String, Vec<String>>, LdapReadError> {
        let search = |reason: String| LdapReadError::Search { url: self.1.to_string(), what: format!("{attribute} of {dn}"), reason };
        let (entries, _) = self.0.search(dn, Scope::Base, "(objectClass=*)", vec![attribute]).await.map_err(|e| search(e.to_string()))?.success().map_err(|e| search(e.to_string()))?;
        Ok(entries.into_iter().next().map(|e| SearchEntry::construct(e).attrs).unwrap_or_default())
    }
}

/// A TLS configuration trusting only the CAs of `path`.
fn tls_config(path: &PathBuf) -> Result<Arc<rustls::ClientConfig>, LdapReadError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    {
        {
            let certs: Vec<CertificateDer> = CertificateDer::pem_file_iter(path)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| LdapReadError::Settings(format!("ca_file {}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(LdapReadError::Settings(format!("ca_file {} holds no PEM certificate", path.display())));
            }
            for c in certs {
                roots.add(c).map_err(|e| LdapReadError::Settings(format!("ca_file {}: {e}", path.display())))?;
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| LdapReadError::Settings(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

impl LdapReader {
    /// Connects and binds (anonymously when no bind DN is set).
    pub async fn connect(settings: &LdapSettings) -> Result<Self, LdapReadError> {
        let url = settings.url.clone();
        let tls = url.starts_with("ldaps://") || settings.starttls;
        if settings.starttls && url.starts_with("ldaps://") {
            return Err(LdapReadError::Settings(format!("{url}: starttls applies to ldap:// URLs; an ldaps:// connection is encrypted from the start")));
        }
        if !url.starts_with("ldap://") && !url.starts_with("ldaps://") {
            return Err(LdapReadError::Settings(format!("url {url}: use ldap://HOST:PORT or ldaps://HOST:PORT")));
        }
        let mut conn_settings = LdapConnSettings::new().set_conn_timeout(settings.timeout).set_starttls(settings.starttls);
        // Without a CA file the connection trusts the system's roots (ldap3's own configuration).
        if let (true, Some(ca)) = (tls, settings.ca_file.as_ref()) {
            conn_settings = conn_settings.set_config(tls_config(ca)?);
        }
        let connect = |reason: String| LdapReadError::Connect { url: url.clone(), reason };
        let (conn, mut ldap) = LdapConnAsync::with_settings(conn_settings, &url).await.map_err(|e| connect(e.to_string()))?;
        ldap3::drive!(conn);
        ldap.with_timeout(settings.timeout);
        let who = settings.bind_dn.clone().unwrap_or_else(|| "anonymous".into());
        let password = settings.password.as_ref().map(|p| p.expose_secret().to_string()).unwrap_or_default();
        if settings.bind_dn.is_some() && password.is_empty() {
            return Err(LdapReadError::Settings(format!("a bind DN ({who}) is set without a password; set password_file or password_env")));
        }
        let bind = |reason: String| LdapReadError::Bind { url: url.clone(), who: who.clone(), reason };
        ldap.simple_bind(settings.bind_dn.as_deref().unwrap_or(""), &password).await.map_err(|e| bind(e.to_string()))?.success().map_err(|e| bind(e.to_string()))?;
        Ok(LdapReader { ldap, url, settings: settings.clone(), resolved: resolve(settings) })
    }

    async fn search_all(&mut self, what: &str, base: &str, filter: &str, attrs: Vec<String>, progress: &mut (dyn FnMut(usize) + Send)) -> Result<Vec<SearchEntry>, LdapReadError> {
        let url = self.url.clone();
        let err = |reason: String| LdapReadError::Search { url: url.clone(), what: what.to_string(), reason };
        let adapters: Vec<Box<dyn ldap3::adapters::Adapter<_, _>>> = vec![Box::new(EntriesOnly::new()), Box::new(PagedResults::new(self.settings.page_size))];
        let mut stream = self.ldap.streaming_search_with(adapters, base, Scope::Subtree, filter, attrs).await.map_err(|e| err(e.to_string()))?;
        let mut out = Vec::new();
        loop {
            match stream.next().await {
                Ok(Some(entry)) => {
                    out.push(SearchEntry::construct(entry));
                    progress(out.len());
                }
                Ok(None) => break,
                Err(e) => return Err(err(e.to_string())),
            }
        }
        stream.finish().await.success().map_err(|e| err(e.to_string()))?;
        Ok(out)
    }

    /// Reads every user and group into a snapshot for `subject_source` and `folder`. `progress`
    /// is called with the number of entries read so far after each entry.
    pub async fn read(&mut self, subject_source: &str, folder: &FolderPath, progress: &mut (dyn FnMut(usize) + Send)) -> Result<SourceSnapshot, LdapReadError> {
        let r = self.resolved.clone();
        let mut user_attrs = vec![r.id.clone(), r.login_id.clone(), r.name.clone(), r.email.clone(), r.first_name.clone(), r.last_name.clone(), r.description.clone()];
        user_attrs.extend(r.user_key_disabled.clone());
        user_attrs.dedup();
        let users_base = self.settings.users.base_dn.clone();
        let groups_base = self.settings.groups.base_dn.clone();
        if users_base.is_empty() || groups_base.is_empty() {
            return Err(LdapReadError::Settings("users.base_dn and groups.base_dn must be set".into()));
        }
        let mut read = 0usize;
        let users = self.search_all("users", &users_base, &r.user_filter, user_attrs, &mut |n| progress(read + n)).await?;
        read += users.len();
        let group_attrs = vec![r.group_name.clone(), r.group_description.clone(), r.member.clone(), r.key.clone()];
        let groups = self.search_all("groups", &groups_base, &r.group_filter, group_attrs, &mut |n| progress(read + n)).await?;

        let first = |e: &SearchEntry, a: &str| -> Option<String> {
            e.attrs.iter().find(|(k, _)| k.eq_ignore_ascii_case(a)).and_then(|(_, v)| v.first().cloned()).filter(|v| !v.is_empty())
        };
        let mut snapshot = SourceSnapshot::default();
        let mut user_by_dn: HashMap<String, String> = HashMap::new();
        let mut user_ids: HashMap<String, String> = HashMap::new();
        for e in &users {
            if let Some(uac) = r.user_key_disabled.as_deref().and_then(|a| first(e, a))
                && uac.parse::<u64>().map(|v| v & 2 != 0).unwrap_or(false) {
                    continue;
                }
            let Some(id) = first(e, &r.id) else {
                snapshot.problems.push(format!("user {} has no {} (the subject id); left out", e.dn, r.id));
                continue;
            };
            user_by_dn.insert(normalize_dn(&e.dn), id.clone());
            user_ids.insert(id.to_lowercase(), id.clone());
            snapshot.subjects.push(Subject {
                source: subject_source.to_string(),
                id,
                name: first(e, &r.name),
                login_id: first(e, &r.login_id),
                email: first(e, &r.email),
                first_name: first(e, &r.first_name),
                last_name: first(e, &r.last_name),
                description: first(e, &r.description),
            });
        }
        let key_of = |e: &SearchEntry| -> Option<String> {
            first(e, &r.key).or_else(|| e.bin_attrs.iter().find(|(k, _)| k.eq_ignore_ascii_case(&r.key)).and_then(|(_, v)| v.first()).map(hex::encode))
        };
        let mut group_by_dn: HashMap<String, String> = HashMap::new();
        for e in &groups {
            let key = key_of(e).ok_or_else(|| LdapReadError::Entry { dn: e.dn.clone(), problem: format!("has no {} (the key that follows renames); add it to the read attributes or set groups.key", r.key) })?;
            group_by_dn.insert(normalize_dn(&e.dn), key);
        }
        let mut ranges = LdapRange(&mut self.ldap, &self.url);
        for e in &groups {
            let key = group_by_dn[&normalize_dn(&e.dn)].clone();
            let ext = first(e, &r.group_name).ok_or_else(|| LdapReadError::Entry { dn: e.dn.clone(), problem: format!("has no {} (the group name)", r.group_name) })?;
            let name = folder.child_group(&ext).map_err(|err| LdapReadError::Entry { dn: e.dn.clone(), problem: format!("its {} {ext:?} is not a valid group name: {err}", r.group_name) })?;
            let values = complete_values(&mut ranges, &e.dn, &r.member, &e.attrs).await?;
            let mut members = Vec::with_capacity(values.len());
            for v in values {
                match r.member_by {
                    MemberBy::Dn => {
                        let dn = normalize_dn(&v);
                        if let Some(id) = user_by_dn.get(&dn) {
                            members.push(SnapshotMember::Subject(id.clone()));
                        } else if let Some(k) = group_by_dn.get(&dn) {
                            members.push(SnapshotMember::Group(k.clone()));
                        } else {
                            snapshot.problems.push(format!("group {name}: member {v} names no user or group read from the directory; left out"));
                        }
                    }
                    MemberBy::Uid => match user_ids.get(&v.to_lowercase()) {
                        Some(id) => members.push(SnapshotMember::Subject(id.clone())),
                        None => snapshot.problems.push(format!("group {name}: member {v} names no user read from the directory; left out")),
                    },
                }
            }
            snapshot.groups.push(SnapshotGroup { key, name, display_name: None, description: first(e, &r.group_description), members });
        }
        Ok(snapshot)
    }

    /// Whether any user or group under the base DNs (matching the filters) was added or modified
    /// at or after `since_ms` (milliseconds since the epoch), by its operational `modifyTimestamp`
    /// (OpenLDAP needs `lastmod on`, its default). A deletion leaves no entry to find: only a
    /// full read sees it.
    pub async fn changed_since(&mut self, since_ms: i64) -> Result<bool, LdapReadError> {
        let r = self.resolved.clone();
        let at = generalized_time(since_ms);
        for (what, base, filter) in [("changed users", self.settings.users.base_dn.clone(), r.user_filter), ("changed groups", self.settings.groups.base_dn.clone(), r.group_filter)] {
            let url = self.url.clone();
            let err = |reason: String| LdapReadError::Search { url: url.clone(), what: what.to_string(), reason };
            let changed = format!("(&{filter}(modifyTimestamp>={at}))");
            let (entries, _) = self.ldap.search(&base, Scope::Subtree, &changed, vec!["1.1"]).await.map_err(|e| err(e.to_string()))?.success().map_err(|e| err(e.to_string()))?;
            if !entries.is_empty() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.settings.timeout
    }

    pub(crate) fn settings(&self) -> &LdapSettings {
        &self.settings
    }

    pub(crate) fn ldap(&mut self) -> &mut Ldap {
        &mut self.ldap
    }

    /// The user and group filters in effect (the preset's unless set).
    pub(crate) fn filters(&self) -> (String, String) {
        (self.resolved.user_filter.clone(), self.resolved.group_filter.clone())
    }

    pub async fn close(mut self) {
        let _ = self.ldap.unbind().await;
    }
}

/// LDAP's GeneralizedTime in UTC (`20261130094500Z`) for `ms` milliseconds since the epoch.
pub fn generalized_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}{:02}{:02}{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serves a multi-valued attribute in ranges of `step` values, as Active Directory does past
    /// its MaxValRange, and counts the requests.
    struct FakeAd {
        values: Vec<String>,
        step: usize,
        requests: Vec<String>,
    }

    impl FakeAd {
        fn answer(&self, lo: usize) -> HashMap<String, Vec<String>> {
            let hi = (lo + self.step).min(self.values.len());
            let end = if hi == self.values.len() { "*".to_string() } else { (hi - 1).to_string() };
            HashMap::from([(format!("member;range={lo}-{end}"), self.values[lo..hi].to_vec())])
        }
    }

    impl RangeReader for FakeAd {
        async fn read_range(&mut self, _dn: &str, attribute: &str) -> Result<HashMap<String, Vec<String>>, LdapReadError> {
            self.requests.push(attribute.to_string());
            let (lo, _) = range_of(attribute, "member").expect("a ranged request");
            Ok(self.answer(lo as usize))
        }
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
    }

    #[test]
    fn ad_ranged_member_values_are_followed_to_the_last_range() {
        let values: Vec<String> = (0..7).map(|i| format!("CN=u{i},OU=People,DC=corp")).collect();
        let mut ad = FakeAd { values: values.clone(), step: 3, requests: vec![] };
        let first = ad.answer(0);
        let got = block_on(complete_values(&mut ad, "CN=big,DC=corp", "member", &first)).unwrap();
        assert_eq!(got, values);
        assert_eq!(ad.requests, ["member;range=3-*", "member;range=6-*"]);
    }

    #[test]
    fn plain_member_values_need_no_further_request_and_a_wrong_range_answer_is_an_error() {
        let mut ad = FakeAd { values: vec!["a".into()], step: 3, requests: vec![] };
        let plain = HashMap::from([("member".to_string(), vec!["a".to_string()])]);
        assert_eq!(block_on(complete_values(&mut ad, "CN=g", "member", &plain)).unwrap(), ["a"]);
        assert!(ad.requests.is_empty());

        struct Stuck;
        impl RangeReader for Stuck {
            async fn read_range(&mut self, _dn: &str, _attribute: &str) -> Result<HashMap<String, Vec<String>>, LdapReadError> {
                Ok(HashMap::from([("member;range=0-2".to_string(), vec!["x".to_string()])]))
            }
        }
        let first = HashMap::from([("member;range=0-2".to_string(), vec!["x".to_string(); 3])]);
        let err = block_on(complete_values(&mut Stuck, "CN=g", "member", &first)).unwrap_err();
        assert!(err.to_string().contains("CN=g") && err.to_string().contains("3-"), "{err}");
    }

    #[test]
    fn generalized_time_is_utc_to_the_second() {
        // 2026-11-30 02:59:00.999 UTC; 2024-02-29 (a leap day); the epoch.
        assert_eq!(generalized_time(1_796_007_540_999), "20261130025900Z");
        assert_eq!(generalized_time(1_709_164_800_000), "20240229000000Z");
        assert_eq!(generalized_time(0), "19700101000000Z");
    }

    #[test]
    fn dns_compare_without_case_or_spaces_around_separators() {
        assert_eq!(normalize_dn("CN=Alice Smith, OU=People,DC=Example"), normalize_dn("cn=alice smith,ou=people, dc=example"));
        assert_ne!(normalize_dn("cn=alice,ou=people"), normalize_dn("cn=alice2,ou=people"));
        assert_eq!(range_of("member;range=1500-*", "member"), Some((1500, None)));
        assert_eq!(range_of("member;range=0-1499", "MEMBER"), Some((0, Some(1499))));
        assert_eq!(range_of("memberOf;range=0-1", "member"), None);
    }
}
