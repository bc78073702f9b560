//! The planner's rules, case by case: the seed scenario, matching, ownership, errors, safety.

use duoprov_model::{DuoGroup, DuoSnapshot, DuoUser, Group, GroupName, ProvisionableGroup, ProvisionerSelection, Subject};
use duoprov_plan::safety::{self, Approval};
use duoprov_plan::{build_plan, DesiredState, ErrorCode, Mapping, MappingConfig, Op, Policy};

use crate::sim::Sim;

pub fn subject(id: &str, name: &str) -> Subject {
    Subject {
        source: "local".into(),
        id: id.into(),
        name: Some(name.into()),
        login_id: Some(id.into()),
        email: Some(format!("{id}@example.edu")),
        first_name: None,
        last_name: None,
        description: None,
    }
}

pub fn group(uuid: &str, name: &str, desc: &str) -> Group {
    Group { uuid: uuid.into(), name: GroupName::parse(name).unwrap(), display_name: None, description: Some(desc.into()) }
}

/// A selection from subjects (sorted here) and groups with member ids.
pub fn selection(mut subjects: Vec<Subject>, groups: Vec<(Group, Vec<&str>)>) -> ProvisionerSelection {
    subjects.sort_by_key(|a| a.key());
    let groups = groups
        .into_iter()
        .map(|(g, members)| {
            let mut idx: Vec<u32> = members.iter().map(|m| subjects.iter().position(|s| s.id == *m).unwrap() as u32).collect();
            idx.sort();
            ProvisionableGroup { group: g, members: idx }
        })
        .collect();
    ProvisionerSelection { provisioner: "duoTest".into(), groups, subjects }
}

pub fn desired(sel: &ProvisionerSelection) -> DesiredState {
    let mapping = Mapping::compile(&MappingConfig::default(), "provisioner.duoTest").unwrap();
    DesiredState::build(sel, &mapping, None)
}

fn seed(members: Vec<&str>, desc: &str, login: &str) -> ProvisionerSelection {
    let mut chris = subject("mchyzer", "Chris Hyzer");
    chris.login_id = Some(login.into());
    let subjects = vec![chris, subject("kwilso", "Kate Wilson")];
    selection(subjects, vec![(group("u-test", "app:duo:testGroup", desc), members)])
}

#[test]
fn seed_scenario_step_by_step_converges() {
    let policy = Policy::default();
    let mut sim = Sim::new(DuoSnapshot::default());
    let steps = [
        (seed(vec!["mchyzer", "kwilso"], "Test group", "mchyzer"), 5),
        (seed(vec!["mchyzer"], "Test group", "mchyzer"), 1),
        (seed(vec!["mchyzer"], "New description", "mchyzer"), 1),
        (seed(vec!["mchyzer"], "New description", "chyzer2"), 1),
        (selection(vec![], vec![]), 1),
    ];
    for (i, (sel, expected_ops)) in steps.iter().enumerate() {
        let d = desired(sel);
        let plan = build_plan("duoTest", &d, &sim.duo, &sim.links, &policy);
        assert_eq!(plan.ops.len(), *expected_ops, "step {i}: {}", duoprov_plan::render::text(&plan));
        if i == 4 {
            assert!(matches!(plan.ops[0].op, Op::DeleteGroup { .. }), "the group duoprov created is deleted");
            // An emptied registry is refused by the safety check unless approved.
            let refusal = safety::check(&plan, &policy, 0, &Approval::default()).unwrap_err();
            assert!(refusal.reasons[0].contains("selects no group"), "{refusal:?}");
            // Only an approval (or a fixed registry) lifts this one: the message says so, and
            // does not send the reader to the thresholds.
            let message = refusal.message("duoTest");
            assert!(!refusal.thresholds_help && message.contains("Raising thresholds does not lift this refusal"), "{message}");
            assert!(!message.contains("raise the thresholds"), "{message}");
            assert!(safety::check(&plan, &policy, 0, &Approval { digest: Some(refusal.digest.clone()), saved_plan: false }).is_ok());
        }
        sim.apply(&plan);
        let again = build_plan("duoTest", &desired(sel), &sim.duo, &sim.links, &policy);
        assert!(again.ops.is_empty(), "step {i}: second plan not empty:\n{}", duoprov_plan::render::text(&again));
        match i {
            0 => {
                assert_eq!(sim.duo.groups.len(), 1);
                assert_eq!(sim.duo.groups[0].name, "testGroup");
                assert_eq!(sim.duo.users.len(), 2);
                let chris = sim.duo.users.iter().find(|u| u.username == "mchyzer").unwrap();
                assert_eq!((chris.realname.as_str(), chris.email.as_str()), ("Chris Hyzer", "mchyzer@example.edu"));
                assert!(sim.duo.users.iter().all(|u| u.groups.len() == 1));
            }
            1 => {
                assert_eq!(sim.duo.users.len(), 2, "the user stays under the default policy");
                assert_eq!(sim.duo.users.iter().filter(|u| !u.groups.is_empty()).count(), 1);
            }
            2 => assert_eq!(sim.duo.groups[0].desc, "New description"),
            3 => assert!(sim.duo.users.iter().any(|u| u.username == "chyzer2")),
            _ => assert!(sim.duo.groups.is_empty()),
        }
    }
}

