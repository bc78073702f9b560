//! The `duo_admin` table: the administrators each provisioner manages, recorded, replaced and
//! forgotten per provisioner in one transaction, on both backends.

use duoprov_model::{ManagedAdmin, SubjectKey};

use crate::registry_test;

fn admin(id: &str, email: &str, role: &str, created_by_us: bool) -> ManagedAdmin {
    ManagedAdmin { admin_id: id.into(), email: email.into(), subject: SubjectKey::new("ldap", email), role: role.into(), created_by_us, disabled_by_us: false }
}

registry_test!(managed_administrators_are_recorded_replaced_and_forgotten_per_provisioner, |store| {
    assert_eq!(store.managed_admins("p").await.unwrap(), vec![]);
    let a = admin("DE1", "a@example.com", "Help Desk", true);
    let b = admin("DE2", "b@example.com", "Owner", false);
    store.record_admins("p", &[b.clone(), a.clone()], &[]).await.unwrap();
    store.record_admins("q", &[admin("DE3", "c@example.com", "Billing", true)], &[]).await.unwrap();
    assert_eq!(store.managed_admins("p").await.unwrap(), vec![a.clone(), b.clone()], "ordered by e-mail");

    // Replacing a record keeps one row; forgetting drops only that provisioner's.
    let disabled = ManagedAdmin { role: "Read-only".into(), disabled_by_us: true, ..a.clone() };
    store.record_admins("p", std::slice::from_ref(&disabled), &["DE2".to_owned(), "DE3".to_owned()]).await.unwrap();
    assert_eq!(store.managed_admins("p").await.unwrap(), vec![disabled]);
    assert_eq!(store.managed_admins("q").await.unwrap().len(), 1);
});
