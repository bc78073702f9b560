//! Applies a plan to an in-memory Duo state and link set, as the sync engine does against Duo.

use duoprov_model::{DuoGroup, DuoSnapshot, DuoUser, GroupLink, Links, SubjectKey, UserLink};
use duoprov_plan::{GroupRef, Op, Plan, UserRef};

pub struct Sim {
    pub duo: DuoSnapshot,
    pub links: Links,
    next_id: u32,
}

impl Sim {
    pub fn new(duo: DuoSnapshot) -> Self {
        Sim { duo, links: Links::default(), next_id: 0 }
    }

    fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}SIM{:016}", self.next_id)
    }

    fn link_group(&mut self, uuid: &str, id: &str, created: bool) {
        self.links.groups.retain(|l| l.group_uuid != uuid);
        self.links.groups.push(GroupLink { pending_name: None, pending_at: None, group_uuid: uuid.into(), duo_group_id: Some(id.into()), created_by_us: created, in_target: true });
    }

    fn link_user(&mut self, key: SubjectKey, id: &str, created: bool) {
        self.links.users.retain(|l| l.subject != key);
        self.links.users.push(UserLink { pending_name: None, pending_at: None, subject: key, duo_user_id: Some(id.into()), created_by_us: created, in_target: true });
    }

    /// Applies every operation; returns how many it performed.
    pub fn apply(&mut self, plan: &Plan) -> usize {
        for m in &plan.group_matches {
            self.link_group(&m.uuid, &m.group_id, m.created_by_us);
        }
        for m in &plan.user_matches {
            self.link_user(SubjectKey::new(&m.source, &m.id), &m.user_id, m.created_by_us);
        }
        for uuid in &plan.released_groups {
            self.links.groups.retain(|l| &l.group_uuid != uuid);
        }
        for key in &plan.released_users {
            self.links.users.retain(|l| &l.subject != key);
        }
        for key in &plan.disabled_cleared {
            self.links.disabled_by_us.remove(key);
        }
        for p in &plan.ops {
            match &p.op {
                Op::CreateGroup { uuid, name, desc } => {
                    let id = self.id("DG");
                    self.duo.groups.push(DuoGroup { group_id: id.clone(), name: name.clone(), desc: desc.clone(), status: "active".into() });
                    self.link_group(uuid, &id, true);
                }
                Op::CreateUser { source, id, username, realname, email, firstname, lastname, aliases } => {
                    let uid = self.id("DU");
                    self.duo.users.push(DuoUser {
                        user_id: uid.clone(),
                        username: username.clone(),
                        realname: realname.clone(),
                        email: email.clone(),
                        firstname: firstname.clone(),
                        lastname: lastname.clone(),
                        status: "active".into(),
                        aliases: aliases.iter().map(|(_, a)| a.clone()).collect(),
                        groups: vec![],
                        created: None,
                    });
                    self.link_user(SubjectKey::new(source, id), &uid, true);
                }
                Op::UpdateGroup { group_id, changes, .. } => {
                    let g = self.duo.groups.iter_mut().find(|g| &g.group_id == group_id).expect("group to update exists");
                    for c in changes {
                        match c.field.as_str() {
                            "name" => g.name = c.after.clone(),
                            "desc" => g.desc = c.after.clone(),
                            other => panic!("unknown group field {other}"),
                        }
                    }
                }
                Op::EnableUser { user_id, source, id, .. } => {
                    let u = self.duo.users.iter_mut().find(|u| &u.user_id == user_id).expect("user to re-enable exists");
                    u.status = "active".into();
                    self.links.disabled_by_us.remove(&SubjectKey::new(source, id));
                }
                Op::RestoreUser { user_id, .. } => {
                    let u = self.duo.users.iter_mut().find(|u| &u.user_id == user_id).expect("user to restore exists");
                    u.status = "active".into();
                }
                Op::UpdateUser { user_id, changes, .. } => {
                    let u = self.duo.users.iter_mut().find(|u| &u.user_id == user_id).expect("user to update exists");
                    for c in changes {
                        let v = c.after.clone();
                        match c.field.as_str() {
                            "username" => u.username = v,
                            "realname" => u.realname = v,
                            "email" => u.email = v,
                            "firstname" => u.firstname = v,
                            "lastname" => u.lastname = v,
                            alias if alias.starts_with("alias") => u.aliases.push(v),
                            other => panic!("unknown user field {other}"),
                        }
                    }
                }
                Op::RemoveMember { group_id, user_id, .. } => {
                    let u = self.duo.users.iter_mut().find(|u| &u.user_id == user_id).expect("member exists");
                    u.groups.retain(|g| g != group_id);
                }
                Op::AddMember { group, user, .. } => {
                    let gid = match group {
                        GroupRef::Existing { group_id, .. } => group_id.to_string(),
                        GroupRef::New { uuid, .. } => self.links.groups.iter().find(|l| *l.group_uuid == **uuid).and_then(|l| l.duo_group_id.clone()).expect("created group"),
                    };
                    let uid = match user {
                        UserRef::Existing { user_id, .. } => user_id.to_string(),
                        UserRef::New { source, id, .. } => {
                            let key = SubjectKey::new(&**source, &**id);
                            self.links.users.iter().find(|l| l.subject == key).and_then(|l| l.duo_user_id.clone()).expect("created user")
                        }
                    };
                    let u = self.duo.users.iter_mut().find(|u| u.user_id == uid).expect("user exists");
                    assert!(!u.groups.contains(&gid), "plan adds an existing membership");
                    assert!(u.groups.len() < 100, "plan breaks Duo's 100-group limit");
                    u.groups.push(gid);
                }
                Op::DeleteGroup { group_id, uuid, .. } => {
                    self.duo.groups.retain(|g| &g.group_id != group_id);
                    for u in &mut self.duo.users {
                        u.groups.retain(|g| g != group_id);
                    }
                    self.links.groups.retain(|l| &l.group_uuid != uuid);
                }
                Op::DeleteUser { user_id, source, id, mode: duoprov_plan::UserDeleteMode::Disable, .. } => {
                    let u = self.duo.users.iter_mut().find(|u| &u.user_id == user_id).expect("user to disable exists");
                    u.status = "disabled".into();
                    self.links.disabled_by_us.insert(SubjectKey::new(source, id));
                }
                Op::DeleteUser { user_id, source, id, .. } => {
                    self.duo.users.retain(|u| &u.user_id != user_id);
                    let key = SubjectKey::new(source, id);
                    self.links.users.retain(|l| l.subject != key);
                }
            }
        }
        plan.ops.len()
    }
}
