//! A seeded, realistically shaped data set for the sync benches, and the minimum Duo calls and
//! rate-bound time a sync of it needs, computed from the data set and Duo's documented page
//! sizes, bulk sizes and per-class limits alone (never from what duoprov sends), for duoprov's
//! pattern and for Grouper's.
//!
//! Shape: a few groups of 20 000+ members (at 100 000 users), most groups of 5–50, the rest in
//! between; users in 0–120 groups (some above Duo's limit of 100, some in none); a fifth of the
//! registry's users already in Duo to be adopted (some with aliases, half enrolled), and Duo
//! users the registry does not know. Shared by the benches through `#[path]`.

#![allow(dead_code)]

use std::collections::HashSet;

/// Duo's documented maximum page sizes and bulk sizes.
pub const USERS_PAGE: u64 = 300;
pub const GROUPS_PAGE: u64 = 500;
/// Grouper pages groups 100 at a time (`retrieveDuoGroups`, `limit=100`).
pub const GROUPER_GROUPS_PAGE: u64 = 100;
pub const BULK_CREATE_USERS: u64 = 100;
pub const BULK_OPERATIONS: u64 = 50;
/// Groups a Duo user may be in.
pub const MAX_GROUPS_PER_USER: u64 = 100;

/// Duo's per-class limits, per minute: Duo staff's figures (writes, single reads, page reads,
/// unpaged lookups) and the secondary source's 50/min for `bulk` and `bulk_create` (one class).
pub const DUO_WRITES_PER_MIN: f64 = 300.0;
pub const DUO_PAGE_READS_PER_MIN: f64 = 200.0;
pub const DUO_BULK_PER_MIN: f64 = 50.0;

/// Sizes of a data set.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    pub users: usize,
    pub groups: usize,
    pub memberships: usize,
}

impl Size {
    pub const FULL: Size = Size { users: 100_000, groups: 10_000, memberships: 1_000_000 };
    pub const SMALL: Size = Size { users: 2_000, groups: 200, memberships: 20_000 };
}

/// SplitMix64: small, seeded, good enough for shaping data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }
    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Log-uniform in `lo..=hi`.
    pub fn log_range(&mut self, lo: usize, hi: usize) -> usize {
        let (l, h) = ((lo as f64).ln(), (hi as f64 + 1.0).ln());
        ((l + self.unit() * (h - l)).exp() as usize).clamp(lo, hi)
    }
}

/// A generated data set.
pub struct DataSet {
    pub size: Size,
    /// Members of each group (user indexes), largest groups first.
    pub members: Vec<Vec<u32>>,
    /// Groups each user is in.
    pub groups_of_user: Vec<u16>,
    /// Registry users already in Duo (adopted when in a group).
    pub preexisting: Vec<usize>,
    /// Duo users the registry does not know.
    pub unknown_duo_users: usize,
}

pub fn login(i: usize) -> String {
    format!("user{i:06}")
}

pub fn group_name(g: usize) -> String {
    format!("g{g:05}")
}

