//! The saved-plan format: a plan's JSON (what `duoprov plan --out` writes and `--plan` reads back)
//! and its removal digest (what `--approve` names) are fixed texts. Changing how the planner holds
//! a field change or a match in memory must not change either, or saved plans and approvals made
//! by an earlier duoprov would stop applying.

use duoprov_model::{DuoGroup, DuoSnapshot, DuoUser, GroupLink, Links, SubjectKey, UserLink};
use duoprov_plan::safety;
use duoprov_plan::{build_plan, Adoption, DesiredState, Mapping, MappingConfig, Op, Plan, Policy};

use crate::rules::{group, selection, subject};

fn duo_user(id: &str, username: &str, realname: &str, email: &str, groups: &[&str]) -> DuoUser {
    DuoUser {
        user_id: id.into(),
        username: username.into(),
        realname: realname.into(),
        email: email.into(),
        firstname: String::new(),
        lastname: String::new(),
        status: "active".into(),
        aliases: vec![],
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        created: None,
    }
}

fn owned_group(uuid: &str, id: &str) -> GroupLink {
    GroupLink { pending_name: None, pending_at: None, group_uuid: uuid.into(), duo_group_id: Some(id.into()), created_by_us: true, in_target: true }
}

fn owned_user(id: &str, user_id: &str) -> UserLink {
    UserLink { pending_name: None, pending_at: None, subject: SubjectKey::new("local", id), duo_user_id: Some(user_id.into()), created_by_us: true, in_target: true }
}

/// A plan with every kind of change a saved plan carries: a renamed group with a new
/// description, a user with a new name, email and alias, an adopted user, a membership removal
/// and the deletion of a deselected group and user.
fn plan_of_every_kind() -> Plan {
    let sel = selection(
        vec![subject("kwilso", "Kate Wilson"), subject("mchyzer", "Chris Hyzer")],
        vec![(group("u-test", "app:duo:testGroup", "Test group"), vec!["kwilso", "mchyzer"])],
    );
    let config = MappingConfig { aliases: [Some("{{ subject.id }}-alt".into()), None, None, None], ..Default::default() };
    let mapping = Mapping::compile(&config, "provisioner.duoTest").expect("mapping compiles");
    let desired = DesiredState::build(&sel, &mapping, None);
    let duo = DuoSnapshot {
        groups: vec![
            DuoGroup { group_id: "DGTEST00000000000001".into(), name: "oldName".into(), desc: "old".into(), status: "active".into() },
            DuoGroup { group_id: "DGGONE00000000000001".into(), name: "gone".into(), desc: String::new(), status: "active".into() },
        ],
        users: vec![
            duo_user("DUKWILSO000000000001", "kwilso", "K Wilson", "kate@old.example", &["DGTEST00000000000001", "DGGONE00000000000001"]),
            duo_user("DUMCHYZER00000000001", "mchyzer", "Chris Hyzer", "mchyzer@example.edu", &[]),
            duo_user("DUGONE00000000000001", "gone", "Gone User", "", &["DGTEST00000000000001"]),
        ],
        ..Default::default()
    };
    let links = Links {
        groups: vec![owned_group("u-test", "DGTEST00000000000001"), owned_group("u-gone", "DGGONE00000000000001")],
        users: vec![owned_user("kwilso", "DUKWILSO000000000001"), owned_user("gone", "DUGONE00000000000001")],
        ..Default::default()
    };
    build_plan("duoTest", &desired, &duo, &links, &Policy::default())
}

#[test]
fn a_plan_s_json_and_removal_digest_are_the_saved_format_earlier_versions_wrote() {
    let plan = plan_of_every_kind();
    // The plan has what the texts below must cover.
    assert!(plan.ops.iter().any(|o| matches!(&o.op, Op::UpdateGroup { changes, .. } if changes.len() == 2)), "{}", duoprov_plan::render::text(&plan));
    assert!(plan.ops.iter().any(|o| matches!(&o.op, Op::UpdateUser { changes, .. } if changes.len() == 3)), "{}", duoprov_plan::render::text(&plan));
    assert!(plan.adoptions.iter().any(|a| matches!(a, Adoption::User { username, .. } if username == "mchyzer")), "{}", duoprov_plan::render::text(&plan));
    assert!(plan.ops.iter().any(|o| o.op.is_removal()), "{}", duoprov_plan::render::text(&plan));

    let json = serde_json::to_string_pretty(&plan).expect("a plan serialises");
    assert_eq!(json, SAVED_JSON.trim_end());
    assert_eq!(safety::removal_digest(&plan), SAVED_DIGEST);
    // The plan as people read it names the fields as before.
    let text = duoprov_plan::render::text(&plan);
    for line in [r#"realname: "K Wilson" → "Kate Wilson""#, r#"alias1: "" → "kwilso-alt""#, r#"name: "oldName" → "testGroup""#] {
        assert!(text.contains(line), "{line} in\n{text}");
    }
    // Read back, the saved text is the same plan.
    let read: Plan = serde_json::from_str(SAVED_JSON).expect("the saved plan reads back");
    assert_eq!(read, plan);
}