#[test]
fn adoption_is_shown_and_never_counts_as_ownership() {
    let existing = DuoSnapshot {
        groups: vec![DuoGroup { group_id: "DGEXISTING0000000001".into(), name: "testGroup".into(), desc: "theirs".into(), status: "active".into() }],
        users: vec![DuoUser {
            user_id: "DUEXISTING0000000001".into(),
            username: "MCHYZER".into(),
            realname: "Someone Else".into(),
            email: String::new(),
            firstname: String::new(),
            lastname: String::new(),
            status: "active".into(),
            aliases: vec![],
            groups: vec![],
            created: None,
        }],
        // A probe found this Duo comparing usernames case-insensitively: "MCHYZER" is "mchyzer".
        usernames: duoprov_model::UsernameMatch::CaseInsensitive,
    };
    let sel = seed(vec!["mchyzer"], "Test group", "mchyzer");
    let policy = Policy::default();
    let plan = build_plan("duoTest", &desired(&sel), &existing, &Default::default(), &policy);
    assert_eq!(plan.adoptions.len(), 2, "{}", duoprov_plan::render::text(&plan));
    assert!(plan.group_matches.iter().all(|m| !m.created_by_us));
    assert!(plan.user_matches.iter().all(|m| !m.created_by_us));
    assert!(plan.ops.iter().all(|o| !matches!(o.op, Op::UpdateGroup { .. } | Op::UpdateUser { .. })), "adopted objects are not modified");
    assert_eq!(plan.ops.len(), 1, "only the membership is added");
    let mut sim = Sim::new(existing.clone());
    sim.apply(&plan);
    // Deselecting: an adopted group is released, not deleted.
    let plan = build_plan("duoTest", &desired(&selection(vec![], vec![])), &sim.duo, &sim.links, &policy);
    assert!(plan.ops.iter().all(|o| !matches!(o.op, Op::DeleteGroup { .. })));
    assert_eq!(plan.released_groups, vec!["u-test".to_string()]);
}

#[test]
fn two_candidates_are_an_error_not_a_guess() {
    let mk = |id: &str, name: &str| DuoUser {
        user_id: id.into(),
        username: name.into(),
        realname: String::new(),
        email: String::new(),
        firstname: String::new(),
        lastname: String::new(),
        status: "active".into(),
        aliases: vec![],
        groups: vec![],
        created: None,
    };
    let duo = DuoSnapshot {
        users: vec![mk("DUA0000000000000001", "jdoe"), mk("DUA0000000000000002", "JDoe")],
        groups: vec![
            DuoGroup { group_id: "DG1".into(), name: "staff".into(), desc: String::new(), status: "active".into() },
            DuoGroup { group_id: "DG2".into(), name: "staff".into(), desc: String::new(), status: "active".into() },
        ],
        ..Default::default()
    };
    let sel = selection(vec![subject("jdoe", "J Doe")], vec![(group("u-staff", "org:staff", ""), vec!["jdoe"])]);
    let plan = build_plan("duoTest", &desired(&sel), &duo, &Default::default(), &Policy::default());
    let codes: Vec<ErrorCode> = plan.errors.iter().map(|e| e.code).collect();
    assert_eq!(codes, vec![ErrorCode::Mat, ErrorCode::Mat], "{:?}", plan.errors);
    assert!(plan.ops.is_empty(), "nothing is done for objects in error");
}

#[test]
fn bad_values_hold_the_object_with_the_right_code() {
    let mut nologin = subject("nologin", "No Login");
    nologin.login_id = None;
    let mut long = subject("long", "Long");
    long.login_id = Some("x".repeat(300));
    let sel = selection(
        vec![nologin, long, subject("ok", "Fine")],
        vec![(group("u-g", "org:g", ""), vec!["nologin", "long", "ok"])],
    );
    let d = desired(&sel);
    let codes: Vec<(String, ErrorCode)> = d.errors.iter().map(|e| (e.object.to_string(), e.code)).collect();
    assert!(codes.contains(&("subject local:nologin".into(), ErrorCode::Req)), "{codes:?}");
    assert!(codes.contains(&("subject local:long".into(), ErrorCode::Len)), "{codes:?}");
    let plan = build_plan("duoTest", &d, &DuoSnapshot::default(), &Default::default(), &Policy::default());
    let creates = plan.ops.iter().filter(|o| matches!(o.op, Op::CreateUser { .. })).count();
    assert_eq!(creates, 1);
}

#[test]
fn without_create_users_unknown_users_are_dne() {
    let sel = seed(vec!["mchyzer"], "d", "mchyzer");
    let policy = Policy { create_users: false, ..Policy::default() };
    let plan = build_plan("duoTest", &desired(&sel), &DuoSnapshot::default(), &Default::default(), &policy);
    assert_eq!(plan.errors.len(), 1);
    assert_eq!(plan.errors[0].code, ErrorCode::Dne);
    assert!(plan.ops.iter().all(|o| !matches!(o.op, Op::CreateUser { .. } | Op::AddMember { .. })));
}