impl DataSet {
    pub fn generate(size: Size, seed: u64) -> DataSet {
        let mut rng = Rng::new(seed);
        let Size { users, groups, memberships } = size;

        // Group sizes: a few big groups (20 % of the users and up), 85 % small (5–50), the
        // rest log-uniform in between, scaled so that the sizes sum to `memberships`.
        let big = (groups / 2000).max(1);
        let small = groups * 85 / 100;
        let medium = groups - big - small;
        let mut sizes: Vec<usize> = (0..big).map(|k| users / 5 + k * users / 50).collect();
        sizes.extend((0..small).map(|_| rng.range(5, 50)));
        let fixed: usize = sizes.iter().sum();
        let rest = memberships.saturating_sub(fixed);
        let weights: Vec<f64> = (0..medium).map(|_| rng.log_range(51, 5000) as f64).collect();
        let total_w: f64 = weights.iter().sum();
        let cap = (users / 5).saturating_sub(1).max(51);
        let mut med: Vec<usize> = weights.iter().map(|w| ((w / total_w * rest as f64) as usize).clamp(51, cap)).collect();
        let mut diff = rest as i64 - med.iter().sum::<usize>() as i64;
        // Bounded: when the caps cannot absorb the difference, the total comes out short.
        let mut budget = 50 * (diff.unsigned_abs() as usize + med.len());
        while diff != 0 && !med.is_empty() && budget > 0 {
            budget -= 1;
            let i = rng.range(0, med.len() - 1);
            if diff > 0 && med[i] < cap {
                med[i] += 1;
                diff -= 1;
            } else if diff < 0 && med[i] > 51 {
                med[i] -= 1;
                diff += 1;
            }
        }
        sizes.extend(med);
        sizes.sort_unstable_by(|a, b| b.cmp(a));
        let total: usize = sizes.iter().sum();

        // Groups per user: 5 % in none, 0.5 % in 101–120, the rest log-uniform in 1–100, then
        // nudged one at a time until the degrees sum to the group sizes.
        let mut degree: Vec<usize> = Vec::with_capacity(users);
        for _ in 0..users {
            let r = rng.unit();
            degree.push(if r < 0.05 {
                0
            } else if r < 0.055 {
                rng.range(101, 120)
            } else {
                rng.log_range(1, 100)
            });
        }
        let adjustable = |d: usize| (1..=100).contains(&d);
        let mut diff = total as i64 - degree.iter().sum::<usize>() as i64;
        // Scale the ordinary users first (cheap), then fix the last difference one by one.
        let ordinary: usize = degree.iter().copied().filter(|&d| adjustable(d)).sum();
        let factor = (ordinary as f64 + diff as f64) / ordinary as f64;
        for d in degree.iter_mut().filter(|d| adjustable(**d)) {
            *d = ((*d as f64 * factor).round() as usize).clamp(1, 100);
        }
        diff = total as i64 - degree.iter().sum::<usize>() as i64;
        let mut budget = 50 * (diff.unsigned_abs() as usize + users);
        while diff != 0 && budget > 0 {
            budget -= 1;
            let i = rng.range(0, users - 1);
            let d = degree[i];
            if diff > 0 && (1..100).contains(&d) {
                degree[i] += 1;
                diff -= 1;
            } else if diff < 0 && (2..=100).contains(&d) {
                degree[i] -= 1;
                diff += 1;
            }
        }

        // Stub matching: every user appears `degree` times in a shuffled list; each group takes
        // the next stubs, pushing a user it already has further down the list.
        let mut stubs: Vec<u32> = Vec::with_capacity(total);
        for (u, &d) in degree.iter().enumerate() {
            stubs.extend(std::iter::repeat_n(u as u32, d));
        }
        for i in (1..stubs.len()).rev() {
            let j = rng.range(0, i);
            stubs.swap(i, j);
        }
        let mut members = Vec::with_capacity(groups);
        let mut pos = 0;
        for &s in &sizes {
            let mut seen: HashSet<u32> = HashSet::with_capacity(s);
            let mut list = Vec::with_capacity(s);
            let mut tries = 0;
            while list.len() < s && pos < stubs.len() {
                let u = stubs[pos];
                if seen.insert(u) {
                    list.push(u);
                    pos += 1;
                    tries = 0;
                } else if tries < 20 && pos + 1 < stubs.len() {
                    let j = rng.range(pos + 1, stubs.len() - 1);
                    stubs.swap(pos, j);
                    tries += 1;
                } else {
                    pos += 1; // dropped
                    tries = 0;
                }
            }
            members.push(list);
        }
        let mut groups_of_user = vec![0u16; users];
        for m in &members {
            for &u in m {
                groups_of_user[u as usize] += 1;
            }
        }
        let preexisting = (0..users).filter(|i| i % 5 == 2).collect();
        DataSet { size, members, groups_of_user, preexisting, unknown_duo_users: users / 50 }
    }

    pub fn memberships(&self) -> usize {
        self.members.iter().map(Vec::len).sum()
    }

