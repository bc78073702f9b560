//! The sandbox probe: [`probe`] asks a Duo account, with throwaway objects, the questions the
//! evidence about Duo leaves open, and [`ProbeReport`] is its answer, recorded by the caller and
//! applied to later clients with [`DuoClient::apply_probe`].
//!
//! Questions (each one a [`Reading`] or a recorded value):
//! - does `/admin/v1/bulk` add a membership, and remove one (spelt `POST …/groups/{gid}`), and
//!   does its reply confirm it? Every answer is checked against the user's groups read back;
//! - do the single calls (`POST …/groups`, `DELETE …/groups/{gid}`) add and remove one;
//! - does Duo keep a mixed-case username verbatim or lowercase it, and does a lookup by the
//!   lowercase spelling find it;
//! - is a second group with the same name refused (and with which code), or accepted.
//!
//! Every object the probe makes is named `duoprov-probe-<tag>…` (the mixed-case user
//! `Duoprov-Probe-<tag>-X`) and removed at the end, whatever failed before; what could not be
//! removed is named in [`ProbeReport::left_behind`].

use serde::{Deserialize, Serialize};

use crate::bulk::BulkOp;
use crate::client::DuoClient;
use crate::error::{DuoError, ErrorKind};
use crate::groups::GroupFields;
use crate::users::NewUser;

/// The answer to one yes/no question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reading", content = "detail")]
pub enum Reading {
    /// It does what it should, confirmed by reading Duo back.
    Works,
    /// It does not (what Duo answered, or what reading back showed).
    Fails(String),
    /// Not asked: an earlier step failed (which one).
    NotTried(String),
}

impl Reading {
    /// Whether this is [`Reading::Works`].
    pub fn works(&self) -> bool {
        matches!(self, Reading::Works)
    }

    /// Whether the question was asked and the answer was no.
    pub fn fails(&self) -> bool {
        matches!(self, Reading::Fails(_))
    }

    /// One line for people.
    pub fn describe(&self) -> String {
        match self {
            Reading::Works => "works".to_owned(),
            Reading::Fails(d) => format!("does not work ({d})"),
            Reading::NotTried(d) => format!("not tried ({d})"),
        }
    }
}

/// How Duo treats the case of usernames.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsernameReading {
    /// The username the probe created the user with (mixed case).
    pub sent: String,
    /// The username Duo returned for it.
    pub stored: String,
    /// Whether a lookup (`GET /admin/v1/users?username=`) by the lowercase spelling found it.
    pub lowercase_lookup_finds: bool,
}

impl UsernameReading {
    /// Whether Duo kept the username as sent.
    pub fn kept_verbatim(&self) -> bool {
        self.stored == self.sent
    }

    /// Whether usernames compare exactly (a lookup by another case misses).
    pub fn case_sensitive(&self) -> bool {
        !self.lowercase_lookup_finds
    }

    /// One line for people.
    pub fn describe(&self) -> String {
        format!(
            "Duo stored {:?} as {:?} ({}); a lookup by {:?} {}",
            self.sent,
            self.stored,
            if self.kept_verbatim() { "verbatim" } else if self.stored == self.sent.to_lowercase() { "lowercased" } else { "changed" },
            self.sent.to_lowercase(),
            if self.lowercase_lookup_finds { "finds it: usernames compare case-insensitively" } else { "misses it: usernames compare exactly" }
        )
    }
}

/// What Duo does with a second group of the same name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reading")]
pub enum GroupNameReading {
    /// Refused: group names are unique.
    Unique {
        /// Duo's code (40003 "Duplicate resource" expected).
        code: Option<u32>,
        /// Duo's answer, as the client reports it.
        answer: String,
    },
    /// Accepted: two groups may share a name.
    NonUnique,
}

impl GroupNameReading {
    /// One line for people.
    pub fn describe(&self) -> String {
        match self {
            GroupNameReading::Unique { code, answer } => format!(
                "unique: a second group with the same name was refused (code {}: {answer})",
                code.map(|c| c.to_string()).unwrap_or_else(|| "none".into())
            ),
            GroupNameReading::NonUnique => "not unique: a second group with the same name was accepted".to_owned(),
        }
    }
}

