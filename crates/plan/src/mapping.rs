//! Field templates: how each Duo field is computed from a registry subject or group, as minijinja
//! templates compiled once when the configuration loads. A template that does not compile is a
//! configuration error naming its key; one that fails on an object is an error on that object.
//!
//! Defaults are Grouper's: group `name` ← extension, `desc` ← description; user `username` ←
//! login_id, `realname` ← name, `email`, `firstname`, `lastname` ← the same-named attributes.
//! Templates see `subject.{source,id,name,login_id,email,first_name,last_name,description}` and
//! `group.{uuid,name,extension,folder,display_name,description}`; a missing attribute is `""`.
//! A template that is just one attribute (`{{ subject.login_id }}`) skips the template engine.
//!
//! A field can be left unmanaged (`email = false` in the configuration): duoprov then neither
//! sends it on create nor compares it, so Duo's value stays whatever Duo holds. An *omitted*
//! template means the default above; only `false` means unmanaged. `username` and `group_name`
//! are required and cannot be unmanaged. The aliases `alias1`..`alias4` have no default: omitted
//! means unmanaged; a configured alias that renders non-empty is sent on create and, when Duo's
//! user does not carry it (compared as usernames are), on update.

use duoprov_model::{Group, Subject};
use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

/// Fields that may be left unmanaged (`false` in the configuration), by configuration key.
pub const UNMANAGEABLE: [&str; 5] = ["group_desc", "realname", "email", "firstname", "lastname"];

/// The templates as configured (`None` = the default; keys in `unmanaged` are not managed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MappingConfig {
    pub group_name: Option<String>,
    pub group_desc: Option<String>,
    pub username: Option<String>,
    pub realname: Option<String>,
    pub email: Option<String>,
    pub firstname: Option<String>,
    pub lastname: Option<String>,
    /// Templates of the alias slots 1 to 4 (`None` = not managed).
    pub aliases: [Option<String>; 4],
    /// Configuration keys set to `false`: fields duoprov neither sends nor compares.
    pub unmanaged: std::collections::BTreeSet<String>,
}

/// A template that failed to compile, named by its configuration key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct MappingError {
    pub key: String,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Source,
    Id,
    Name,
    LoginId,
    Email,
    FirstName,
    LastName,
    Description,
    Uuid,
    Extension,
    Folder,
    DisplayName,
}

#[derive(Debug, Clone)]
enum Compiled {
    /// The whole template is one attribute.
    Direct(Field),
    /// Rendered by the engine under this template name.
    Engine(String),
}

/// Compiled templates.
#[derive(Debug)]
pub struct Mapping {
    env: Environment<'static>,
    group_name: Compiled,
    group_desc: Compiled,
    username: Compiled,
    realname: Compiled,
    email: Compiled,
    firstname: Compiled,
    lastname: Compiled,
    aliases: Vec<(u8, Compiled)>,
    unmanaged: std::collections::BTreeSet<String>,
    /// Every template as configured or defaulted, by configuration key (for `duoprov config`).
    sources: Vec<(String, String)>,
}

/// A user's Duo fields as the templates give them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserFields {
    pub username: String,
    pub realname: String,
    pub email: String,
    pub firstname: String,
    pub lastname: String,
    /// Configured alias slots whose template rendered non-empty, by slot.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<(u8, String)>,
}

/// A group's Duo fields as the templates give them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupFields {
    pub name: String,
    pub desc: String,
}

fn direct_field(object: &str, source: &str) -> Option<Field> {
    let inner = source.trim().strip_prefix("{{")?.strip_suffix("}}")?.trim();
    let attr = inner.strip_prefix(object)?.strip_prefix('.')?;
    Some(match (object, attr) {
        ("subject", "source") => Field::Source,
        ("subject", "id") => Field::Id,
        ("subject", "name") | ("group", "name") => Field::Name,
        ("subject", "login_id") => Field::LoginId,
        ("subject", "email") => Field::Email,
        ("subject", "first_name") => Field::FirstName,
        ("subject", "last_name") => Field::LastName,
        ("subject", "description") | ("group", "description") => Field::Description,
        ("group", "uuid") => Field::Uuid,
        ("group", "extension") => Field::Extension,
        ("group", "folder") => Field::Folder,
        ("group", "display_name") => Field::DisplayName,
        _ => return None,
    })
}