#[test]
fn match_only_groups_are_filled_but_never_created_renamed_redescribed_or_deleted() {
    use duoprov_model::DuoGroup;
    // Everything else as permissive as it gets: only create_groups = false holds groups back.
    let policy = Policy {
        create_groups: false,
        update_adopted: true,
        group_delete: duoprov_plan::DeletePolicy::NotInSource,
        ..Policy::default()
    };
    let subjects = vec![subject("mchyzer", "Chris Hyzer"), subject("kwilso", "Kate Wilson")];
    let sel = selection(
        subjects.clone(),
        vec![(group("u-test", "app:duo:testGroup", "ours"), vec!["mchyzer", "kwilso"]), (group("u-new", "app:duo:newGroup", "d"), vec!["kwilso"])],
    );
    let hand_made = DuoGroup { group_id: "DGHANDMADE0000000001".into(), name: "testGroup".into(), desc: "hand made".into(), status: "active".into() };
    let mut sim = Sim::new(DuoSnapshot { groups: vec![hand_made.clone()], ..Default::default() });
    let plan = build_plan("duoTest", &desired(&sel), &sim.duo, &sim.links, &policy);
    let dne: Vec<_> = plan.errors.iter().filter(|e| e.code == ErrorCode::Dne).collect();
    assert_eq!(dne.len(), 1, "{:?}", plan.errors);
    assert!(dne[0].message.contains("\"newGroup\"") && dne[0].message.contains("create_groups = false"), "{}", dne[0].message);
    assert!(!plan.ops.iter().any(|o| matches!(o.op, Op::CreateGroup { .. } | Op::UpdateGroup { .. })), "{:#?}", plan.ops);
    // The hand-made group is filled: both users, created, join it.
    let adds = plan.ops.iter().filter(|o| matches!(&o.op, Op::AddMember { group_uuid, .. } if &**group_uuid == "u-test")).count();
    assert_eq!(adds, 2, "{:#?}", plan.ops);
    sim.apply(&plan);
    assert_eq!(sim.duo.groups, vec![hand_made.clone()], "name and description untouched");
    // Unselected, it stays in Duo whatever the group delete policy says.
    let sel = selection(subjects, vec![(group("u-new", "app:duo:newGroup", "d"), vec!["kwilso"])]);
    let plan = build_plan("duoTest", &desired(&sel), &sim.duo, &sim.links, &policy);
    assert!(!plan.ops.iter().any(|o| matches!(o.op, Op::DeleteGroup { .. })), "{:#?}", plan.ops);
    // The same data with groups managed: created, re-described and, unselected, deleted.
    let managed = Policy { create_groups: true, ..policy };
    let plan = build_plan("duoTest", &desired(&sel), &sim.duo, &sim.links, &managed);
    assert!(plan.ops.iter().any(|o| matches!(o.op, Op::CreateGroup { .. })) && plan.ops.iter().any(|o| matches!(o.op, Op::DeleteGroup { .. })), "{:#?}", plan.ops);
}

#[test]
fn deletions_above_thresholds_are_refused_with_the_list_and_approved_only_by_its_digest() {
    let policy = Policy::default();
    let subjects: Vec<_> = (0..20).map(|i| subject(&format!("u{i:02}"), "U")).collect();
    let ids: Vec<String> = subjects.iter().map(|s| s.id.clone()).collect();
    let all: Vec<&str> = ids.iter().map(String::as_str).collect();
    let sel = selection(subjects.clone(), vec![(group("u-g", "org:g", ""), all.clone())]);
    let mut sim = Sim::new(DuoSnapshot::default());
    sim.apply(&build_plan("duoTest", &desired(&sel), &sim.duo, &sim.links, &policy));
    // Keep 5 of 20: 15 removals from one group, 75 % of it.
    let sel = selection(subjects, vec![(group("u-g", "org:g", ""), all[..5].to_vec())]);
    let plan = build_plan("duoTest", &desired(&sel), &sim.duo, &sim.links, &policy);
    assert_eq!(plan.ops.len(), 15);
    let refusal = safety::check(&plan, &policy, 1, &Approval::default()).unwrap_err();
    let message = refusal.message("duoTest");
    assert!(message.contains("15 of 20 members of group g"), "{message}");
    assert!(refusal.thresholds_help && message.contains("raise the thresholds in [provisioner.duoTest.thresholds]"), "the real section: {message}");
    let want: Vec<String> = (5..20).map(|i| format!("remove u{i:02} from group g")).collect();
    assert_eq!(refusal.removals, want, "every removal, sorted, by name");
    assert!(message.contains(&format!("duoprov sync duoTest --approve {}", refusal.digest)), "{message}");
    assert_eq!(refusal.digest.len(), 12);
    assert_eq!(refusal.digest, safety::removal_digest(&plan));
    let approve = |d: &str| Approval { digest: Some(d.to_owned()), saved_plan: false };
    assert!(safety::check(&plan, &policy, 1, &approve(&refusal.digest)).is_ok());
    assert!(safety::check(&plan, &policy, 1, &approve("000000000000")).is_err());

    // One removal fewer is another list: the old digest no longer approves it.
    let sel = selection((0..20).map(|i| subject(&format!("u{i:02}"), "U")).collect(), vec![(group("u-g", "org:g", ""), all[..6].to_vec())]);
    let fewer = build_plan("duoTest", &desired(&sel), &sim.duo, &sim.links, &policy);
    assert_eq!(fewer.ops.len(), 14);
    let again = safety::check(&fewer, &policy, 1, &approve(&refusal.digest)).unwrap_err();
    assert_ne!(again.digest, refusal.digest);
    assert!(again.reasons[0].contains("does not match this plan's removals"), "{again:?}");
}