#[test]
fn a_saved_plan_changing_a_field_duoprov_does_not_set_is_refused_when_read() {
    for (saved, unknown) in [(r#""field": "alias1""#, r#""field": "alias5""#), (r#""field": "desc""#, r#""field": "description""#)] {
        assert!(SAVED_JSON.contains(saved));
        let edited = SAVED_JSON.replace(saved, unknown);
        let e = serde_json::from_str::<Plan>(&edited).expect_err("an unknown field name is not read as some other change");
        assert!(e.to_string().contains("unknown variant"), "{e}");
    }
}

/// Both written by duoprov before field changes and matches were typed.
const SAVED_DIGEST: &str = "ccb5e4979023";
const SAVED_JSON: &str = r#"{
  "provisioner": "duoTest",
  "ops": [
    {
      "op": "update_group",
      "uuid": "u-test",
      "group_id": "DGTEST00000000000001",
      "name": "testGroup",
      "changes": [
        {
          "field": "name",
          "before": "oldName",
          "after": "testGroup"
        },
        {
          "field": "desc",
          "before": "old",
          "after": "Test group"
        }
      ],
      "reason": "registry group app:duo:testGroup changed: name, desc"
    },
    {
      "op": "update_user",
      "source": "local",
      "id": "kwilso",
      "user_id": "DUKWILSO000000000001",
      "username": "kwilso",
      "changes": [
        {
          "field": "realname",
          "before": "K Wilson",
          "after": "Kate Wilson"
        },
        {
          "field": "email",
          "before": "kate@old.example",
          "after": "kwilso@example.edu"
        },
        {
          "field": "alias1",
          "before": "",
          "after": "kwilso-alt"
        }
      ],
      "reason": "subject local:kwilso changed: realname, email, alias1"
    },
    {
      "op": "remove_member",
      "group_id": "DGTEST00000000000001",
      "group_name": "testGroup",
      "user_id": "DUGONE00000000000001",
      "username": "gone",
      "reason": "gone is not an effective member of registry group app:duo:testGroup"
    },
    {
      "op": "add_member",
      "group_uuid": "u-test",
      "source": "local",
      "id": "mchyzer",
      "group": {
        "kind": "existing",
        "group_id": "DGTEST00000000000001",
        "name": "testGroup"
      },
      "user": {
        "kind": "existing",
        "user_id": "DUMCHYZER00000000001",
        "username": "mchyzer"
      },
      "reason": "subject local:mchyzer is an effective member of registry group app:duo:testGroup"
    },
    {
      "op": "delete_group",
      "uuid": "u-gone",
      "group_id": "DGGONE00000000000001",
      "name": "gone",
      "reason": "no longer selected by the registry, and duoprov created it"
    }
  ],
  "adoptions": [
    {
      "kind": "user",
      "source": "local",
      "id": "mchyzer",
      "user_id": "DUMCHYZER00000000001",
      "username": "mchyzer"
    }
  ],
  "errors": [],
  "group_matches": [
    {
      "uuid": "u-test",
      "group_id": "DGTEST00000000000001",
      "created_by_us": true
    }
  ],
  "user_matches": [
    {
      "source": "local",
      "id": "kwilso",
      "user_id": "DUKWILSO000000000001",
      "created_by_us": true
    },
    {
      "source": "local",
      "id": "mchyzer",
      "user_id": "DUMCHYZER00000000001",
      "created_by_us": false
    }
  ],
  "released_groups": [],
  "released_users": [],
  "parked_groups": [],
  "parked_users": [
    {
      "source": "local",
      "id": "gone"
    }
  ],
  "managed_groups": 2,
  "managed_users": 2,
  "group_sizes": [
    [
      "DGTEST00000000000001",
      2
    ]
  ]
}
"#;
