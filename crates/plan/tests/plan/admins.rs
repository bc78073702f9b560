//! The admin-role planner's rules, without I/O: one role per subject by priority, matching by
//! e-mail whatever its case, ownership (only recorded administrators are changed; a hand-made
//! Owner is never demoted), holds that never turn into removals, and the safety rules and
//! removal digest over administrator removals.

use std::collections::{BTreeMap, HashMap};

use duoprov_model::{DuoAdmin, ManagedAdmin, Subject, SubjectKey};
use duoprov_plan::safety::{self, Approval};
use duoprov_plan::{plan_admins, AdminInputs, AdminOp, AdminPlan, AdminRemoveMode, AdminRoles, EmailAttribute, Plan, Policy, DUO_ADMIN_ROLES};

fn config(groups: &[(&str, &str)]) -> AdminRoles {
    AdminRoles {
        groups: groups.iter().map(|(g, r)| ((*g).to_owned(), (*r).to_owned())).collect(),
        priority: DUO_ADMIN_ROLES.iter().map(|r| (*r).to_owned()).collect(),
        email_attribute: EmailAttribute::Email,
        send_email: false,
        remove_mode: AdminRemoveMode::Disable,
    }
}

fn subject(id: &str, email: Option<&str>) -> Subject {
    Subject { source: "ldap".into(), id: id.into(), name: Some(format!("Person {id}")), login_id: Some(id.into()), email: email.map(Into::into), first_name: None, last_name: None, description: None }
}

fn duo(id: &str, email: &str, role: &str, status: &str) -> DuoAdmin {
    DuoAdmin { admin_id: id.into(), name: email.into(), email: email.into(), role: role.into(), status: status.into() }
}

fn managed(id: &str, email: &str, subject: &str, role: &str, created_by_us: bool) -> ManagedAdmin {
    ManagedAdmin { admin_id: id.into(), email: email.into(), subject: SubjectKey::new("ldap", subject), role: role.into(), created_by_us, disabled_by_us: false }
}

fn plan(config: &AdminRoles, members: &[(&str, Vec<Subject>)], duo: &[DuoAdmin], managed: &[ManagedAdmin]) -> AdminPlan {
    let members: BTreeMap<String, Option<Vec<Subject>>> = members.iter().map(|(g, s)| ((*g).to_owned(), Some(s.clone()))).collect();
    plan_admins(config, &AdminInputs { members: &members, duo, managed, foreign: &HashMap::new() })
}

#[test]
fn a_subject_in_two_mapped_groups_gets_the_role_of_higher_priority_and_a_custom_priority_is_followed() {
    let mut c = config(&[("g:help", "Help Desk"), ("g:admins", "Administrator")]);
    let bob = subject("bob", Some("bob@example.com"));
    let p = plan(&c, &[("g:help", vec![bob.clone()]), ("g:admins", vec![bob.clone()])], &[], &[]);
    assert!(matches!(&p.ops[..], [AdminOp::CreateAdmin { role, email, .. }] if role == "Administrator" && email == "bob@example.com"), "{:?}", p.ops);
    c.priority = vec!["Help Desk".into(), "Administrator".into()];
    let p = plan(&c, &[("g:help", vec![bob.clone()]), ("g:admins", vec![bob])], &[], &[]);
    assert!(matches!(&p.ops[..], [AdminOp::CreateAdmin { role, .. }] if role == "Help Desk"), "{:?}", p.ops);
}

#[test]
fn an_existing_administrator_is_matched_by_email_whatever_its_case_and_adopted_before_its_role_changes() {
    let c = config(&[("g:help", "Help Desk")]);
    let p = plan(&c, &[("g:help", vec![subject("bob", Some("Bob@Example.COM"))])], &[duo("DE1", "bob@example.com", "Read-only", "Active")], &[]);
    assert_eq!(p.adopt.iter().map(|m| (m.admin_id.as_str(), m.created_by_us)).collect::<Vec<_>>(), [("DE1", false)]);
    assert!(matches!(&p.ops[..], [AdminOp::UpdateAdmin { admin_id, role_before, role, enable: false, .. }] if admin_id == "DE1" && role_before == "Read-only" && role == "Help Desk"), "{:?}", p.ops);
}

#[test]
fn a_hand_made_owner_is_never_demoted_and_is_released_not_disabled_when_its_subject_leaves() {
    let c = config(&[("g:help", "Help Desk")]);
    let boss = duo("DE1", "boss@example.com", "Owner", "Active");
    let p = plan(&c, &[("g:help", vec![subject("boss", Some("boss@example.com"))])], std::slice::from_ref(&boss), &[]);
    assert!(p.ops.is_empty(), "{:?}", p.ops);
    assert!(p.held.iter().any(|h| h.message.contains("never demotes")), "{:?}", p.held);
    // Adopted, then the subject leaves: released, never disabled or deleted (in any mode).
    for mode in [AdminRemoveMode::Disable, AdminRemoveMode::Delete] {
        let c = AdminRoles { remove_mode: mode, ..c.clone() };
        let p = plan(&c, &[("g:help", vec![])], std::slice::from_ref(&boss), &[managed("DE1", "boss@example.com", "boss", "Owner", false)]);
        assert!(p.ops.is_empty(), "{:?}", p.ops);
        assert_eq!(p.release, ["DE1"]);
    }
    // An Owner duoprov created is lowered to Read-only as it is disabled.
    let p = plan(&c, &[("g:help", vec![])], &[boss], &[managed("DE1", "boss@example.com", "boss", "Owner", true)]);
    assert!(matches!(&p.ops[..], [AdminOp::DisableAdmin { demote_to: Some(to), .. }] if to == "Read-only"), "{:?}", p.ops);
}