#[test]
fn a_mismatched_approval_refuses_even_a_plan_within_the_thresholds() {
    let policy = Policy::default();
    let subjects: Vec<_> = (0..4).map(|i| subject(&format!("u{i:02}"), "U")).collect();
    let ids: Vec<String> = subjects.iter().map(|s| s.id.clone()).collect();
    let all: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut sim = Sim::new(DuoSnapshot::default());
    sim.apply(&build_plan("duoTest", &desired(&selection(subjects.clone(), vec![(group("u-g", "org:g", ""), all.clone())])), &sim.duo, &sim.links, &policy));
    let plan = build_plan("duoTest", &desired(&selection(subjects, vec![(group("u-g", "org:g", ""), all[..3].to_vec())])), &sim.duo, &sim.links, &policy);
    assert_eq!(plan.ops.len(), 1);
    assert!(safety::check(&plan, &policy, 1, &Approval::default()).is_ok(), "one removal of four is within the thresholds");
    let wrong = Approval { digest: Some("0123456789ab".into()), saved_plan: false };
    let refusal = safety::check(&plan, &policy, 1, &wrong).unwrap_err();
    assert_eq!(refusal.removals, vec!["remove u03 from group g".to_owned()]);
    assert!(!refusal.thresholds_help && refusal.message("duoTest").contains("Raising thresholds does not lift"), "{refusal:?}");
    assert!(safety::check(&plan, &policy, 1, &Approval::exactly(&plan)).is_ok());
}

#[test]
fn identical_inputs_give_identical_plans() {
    let sel = seed(vec!["mchyzer", "kwilso"], "d", "mchyzer");
    let a = build_plan("duoTest", &desired(&sel), &DuoSnapshot::default(), &Default::default(), &Policy::default());
    let b = build_plan("duoTest", &desired(&sel), &DuoSnapshot::default(), &Default::default(), &Policy::default());
    assert_eq!(serde_json::to_string(&a).unwrap(), serde_json::to_string(&b).unwrap());
}

#[test]
fn a_recreated_registry_group_takes_over_the_duo_group_and_the_old_link_is_forgotten() {
    use duoprov_model::{GroupLink, Links};
    // The registry group was deleted and re-created: a new uuid, the same name.
    let sel = selection(vec![subject("mchyzer", "Chris Hyzer")], vec![(group("u-new", "app:duo:testGroup", "Test group"), vec!["mchyzer"])]);
    let duo = DuoSnapshot {
        groups: vec![DuoGroup { group_id: "DGOLD000000000000001".into(), name: "testGroup".into(), desc: "Test group".into(), status: "active".into() }],
        users: vec![],
        ..Default::default()
    };
    let links = Links {
        groups: vec![GroupLink { pending_name: None, pending_at: None, group_uuid: "u-old".into(), duo_group_id: Some("DGOLD000000000000001".into()), created_by_us: true, in_target: true }],
        users: vec![],
        ..Default::default()
    };
    let plan = build_plan("duoTest", &desired(&sel), &duo, &links, &Policy::default());
    assert!(!plan.ops.iter().any(|o| matches!(o.op, Op::DeleteGroup { .. } | Op::CreateGroup { .. })), "{:?}", plan.ops);
    let m = plan.group_matches.iter().find(|m| m.uuid == "u-new").expect("the new group is matched");
    assert!(m.created_by_us, "ownership moves with the link");
    assert_eq!(plan.released_groups, vec!["u-old".to_owned()], "the old link must be forgotten, or the next run deletes the group");
}

#[test]
fn a_new_user_in_150_selected_groups_gets_100_adds_and_50_held_with_inv() {
    let groups: Vec<(Group, Vec<&str>)> =
        (0..150).map(|i| (group(&format!("u-{i:03}"), &format!("app:duo:g{i:03}"), "a group"), vec!["newbie"])).collect();
    let sel = selection(vec![subject("newbie", "New Bie")], groups);
    let plan = build_plan("duoTest", &desired(&sel), &DuoSnapshot::default(), &Default::default(), &Policy::default());
    assert_eq!(plan.ops.iter().filter(|o| matches!(o.op, Op::CreateUser { .. })).count(), 1);
    let adds: Vec<&str> = plan
        .ops
        .iter()
        .filter_map(|o| match &o.op {
            Op::AddMember { group_uuid, .. } => Some(&**group_uuid),
            _ => None,
        })
        .collect();
    assert_eq!(adds.len(), 100, "a new user is added to at most 100 groups");
    // The first 100 selected groups, in the registry's order.
    assert_eq!(adds.first(), Some(&"u-000"));
    assert_eq!(adds.last(), Some(&"u-099"));
    let held: Vec<_> = plan.errors.iter().filter(|e| e.code == ErrorCode::Inv).collect();
    assert_eq!(held.len(), 50, "{:#?}", plan.errors);
    assert!(held.iter().all(|e| e.message.contains("newbie") && e.message.contains("100 groups")), "{:#?}", held);
    // Messages name the group as the registry does, not by its uuid.
    let shown = held[0].object.to_string();
    assert!(shown.starts_with("membership of local:newbie in group app:duo:g1") && !shown.contains("u-1"), "{shown}");
    // Applied, the plan leaves the user at Duo's limit, and the next plan holds the same 50.
    let mut sim = Sim::new(DuoSnapshot::default());
    sim.apply(&plan);
    let again = build_plan("duoTest", &desired(&sel), &sim.duo, &sim.links, &Policy::default());
    assert!(again.ops.is_empty(), "{:#?}", again.ops);
    assert_eq!(again.errors.iter().filter(|e| e.code == ErrorCode::Inv).count(), 50);
}