    /// The registry as `Store::import` reads it: subjects, groups under folder `bench`,
    /// memberships, and the provisioner's marker on the folder.
    pub fn registry_json(&self) -> String {
        let mut s = String::with_capacity(self.memberships() * 48 + self.size.users * 120);
        s.push_str("{\"subjects\":[");
        for i in 0..self.size.users {
            if i > 0 {
                s.push(',');
            }
            let l = login(i);
            s.push_str(&format!("{{\"id\":\"s{i:06}\",\"name\":\"User {i}\",\"login_id\":\"{l}\",\"email\":\"{l}@example.edu\"}}"));
        }
        s.push_str("],\"groups\":[");
        for g in 0..self.members.len() {
            if g > 0 {
                s.push(',');
            }
            s.push_str(&format!("{{\"name\":\"bench:{}\",\"description\":\"Group {g}\"}}", group_name(g)));
        }
        s.push_str("],\"memberships\":[");
        let mut first = true;
        for (g, m) in self.members.iter().enumerate() {
            let name = group_name(g);
            for &u in m {
                if !first {
                    s.push(',');
                }
                first = false;
                s.push_str(&format!("{{\"group\":\"bench:{name}\",\"subject\":\"s{u:06}\"}}"));
            }
        }
        s.push_str("],\"markers\":[{\"provisioner\":\"bench\",\"folder\":\"bench\",\"scope\":\"sub\"}]}");
        s
    }

    /// Duo before the first sync, as an emulator tenant dump (JSON): the pre-existing registry
    /// users with the fields the default mapping would give them (so adopting them needs no
    /// write), every third with two aliases and every second enrolled, and users the registry
    /// does not know. No groups. (The emulator models no phones.)
    pub fn duo_json(&self) -> String {
        let mut s = String::from("{\"version\":1,\"users\":[");
        let mut n = 0usize;
        let mut push = |s: &mut String, username: &str, realname: &str, email: &str, aliases: bool, enrolled: bool| {
            if n > 0 {
                s.push(',');
            }
            let alias = if aliases { format!(",\"aliases\":{{\"alias1\":\"{username}.alt\",\"alias2\":\"{username}@alias.example.edu\"}}") } else { String::new() };
            s.push_str(&format!(
                "{{\"user_id\":\"DU{n:018}\",\"username\":\"{username}\",\"realname\":\"{realname}\",\"email\":\"{email}\",\"status\":\"active\",\"created\":1600000000,\"is_enrolled\":{enrolled}{alias}}}"
            ));
            n += 1;
        };
        for &i in &self.preexisting {
            let l = login(i);
            push(&mut s, &l, &format!("User {i}"), &format!("{l}@example.edu"), i % 3 == 0, i % 2 == 0);
        }
        for k in 0..self.unknown_duo_users {
            push(&mut s, &format!("other{k:06}"), &format!("Other {k}"), "", k % 3 == 0, true);
        }
        s.push_str("]}");
        s
    }

    /// Registry users in at least one group (the users Duo must hold).
    pub fn provisioned_users(&self) -> usize {
        self.groups_of_user.iter().filter(|&&d| d > 0).count()
    }

    pub fn adopted(&self) -> usize {
        self.preexisting.iter().filter(|&&i| self.groups_of_user[i] > 0).count()
    }

    /// Memberships Duo can hold: each user's first 100.
    pub fn writable_memberships(&self) -> usize {
        self.groups_of_user.iter().map(|&d| usize::from(d).min(MAX_GROUPS_PER_USER as usize)).sum()
    }

    pub fn users_over_limit(&self) -> usize {
        self.groups_of_user.iter().filter(|&&d| u64::from(d) > MAX_GROUPS_PER_USER).count()
    }

    pub fn max_groups_of_a_user(&self) -> usize {
        self.groups_of_user.iter().copied().max().map_or(0, usize::from)
    }

