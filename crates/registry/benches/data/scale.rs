//! The registry scale data set, shared by the registry's `scale` bench and the sync engine's
//! `scoped_registry` bench: 100k subjects (`u000000`…, login id the same), 10k groups under
//! folder `bench` (1 000 of them heading chains nested three deep), 1M subject memberships, and
//! a `sub` marker of provisioner `bench` on `bench` (every group selected), as import JSON.

#![allow(dead_code)]

pub const SUBJECTS: usize = 100_000;
pub const GROUPS: usize = 10_000;
pub const MEMBERS_PER_GROUP: usize = 100;
pub const CHAINS: usize = 1_000;

pub fn group_name(i: usize) -> String {
    format!("bench:f{:02}:g{i:05}", i % 100)
}

pub fn document() -> String {
    let mut out = String::with_capacity(80 * 1024 * 1024);
    out.push_str("{\"subjects\":[\n");
    for i in 0..SUBJECTS {
        if i > 0 {
            out.push_str(",\n");
        }
        out.push_str(&format!(
            "{{\"id\":\"u{i:06}\",\"name\":\"User {i}\",\"login_id\":\"u{i:06}\",\"email\":\"u{i:06}@example.edu\",\"first_name\":\"User\",\"last_name\":\"N{i}\"}}"
        ));
    }
    out.push_str("],\n\"groups\":[\n");
    for i in 0..GROUPS {
        if i > 0 {
            out.push_str(",\n");
        }
        out.push_str(&format!("{{\"name\":\"{}\",\"description\":\"Group {i}\"}}", group_name(i)));
    }
    out.push_str("],\n\"memberships\":[\n");
    let mut first = true;
    for i in 0..GROUPS {
        for k in 0..MEMBERS_PER_GROUP {
            if !first {
                out.push_str(",\n");
            }
            first = false;
            out.push_str(&format!("{{\"group\":\"{}\",\"subject\":\"u{:06}\"}}", group_name(i), (i * MEMBERS_PER_GROUP + k) % SUBJECTS));
        }
    }
    // Chains three deep: g(i) ⊃ g(i+1000) ⊃ g(i+2000) ⊃ g(i+3000).
    for i in 0..CHAINS {
        for depth in 0..3 {
            out.push_str(&format!(
                ",\n{{\"group\":\"{}\",\"member_group\":\"{}\"}}",
                group_name(i + depth * CHAINS),
                group_name(i + (depth + 1) * CHAINS)
            ));
        }
    }
    out.push_str("],\n\"markers\":[{\"provisioner\":\"bench\",\"folder\":\"bench\",\"scope\":\"sub\"}]}\n");
    out
}