#[test]
fn a_user_at_100_groups_moves_between_groups_whatever_their_order_in_the_selection() {
    // Duo: the user is in g001…g100. Registry: in g000…g099. g000 comes first in the selection,
    // so its addition is planned before the removal from g100 is seen, group by group.
    let ids: Vec<String> = (0..101).map(|i| format!("DG{i:018}")).collect();
    let duo = DuoSnapshot {
        groups: (0..101).map(|i| DuoGroup { group_id: ids[i].clone(), name: format!("g{i:03}"), desc: "a group".into(), status: "active".into() }).collect(),
        users: vec![DuoUser {
            user_id: "DUMOVER0000000000001".into(),
            username: "mover".into(),
            realname: "Mover".into(),
            email: "mover@example.edu".into(),
            firstname: String::new(),
            lastname: String::new(),
            status: "active".into(),
            aliases: vec![],
            groups: ids[1..].to_vec(),
            created: None,
        }],
        ..Default::default()
    };
    let groups: Vec<(Group, Vec<&str>)> =
        (0..101).map(|i| (group(&format!("u-{i:03}"), &format!("app:duo:g{i:03}"), "a group"), if i < 100 { vec!["mover"] } else { vec![] })).collect();
    let sel = selection(vec![subject("mover", "Mover")], groups);
    let plan = build_plan("duoTest", &desired(&sel), &duo, &Default::default(), &Policy::default());
    assert_eq!(plan.errors, vec![], "the move was held: {:#?}", plan.errors);
    let membership_ops: Vec<String> = plan
        .ops
        .iter()
        .filter_map(|o| match &o.op {
            Op::RemoveMember { group_name, .. } => Some(format!("remove {group_name}")),
            Op::AddMember { group, .. } => Some(format!("add {}", group.name())),
            _ => None,
        })
        .collect();
    assert_eq!(membership_ops, vec!["remove g100", "add g000"]);
}

// ------------------------------------------------------------------ ownership of intended creates

fn duo_user(id: &str, username: &str, realname: &str, created: Option<i64>) -> DuoUser {
    DuoUser {
        user_id: id.into(),
        username: username.into(),
        realname: realname.into(),
        email: String::new(),
        firstname: String::new(),
        lastname: String::new(),
        status: "active".into(),
        aliases: vec![],
        groups: vec![],
        created,
    }
}

fn duo_group(id: &str, name: &str, desc: &str) -> DuoGroup {
    DuoGroup { group_id: id.into(), name: name.into(), desc: desc.into(), status: "active".into() }
}

fn group_intent(uuid: &str, name: &str, at: Option<i64>) -> duoprov_model::GroupLink {
    duoprov_model::GroupLink { pending_name: Some(name.into()), pending_at: at.map(duoprov_model::EpochMillis::from_secs), group_uuid: uuid.into(), duo_group_id: None, created_by_us: true, in_target: false }
}

fn user_intent(id: &str, username: &str, at: Option<i64>) -> duoprov_model::UserLink {
    duoprov_model::UserLink {
        pending_name: Some(username.into()),
        pending_at: at.map(duoprov_model::EpochMillis::from_secs),
        subject: duoprov_model::SubjectKey::new("local", id),
        duo_user_id: None,
        created_by_us: true,
        in_target: false,
    }
}

#[test]
fn a_pending_group_intent_claims_the_group_of_exactly_the_intended_name() {
    let sel = seed(vec![], "Test group", "mchyzer");
    let duo = DuoSnapshot { groups: vec![duo_group("DGMINE00000000000001", "testGroup", "Test group")], users: vec![], ..Default::default() };
    let links = duoprov_model::Links { groups: vec![group_intent("u-test", "testGroup", Some(1_000))], ..Default::default() };
    let plan = build_plan("duoTest", &desired(&sel), &duo, &links, &Policy::default());
    assert!(plan.adoptions.is_empty(), "{}", duoprov_plan::render::text(&plan));
    assert!(plan.group_matches.iter().any(|m| m.uuid == "u-test" && m.created_by_us), "{:?}", plan.group_matches);
}

#[test]
fn a_renamed_group_with_a_pending_intent_adopts_the_hand_made_group_of_the_new_name() {
    // The intent was for "oldName"; the registry group now maps to "testGroup", which someone
    // made by hand: it is adopted, never claimed, and its description is left alone.
    let sel = seed(vec![], "Test group", "mchyzer");
    let duo = DuoSnapshot { groups: vec![duo_group("DGHAND00000000000001", "testGroup", "made by hand")], users: vec![], ..Default::default() };
    let links = duoprov_model::Links { groups: vec![group_intent("u-test", "oldName", Some(1_000))], ..Default::default() };
    let plan = build_plan("duoTest", &desired(&sel), &duo, &links, &Policy::default());
    assert_eq!(plan.adoptions.len(), 1, "{}", duoprov_plan::render::text(&plan));
    assert!(plan.group_matches.iter().all(|m| !m.created_by_us), "{:?}", plan.group_matches);
    assert!(plan.ops.iter().all(|o| !matches!(o.op, Op::UpdateGroup { .. })), "{}", duoprov_plan::render::text(&plan));
}

#[test]
fn an_intent_without_a_recorded_time_claims_nothing() {
    // Written by a version that kept intents after refused creates: the group may be hand-made.
    let sel = seed(vec![], "Test group", "mchyzer");
    let duo = DuoSnapshot { groups: vec![duo_group("DGHAND00000000000001", "testGroup", "made by hand")], users: vec![], ..Default::default() };
    let links = duoprov_model::Links { groups: vec![group_intent("u-test", "testGroup", None)], ..Default::default() };
    let plan = build_plan("duoTest", &desired(&sel), &duo, &links, &Policy::default());
    assert_eq!(plan.adoptions.len(), 1, "{}", duoprov_plan::render::text(&plan));
    assert!(plan.group_matches.iter().all(|m| !m.created_by_us));
}

