//! The fleet's heartbeats.

use std::sync::Arc;
use std::time::Duration;

use super::at;
use crate::store::Store;

pub async fn members_count_while_their_heartbeat_is_recent(store: Arc<dyn Store>) {
    let ttl = Duration::from_secs(10);
    assert_eq!(store.heartbeat("a", at(0), ttl).await.unwrap(), 1);
    assert_eq!(store.heartbeat("b", at(1_000), ttl).await.unwrap(), 2);
    assert_eq!(store.heartbeat("c", at(2_000), ttl).await.unwrap(), 3);
    // A heartbeat again is the same member.
    assert_eq!(store.heartbeat("a", at(3_000), ttl).await.unwrap(), 3);

    // b and c fall silent: once their last heartbeat is older than the ttl, they no longer
    // count; a member silent for exactly the ttl still does.
    assert_eq!(store.heartbeat("a", at(11_000), ttl).await.unwrap(), 3);
    assert_eq!(store.heartbeat("a", at(11_001), ttl).await.unwrap(), 2);
    assert_eq!(store.heartbeat("a", at(12_001), ttl).await.unwrap(), 1);

    // A member that leaves stops counting at once.
    assert_eq!(store.heartbeat("d", at(12_500), ttl).await.unwrap(), 2);
    store.leave("d").await.unwrap();
    assert_eq!(store.heartbeat("a", at(13_000), ttl).await.unwrap(), 1);
    // Leaving twice, or without having joined, is no error.
    store.leave("d").await.unwrap();
    store.leave("never-joined").await.unwrap();
    // A member that comes back after being forgotten counts again.
    assert_eq!(store.heartbeat("b", at(14_000), ttl).await.unwrap(), 2);
}