    pub fn describe(&self) -> String {
        let sizes: Vec<usize> = self.members.iter().map(Vec::len).collect();
        let big = sizes.iter().filter(|&&s| s >= 20_000).count();
        let small = sizes.iter().filter(|&&s| (5..=50).contains(&s)).count();
        format!(
            "{} users ({} in a group, {} in none, {} in more than 100, at most {}), {} groups (largest {}, {} of 20 000+, {} of 5–50), {} memberships ({} writable under Duo's 100-group limit); Duo before: {} pre-existing registry users ({} to adopt), {} unknown to the registry",
            self.size.users,
            self.provisioned_users(),
            self.size.users - self.provisioned_users(),
            self.users_over_limit(),
            self.max_groups_of_a_user(),
            sizes.len(),
            sizes.first().copied().unwrap_or(0),
            big,
            small,
            self.memberships(),
            self.writable_memberships(),
            self.preexisting.len(),
            self.adopted(),
            self.unknown_duo_users,
        )
    }
}

/// Calls per class and the rate-bound lower time of a sync.
#[derive(Debug, Clone, Copy, Default)]
pub struct Minimum {
    pub page_reads: u64,
    /// Single writes (creates, modifies, membership calls).
    pub writes: u64,
    /// `bulk_create` and `/admin/v1/bulk` calls (one class).
    pub bulk: u64,
}

impl Minimum {
    pub fn calls(&self) -> u64 {
        self.page_reads + self.writes + self.bulk
    }

    /// The time Duo's documented per-class limits allow at best, in seconds at `scale` × those
    /// limits: the slowest class, each class running flat out from the first second (a lower
    /// bound for any order of calls; no burst credited).
    pub fn rate_bound_secs(&self, scale: f64) -> f64 {
        let per_class = [
            self.page_reads as f64 / DUO_PAGE_READS_PER_MIN,
            self.writes as f64 / DUO_WRITES_PER_MIN,
            self.bulk as f64 / DUO_BULK_PER_MIN,
        ];
        per_class.into_iter().fold(0.0, f64::max) * 60.0 / scale
    }
}

fn div_ceil(a: u64, b: u64) -> u64 {
    a.div_ceil(b)
}

impl DataSet {
    fn duo_users_before(&self) -> u64 {
        (self.preexisting.len() + self.unknown_duo_users) as u64
    }

    fn new_users(&self) -> u64 {
        (self.provisioned_users() - self.adopted()) as u64
    }

    /// The initial sync with bulk calls: every Duo user page at 300 and the (empty) group list,
    /// one create per group (Duo has no bulk group create), `bulk_create` of 100 for the users
    /// Duo lacks, and `/admin/v1/bulk` of 50 for the memberships Duo can hold.
    pub fn initial_minimum(&self) -> Minimum {
        Minimum {
            page_reads: div_ceil(self.duo_users_before().max(1), USERS_PAGE) + 1,
            writes: self.members.len() as u64,
            bulk: div_ceil(self.new_users(), BULK_CREATE_USERS) + div_ceil(self.writable_memberships() as u64, BULK_OPERATIONS),
        }
    }

    /// A full sync with nothing to do: every Duo user page (each user carries its groups) and
    /// every group page, at Duo's maximum page sizes; no write.
    pub fn steady_minimum(&self) -> Minimum {
        let users = self.duo_users_before() + self.new_users();
        Minimum { page_reads: div_ceil(users, USERS_PAGE) + div_ceil(self.members.len() as u64, GROUPS_PAGE), writes: 0, bulk: 0 }
    }

    /// Grouper's pattern for the initial sync: users at 300 a page, groups at 100 a page, one
    /// create per group, one create per user, and one call per membership (it does not know
    /// Duo's 100-group limit, so the calls over it are sent and refused).
    pub fn grouper_initial(&self) -> Minimum {
        let managed: u64 = self.groups_of_user.iter().map(|&d| u64::from(d)).sum();
        Minimum {
            page_reads: div_ceil(self.duo_users_before().max(1), USERS_PAGE) + 1,
            writes: self.members.len() as u64 + self.new_users() + managed,
            bulk: 0,
        }
    }

    /// Grouper's pattern for a full sync with nothing to do: users at 300, groups at 100 a page.
    pub fn grouper_steady(&self) -> Minimum {
        let users = self.duo_users_before() + self.new_users();
        Minimum { page_reads: div_ceil(users, USERS_PAGE) + div_ceil(self.members.len() as u64, GROUPER_GROUPS_PAGE), writes: 0, bulk: 0 }
    }
}