#[test]
fn a_pending_user_intent_claims_only_a_user_created_at_or_after_the_intent() {
    let sel = seed(vec!["mchyzer"], "Test group", "mchyzer");
    let links = duoprov_model::Links { users: vec![user_intent("mchyzer", "mchyzer", Some(1_000))], ..Default::default() };
    for (created, claimed) in [(Some(999), false), (None, false), (Some(1_000), true), (Some(5_000), true)] {
        // Usernames compare case-insensitively, as a probe of this Duo found.
        let duo = DuoSnapshot { users: vec![duo_user("DUX00000000000000001", "MChyzer", "Someone Else", created)], groups: vec![], usernames: duoprov_model::UsernameMatch::CaseInsensitive };
        let plan = build_plan("duoTest", &desired(&sel), &duo, &links, &Policy::default());
        let m = plan.user_matches.iter().find(|m| m.id == "mchyzer").expect("matched");
        assert_eq!(m.created_by_us, claimed, "created {created:?}: {}", duoprov_plan::render::text(&plan));
        assert_eq!(plan.adoptions.len(), usize::from(!claimed), "created {created:?}");
        let rewrites = plan.ops.iter().any(|o| matches!(o.op, Op::UpdateUser { .. }));
        assert_eq!(rewrites, claimed, "only duoprov's own user is rewritten (created {created:?})");
    }
}

#[test]
fn an_intent_recorded_within_a_second_claims_the_user_duo_reports_created_in_that_second() {
    let sel = seed(vec!["mchyzer"], "Test group", "mchyzer");
    // The intent is recorded in milliseconds, 1 000.750 s; Duo reports whole seconds.
    let mut intent = user_intent("mchyzer", "mchyzer", None);
    intent.pending_at = Some(duoprov_model::EpochMillis(1_000_750));
    let links = duoprov_model::Links { users: vec![intent], ..Default::default() };
    for (created, claimed) in [(Some(999), false), (Some(1_000), true), (Some(1_001), true)] {
        let duo = DuoSnapshot { users: vec![duo_user("DUX00000000000000001", "mchyzer", "Someone Else", created)], groups: vec![], ..Default::default() };
        let plan = build_plan("duoTest", &desired(&sel), &duo, &links, &Policy::default());
        let m = plan.user_matches.iter().find(|m| m.id == "mchyzer").expect("matched");
        assert_eq!(m.created_by_us, claimed, "created {created:?}: {}", duoprov_plan::render::text(&plan));
    }
}

#[test]
fn a_deselected_pending_intent_deletes_only_exactly_the_intended_object() {
    let sel = selection(vec![], vec![]);
    let policy = Policy { group_delete: duoprov_plan::DeletePolicy::NotInSource, user_delete: duoprov_plan::DeletePolicy::CreatedByUs, ..Policy::default() };
    let links = duoprov_model::Links {
        groups: vec![group_intent("u-staff", "staff", Some(1_000)), group_intent("u-old", "old", None)],
        users: vec![user_intent("jdoe", "jdoe", Some(1_000)), user_intent("asmith", "asmith", Some(1_000))],
        ..Default::default()
    };
    let duo = DuoSnapshot {
        groups: vec![duo_group("DG000000000000000001", "Staff", "by hand"), duo_group("DG000000000000000002", "old", "by hand")],
        users: vec![duo_user("DU000000000000000001", "JDoe", "by hand", Some(999)), duo_user("DU000000000000000002", "asmith", "ours", Some(1_001))],
        ..Default::default()
    };
    let plan = build_plan("duoTest", &desired(&sel), &duo, &links, &policy);
    let deletes: Vec<&Op> = plan.ops.iter().map(|o| &o.op).collect();
    assert_eq!(deletes.len(), 1, "{}", duoprov_plan::render::text(&plan));
    assert!(matches!(deletes[0], Op::DeleteUser { user_id, .. } if user_id == "DU000000000000000002"), "{deletes:?}");
    let mut released = plan.released_groups.clone();
    released.sort();
    assert_eq!(released, vec!["u-old".to_owned(), "u-staff".to_owned()]);
    assert_eq!(plan.released_users, vec![duoprov_model::SubjectKey::new("local", "jdoe")]);
}

// ------------------------------------------------------------------ two provisioners, one Duo account

fn linked_by_prod_b() -> duoprov_model::ForeignLinks {
    let theirs = duoprov_model::Links {
        groups: vec![duoprov_model::GroupLink {
            pending_name: None,
            pending_at: None,
            group_uuid: "b-test".into(),
            duo_group_id: Some("DGB00000000000000001".into()),
            created_by_us: true,
            in_target: true,
        }],
        users: vec![duoprov_model::UserLink {
            pending_name: None,
            pending_at: None,
            subject: duoprov_model::SubjectKey::new("local", "mchyzer"),
            duo_user_id: Some("DUB00000000000000001".into()),
            created_by_us: true,
            in_target: true,
        }],
        ..Default::default()
    };
    let mut f = duoprov_model::ForeignLinks::default();
    f.add("prodB", &theirs);
    f
}