/// Everything one probe found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeReport {
    /// The tag in the names of the probe's objects.
    pub tag: String,
    /// Adding a membership through `/admin/v1/bulk`.
    pub bulk_add: Reading,
    /// Removing a membership through `/admin/v1/bulk`.
    pub bulk_remove: Reading,
    /// Adding a membership with the single call.
    pub single_add: Reading,
    /// Removing a membership with the single call.
    pub single_remove: Reading,
    /// Usernames' case; `None` when the step failed (see `failures`).
    pub usernames: Option<UsernameReading>,
    /// Group names' uniqueness; `None` when the step failed (see `failures`).
    pub group_names: Option<GroupNameReading>,
    /// Steps that failed, each with the error.
    pub failures: Vec<String>,
    /// Objects the probe made and could not remove: `kind name (id): error`.
    pub left_behind: Vec<String>,
}

impl ProbeReport {
    /// Whether every step ran and everything made was removed.
    pub fn complete(&self) -> bool {
        self.failures.is_empty() && self.left_behind.is_empty()
    }
}

/// A fresh tag for the probe's names: 8 hex digits from the clock and the process id.
pub fn fresh_tag() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let tag = (nanos as u64 ^ (u64::from(std::process::id()) << 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!("{:08x}", tag >> 32)
}

const DESC: &str = "made by `duoprov doctor --probe` and deleted at its end; safe to delete";

/// Objects made so far, removed by [`Made::remove_all`].
#[derive(Default)]
struct Made {
    users: Vec<(String, String)>,
    groups: Vec<(String, String)>,
}

impl Made {
    async fn remove_all(&self, duo: &DuoClient) -> Vec<String> {
        let mut left = Vec::new();
        for (name, id) in &self.users {
            if let Err(e) = duo.delete_user(id).await {
                left.push(format!("user {name} ({id}): {e}"));
            }
        }
        for (name, id) in &self.groups {
            if let Err(e) = duo.delete_group(id).await {
                left.push(format!("group {name} ({id}): {e}"));
            }
        }
        left
    }
}

/// Whether `user_id` is a member of `group_id`, read from Duo.
async fn is_member(duo: &DuoClient, user_id: &str, group_id: &str) -> Result<bool, DuoError> {
    Ok(duo.list_user_groups(user_id).await?.iter().any(|g| g.group_id == group_id))
}

/// Checks a membership write against what Duo holds afterwards.
async fn confirm(duo: &DuoClient, user_id: &str, group_id: &str, want_member: bool, answered: Result<(), String>) -> Reading {
    let held = match is_member(duo, user_id, group_id).await {
        Ok(m) => m,
        Err(e) => return Reading::Fails(format!("reading the user's groups back failed: {e}")),
    };
    match (answered, held == want_member) {
        (Ok(()), true) => Reading::Works,
        (Ok(()), false) => Reading::Fails(format!(
            "Duo confirmed it, but reading back shows the user {} a member",
            if held { "still" } else { "not" }
        )),
        (Err(answer), true) => Reading::Fails(format!("the change was made, but Duo's answer did not confirm it: {answer}")),
        (Err(answer), false) => Reading::Fails(answer),
    }
}

/// One bulk operation's answer, as text when it is not a confirmation.
async fn bulk_answer(duo: &DuoClient, op: BulkOp) -> Result<(), String> {
    match duo.bulk(std::slice::from_ref(&op)).await {
        Ok(results) => match results.into_iter().next() {
            Some(Ok(_)) => Ok(()),
            Some(Err(f)) => Err(format!(
                "per-operation answer code {} ({}{})",
                f.code.map(|c| c.to_string()).unwrap_or_else(|| "none".into()),
                f.message,
                f.message_detail.map(|d| format!(": {d}")).unwrap_or_default()
            )),
            None => Err("no result for the operation".into()),
        },
        Err(e) => Err(e.to_string()),
    }
}

/// Brings the membership to `want_member` with single calls (after a bulk step left it otherwise).
async fn settle(duo: &DuoClient, user_id: &str, group_id: &str, want_member: bool) -> Result<(), DuoError> {
    if is_member(duo, user_id, group_id).await? == want_member {
        return Ok(());
    }
    if want_member { duo.add_user_to_group(user_id, group_id).await } else { duo.remove_user_from_group(user_id, group_id).await }
}

/// Runs the probe with objects named after `tag` (see the module doc), and removes them.
/// The caller checks the write grant first; every error is recorded in the report, never returned.
pub async fn probe(duo: &DuoClient, tag: &str) -> ProbeReport {
    let mut made = Made::default();
    let mut report = ProbeReport {
        tag: tag.to_owned(),
        bulk_add: Reading::NotTried("the probe's group and user could not be made".into()),
        bulk_remove: Reading::NotTried("the probe's group and user could not be made".into()),
        single_add: Reading::NotTried("the probe's group and user could not be made".into()),
        single_remove: Reading::NotTried("the probe's group and user could not be made".into()),
        usernames: None,
        group_names: None,
        failures: Vec::new(),
        left_behind: Vec::new(),
    };
    let name = format!("duoprov-probe-{tag}");
    memberships(duo, &name, &mut made, &mut report).await;
    usernames(duo, tag, &mut made, &mut report).await;
    group_names(duo, &name, &mut made, &mut report).await;
    report.left_behind = made.remove_all(duo).await;
    report
}

async fn memberships(duo: &DuoClient, name: &str, made: &mut Made, report: &mut ProbeReport) {
    let group = match duo.create_group(&GroupFields::named(name).desc(DESC)).await {
        Ok(g) => g,
        Err(e) => return report.failures.push(format!("creating the group {name}: {e}")),
    };
    made.groups.push((name.to_owned(), group.group_id.clone()));
    let user = match duo.create_user(&NewUser::new(name).realname("duoprov probe").notes(DESC)).await {
        Ok(u) => u,
        Err(e) => return report.failures.push(format!("creating the user {name}: {e}")),
    };
    made.users.push((name.to_owned(), user.user_id.clone()));
    let (uid, gid) = (user.user_id.as_str(), group.group_id.as_str());

    let answer = bulk_answer(duo, BulkOp::AddUserToGroup { user_id: uid.into(), group_id: gid.into() }).await;
    report.bulk_add = confirm(duo, uid, gid, true, answer).await;
    let not_tried = |step: &str, e: &DuoError| Reading::NotTried(format!("{step} failed: {e}"));
    if let Err(e) = settle(duo, uid, gid, true).await {
        report.bulk_remove = not_tried("adding the membership with a single call", &e);
        report.single_add = report.bulk_remove.clone();
        report.single_remove = report.bulk_remove.clone();
        return report.failures.push(format!("adding user {name} to group {name} before the bulk remove: {e}"));
    }
    let answer = bulk_answer(duo, BulkOp::RemoveUserFromGroup { user_id: uid.into(), group_id: gid.into() }).await;
    report.bulk_remove = confirm(duo, uid, gid, false, answer).await;
    if let Err(e) = settle(duo, uid, gid, false).await {
        report.single_add = not_tried("removing the membership with a single call", &e);
        report.single_remove = report.single_add.clone();
        return report.failures.push(format!("removing user {name} from group {name} after the bulk remove: {e}"));
    }
    let answer = duo.add_user_to_group(uid, gid).await.map_err(|e| e.to_string());
    report.single_add = confirm(duo, uid, gid, true, answer).await;
    if !report.single_add.works() {
        report.single_remove = Reading::NotTried("the single add did not work".into());
        return;
    }
    let answer = duo.remove_user_from_group(uid, gid).await.map_err(|e| e.to_string());
    report.single_remove = confirm(duo, uid, gid, false, answer).await;
}

async fn usernames(duo: &DuoClient, tag: &str, made: &mut Made, report: &mut ProbeReport) {
    let sent = format!("Duoprov-Probe-{tag}-X");
    let user = match duo.create_user(&NewUser::new(&sent).realname("duoprov probe").notes(DESC)).await {
        Ok(u) => u,
        Err(e) => return report.failures.push(format!("creating the user {sent}: {e}")),
    };
    made.users.push((sent.clone(), user.user_id.clone()));
    match duo.get_user_by_username(&sent.to_lowercase()).await {
        Ok(found) => {
            report.usernames = Some(UsernameReading {
                sent,
                stored: user.username,
                lowercase_lookup_finds: found.is_some_and(|u| u.user_id == user.user_id),
            })
        }
        Err(e) => report.failures.push(format!("looking up {:?}: {e}", sent.to_lowercase())),
    }
}

async fn group_names(duo: &DuoClient, name: &str, made: &mut Made, report: &mut ProbeReport) {
    if made.groups.is_empty() {
        // The first group could not be made; make one now, so the second has a name to share.
        match duo.create_group(&GroupFields::named(name).desc(DESC)).await {
            Ok(g) => made.groups.push((name.to_owned(), g.group_id)),
            Err(e) => return report.failures.push(format!("creating the group {name}: {e}")),
        }
    }
    match duo.create_group(&GroupFields::named(name).desc(DESC)).await {
        Ok(g) => {
            made.groups.push((format!("{name} (the second)"), g.group_id));
            report.group_names = Some(GroupNameReading::NonUnique);
        }
        Err(e) => match &e.kind {
            ErrorKind::InvalidParameter { code, .. } => {
                report.group_names = Some(GroupNameReading::Unique { code: *code, answer: e.to_string() });
            }
            _ => report.failures.push(format!("creating a second group named {name}: {e}")),
        },
    }
}
