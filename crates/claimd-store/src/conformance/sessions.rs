//! Console sessions.

use std::sync::Arc;

use super::at;
use crate::sessions::{SessionWindow, StoredSession};
use crate::store::Store;

fn window(now_ms: i64) -> SessionWindow {
    // Idle for 10 s, 60 s in all.
    SessionWindow {
        idle_since: at(now_ms - 10_000),
        born_after: at(now_ms - 60_000),
    }
}

fn new(key: &str, now_ms: i64) -> StoredSession {
    StoredSession {
        key: key.into(),
        data: format!("{{\"who\":\"{key}\"}}"),
        created_at: at(now_ms),
        last_seen_at: at(now_ms),
        flash: None,
    }
}

pub async fn sessions_live_while_used_and_end_when_idle_old_or_ended(store: Arc<dyn Store>) {
    store.create_session(&new("a", 0), window(0)).await.unwrap();
    let seen = store
        .touch_session("a", at(5_000), window(5_000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (seen.data.as_str(), seen.last_seen_at),
        ("{\"who\":\"a\"}", at(5_000))
    );
    assert_eq!(
        store
            .touch_session("nobody", at(5_000), window(5_000))
            .await
            .unwrap(),
        None
    );

    // Used every 9 s, it stays live until its lifetime ends.
    let mut t = 5_000;
    while t + 9_000 < 60_000 {
        t += 9_000;
        assert!(
            store
                .touch_session("a", at(t), window(t))
                .await
                .unwrap()
                .is_some(),
            "at {t}"
        );
    }
    assert_eq!(
        store
            .touch_session("a", at(60_000), window(60_000))
            .await
            .unwrap(),
        None
    );

    // Idle for its whole idle time: over, even if used again later.
    store
        .create_session(&new("b", 100_000), window(100_000))
        .await
        .unwrap();
    assert_eq!(
        store
            .touch_session("b", at(110_000), window(110_000))
            .await
            .unwrap(),
        None
    );

    // Ended: over at once; ending twice is no error.
    store
        .create_session(&new("c", 200_000), window(200_000))
        .await
        .unwrap();
    store.end_session("c").await.unwrap();
    store.end_session("c").await.unwrap();
    assert_eq!(
        store
            .touch_session("c", at(200_001), window(200_001))
            .await
            .unwrap(),
        None
    );
}

pub async fn a_flash_is_shown_once_and_dead_sessions_are_pruned(store: Arc<dyn Store>) {
    store.create_session(&new("a", 0), window(0)).await.unwrap();
    store.set_session_flash("a", "verified").await.unwrap();
    store.set_session_flash("nobody", "lost").await.unwrap();
    let seen = store
        .touch_session("a", at(1), window(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen.flash.as_deref(), Some("verified"));
    let again = store
        .touch_session("a", at(2), window(2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.flash, None);

    // A session started long after "a" went idle prunes it: "a" is gone even for a window
    // that would still find it live.
    store
        .create_session(&new("b", 30_000), window(30_000))
        .await
        .unwrap();
    assert_eq!(
        store.touch_session("a", at(3), window(3)).await.unwrap(),
        None
    );
    // Two sessions under one key cannot exist.
    assert!(
        store
            .create_session(&new("b", 30_001), window(30_001))
            .await
            .is_err()
    );
}
