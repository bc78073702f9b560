//! Pure nouns of duoprov: registry subjects, folders, groups and memberships, the names that
//! identify them and the rules that make a name valid. No I/O lives here, so the planner and the
//! stores can share these types without pulling in a runtime.

pub mod admin;
pub mod duo;
pub mod error;
pub mod marker;
pub mod mirror;
pub mod name;
pub mod registry;
pub mod text;
pub mod time;

pub use admin::{admin_email_key, DuoAdmin, ManagedAdmin};
pub use duo::{same_username, username_key, DuoGroup, UsernameMatch, DuoSnapshot, DuoUser, ForeignLink, ForeignLinks, GroupLink, Links, UserLink};
pub use error::{ValidationError, ValidationErrors};
pub use marker::{Marker, MarkerDecision, MarkerIndex, MarkerScope, MarkerTarget, POLICY_MARKER};
pub use mirror::{MirrorChanges, MirrorGroup, MirrorGroupUpdate, MirrorScope, OwnedGroup, OwnedState, SourceRun};
pub use text::counted;
pub use time::EpochMillis;
pub use name::{FolderPath, GroupName, MAX_NAME_LEN};
pub use registry::{
    ChangeEntry, ChangeKind, Folder, Group, GroupMember, ProvisionableGroup, ProvisionerSelection,
    Subject, SubjectKey, SubjectPatch,
};
