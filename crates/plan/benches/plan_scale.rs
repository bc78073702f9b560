//! Plan scale benchmark: 100k subjects, 10k groups, 1M memberships, generated in memory. Times
//! translation (desired state) and planning for an initial sync (empty Duo) and a steady state
//! (Duo already equal, links known, so the plan is empty), and reports peak memory.
//!
//! `cargo bench -p duoprov-plan --bench plan_scale`

use std::time::Instant;

use duoprov_model::{
    DuoGroup, DuoSnapshot, DuoUser, Group, GroupLink, GroupName, Links, ProvisionableGroup, ProvisionerSelection, Subject, UserLink,
};
use duoprov_plan::{build_plan, DesiredState, Mapping, MappingConfig, Policy};

const SUBJECTS: usize = 100_000;
const GROUPS: usize = 10_000;
const MEMBERS: usize = 100;

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse::<f64>().ok()))
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn main() {
    let subjects: Vec<Subject> = (0..SUBJECTS)
        .map(|i| Subject {
            source: "local".into(),
            id: format!("u{i:06}"),
            name: Some(format!("User {i}")),
            login_id: Some(format!("u{i:06}")),
            email: Some(format!("u{i:06}@example.edu")),
            first_name: Some("User".into()),
            last_name: Some(format!("N{i}")),
            description: None,
        })
        .collect();
    let groups: Vec<ProvisionableGroup> = (0..GROUPS)
        .map(|g| {
            let mut members: Vec<u32> = (0..MEMBERS).map(|k| ((g * MEMBERS + k) % SUBJECTS) as u32).collect();
            members.sort_unstable();
            ProvisionableGroup {
                group: Group {
                    uuid: format!("uuid-{g:05}"),
                    name: GroupName::parse(&format!("bench:f{:02}:g{g:05}", g % 100)).unwrap(),
                    display_name: None,
                    description: Some(format!("Group {g}")),
                },
                members,
            }
        })
        .collect();
    let selection = ProvisionerSelection { provisioner: "bench".into(), groups, subjects };
    let mapping = Mapping::compile(&MappingConfig::default(), "provisioner.bench").unwrap();
    let policy = Policy::default();

    let start = Instant::now();
    let desired = DesiredState::build(&selection, &mapping, None);
    let translate = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let initial = build_plan("bench", &desired, &DuoSnapshot::default(), &Links::default(), &policy);
    let initial_secs = start.elapsed().as_secs_f64();
    println!("initial sync: translate {translate:.3} s, plan {initial_secs:.3} s, {} operations", initial.ops.len());
    drop(initial);

    // Steady state: Duo already holds exactly the desired state, and the links are known.
    let mut duo = DuoSnapshot::default();
    let mut links = Links::default();
    for (g, d) in desired.groups.iter().enumerate() {
        let id = format!("DG{g:018}");
        duo.groups.push(DuoGroup { group_id: id.clone(), name: d.fields.name.clone(), desc: d.fields.desc.clone(), status: "active".into() });
        links.groups.push(GroupLink { pending_name: None, pending_at: None, group_uuid: d.uuid.clone(), duo_group_id: Some(id), created_by_us: true, in_target: true });
    }
    let mut user_groups: Vec<Vec<String>> = vec![Vec::new(); desired.users.len()];
    for (g, d) in desired.groups.iter().enumerate() {
        for m in &d.members {
            user_groups[*m as usize].push(format!("DG{g:018}"));
        }
    }
    for (i, (u, groups)) in desired.users.iter().zip(user_groups).enumerate() {
        let id = format!("DU{i:018}");
        let f = &u.fields;
        duo.users.push(DuoUser {
            user_id: id.clone(),
            username: f.username.clone(),
            realname: f.realname.clone(),
            email: f.email.clone(),
            firstname: f.firstname.clone(),
            lastname: f.lastname.clone(),
            status: "active".into(),
            aliases: vec![],
            groups,
            created: None,
        });
        links.users.push(UserLink { pending_name: None, pending_at: None, subject: u.key.clone(), duo_user_id: Some(id), created_by_us: true, in_target: true });
    }
    let start = Instant::now();
    let desired = DesiredState::build(&selection, &mapping, None);
    let translate = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let steady = build_plan("bench", &desired, &duo, &links, &policy);
    let steady_secs = start.elapsed().as_secs_f64();
    assert!(steady.ops.is_empty(), "steady state plans nothing");
    println!(
        "steady state: translate {translate:.3} s, plan {steady_secs:.3} s, total {:.3} s, {} operations; peak RSS {:.0} MiB (inputs included)",
        translate + steady_secs,
        steady.ops.len(),
        peak_rss_mib()
    );
}
