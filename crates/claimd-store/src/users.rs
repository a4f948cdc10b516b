//! The user directory: the people of each organization, as SCIM manages them.

use async_trait::async_trait;
use claimd_domain::{
    AccountStatus, DomainName, Filter, FilterAttribute, OrgId, Timestamp, User, UserFields, UserId,
};

use crate::error::StoreResult;
use crate::events::Actor;

/// A page of an organization's users.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserQuery {
    pub filter: Option<Filter>,
    /// Ordered by this attribute (users without it last), then by id; by userName when `None`.
    pub sort_by: Option<FilterAttribute>,
    pub descending: bool,
    /// 1-based, as SCIM counts.
    pub start_index: u64,
    pub count: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserPage {
    /// Every user the filter matches, not only this page's.
    pub total: u64,
    pub users: Vec<User>,
}

/// A user of another organization, transient because of a claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalUser {
    pub user: User,
    /// The claimed domain the user is in (or below).
    pub claimed_domain: DomainName,
}

#[async_trait]
pub trait UserStore: Send + Sync {
    /// Adds a user to `org`. `StoreError::Conflict` when any user, of any organization, has
    /// the same userName (ignoring case); `UnknownOrganization` for an organization that does
    /// not exist.
    async fn create_user(
        &self,
        actor: &Actor,
        org: &OrgId,
        fields: &UserFields,
        status: AccountStatus,
        now: Timestamp,
    ) -> StoreResult<User>;

    async fn find_user(&self, org: &OrgId, id: &UserId) -> StoreResult<Option<User>>;

    async fn list_users(&self, org: &OrgId, query: &UserQuery) -> StoreResult<UserPage>;

    /// Replaces what a client sets of the user; `None` for an unknown user.
    /// `StoreError::VersionMismatch` when `expected_version` is given and the user has moved on;
    /// `Conflict` for a userName another user has.
    async fn replace_user(
        &self,
        actor: &Actor,
        org: &OrgId,
        id: &UserId,
        fields: &UserFields,
        expected_version: Option<i64>,
        now: Timestamp,
    ) -> StoreResult<Option<User>>;

    /// The external users of `org`: users of other organizations its claims made transient,
    /// with the claimed domain each is in, in userName order, those after the userName `after`
    /// (ignoring case), at most `limit`.
    async fn list_external_users(
        &self,
        org: &OrgId,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<ExternalUser>>;

    /// Converts one of `org`'s external users into it: the user leaves its organization (whose
    /// log says so, not who took it) and joins `org`, active. `None` when `id` is not an
    /// external user of `org` (any more).
    async fn convert_user(
        &self,
        actor: &Actor,
        org: &OrgId,
        id: &UserId,
        now: Timestamp,
    ) -> StoreResult<Option<User>>;

    /// Removes the user; `false` for an unknown one. `VersionMismatch` as for replace.
    async fn delete_user(
        &self,
        actor: &Actor,
        org: &OrgId,
        id: &UserId,
        expected_version: Option<i64>,
        now: Timestamp,
    ) -> StoreResult<bool>;
}
