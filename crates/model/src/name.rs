//! Folder paths and group names: colon-separated segments, as Grouper names its stems and groups
//! (`app:duo:testGroup`). A valid name has no empty segment, no control character, and at most
//! [`MAX_NAME_LEN`] characters; a group's extension (its last segment) therefore has no colon.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::error::ValidationError;

/// The longest folder path or group name accepted, in characters.
pub const MAX_NAME_LEN: usize = 1024;

/// Checks one colon-separated name and says what is wrong with it.
fn check_path(kind: &str, value: &str, field: &str) -> Result<(), ValidationError> {
    let object = format!("{kind} {value:?}");
    if value.is_empty() {
        return Err(ValidationError::new(object, field, "must not be empty"));
    }
    if value.chars().count() > MAX_NAME_LEN {
        return Err(ValidationError::new(
            object,
            field,
            format!("is longer than {MAX_NAME_LEN} characters"),
        ));
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(ValidationError::new(
            object,
            field,
            format!("contains the control character U+{:04X}", c as u32),
        ));
    }
    for (i, segment) in value.split(':').enumerate() {
        if segment.is_empty() {
            return Err(ValidationError::new(object, field, format!("segment {} is empty", i + 1)));
        }
        if segment.trim() != segment {
            return Err(ValidationError::new(
                object,
                field,
                format!("segment {:?} starts or ends with white space", segment),
            ));
        }
    }
    Ok(())
}

/// Checks one segment (a folder's or group's extension), which may not contain a colon.
pub fn check_extension(kind: &str, value: &str, field: &str) -> Result<(), ValidationError> {
    if value.contains(':') {
        return Err(ValidationError::new(
            format!("{kind} {value:?}"),
            field,
            "an extension may not contain a colon",
        ));
    }
    check_path(kind, value, field)
}

/// Checks a free-text attribute (display name, description, subject fields): no control
/// characters except tab and newline in descriptions, at most `max` characters.
pub fn check_text(object: &str, field: &str, value: &str, max: usize, multiline: bool) -> Result<(), ValidationError> {
    if value.chars().count() > max {
        return Err(ValidationError::new(object, field, format!("is longer than {max} characters")));
    }
    if let Some(c) = value.chars().find(|c| c.is_control() && !(multiline && (*c == '\n' || *c == '\t'))) {
        return Err(ValidationError::new(
            object,
            field,
            format!("contains the control character U+{:04X}", c as u32),
        ));
    }
    Ok(())
}

macro_rules! path_type {
    ($(#[$doc:meta])* $ty:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $ty(String);

        impl $ty {
            /// Validates and wraps a name.
            pub fn parse(value: &str) -> Result<Self, ValidationError> {
                check_path($kind, value, "name")?;
                Ok(Self(value.to_owned()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
            /// The last segment.
            pub fn extension(&self) -> &str {
                self.0.rsplit(':').next().unwrap_or(&self.0)
            }
            /// The folder that holds this object, or `None` at the root.
            pub fn parent(&self) -> Option<FolderPath> {
                self.0.rsplit_once(':').map(|(p, _)| FolderPath(p.to_owned()))
            }
            /// Every folder above this object, outermost first (`app`, `app:duo`).
            pub fn ancestors(&self) -> Vec<FolderPath> {
                let mut out = Vec::new();
                let mut end = 0;
                while let Some(pos) = self.0[end..].find(':') {
                    end += pos;
                    out.push(FolderPath(self.0[..end].to_owned()));
                    end += 1;
                }
                out
            }
            /// True when this object lies somewhere below `folder`.
            pub fn is_under(&self, folder: &FolderPath) -> bool {
                self.0.len() > folder.0.len()
                    && self.0.starts_with(folder.as_str())
                    && self.0.as_bytes()[folder.0.len()] == b':'
            }
            /// This name with the prefix `from` replaced by `to` (used when a folder is renamed).
            pub fn with_prefix_replaced(&self, from: &FolderPath, to: &FolderPath) -> Option<Self> {
                if self.is_under(from) {
                    Some(Self(format!("{}{}", to.as_str(), &self.0[from.0.len()..])))
                } else {
                    None
                }
            }
        }

        impl TryFrom<String> for $ty {
            type Error = ValidationError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                check_path($kind, &value, "name")?;
                Ok(Self(value))
            }
        }

        impl From<$ty> for String {
            fn from(value: $ty) -> String {
                value.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

path_type!(
    /// A folder (Grouper: stem) path such as `app:duo`.
    FolderPath,
    "folder"
);
path_type!(
    /// A group's full name such as `app:duo:testGroup`.
    GroupName,
    "group"
);

impl FolderPath {
    /// The group named `extension` inside this folder.
    pub fn child_group(&self, extension: &str) -> Result<GroupName, ValidationError> {
        check_extension("group", extension, "extension")?;
        GroupName::parse(&format!("{}:{}", self.0, extension))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names_parse_and_split() {
        let g = GroupName::parse("app:duo:testGroup").unwrap();
        assert_eq!(g.extension(), "testGroup");
        assert_eq!(g.parent().unwrap().as_str(), "app:duo");
        let anc: Vec<_> = g.ancestors().iter().map(|f| f.as_str().to_owned()).collect();
        assert_eq!(anc, vec!["app", "app:duo"]);
        assert!(GroupName::parse("root").unwrap().parent().is_none());
    }

    #[test]
    fn invalid_names_are_refused_with_the_reason() {
        let e = GroupName::parse("app::x").unwrap_err();
        assert_eq!(e.field, "name");
        assert!(e.message.contains("segment 2 is empty"), "{e}");
        assert!(GroupName::parse("").unwrap_err().message.contains("empty"));
        assert!(GroupName::parse(":a").is_err());
        assert!(GroupName::parse("a:").is_err());
        let e = GroupName::parse("a:b\u{7}c").unwrap_err();
        assert!(e.message.contains("U+0007"), "{e}");
        let long = format!("a:{}", "x".repeat(MAX_NAME_LEN));
        assert!(GroupName::parse(&long).unwrap_err().message.contains("longer than 1024"));
        assert!(GroupName::parse(&"x".repeat(MAX_NAME_LEN)).is_ok());
        let e = check_extension("group", "a:b", "extension").unwrap_err();
        assert!(e.message.contains("colon"));
    }

    #[test]
    fn prefix_checks_respect_segment_boundaries() {
        let f = FolderPath::parse("app:duo").unwrap();
        assert!(GroupName::parse("app:duo:x").unwrap().is_under(&f));
        assert!(!GroupName::parse("app:duox:y").unwrap().is_under(&f));
        assert!(!GroupName::parse("app:duo").unwrap().is_under(&f));
        let to = FolderPath::parse("apps:mfa").unwrap();
        let moved = GroupName::parse("app:duo:a:b").unwrap().with_prefix_replaced(&f, &to).unwrap();
        assert_eq!(moved.as_str(), "apps:mfa:a:b");
    }
}
