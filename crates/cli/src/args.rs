//! The command line, as clap types: global options, then one subcommand per area (registry
//! objects, import, the emulator). Parsing only; `commands/` does the work.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The heading the options every command accepts are listed under.
const GLOBAL: &str = "Global options";

#[derive(Debug, Parser)]
#[command(name = "duoprov", version, about = "Keeps Duo Security in step with a group registry.")]
pub struct Cli {
    /// Configuration file.
    #[arg(long, global = true, env = "DUOPROV_CONFIG", hide_env_values = true, default_value = "duoprov.toml", value_name = "FILE", help_heading = GLOBAL)]
    pub config: PathBuf,
    /// Registry URL, overriding the configuration (sqlite://FILE, sqlite::memory:, postgres://…).
    #[arg(long, global = true, env = "DUOPROV_REGISTRY_URL", value_name = "URL", hide_env_values = true, help_heading = GLOBAL)]
    pub registry: Option<String>,
    /// Log format on standard error.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, help_heading = GLOBAL)]
    pub log_format: LogFormat,
    /// More log output: -v info, -vv duoprov's debug lines, -vvv its trace, -vvvv also the
    /// libraries' (database, HTTP, TLS); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = GLOBAL)]
    pub verbose: u8,
    /// Errors only on standard error: no warnings (a provisioner's HTTP traffic log still shows).
    #[arg(short, long, global = true, conflicts_with = "verbose", help_heading = GLOBAL)]
    pub quiet: bool,
    /// Machine-readable JSON output on standard output.
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a starter configuration and create the registry.
    Init(InitArgs),
    /// People and service accounts.
    #[command(subcommand)]
    Subject(SubjectCommand),
    /// Folders (namespaces of groups).
    #[command(subcommand)]
    Folder(FolderCommand),
    /// Groups.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Immediate and effective group members.
    #[command(subcommand)]
    Member(MemberCommand),
    /// Markers that select folders and groups for a provisioner.
    #[command(subcommand)]
    Provision(ProvisionCommand),
    /// Import subjects, folders, groups, memberships and markers from JSON or CSV files, all in
    /// one transaction.
    Import(ImportArgs),
    /// Sources (`[source.NAME]`: LDAP directories, SQL databases, snapshot files) mirrored into the
    /// registry.
    #[command(subcommand)]
    Source(SourceCommand),
    /// Show the configuration as duoprov understood it (secrets shown by their source only).
    Config,
    /// Load every Duo user of a provisioner's account into the duo_user table (Grouper's
    /// grouper_prov_duo_user): insert new, update changed, delete gone, in one transaction.
    LoadUsers(LoadUsersArgs),
    /// Reports over loaded Duo data (`users`: the duo_user table).
    Report(ReportArgs),
    /// Show the exact plan of a full sync: every Duo operation with its reason.
    Plan(PlanArgs),
    /// Sync a provisioner: plan, check the safety rules, apply, record.
    Sync(SyncArgs),
    /// Why a subject is (or is not) in a provisioner's Duo groups: memberships and nesting, the
    /// deciding markers, eligibility, rendered username, link, errors and retries.
    Explain(ExplainArgs),
    /// Recent runs, links and objects in error.
    Status {
        /// Only this provisioner (and then its links and errors too).
        provisioner: Option<String>,
    },
    /// Check a provisioner's configuration, registry and Duo access (reads, and the write grant
    /// without changing Duo).
    Doctor {
        /// The provisioner's name, as in `[provisioner.NAME]` of the configuration.
        provisioner: String,
        /// Also create and delete a throwaway group `duoprov-doctor-<random>` in Duo to prove
        /// writes work end to end.
        #[arg(long)]
        check_write: bool,
        /// For a sandbox Duo account only: make throwaway objects (`duoprov-probe-<random>`) to
        /// find out how this Duo treats bulk membership writes, username case and duplicate
        /// group names; record the result for later syncs, and delete the objects.
        #[arg(long)]
        probe: bool,
    },
    /// Write a zip for a support case: versions, the configuration as understood, status and
    /// doctor of each provisioner, the daemon's metrics and the log files named — secrets,
    /// signatures, passwords, e-mail addresses and phone numbers redacted.
    SupportBundle(SupportBundleArgs),
    /// The audit trail of every change duoprov made in Duo and every source change it applied to
    /// the registry: verify its hash chain, list it, export it as JSON lines for a SIEM.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The seed scenario on embedded defaults: a temporary registry and an in-process emulator.
    #[cfg(feature = "emulator")]
    Demo,
    /// Serve a Duo Admin API emulator until SIGINT or SIGTERM.
    #[cfg(feature = "emulator")]
    Emulator(duoprov_emulator::cli::EmulatorArgs),
    /// The daemon: incremental syncs every few seconds, scheduled full syncs, a status page with
    /// /healthz, /readyz and /metrics; one runner per provisioner across instances.
    Run(DaemonArgs),
}