#[test]
fn an_administrator_no_record_names_is_never_touched_and_a_gone_one_is_forgotten() {
    let c = config(&[("g:help", "Help Desk")]);
    let p = plan(&c, &[("g:help", vec![])], &[duo("DE9", "stranger@example.com", "Administrator", "Active")], &[managed("DE1", "gone@example.com", "gone", "Help Desk", true)]);
    assert!(p.ops.is_empty() && p.adopt.is_empty(), "{p:?}");
    assert_eq!(p.release, ["DE1"]);
}

#[test]
fn holds_never_become_removals_a_missing_group_a_shared_address_or_no_address() {
    let c = config(&[("g:help", "Help Desk"), ("g:gone", "Owner")]);
    let a = duo("DE1", "a@example.com", "Help Desk", "Active");
    let rec = [managed("DE1", "a@example.com", "a", "Help Desk", true)];
    // The mapped group g:gone is not in the registry: no administrator is disabled.
    let members: BTreeMap<String, Option<Vec<Subject>>> = BTreeMap::from([("g:help".to_owned(), Some(vec![])), ("g:gone".to_owned(), None)]);
    let p = plan_admins(&c, &AdminInputs { members: &members, duo: std::slice::from_ref(&a), managed: &rec, foreign: &HashMap::new() });
    assert!(p.ops.is_empty(), "{:?}", p.ops);
    assert!(p.held.iter().any(|h| h.code == "DNE" && h.object == "group g:gone"), "{:?}", p.held);
    // Two subjects with a's address: held (MAT), and a stays as it is.
    let c = config(&[("g:help", "Help Desk")]);
    let p = plan(&c, &[("g:help", vec![subject("a", Some("a@example.com")), subject("b", Some("A@example.com")), subject("c", None)])], std::slice::from_ref(&a), &rec);
    assert!(p.ops.is_empty(), "{:?}", p.ops);
    let codes: Vec<&str> = p.held.iter().map(|h| h.code.as_str()).collect();
    assert_eq!(codes, ["MAT", "REQ"], "{:?}", p.held);
    assert!(p.held[1].message.contains("no email"), "{:?}", p.held);
}

#[test]
fn an_administrator_another_provisioner_manages_is_held_not_adopted() {
    let c = config(&[("g:help", "Help Desk")]);
    let members = BTreeMap::from([("g:help".to_owned(), Some(vec![subject("a", Some("a@example.com"))]))]);
    let foreign = HashMap::from([("DE1".to_owned(), "other".to_owned())]);
    let p = plan_admins(&c, &AdminInputs { members: &members, duo: &[duo("DE1", "a@example.com", "Read-only", "Active")], managed: &[], foreign: &foreign });
    assert!(p.ops.is_empty() && p.adopt.is_empty(), "{p:?}");
    assert!(p.held[0].message.contains("provisioner other"), "{:?}", p.held);
}

#[test]
fn administrator_removals_count_against_their_threshold_and_the_digest_covers_them_only_when_present() {
    let c = config(&[("g:help", "Help Desk")]);
    let ids = ["a", "b", "c", "d"];
    let duo_admins: Vec<DuoAdmin> = ids.iter().enumerate().map(|(i, id)| duo(&format!("DE{i}"), &format!("{id}@example.com"), "Help Desk", "Active")).collect();
    let recs: Vec<ManagedAdmin> = ids.iter().enumerate().map(|(i, id)| managed(&format!("DE{i}"), &format!("{id}@example.com"), id, "Help Desk", true)).collect();
    let keep = subject("d", Some("d@example.com"));
    let admins = plan(&c, &[("g:help", vec![keep])], &duo_admins, &recs);
    assert_eq!(admins.removals().count(), 3);
    let empty = Plan { provisioner: "p".into(), ..Default::default() };
    let with = Plan { admins: admins.clone(), ..empty.clone() };
    assert_ne!(safety::removal_digest(&with), safety::removal_digest(&empty));
    // A plan whose administrator part holds no removal keeps the digest it always had.
    let no_removals = Plan { admins: AdminPlan { managed: 4, wanted: 4, ..Default::default() }, ..empty.clone() };
    assert_eq!(safety::removal_digest(&no_removals), safety::removal_digest(&empty));
    let policy = Policy::default();
    assert!(safety::check(&with, &policy, 1, &Approval::default()).is_ok(), "three is max_admin_removals");
    let strict = Policy { thresholds: duoprov_plan::Thresholds { max_admin_removals: 2, ..Default::default() }, ..Policy::default() };
    let refusal = safety::check(&with, &strict, 1, &Approval::default()).unwrap_err();
    assert!(refusal.removals.contains(&"disable administrator a@example.com (Help Desk)".to_owned()), "{refusal:?}");
    assert!(safety::check(&with, &strict, 1, &Approval::exactly(&with)).is_ok());
    // Every wanted administrator gone while duoprov manages some: only an approval applies it.
    let all_gone = plan(&c, &[("g:help", vec![])], &duo_admins, &recs);
    let all = Plan { admins: all_gone, ..empty };
    let refusal = safety::check(&all, &Policy { thresholds: duoprov_plan::Thresholds { max_admin_removals: 100, ..Default::default() }, ..Policy::default() }, 1, &Approval::default()).unwrap_err();
    assert!(!refusal.thresholds_help && refusal.reasons[0].contains("no subject of the mapped admin-role groups"), "{refusal:?}");
}