#[test]
fn a_group_another_provisioner_links_is_held_mat_never_adopted_or_emptied() {
    let sel = seed(vec!["mchyzer"], "Test group", "mchyzer");
    let mut user = duo_user("DUB00000000000000001", "mchyzer", "B's name", Some(1));
    let mut other = duo_user("DUB00000000000000002", "kwilso", "B's member", Some(1));
    user.groups = vec!["DGB00000000000000001".into()];
    other.groups = vec!["DGB00000000000000001".into()];
    let duo = DuoSnapshot { groups: vec![duo_group("DGB00000000000000001", "testGroup", "B's")], users: vec![user, other], ..Default::default() };
    let links = duoprov_model::Links { foreign: linked_by_prod_b(), ..Default::default() };
    let policy = Policy { update_adopted: true, user_delete: duoprov_plan::DeletePolicy::NotInSource, ..Policy::default() };
    let plan = build_plan("prodA", &desired(&sel), &duo, &links, &policy);
    let text = duoprov_plan::render::text(&plan);
    let mat: Vec<&str> = plan.errors.iter().filter(|e| e.code == ErrorCode::Mat).map(|e| e.message.as_str()).collect();
    assert_eq!(mat.len(), 1, "{text}");
    assert!(mat[0].contains("Duo group \"testGroup\" is managed by provisioner prodB"), "{}", mat[0]);
    assert!(plan.group_matches.is_empty(), "{text}");
    assert!(!plan.ops.iter().any(|o| matches!(o.op, Op::RemoveMember { .. } | Op::CreateGroup { .. } | Op::DeleteGroup { .. } | Op::UpdateGroup { .. })), "{text}");
    // The user B links is shared: matched, not owned, not rewritten even with update_adopted.
    let m = plan.user_matches.iter().find(|m| m.id == "mchyzer").expect("the shared user is matched");
    assert!(!m.created_by_us);
    assert!(!plan.ops.iter().any(|o| matches!(o.op, Op::UpdateUser { .. })), "{text}");
    // Deselected later, the shared user is released, never deleted.
    let mut sim = Sim::new(duo.clone());
    sim.links.foreign = linked_by_prod_b();
    sim.apply(&plan);
    let plan = build_plan("prodA", &desired(&selection(vec![], vec![])), &sim.duo, &sim.links, &policy);
    assert!(!plan.ops.iter().any(|o| matches!(o.op, Op::DeleteUser { .. } | Op::DeleteGroup { .. })), "{}", duoprov_plan::render::text(&plan));
}

// ------------------------------------------------------------------ usernames and aliases

fn owned_link(id: &str, user_id: &str) -> duoprov_model::UserLink {
    duoprov_model::UserLink {
        pending_name: None,
        pending_at: None,
        subject: duoprov_model::SubjectKey::new("local", id),
        duo_user_id: Some(user_id.into()),
        created_by_us: true,
        in_target: true,
    }
}

/// A selection of one subject `jsmith` with the given login id and name, in group `staff`.
fn jsmith(login: &str) -> (ProvisionerSelection, DuoSnapshot) {
    let mut s = subject("jsmith", "J Smith");
    s.login_id = Some(login.into());
    s.email = None;
    let sel = selection(vec![s], vec![(group("u-staff", "org:staff", ""), vec!["jsmith"])]);
    let mut du = duo_user("DUJSMITH000000000001", "jsmith", "J Smith", None);
    du.groups = vec!["DG1".into()];
    let duo = DuoSnapshot { users: vec![du], groups: vec![duo_group("DG1", "staff", "")], ..Default::default() };
    (sel, duo)
}

#[test]
fn a_mixed_case_login_id_against_duos_lowercased_username_plans_no_update() {
    let (sel, duo) = jsmith("JSmith");
    let links = duoprov_model::Links {
        users: vec![owned_link("jsmith", "DUJSMITH000000000001")],
        groups: vec![duoprov_model::GroupLink { pending_name: None, pending_at: None, group_uuid: "u-staff".into(), duo_group_id: Some("DG1".into()), created_by_us: true, in_target: true }],
        ..Default::default()
    };
    let plan = build_plan("duoTest", &desired(&sel), &duo, &links, &Policy::default());
    assert!(plan.ops.is_empty(), "a difference of case only is no change: {}", duoprov_plan::render::text(&plan));
    assert!(plan.errors.is_empty(), "{:?}", plan.errors);

    // A different name is a rename.
    let (sel, duo) = jsmith("JSmith2");
    let plan = build_plan("duoTest", &desired(&sel), &duo, &links, &Policy::default());
    let updates: Vec<_> = plan
        .ops
        .iter()
        .filter_map(|o| match &o.op {
            Op::UpdateUser { changes, .. } => Some(changes.iter().map(|c| (c.field.as_str(), c.before.as_str(), c.after.as_str())).collect::<Vec<_>>()),
            _ => None,
        })
        .collect();
    assert_eq!(updates, vec![vec![("username", "jsmith", "JSmith2")]]);
}

#[test]
fn on_a_duo_that_compares_usernames_exactly_a_difference_of_case_is_another_user_or_a_rename() {
    // Not linked: the Duo user "jsmith" is not taken for the registry's "JSmith"; a create is planned.
    let (sel, mut duo) = jsmith("JSmith");
    duo.usernames = duoprov_model::UsernameMatch::Exact;
    let plan = build_plan("duoTest", &desired(&sel), &duo, &Default::default(), &Policy::default());
    let creates: Vec<&str> = plan.ops.iter().filter_map(|o| match &o.op { Op::CreateUser { username, .. } => Some(username.as_str()), _ => None }).collect();
    assert_eq!(creates, vec!["JSmith"], "{}", duoprov_plan::render::text(&plan));
    // Case-insensitively (the default) the same snapshot matches: no create.
    duo.usernames = duoprov_model::UsernameMatch::CaseInsensitive;
    let plan = build_plan("duoTest", &desired(&sel), &duo, &Default::default(), &Policy::default());
    assert!(!plan.ops.iter().any(|o| matches!(o.op, Op::CreateUser { .. })), "{}", duoprov_plan::render::text(&plan));

    // Linked and owned: a difference of case is a rename Duo keeps.
    let (sel, mut duo) = jsmith("JSmith");
    duo.usernames = duoprov_model::UsernameMatch::Exact;
    let links = duoprov_model::Links {
        users: vec![owned_link("jsmith", "DUJSMITH000000000001")],
        groups: vec![duoprov_model::GroupLink { pending_name: None, pending_at: None, group_uuid: "u-staff".into(), duo_group_id: Some("DG1".into()), created_by_us: true, in_target: true }],
        ..Default::default()
    };
    let plan = build_plan("duoTest", &desired(&sel), &duo, &links, &Policy::default());
    let updates: Vec<_> = plan
        .ops
        .iter()
        .filter_map(|o| match &o.op {
            Op::UpdateUser { changes, .. } => Some(changes.iter().map(|c| (c.field.as_str(), c.before.as_str(), c.after.as_str())).collect::<Vec<_>>()),
            _ => None,
        })
        .collect();
    assert_eq!(updates, vec![vec![("username", "jsmith", "JSmith")]]);
}