#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Run only this provisioner (repeatable; default: every provisioner with schedule.enabled).
    #[arg(long = "provisioner", value_name = "NAME")]
    pub provisioners: Vec<String>,
    /// Status page address, overriding daemon.listen; port 0 picks a free one. Off loopback it
    /// needs daemon.metrics_token_file (or _env).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// On SIGTERM/SIGINT, how long runs in flight may take to finish before they are abandoned.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub shutdown_grace: u64,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Registry URL to write into the configuration.
    #[arg(long = "registry-url", value_name = "URL", default_value = "sqlite://duoprov.db")]
    pub registry_url: String,
    /// Overwrite an existing configuration file.
    #[arg(short, long)]
    pub force: bool,
    /// Also configure a connection to a local Duo emulator (`[duo.emulator]`, provisioner
    /// `duoTest`) with a generated secret key in a private file, and print the command that
    /// starts the emulator.
    #[arg(long)]
    pub with_emulator: bool,
}

/// Identifies a subject: its id, and its source (default `local`).
#[derive(Debug, Args)]
pub struct SubjectRef {
    /// The subject's id within its source.
    pub id: String,
    /// The subject's source.
    #[arg(long, default_value = "local")]
    pub source: String,
}

/// Subject attributes; an empty value clears the attribute.
#[derive(Debug, Args)]
pub struct SubjectFields {
    /// Display name; becomes the Duo user's realname by default.
    #[arg(long)]
    pub name: Option<String>,
    /// Login id; becomes the Duo username by default (a provisioner's username template may
    /// say otherwise).
    #[arg(long)]
    pub login_id: Option<String>,
    /// E-mail address; becomes the Duo user's email by default.
    #[arg(long)]
    pub email: Option<String>,
    /// Given name; becomes the Duo user's firstname by default.
    #[arg(long)]
    pub first_name: Option<String>,
    /// Family name; becomes the Duo user's lastname by default.
    #[arg(long)]
    pub last_name: Option<String>,
    /// Free text, kept in the registry (field templates see it as `subject.description`).
    #[arg(long)]
    pub description: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum SubjectCommand {
    /// Add a subject, or update the attributes given when it exists (add-or-update).
    Add {
        #[command(flatten)]
        subject: SubjectRef,
        #[command(flatten)]
        fields: SubjectFields,
    },
    /// Update an existing subject's attributes.
    Update {
        #[command(flatten)]
        subject: SubjectRef,
        #[command(flatten)]
        fields: SubjectFields,
    },
    /// Remove a subject and its memberships.
    Remove {
        #[command(flatten)]
        subject: SubjectRef,
    },
    /// Show one subject.
    Show {
        #[command(flatten)]
        subject: SubjectRef,
    },
    /// List subjects.
    List {
        /// Only this source.
        #[arg(long)]
        source: Option<String>,
    },
}

/// Display name and description of a folder or group; an empty value clears it.
#[derive(Debug, Args)]
pub struct NodeFields {
    /// Human-readable name (the full name stays the identifier).
    #[arg(long, value_name = "TEXT")]
    pub display_name: Option<String>,
    /// Free text; a provisioned group's description becomes its Duo group's desc by default.
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum FolderCommand {
    /// Add a folder, or update its attributes when it exists.
    Add {
        /// The folder's full path, segments separated by `:` (e.g. `app:duo`).
        path: String,
        #[command(flatten)]
        fields: NodeFields,
        /// Create missing parent folders.
        #[arg(long)]
        create_parents: bool,
    },
    /// Rename or move a folder (its groups keep their uuids and members) and set attributes.
    Update {
        /// The folder's full path, segments separated by `:` (e.g. `app:duo`).
        path: String,
        /// The new full path.
        #[arg(long, value_name = "PATH")]
        rename_to: Option<String>,
        #[command(flatten)]
        fields: NodeFields,
    },
    /// Remove a folder; it must be empty unless --recursive.
    Remove {
        /// The folder's full path, segments separated by `:` (e.g. `app:duo`).
        path: String,
        /// Also remove its subfolders and groups.
        #[arg(long)]
        recursive: bool,
    },
    /// Show one folder.
    Show {
        /// The folder's full path, segments separated by `:` (e.g. `app:duo`).
        path: String,
    },
    /// List folders.
    List {
        /// Only this folder and those below it.
        #[arg(long, value_name = "PATH")]
        under: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Add a group, or update its attributes when it exists.
    Add {
        /// The group's full name: its folder path and its extension (e.g. `app:duo:testGroup`).
        name: String,
        #[command(flatten)]
        fields: NodeFields,
        /// Create missing parent folders.
        #[arg(long)]
        create_parents: bool,
    },
    /// Rename or move a group (uuid and members kept) and set attributes.
    Update {
        /// The group's full name: its folder path and its extension (e.g. `app:duo:testGroup`).
        name: String,
        /// The new full name.
        #[arg(long, value_name = "NAME")]
        rename_to: Option<String>,
        #[command(flatten)]
        fields: NodeFields,
        /// Create missing parent folders of the new name.
        #[arg(long)]
        create_parents: bool,
    },
    /// Remove a group and its memberships.
    Remove {
        /// The group's full name: its folder path and its extension (e.g. `app:duo:testGroup`).
        name: String,
    },
    /// Show one group.
    Show {
        /// The group's full name: its folder path and its extension (e.g. `app:duo:testGroup`).
        name: String,
    },
    /// List groups.
    List {
        /// Only groups below this folder.
        #[arg(long, value_name = "PATH")]
        under: Option<String>,
    },
}

/// The members to add or remove: subjects by id, groups by name.
#[derive(Debug, Args)]
pub struct MemberTargets {
    /// The group.
    pub group: String,
    /// Subject ids.
    pub subjects: Vec<String>,
    /// Source of the subject ids.
    #[arg(long, default_value = "local")]
    pub source: String,
    /// Groups to nest (repeatable).
    #[arg(long = "group", value_name = "NAME")]
    pub groups: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// Add immediate members (a membership that would make a cycle is refused).
    Add(MemberTargets),
    /// Remove immediate members.
    Remove(MemberTargets),
    /// List a group's members.
    List {
        /// The group's full name.
        group: String,
        /// Subjects reached through nested groups too.
        #[arg(long)]
        effective: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScopeArg {
    One,
    Sub,
}

/// A marker's target: exactly one of a folder or a group.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct MarkerTargetArgs {
    /// The folder to mark (its groups, or its whole subtree with --scope sub).
    #[arg(long, value_name = "PATH")]
    pub folder: Option<String>,
    /// The group to mark.
    #[arg(long, value_name = "NAME")]
    pub group: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ProvisionCommand {
    /// Mark a folder or group for a provisioner (or, with --exclude, keep it out).
    Assign {
        /// The provisioner's name, as in `[provisioner.NAME]` of the configuration.
        provisioner: String,
        #[command(flatten)]
        target: MarkerTargetArgs,
        /// For folders: `one` = direct groups, `sub` = the whole subtree.
        #[arg(long, value_enum, default_value_t = ScopeArg::Sub)]
        scope: ScopeArg,
        /// Mark with provision = false, excluding the target.
        #[arg(long)]
        exclude: bool,
    },
    /// Remove a provisioner's marker from a folder or group.
    Unassign {
        /// The provisioner's name, as in `[provisioner.NAME]` of the configuration.
        provisioner: String,
        #[command(flatten)]
        target: MarkerTargetArgs,
    },
    /// List markers, or with --groups the groups a provisioner selects.
    List {
        /// Only this provisioner's markers (required with --groups).
        provisioner: Option<String>,
        /// Resolve the markers and the provisioner's selection rules (select_regex,
        /// only_policy_groups) as a sync does: the groups it would provision, with their effective
        /// member counts.
        #[arg(long, requires = "provisioner")]
        groups: bool,
        /// With --groups: say why each group is selected, and list the groups the markers include
        /// but a selection rule leaves out, with the rule.
        #[arg(long, requires = "groups")]
        explain: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImportFormat {
    Json,
    Csv,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Files to import (JSON documents, or CSV files whose header says what they hold).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Format of every file (default: by extension).
    #[arg(long, value_enum)]
    pub format: Option<ImportFormat>,
    /// The files are the whole truth for this source (`[source.NAME]`): what it owns and the files
    /// lack is removed, under the source's safety rules. Without it, import only adds and updates.
    #[arg(long, value_name = "SOURCE")]
    pub mirror: Option<String>,
    /// With --mirror: show the changes without writing them.
    #[arg(long, requires = "mirror")]
    pub dry_run: bool,
    /// With --mirror: apply exactly the removals a refusal listed under this digest.
    #[arg(long, value_name = "DIGEST", requires = "mirror")]
    pub approve: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum SourceCommand {
    /// Read a source and make the registry an exact mirror of it: diff, check the safety rules,
    /// apply in one transaction (one change-log entry per change), record the run.
    Sync {
        /// The source's name, as in `[source.NAME]`.
        source: String,
        /// Show the changes without writing them.
        #[arg(long)]
        dry_run: bool,
        /// Apply exactly the removals a refusal listed under this digest.
        #[arg(long, value_name = "DIGEST")]
        approve: Option<String>,
    },
    /// The configured sources: kind, what each owns, where it reads.
    List,
    /// The last run of each source: when, its result and counts.
    Status,
}

#[derive(Debug, Args)]
pub struct LoadUsersArgs {
    /// The provisioner whose Duo account is read (its name is the table's config_id).
    pub provisioner: String,
    /// Apply exactly the sync-back removals a refusal listed under this digest (removals over
    /// sync_back_max_removals / sync_back_max_removal_percent, or after an incomplete load).
    #[arg(long, value_name = "DIGEST")]
    pub approve: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportKind {
    /// The Duo users loaded by `duoprov load-users` (or a full sync with load_duo_users = true).
    Users,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The provisioner (the table's config_id).
    pub provisioner: String,
    /// What to report on.
    #[arg(value_enum)]
    pub what: ReportKind,
    /// Only Duo users no registry subject maps to: no subject's Duo username (the provisioner's
    /// username template, by default its login_id) equals theirs, ignoring case.
    #[arg(long)]
    pub not_in_registry: bool,
    /// Only Duo users who are not enrolled.
    #[arg(long)]
    pub not_enrolled: bool,
    /// Only Duo users with this status (active, bypass, disabled, "locked out", "pending deletion").
    #[arg(long, value_name = "STATUS")]
    pub status: Option<String>,
    /// Only Duo users with no login in the last DAYS days (counting from creation for those who
    /// never logged in).
    #[arg(long, value_name = "DAYS")]
    pub stale_login: Option<u32>,
    /// Only Duo users with at least one of this authentication method (push, mobile-otp, sms,
    /// voice, hardware-token, hotp, totp, yubikey, webauthn, u2f); repeatable, all must hold.
    #[arg(long, value_name = "METHOD")]
    pub has: Vec<String>,
    /// Only Duo users known to have none of this method; repeatable.
    #[arg(long, value_name = "METHOD")]
    pub lacks: Vec<String>,
    /// Only Duo users who have one of these methods and no other (e.g. `--only sms,voice`: who
    /// would be locked out when SMS and phone calls are retired).
    #[arg(long, value_name = "METHOD[,METHOD…]")]
    pub only: Vec<String>,
    /// Every column as CSV: Grouper's column names, then the authentication-method counts.
    #[arg(long)]
    pub csv: bool,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The provisioner's name, as in `[provisioner.NAME]` of the configuration.
    pub provisioner: String,
    /// Save the plan, with fingerprints of the states it came from, for `sync --plan`.
    #[arg(short, long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The provisioner's name, as in `[provisioner.NAME]` of the configuration.
    pub provisioner: String,
    /// A full sync (the default).
    #[arg(long, conflicts_with = "incremental")]
    pub full: bool,
    /// Only the objects the registry's change log names.
    #[arg(long)]
    pub incremental: bool,
    /// Plan and check, record the run, change nothing in Duo.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Apply exactly this saved plan; refused if the registry or Duo moved since.
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
    /// Approve exactly the removals and deletions a refusal (or `duoprov plan`) listed, by the
    /// digest it printed; refused again if the list has changed since.
    #[arg(long, value_name = "DIGEST")]
    pub approve: Option<String>,
    /// Removed: approved any list of up to N removals. Refused with a pointer to --approve.
    #[arg(long, value_name = "N", hide = true)]
    pub allow_deletes: Option<String>,
    /// Sync only this registry group now: its attributes and its whole membership (creating the
    /// member users it needs); nothing else is touched and the checkpoint stays.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["incremental", "full", "plan", "subject"])]
    pub group: Option<String>,
    /// Sync only this subject now (SOURCE:ID, id or login): its Duo user and its memberships of
    /// groups already in Duo; nothing else is touched and the checkpoint stays.
    #[arg(long, value_name = "ID", conflicts_with_all = ["incremental", "full", "plan"])]
    pub subject: Option<String>,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The subject: SOURCE:ID, its id, or its login id.
    pub subject: String,
    /// Explain the subject's place in this registry group only (full name).
    #[arg(long, value_name = "NAME")]
    pub group: Option<String>,
    /// The provisioner (optional when only one is configured).
    #[arg(long, value_name = "NAME")]
    pub provisioner: Option<String>,
    /// Also read Duo for the subject and show the exact operations its sync would apply now.
    #[arg(long)]
    pub live: bool,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every argument and option of `cmd` and its subcommands without a description, as
    /// `duoprov sub --arg` paths; and every subcommand without one.
    fn undescribed(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            if arg.is_hide_set() || matches!(arg.get_id().as_str(), "help" | "version") {
                continue;
            }
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                let name = arg.get_long().map(|l| format!("--{l}")).unwrap_or_else(|| format!("<{}>", arg.get_id().as_str().to_uppercase()));
                out.push(format!("{path} {name}"));
            }
        }
        for sub in cmd.get_subcommands() {
            let sub_path = format!("{path} {}", sub.get_name());
            if sub.get_name() != "help" && sub.get_about().is_none() {
                out.push(sub_path.clone());
            }
            undescribed(sub, &sub_path, out);
        }
    }

    #[test]
    fn every_argument_option_and_subcommand_has_a_description() {
        let cmd = Cli::command();
        cmd.clone().debug_assert();
        let mut missing = Vec::new();
        undescribed(&cmd, "duoprov", &mut missing);
        assert!(missing.is_empty(), "without a description in --help:\n{}", missing.join("\n"));
    }
}

#[derive(Debug, Args)]
pub struct SupportBundleArgs {
    /// Provisioners to report on (default: all).
    pub provisioners: Vec<String>,
    /// Where to write the zip (default: duoprov-support-<UTC time>.zip here; never overwritten).
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// A log file to include (its last 8 MiB, redacted); repeat for more, e.g. the daemon's log
    /// with the HTTP traffic log (`journalctl -u duoprov > duoprov.log`).
    #[arg(long = "log", value_name = "FILE")]
    pub logs: Vec<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain: exit 0 with a one-line summary when it is intact, exit 1 naming the
    /// first broken entry and what is wrong with it (edited, missing, reordered).
    Verify,
    /// Show audit entries, oldest first (with --limit, the newest N).
    List(AuditListArgs),
    /// Write audit entries as JSON lines (one object per line) to standard output, for a SIEM.
    Export {
        /// Only entries at or after this time: a duration ago (30m, 6h, 7d) or a UTC time
        /// (2026-11-30T09:00:00Z, 2026-11-30).
        #[arg(long, value_name = "DURATION|TIME")]
        since: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct AuditListArgs {
    /// Only entries at or after this time: a duration ago (30m, 6h, 7d) or a UTC time
    /// (2026-11-30T09:00:00Z, 2026-11-30).
    #[arg(long, value_name = "DURATION|TIME")]
    pub since: Option<String>,
    /// Only entries about this object: a group name, a username, a subject (source:id), a uuid.
    #[arg(long, value_name = "NAME")]
    pub object: Option<String>,
    /// Only entries of this provisioner's syncs (or of this source's runs).
    #[arg(long, value_name = "NAME")]
    pub provisioner: Option<String>,
    /// At most this many entries: the newest.
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
}
