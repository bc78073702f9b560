//! The HTTP traffic log's bodies (`log_http_bodies`): with `log_http = "always"` against an
//! in-process emulator holding a user with an e-mail address and a phone number, the default
//! shows both masked (`***@domain`, all but the last two digits starred), `full` shows them,
//! and `none` shows no bodies at all while the entries themselves stay.

use duoprov_duo::{DuoClient, DuoConfig, NewUser};

use crate::run;
use crate::sync::{Env, seed_registry, setup};

const PHONE: &str = "+1 (555) 555-0123";
const EMAIL: &str = "jphone@example.org";

/// A user made by hand in Duo with an e-mail address and a phone number (in its notes, as some
/// administrators keep one; the emulator holds no phone objects).
async fn hand_made_user(env: &Env) {
    let skey = std::fs::read_to_string(env.dir.path().join("duo.skey")).expect("key");
    let ikey = std::fs::read_to_string(env.dir.path().join("duoprov.toml"))
        .expect("config")
        .lines()
        .find_map(|l| l.strip_prefix("integration_key = \"").map(|v| v.trim_end_matches('"').to_owned()))
        .expect("integration key");
    let mut cfg = DuoConfig::new("127.0.0.1", ikey, skey.into());
    cfg.url = Some(env.emulator.base_url());
    let duo = DuoClient::new(cfg).expect("client");
    duo.create_user(&NewUser::new("jphone").email(EMAIL).notes(PHONE)).await.expect("hand-made user");
}

fn set_bodies(env: &Env, mode: Option<&str>) {
    let path = env.dir.path().join("duoprov.toml");
    let config = std::fs::read_to_string(&path).expect("config");
    let kept: Vec<&str> = config.lines().filter(|l| !l.starts_with("log_http_bodies")).collect();
    let mut text = kept.join("\n");
    if let Some(mode) = mode {
        text = text.replace("log_http = \"always\"", &format!("log_http = \"always\"\nlog_http_bodies = \"{mode}\""));
    }
    std::fs::write(&path, text + "\n").expect("config");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_log_bodies_mask_personal_data_by_default_and_follow_log_http_bodies() {
    let env = setup("log_http = \"always\"").await;
    hand_made_user(&env).await;
    let dir = env.dir.path().to_path_buf();
    seed_registry(&dir);
    let digits_shown = "555-0123";
    tokio::task::spawn_blocking(move || {
        // Default: the sync's create bodies and the listing's replies carry addresses and the
        // phone, all masked.
        let (_, err) = run(&dir, &["sync", "duoTest"], 0);
        let (_, err2) = run(&dir, &["load-users", "duoTest"], 0);
        let all = format!("{err}{err2}");
        assert!(all.contains("Authorization: *******") && all.contains("request_body="), "no traffic log:\n{all}");
        assert!(all.contains("***@example.edu") && all.contains("***@example.org"), "addresses are shown masked:\n{all}");
        assert!(all.contains("+* (***) ***-**23"), "the phone is shown masked:\n{all}");
        for shown in ["mchyzer@example.edu", "kwilso@example.edu", EMAIL, digits_shown] {
            assert!(!all.contains(shown), "{shown} in the default traffic log:\n{all}");
        }

        set_bodies(&env, Some("full"));
        let (_, err) = run(&dir, &["load-users", "duoTest"], 0);
        assert!(err.contains(EMAIL) && err.contains(PHONE) && err.contains("mchyzer@example.edu"), "full shows bodies as received:\n{err}");

        set_bodies(&env, Some("none"));
        let (_, err) = run(&dir, &["load-users", "duoTest"], 0);
        assert!(err.contains("Authorization: *******"), "the entries stay:\n{err}");
        assert!(!err.contains("@example.") && !err.contains("0123") && !err.contains("jphone"), "no bodies under none:\n{err}");

        set_bodies(&env, Some("partly"));
        let (_, err) = run(&dir, &["load-users", "duoTest"], 1);
        assert!(err.contains("provisioner.duoTest.log_http_bodies") && err.contains("masked, full, none"), "{err}");
        env
    })
    .await
    .expect("commands");
}
