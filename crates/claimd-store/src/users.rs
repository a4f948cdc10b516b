//! The user directory: the people of each organization, as SCIM manages them.

use async_trait::async_trait;
use claimd_domain::{
    AccountStatus, Filter, FilterAttribute, OrgId, Timestamp, User, UserFields, UserId,
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
