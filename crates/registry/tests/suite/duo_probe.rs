//! The `duo_probe` table: one record per Duo account (api_host and integration key), the newest
//! probe replacing the previous one, on both backends.

use duoprov_registry::ProbeRecord;

use crate::registry_test;

registry_test!(a_probe_record_is_kept_per_duo_account_and_replaced_by_the_next_probe, |store| {
    assert_eq!(store.duo_probe("api-1.duosecurity.com", "DIA").await.unwrap(), None);
    let first = ProbeRecord { probed_at_ms: 1_700_000_000_000, result: r#"{"tag":"a"}"#.into() };
    store.record_duo_probe("api-1.duosecurity.com", "DIA", &first).await.unwrap();
    let other = ProbeRecord { probed_at_ms: 1_700_000_000_001, result: r#"{"tag":"b"}"#.into() };
    store.record_duo_probe("api-1.duosecurity.com", "DIB", &other).await.unwrap();
    assert_eq!(store.duo_probe("api-1.duosecurity.com", "DIA").await.unwrap(), Some(first));
    assert_eq!(store.duo_probe("api-2.duosecurity.com", "DIA").await.unwrap(), None);

    let newer = ProbeRecord { probed_at_ms: 1_800_000_000_000, result: r#"{"tag":"c"}"#.into() };
    store.record_duo_probe("api-1.duosecurity.com", "DIA", &newer).await.unwrap();
    assert_eq!(store.duo_probe("api-1.duosecurity.com", "DIA").await.unwrap(), Some(newer));
    assert_eq!(store.duo_probe("api-1.duosecurity.com", "DIB").await.unwrap(), Some(other));
});
