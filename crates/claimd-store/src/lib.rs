//! The storage contract, one trait per aggregate — [`OrganizationStore`], [`CredentialStore`],
//! [`DomainStore`], [`EventStore`], [`RecheckStore`], [`WebhookStore`], [`FleetStore`],
//! [`SessionStore`], [`UserStore`], [`PreviewStore`] — under the umbrella [`Store`] that the binary hands around.
//!
//! Every method that changes something is one whole unit of work: it opens, re-checks the
//! lifecycle rules inside, and commits its own transaction; no transaction crosses this
//! boundary. Implementations must also finish a unit of work that has started even when the
//! caller's future is dropped (a client that disconnects must not leave a half-done change).

mod credentials;
mod domains;
mod error;
mod events;
mod fleet;
mod organizations;
mod previews;
mod rechecks;
mod sessions;
mod store;
mod users;
mod webhooks;

#[cfg(feature = "testsuite")]
pub mod conformance;
#[cfg(feature = "sql")]
pub mod sql;

pub use credentials::CredentialStore;
pub use domains::{DomainStore, DomainSummary, Proof, TokenRequest, Verification};
pub use error::{DriverFailure, StoreError, StoreResult};
pub use events::{
    Actor, AuditEntry, AuditQuery, EVENT_CATEGORIES, Event, EventKind, EventStore, EventTarget,
};
pub use fleet::FleetStore;
pub use organizations::OrganizationStore;
pub use previews::{Change, Impact, PreviewStore};
pub use rechecks::{DueRecheck, Lease, RecheckResult, RecheckStore};
pub use sessions::{SessionStore, SessionWindow, StoredSession};
pub use store::{Connections, Gauges, Store};
pub use users::{ExternalUser, UserPage, UserQuery, UserStore};
pub use webhooks::{DeliveryAttempt, DeliveryOutcome, DeliveryResult, DueDelivery, WebhookStore};

/// Every trait of the contract, for `use claimd_store::prelude::*` where a concrete store's
/// methods are called.
pub mod prelude {
    pub use crate::{
        CredentialStore as _, DomainStore as _, EventStore as _, FleetStore as _,
        OrganizationStore as _, PreviewStore as _, RecheckStore as _, SessionStore as _,
        Store as _, UserStore as _, WebhookStore as _,
    };
}