struct SubjectView<'a> {
    source: &'a str,
    id: &'a str,
    name: &'a str,
    login_id: &'a str,
    email: &'a str,
    first_name: &'a str,
    last_name: &'a str,
    description: &'a str,
}

impl<'a> SubjectView<'a> {
    fn of(s: &'a Subject) -> Self {
        let o = |v: &'a Option<String>| v.as_deref().unwrap_or("");
        SubjectView {
            source: &s.source,
            id: &s.id,
            name: o(&s.name),
            login_id: o(&s.login_id),
            email: o(&s.email),
            first_name: o(&s.first_name),
            last_name: o(&s.last_name),
            description: o(&s.description),
        }
    }
    fn get(&self, f: Field) -> &'a str {
        match f {
            Field::Source => self.source,
            Field::Id => self.id,
            Field::Name => self.name,
            Field::LoginId => self.login_id,
            Field::Email => self.email,
            Field::FirstName => self.first_name,
            Field::LastName => self.last_name,
            Field::Description => self.description,
            _ => "",
        }
    }
}

struct GroupView<'a> {
    uuid: &'a str,
    name: &'a str,
    extension: &'a str,
    folder: String,
    display_name: &'a str,
    description: &'a str,
}

impl<'a> GroupView<'a> {
    fn of(g: &'a Group) -> Self {
        GroupView {
            uuid: &g.uuid,
            name: g.name.as_str(),
            extension: g.extension(),
            folder: g.name.parent().map(|p| p.to_string()).unwrap_or_default(),
            display_name: g.display_name.as_deref().unwrap_or(""),
            description: g.description.as_deref().unwrap_or(""),
        }
    }
    fn get(&self, f: Field) -> String {
        match f {
            Field::Uuid => self.uuid.to_owned(),
            Field::Name => self.name.to_owned(),
            Field::Extension => self.extension.to_owned(),
            Field::Folder => self.folder.clone(),
            Field::DisplayName => self.display_name.to_owned(),
            Field::Description => self.description.to_owned(),
            _ => String::new(),
        }
    }
}

impl Mapping {
    /// Compiles the templates; `key_prefix` (e.g. `provisioner.duoTest.templates`) and the
    /// template's configuration key (`username`, `group_name`, …) name them in errors.
    pub fn compile(config: &MappingConfig, key_prefix: &str) -> Result<Mapping, MappingError> {
        for key in &config.unmanaged {
            if !UNMANAGEABLE.contains(&key.as_str()) {
                return Err(MappingError {
                    key: format!("{key_prefix}.{key}"),
                    message: format!("cannot be false: only {} may be left unmanaged", UNMANAGEABLE.join(", ")),
                });
            }
        }
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        let mut sources = Vec::new();
        let mut compile = |key: &str, object: &str, configured: &Option<String>, default: &str| -> Result<Compiled, MappingError> {
            let source = configured.clone().unwrap_or_else(|| default.to_owned());
            sources.push((key.to_owned(), source.clone()));
            let full_key = format!("{key_prefix}.{key}");
            if let Some(field) = direct_field(object, &source) {
                return Ok(Compiled::Direct(field));
            }
            env.add_template_owned(full_key.clone(), source).map_err(|e| MappingError { key: full_key.clone(), message: e.to_string() })?;
            Ok(Compiled::Engine(full_key))
        };
        let group_name = compile("group_name", "group", &config.group_name, "{{ group.extension }}")?;
        let group_desc = compile("group_desc", "group", &config.group_desc, "{{ group.description }}")?;
        let username = compile("username", "subject", &config.username, "{{ subject.login_id }}")?;
        let realname = compile("realname", "subject", &config.realname, "{{ subject.name }}")?;
        let email = compile("email", "subject", &config.email, "{{ subject.email }}")?;
        let firstname = compile("firstname", "subject", &config.firstname, "{{ subject.first_name }}")?;
        let lastname = compile("lastname", "subject", &config.lastname, "{{ subject.last_name }}")?;
        let mut aliases = Vec::new();
        for (i, t) in config.aliases.iter().enumerate() {
            if let Some(t) = t {
                let slot = i as u8 + 1;
                aliases.push((slot, compile(&format!("alias{slot}"), "subject", &Some(t.clone()), "")?));
            }
        }
        let unmanaged = config.unmanaged.clone();
        let mapping = Mapping { env, group_name, group_desc, username, realname, email, firstname, lastname, aliases, unmanaged, sources };
        // Render every engine template once against an empty object so a reference to an
        // attribute that does not exist is caught now, as a configuration error.
        let probe_subject = Subject {
            source: "local".into(),
            id: "probe".into(),
            name: None,
            login_id: None,
            email: None,
            first_name: None,
            last_name: None,
            description: None,
        };
        mapping.user_fields(&probe_subject).map_err(|(key, message)| MappingError { key, message })?;
        let probe_group = Group {
            uuid: "probe".into(),
            name: duoprov_model::GroupName::parse("probe:group").map_err(|e| MappingError { key: key_prefix.into(), message: e.to_string() })?,
            display_name: None,
            description: None,
        };
        mapping.group_fields(&probe_group).map_err(|(key, message)| MappingError { key, message })?;
        Ok(mapping)
    }

