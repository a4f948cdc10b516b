//! claimd's HTTP API: the five Webex Domain Management actions, the domain resources, health
//! endpoints, authentication, and the wire conventions (tracking ids, Webex error bodies).
//!
//! - [`routes`]: every route with its access and handler, and the [`router`] built from them;
//! - [`state`]: what the handlers share, and the URLs responses link to;
//! - [`auth`]: who the caller is and what it may do; [`credentials`], [`jwt`]: the two kinds
//!   of credential;
//! - `actions`, `domains`, `organizations`, `audit`, `webhooks`, `health`: the handlers; [`verification`]: the verify and dry-run
//!   sequences they (and the `claimd` binary) run;
//! - `console`: the admin console in the browser, a client of the API in the same process;
//! - [`error`]: the one place errors become statuses; [`wire`]: tracking ids, error bodies,
//!   the JSON extractor; [`limits`]: rate limits; [`metrics`]: `GET /metrics`; [`serve`]: the
//!   HTTP server.

mod actions;
mod audit;
pub mod auth;
mod console;
pub mod credentials;
mod domains;
pub mod error;
mod external;
mod health;
pub mod jwt;
pub mod limits;
pub mod metrics;
mod openapi;
mod organizations;
mod preview;
pub mod routes;
mod scim;
pub mod serve;
pub mod state;
pub mod verification;
mod webhooks;
pub mod wire;

pub use console::OidcConfig;
pub use routes::router;
pub use state::{AppState, Clock, HttpConfig, SystemClock};
