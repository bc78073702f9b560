//! Provisioning markers: "send this folder (its direct children, or its whole subtree) or this
//! group to provisioner P", or, with `provision = false`, "keep it out". This module also holds
//! the pure rule that decides, from a provisioner's markers, whether one group is provisionable.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use crate::name::{FolderPath, GroupName};

/// How far a folder marker reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MarkerScope {
    /// The groups directly in the folder.
    One,
    /// Every group in the folder's subtree.
    Sub,
}

impl MarkerScope {
    pub fn as_str(self) -> &'static str {
        match self {
            MarkerScope::One => "one",
            MarkerScope::Sub => "sub",
        }
    }
}

impl fmt::Display for MarkerScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MarkerScope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "one" => Ok(MarkerScope::One),
            "sub" => Ok(MarkerScope::Sub),
            other => Err(format!("scope must be \"one\" or \"sub\", not {other:?}")),
        }
    }
}

/// What a marker is attached to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MarkerTarget {
    Folder(FolderPath),
    Group(GroupName),
}

impl fmt::Display for MarkerTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MarkerTarget::Folder(p) => write!(f, "folder {p}"),
            MarkerTarget::Group(g) => write!(f, "group {g}"),
        }
    }
}

/// One marker as stored in the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    pub provisioner: String,
    pub target: MarkerTarget,
    /// Meaningful for folders; groups always use `sub` (the group itself).
    pub scope: MarkerScope,
    /// `false` excludes the target from the provisioner.
    pub provision: bool,
}

/// A provisioner's markers, indexed for deciding group after group.
///
/// The rule, Grouper's: the most specific marker wins. A marker on the group itself decides;
/// otherwise the nearest folder above the group that carries a marker reaching it decides (a
/// `one` marker reaches only the folder's direct groups, a `sub` marker its whole subtree);
/// otherwise the group is not provisioned. So `provision = false` on a group or a subfolder
/// carves it out of a marked parent, and a `true` below a `false` puts it back.
/// The marker name that marks policy groups (Grouper's policy groups, for
/// `only_policy_groups`): markers assigned to `@policy` follow the provisioners' rules (the most
/// specific one wins; an exclude says "not a policy group"). No provisioner may take this name.
pub const POLICY_MARKER: &str = "@policy";

#[derive(Debug, Default)]
pub struct MarkerIndex {
    groups: HashMap<String, bool>,
    folders: HashMap<String, (MarkerScope, bool)>,
}

impl MarkerIndex {
    pub fn new<'a>(markers: impl IntoIterator<Item = &'a Marker>) -> Self {
        let mut index = MarkerIndex::default();
        for m in markers {
            match &m.target {
                MarkerTarget::Group(g) => {
                    index.groups.insert(g.as_str().to_owned(), m.provision);
                }
                MarkerTarget::Folder(f) => {
                    index.folders.insert(f.as_str().to_owned(), (m.scope, m.provision));
                }
            }
        }
        index
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty() && self.folders.is_empty()
    }

    /// Whether the group of this full name is provisionable.
    pub fn selects(&self, group: &str) -> bool {
        self.deciding(group).is_some_and(|d| d.provision)
    }

    /// The marker that decides whether the group of this full name is provisionable (the most
    /// specific one reaching it), or `None` when none reaches it (not provisioned).
    pub fn deciding(&self, group: &str) -> Option<MarkerDecision> {
        if let Some(decision) = self.groups.get(group) {
            return Some(MarkerDecision { on: "group".into(), path: group.to_owned(), scope: MarkerScope::Sub, provision: *decision });
        }
        // Walk the folders from the nearest outwards.
        let mut end = group.len();
        let mut direct = true;
        while let Some(pos) = group[..end].rfind(':') {
            let folder = &group[..pos];
            if let Some((scope, provision)) = self.folders.get(folder)
                && (direct || *scope == MarkerScope::Sub) {
                    return Some(MarkerDecision { on: "folder".into(), path: folder.to_owned(), scope: *scope, provision: *provision });
                }
            direct = false;
            end = pos;
        }
        None
    }
}

/// The marker that decides one group: on the group itself or on a folder above it, its scope,
/// and whether it includes (`provision`) or excludes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkerDecision {
    /// `group` or `folder`.
    pub on: String,
    /// The group's or folder's full name.
    pub path: String,
    pub scope: MarkerScope,
    pub provision: bool,
}

impl fmt::Display for MarkerDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.provision { "includes" } else { "excludes" };
        match self.on.as_str() {
            "group" => write!(f, "the marker on group {} {verb} it", self.path),
            _ => write!(f, "the marker on folder {} (scope {}) {verb} it", self.path, self.scope),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(p: &str, scope: MarkerScope, provision: bool) -> Marker {
        Marker {
            provisioner: "duoTest".into(),
            target: MarkerTarget::Folder(FolderPath::parse(p).unwrap()),
            scope,
            provision,
        }
    }
    fn group(g: &str, provision: bool) -> Marker {
        Marker {
            provisioner: "duoTest".into(),
            target: MarkerTarget::Group(GroupName::parse(g).unwrap()),
            scope: MarkerScope::Sub,
            provision,
        }
    }

    #[test]
    fn sub_reaches_the_whole_subtree_and_one_only_direct_groups() {
        let m = [folder("app:duo", MarkerScope::Sub, true), folder("org", MarkerScope::One, true)];
        let idx = MarkerIndex::new(&m);
        assert!(idx.selects("app:duo:testGroup"));
        assert!(idx.selects("app:duo:a:b:c"));
        assert!(!idx.selects("app:duox:testGroup"));
        assert!(!idx.selects("app:other"));
        assert!(idx.selects("org:g"));
        assert!(!idx.selects("org:sub:g"));
    }

    #[test]
    fn the_most_specific_marker_wins() {
        let m = [
            folder("app", MarkerScope::Sub, true),
            folder("app:private", MarkerScope::Sub, false),
            group("app:private:butThisOne", true),
            group("app:notThis", false),
            folder("app:private:inner", MarkerScope::One, true),
        ];
        let idx = MarkerIndex::new(&m);
        assert!(idx.selects("app:x"));
        assert!(!idx.selects("app:notThis"));
        assert!(!idx.selects("app:private:secret"));
        assert!(idx.selects("app:private:butThisOne"));
        assert!(idx.selects("app:private:inner:g"));
        // `one` on inner does not reach deeper; the nearest reaching marker is app:private (false).
        assert!(!idx.selects("app:private:inner:deeper:g"));
    }

    #[test]
    fn the_deciding_marker_is_the_nearest_reaching_one() {
        let m = [folder("app", MarkerScope::Sub, true), folder("app:private", MarkerScope::Sub, false), group("app:private:butThisOne", true)];
        let idx = MarkerIndex::new(&m);
        let d = idx.deciding("app:private:secret").expect("a folder marker reaches it");
        assert_eq!((d.on.as_str(), d.path.as_str(), d.provision), ("folder", "app:private", false));
        let d = idx.deciding("app:private:butThisOne").expect("its own marker");
        assert_eq!((d.on.as_str(), d.provision), ("group", true));
        assert_eq!(idx.deciding("other:g"), None);
    }
}