    fn render_engine(&self, name: &str, ctx: minijinja::Value) -> Result<String, (String, String)> {
        let tmpl = self.env.get_template(name).map_err(|e| (name.to_owned(), e.to_string()))?;
        tmpl.render(ctx).map(|s| s.trim().to_owned()).map_err(|e| (name.to_owned(), e.to_string()))
    }

    fn subject_value(&self, c: &Compiled, view: &SubjectView<'_>) -> Result<String, (String, String)> {
        match c {
            Compiled::Direct(f) => Ok(view.get(*f).trim().to_owned()),
            Compiled::Engine(name) => {
                let subject = minijinja::Value::from_pairs([
                    ("source", view.source),
                    ("id", view.id),
                    ("name", view.name),
                    ("login_id", view.login_id),
                    ("email", view.email),
                    ("first_name", view.first_name),
                    ("last_name", view.last_name),
                    ("description", view.description),
                ]);
                self.render_engine(name, minijinja::Value::from_pairs([("subject", subject)]))
            }
        }
    }

    fn group_value(&self, c: &Compiled, view: &GroupView<'_>) -> Result<String, (String, String)> {
        match c {
            Compiled::Direct(f) => Ok(view.get(*f).trim().to_owned()),
            Compiled::Engine(name) => {
                let group = minijinja::Value::from_pairs([
                    ("uuid", view.uuid),
                    ("name", view.name),
                    ("extension", view.extension),
                    ("folder", view.folder.as_str()),
                    ("display_name", view.display_name),
                    ("description", view.description),
                ]);
                self.render_engine(name, minijinja::Value::from_pairs([("group", group)]))
            }
        }
    }

    /// Every field's template by configuration key (`username`, …, `alias1` when set), defaults
    /// resolved; `None` for a field left unmanaged (`false`).
    pub fn templates(&self) -> Vec<(String, Option<String>)> {
        self.sources.iter().map(|(k, t)| (k.clone(), self.manages(k).then(|| t.clone()))).collect()
    }

    /// Whether the field of configuration key `key` (`email`, `group_desc`, …) is managed.
    pub fn manages(&self, key: &str) -> bool {
        !self.unmanaged.contains(key)
    }

    /// A user's fields; the error is (template key, message). Unmanaged fields are `""`.
    pub fn user_fields(&self, s: &Subject) -> Result<UserFields, (String, String)> {
        let view = SubjectView::of(s);
        let value = |key: &str, c: &Compiled| if self.manages(key) { self.subject_value(c, &view) } else { Ok(String::new()) };
        let mut aliases = Vec::new();
        for (slot, c) in &self.aliases {
            let v = self.subject_value(c, &view)?;
            if !v.is_empty() {
                aliases.push((*slot, v));
            }
        }
        Ok(UserFields {
            username: self.subject_value(&self.username, &view)?,
            realname: value("realname", &self.realname)?,
            email: value("email", &self.email)?,
            firstname: value("firstname", &self.firstname)?,
            lastname: value("lastname", &self.lastname)?,
            aliases,
        })
    }

