//! How the verifier is configured, and how a resolver is built for one perspective.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::ResolverConfig;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::{Resolver, TokioResolver};

use crate::dnssec::DnssecMode;

/// A named group of resolvers queried independently of the others.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PerspectiveConfig {
    pub name: String,
    pub servers: Vec<SocketAddr>,
}

#[derive(Clone, Debug)]
pub struct VerifierConfig {
    /// Where to look. Empty: one perspective, the system's resolvers (`/etc/resolv.conf`).
    pub perspectives: Vec<PerspectiveConfig>,
    /// The deadline for one whole lookup.
    pub timeout: Duration,
    /// The TXT key, `cisco-ci-domain-verification` unless a deployment brands its own.
    pub txt_prefix: String,
    /// Lookups in flight at once, across all requests.
    pub max_concurrent_lookups: usize,
    /// Whether answers are DNSSEC-validated, and from which trust anchor.
    pub dnssec: DnssecMode,
}

impl VerifierConfig {
    /// One perspective made of `servers` (the `--dns-server` form).
    pub fn with_servers(servers: Vec<SocketAddr>) -> Self {
        let perspectives = if servers.is_empty() {
            Vec::new()
        } else {
            vec![PerspectiveConfig {
                name: "default".to_owned(),
                servers,
            }]
        };
        Self {
            perspectives,
            ..Self::default()
        }
    }

    /// The perspectives to build: the configured ones, or the system's resolvers.
    pub(crate) fn resolved_perspectives(&self) -> Result<Vec<PerspectiveConfig>, ConfigError> {
        if !self.perspectives.is_empty() {
            return Ok(self.perspectives.clone());
        }
        let (system, _) = hickory_resolver::system_conf::read_system_conf()
            .map_err(|e| ConfigError::SystemConfig(e.to_string()))?;
        Ok(vec![PerspectiveConfig {
            name: "system".to_owned(),
            servers: system
                .name_servers()
                .iter()
                .map(|ns| SocketAddr::new(ns.ip, 53))
                .collect(),
        }])
    }
}

impl Default for VerifierConfig {
    fn default() -> Self {
        Self {
            perspectives: Vec::new(),
            timeout: Duration::from_secs(5),
            txt_prefix: claimd_domain::TXT_PREFIX.to_owned(),
            max_concurrent_lookups: 256,
            dnssec: DnssecMode::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read the system resolver configuration: {0}")]
    SystemConfig(String),
    #[error("perspective '{0}' has no DNS server")]
    NoServers(String),
    #[error("cannot build the resolver: {0}")]
    Build(String),
}

/// A resolver configured exactly as the verifier's when it does not validate (no cache, no
/// hosts file, UDP and TCP): also for measuring the raw query rate the verifier is bounded by.
pub fn build_resolver(
    servers: &[SocketAddr],
    timeout: Duration,
) -> Result<TokioResolver, ConfigError> {
    Resolver::builder_with_config(
        ResolverConfig::from_name_servers(crate::lookups::name_servers(servers)),
        TokioRuntimeProvider::default(),
    )
    .with_options(crate::lookups::options(timeout))
    .build()
    .map_err(|e| ConfigError::Build(e.to_string()))
}