#[test]
fn a_username_that_is_another_duo_users_alias_is_held_mat_naming_that_user() {
    let sel = selection(vec![subject("jdoe", "J Doe")], vec![(group("u-staff", "org:staff", ""), vec!["jdoe"])]);
    let mut jane = duo_user("DUJANE00000000000001", "jane.doe", "Jane Doe", None);
    jane.aliases = vec!["JDoe".into()];
    let duo = DuoSnapshot { users: vec![jane], groups: vec![], ..Default::default() };
    let plan = build_plan("duoTest", &desired(&sel), &duo, &Default::default(), &Policy::default());
    assert!(!plan.ops.iter().any(|o| matches!(o.op, Op::CreateUser { .. } | Op::AddMember { .. })), "no create Duo would refuse: {}", duoprov_plan::render::text(&plan));
    assert_eq!(plan.errors.len(), 1, "{:?}", plan.errors);
    assert_eq!(plan.errors[0].code, ErrorCode::Mat);
    assert!(plan.errors[0].message.starts_with("username jdoe is an alias of Duo user jane.doe;"), "{}", plan.errors[0].message);
    assert!(plan.user_matches.is_empty() && plan.adoptions.is_empty(), "the alias's owner is not adopted");
}

#[test]
fn an_unmanaged_field_is_neither_sent_on_create_nor_compared() {
    let mapping = Mapping::compile(&MappingConfig { unmanaged: ["email".to_owned(), "realname".to_owned()].into(), ..Default::default() }, "p").unwrap();
    let (sel, duo) = jsmith("jsmith");
    let state = DesiredState::build(&sel, &mapping, None);
    let links = duoprov_model::Links {
        users: vec![owned_link("jsmith", "DUJSMITH000000000001")],
        groups: vec![duoprov_model::GroupLink { pending_name: None, pending_at: None, group_uuid: "u-staff".into(), duo_group_id: Some("DG1".into()), created_by_us: true, in_target: true }],
        ..Default::default()
    };
    let mut duo = duo;
    duo.users[0].email = "set.in.duo@example.edu".into();
    duo.users[0].realname = "Edited In Duo".into();
    let plan = build_plan("duoTest", &state, &duo, &links, &Policy::default());
    assert!(plan.ops.is_empty(), "Duo's values of unmanaged fields are kept: {}", duoprov_plan::render::text(&plan));
    // The default mapping manages them: the same state is an update clearing e-mail.
    let plan = build_plan("duoTest", &desired(&sel), &duo, &links, &Policy::default());
    assert!(plan.ops.iter().any(|o| matches!(&o.op, Op::UpdateUser { changes, .. } if changes.iter().any(|c| c.field == duoprov_plan::UserField::Email && c.after.is_empty()))), "{}", duoprov_plan::render::text(&plan));
    // Created: nothing of an unmanaged field is sent.
    let plan = build_plan("duoTest", &state, &DuoSnapshot::default(), &Default::default(), &Policy::default());
    let create = plan.ops.iter().find_map(|o| match &o.op {
        Op::CreateUser { email, realname, .. } => Some((email.clone(), realname.clone())),
        _ => None,
    });
    assert_eq!(create, Some((String::new(), String::new())));
}

#[test]
fn without_a_probe_an_unlinked_duo_user_differing_only_in_case_is_held_naming_the_probe() {
    // Registry "JSmith", a hand-made Duo "jsmith": the same user if Duo compares case-insensitively,
    // someone else if it compares exactly. Neither adopted nor doubled by a create.
    let (sel, duo) = jsmith("JSmith");
    assert_eq!(duo.usernames, duoprov_model::UsernameMatch::Unprobed);
    let plan = build_plan("duoTest", &desired(&sel), &duo, &Default::default(), &Policy::default());
    assert!(plan.ops.is_empty(), "no create, rename, delete or membership removal: {}", duoprov_plan::render::text(&plan));
    assert!(plan.user_matches.is_empty(), "{}", duoprov_plan::render::text(&plan));
    let held: Vec<&duoprov_plan::error::ObjectError> = plan.errors.iter().filter(|e| e.code == ErrorCode::Mat).collect();
    assert_eq!(held.len(), 1, "{:?}", plan.errors);
    assert!(held[0].message.contains("`duoprov doctor duoTest --probe`") && held[0].message.contains("\"jsmith\""), "{}", held[0].message);
    // The same spelling is adopted without a probe.
    let (sel, duo) = jsmith("jsmith");
    let plan = build_plan("duoTest", &desired(&sel), &duo, &Default::default(), &Policy::default());
    assert!(plan.errors.is_empty(), "{:?}", plan.errors);
    assert_eq!(plan.user_matches.len(), 1, "{}", duoprov_plan::render::text(&plan));
}