    /// A group's fields; the error is (template key, message).
    pub fn group_fields(&self, g: &Group) -> Result<GroupFields, (String, String)> {
        let view = GroupView::of(g);
        let desc = if self.manages("group_desc") { self.group_value(&self.group_desc, &view)? } else { String::new() };
        Ok(GroupFields { name: self.group_value(&self.group_name, &view)?, desc })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chris() -> Subject {
        Subject {
            source: "local".into(),
            id: "mchyzer".into(),
            name: Some("Chris Hyzer".into()),
            login_id: Some("mchyzer".into()),
            email: Some("mchyzer@example.edu".into()),
            first_name: None,
            last_name: None,
            description: None,
        }
    }

    #[test]
    fn defaults_are_groupers() {
        let m = Mapping::compile(&MappingConfig::default(), "provisioner.duoTest").unwrap();
        let u = m.user_fields(&chris()).unwrap();
        assert_eq!((u.username.as_str(), u.realname.as_str(), u.email.as_str(), u.firstname.as_str()), ("mchyzer", "Chris Hyzer", "mchyzer@example.edu", ""));
        let g = Group {
            uuid: "u".into(),
            name: duoprov_model::GroupName::parse("app:duo:testGroup").unwrap(),
            display_name: None,
            description: Some("Test".into()),
        };
        assert_eq!(m.group_fields(&g).unwrap(), GroupFields { name: "testGroup".into(), desc: "Test".into() });
    }

    #[test]
    fn templates_render_and_bad_ones_name_their_key() {
        let cfg = MappingConfig {
            username: Some("{{ subject.login_id | lower }}@example.edu".into()),
            group_name: Some("{{ group.folder | replace(':', '-') }}-{{ group.extension }}".into()),
            ..Default::default()
        };
        let m = Mapping::compile(&cfg, "provisioner.p").unwrap();
        let mut s = chris();
        s.login_id = Some("MChyzer".into());
        assert_eq!(m.user_fields(&s).unwrap().username, "mchyzer@example.edu");
        let bad = MappingConfig { realname: Some("{{ subject.name ".into()), ..Default::default() };
        let e = Mapping::compile(&bad, "provisioner.p").unwrap_err();
        assert_eq!(e.key, "provisioner.p.realname");
        let unknown = MappingConfig { email: Some("{{ subject.mail }}x".into()), ..Default::default() };
        let e = Mapping::compile(&unknown, "provisioner.p").unwrap_err();
        assert_eq!(e.key, "provisioner.p.email", "{e}");
    }
}

#[cfg(test)]
mod unmanaged_tests {
    use super::*;

    #[test]
    fn a_false_field_renders_empty_and_is_reported_unmanaged_while_an_omitted_one_keeps_its_default() {
        let cfg = MappingConfig { unmanaged: ["email".to_owned(), "group_desc".to_owned()].into(), aliases: [Some("{{ subject.id }}-alt".into()), None, None, None], ..Default::default() };
        let m = Mapping::compile(&cfg, "provisioner.p.templates").unwrap();
        let s = Subject { source: "local".into(), id: "js".into(), name: Some("J S".into()), login_id: Some("js".into()), email: Some("js@example.edu".into()), first_name: None, last_name: None, description: None };
        let u = m.user_fields(&s).unwrap();
        assert_eq!((u.email.as_str(), u.realname.as_str()), ("", "J S"));
        assert_eq!(u.aliases, vec![(1, "js-alt".to_owned())]);
        assert!(!m.manages("email") && !m.manages("group_desc") && m.manages("realname"));
        let e = Mapping::compile(&MappingConfig { unmanaged: ["username".to_owned()].into(), ..Default::default() }, "provisioner.p.templates").unwrap_err();
        assert_eq!(e.key, "provisioner.p.templates.username");
    }
}
