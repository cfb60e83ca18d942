//! Tests of the settings' quota lookup.

use super::*;

#[test]
fn a_host_port_entry_wins_over_the_host_and_the_host_over_the_default() {
    let rate = |rps: f64| RateQuota::from_rate(rps, NonZeroU32::MIN).unwrap();
    let settings = FetchSettings {
        quota: Some(rate(100.0)),
        host_quotas: BTreeMap::from([
            ("API.test".to_owned(), rate(10.0)),
            ("api.test:8443".to_owned(), rate(1.0)),
        ]),
        ..FetchSettings::default()
    };
    let quota = |url: &str| settings.quota_for(&url::Url::parse(url).unwrap());
    assert_eq!(
        quota("https://api.test/x"),
        Some(rate(10.0)),
        "case-insensitive host"
    );
    assert_eq!(quota("https://api.test:8443/x"), Some(rate(1.0)));
    assert_eq!(quota("https://other.test/x"), Some(rate(100.0)));
    assert_eq!(
        FetchSettings::default().quota_for(&url::Url::parse("http://h/").unwrap()),
        None
    );
}
