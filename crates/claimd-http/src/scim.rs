//! SCIM 2.0 Users (RFC 7643, 7644) at Cisco's paths, `/identity/scim/{orgId}/v2/Users`: the
//! organization's user directory. Bodies are read field by field so that every refusal names
//! its field and carries the SCIM `scimType`; answers and errors are `application/scim+json`
//! (errors in SCIM's shape, rendered by the wire middleware for every path under [`PREFIX`]).

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use claimd_domain::{
    AccountStatus, Email, Enterprise, FilterAttribute, OrgId, User, UserFields, UserId,
    normalize_email, parse_filter,
};
use claimd_store::UserQuery;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::auth::Authorized;
use crate::error::ApiError;
use crate::state::AppState;
use crate::wire::{ApiJson, rfc3339};

pub const PREFIX: &str = "/identity/scim/";
pub const MEDIA_TYPE: &str = "application/scim+json";
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const CISCO_SCHEMA: &str = "urn:scim:schemas:extension:cisco:webexidentity:2.0:User";
const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const DEFAULT_COUNT: u32 = 100;
const MAX_COUNT: u32 = 1000;
const EMAIL_TYPES: &[&str] = &["work", "home", "room", "other"];
/// The one role type claimd keeps: Cisco's Common Identity roles.
const ROLE_TYPE: &str = "ciRole";

fn invalid(scim_type: &'static str, detail: impl Into<String>) -> ApiError {
    ApiError::bad_request(detail).scim(scim_type)
}

/// A refusal of the store's rules on a SCIM path: a 400 there is a value at fault.
fn scim_refusal(e: claimd_store::StoreError) -> ApiError {
    let e = ApiError::from(e);
    if e.scim_type.is_none() && e.status == StatusCode::BAD_REQUEST {
        e.scim("invalidValue")
    } else {
        e
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("no user '{id}' in this organization")).scim("noTarget")
}

/// An answer in SCIM's media type, with the user's version as its ETag when there is one.
fn answer(status: StatusCode, body: &Value, etag: Option<i64>) -> Response {
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
    if let Some(v) = etag.and_then(|v| HeaderValue::from_str(&etag_of(v)).ok()) {
        headers.insert(header::ETAG, v);
    }
    response
}

/// A user as the answer, with its version as the ETag.
fn user_answer(state: &AppState, status: StatusCode, user: &User) -> Response {
    answer(status, &resource(state, user), Some(user.version))
}

fn etag_of(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// The version an `If-Match` header names; `None` without one (or for `*`).
fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or("").trim();
    if text == "*" {
        return Ok(None);
    }
    text.trim_start_matches("W/")
        .trim_matches('"')
        .parse()
        .map(Some)
        .map_err(|_| {
            invalid(
                "invalidValue",
                format!("If-Match: '{text}' is not a version this server gave"),
            )
        })
}

fn user_url(state: &AppState, org: &OrgId, id: &UserId) -> String {
    format!(
        "{}{PREFIX}{}/v2/Users/{}",
        state.config.public_url,
        org.as_str(),
        id.as_str()
    )
}

/// The user as SCIM shows it.
pub(crate) fn resource(state: &AppState, user: &User) -> Value {
    let f = &user.fields;
    let mut name = Map::new();
    if let Some(g) = &f.given_name {
        name.insert("givenName".into(), g.clone().into());
    }
    if let Some(g) = &f.family_name {
        name.insert("familyName".into(), g.clone().into());
    }
    let emails: Vec<Value> = f
        .emails
        .iter()
        .map(|e| {
            let mut m = json!({"value": e.value, "primary": e.primary});
            if let Some(k) = &e.kind {
                m["type"] = k.clone().into();
            }
            if let Some(d) = &e.display {
                m["display"] = d.clone().into();
            }
            m
        })
        .collect();
    let mut body = json!({
        "schemas": [USER_SCHEMA, CISCO_SCHEMA],
        "id": user.id.as_str(),
        "userName": f.user_name,
        "userType": "user",
        "active": f.active,
        "emails": emails,
        CISCO_SCHEMA: {"accountStatus": [user.account_status.as_str()]},
        "meta": {
            "resourceType": "User",
            "created": rfc3339(user.created_at),
            "lastModified": rfc3339(user.last_modified),
            "version": etag_of(user.version),
            "location": user_url(state, &user.org_id, &user.id),
        },
    });
    if !name.is_empty() {
        body["name"] = Value::Object(name);
    }
    if let Some(d) = &f.display_name {
        body["displayName"] = d.clone().into();
    }
    if let Some(x) = &f.external_id {
        body["externalId"] = x.clone().into();
    }
    if !f.enterprise.is_empty() {
        let mut ext = Map::new();
        for (name, value) in f.enterprise.attributes() {
            let Some(v) = value else { continue };
            let v = if name == "manager" {
                json!({"value": v})
            } else {
                v.clone().into()
            };
            ext.insert(name.to_owned(), v);
        }
        body[ENTERPRISE_SCHEMA] = Value::Object(ext);
        if let Some(schemas) = body["schemas"].as_array_mut() {
            schemas.push(ENTERPRISE_SCHEMA.into());
        }
    }
    if !f.roles.is_empty() {
        let roles: Vec<Value> = f
            .roles
            .iter()
            .map(|r| json!({"value": r, "type": ROLE_TYPE}))
            .collect();
        body["roles"] = Value::Array(roles);
    }
    body
}

/// A string field, if present; refused if present with another type.
fn text(body: &Map<String, Value>, field: &str) -> Result<Option<String>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(
            "invalidValue",
            format!("{field}: must be a string"),
        )),
    }
}

/// The fields of a user from a POST or PUT body.
fn fields_of(body: &Value) -> Result<UserFields, ApiError> {
    let Some(body) = body.as_object() else {
        return Err(invalid(
            "invalidSyntax",
            "the request body must be a JSON object",
        ));
    };
    let schemas = match body.get("schemas") {
        Some(Value::Array(list)) => list
            .iter()
            .map(|s| {
                s.as_str()
                    .ok_or_else(|| invalid("invalidValue", "schemas: must be strings"))
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => {
            return Err(invalid(
                "invalidValue",
                "schemas: must be an array of schema URNs",
            ));
        }
        None => {
            return Err(invalid(
                "invalidValue",
                format!("schemas: required, with {USER_SCHEMA}"),
            ));
        }
    };
    let known = |s: &str| {
        [USER_SCHEMA, ENTERPRISE_SCHEMA, CISCO_SCHEMA]
            .iter()
            .any(|k| k.eq_ignore_ascii_case(s))
    };
    if let Some(unknown) = schemas.iter().find(|s| !known(s)) {
        return Err(invalid(
            "invalidValue",
            format!("schemas: unknown schema '{unknown}'"),
        ));
    }
    if !schemas.iter().any(|s| s.eq_ignore_ascii_case(USER_SCHEMA)) {
        return Err(invalid(
            "invalidValue",
            format!("schemas: must include {USER_SCHEMA}"),
        ));
    }
    let raw_name = text(body, "userName")?.ok_or_else(|| {
        invalid(
            "invalidValue",
            "userName: required (the user's primary email)",
        )
    })?;
    let (user_name, _) = normalize_email(&raw_name)
        .map_err(|e| invalid("invalidValue", format!("userName: {e}")))?;
    let active = match body.get("active") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(invalid("invalidValue", "active: must be true or false")),
    };
    let (given_name, family_name) = match body.get("name") {
        None | Some(Value::Null) => (None, None),
        Some(Value::Object(n)) => (text(n, "givenName")?, text(n, "familyName")?),
        Some(_) => return Err(invalid("invalidValue", "name: must be an object")),
    };
    let mut emails = Vec::new();
    match body.get("emails") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => {
            for (i, e) in list.iter().enumerate() {
                let Some(e) = e.as_object() else {
                    return Err(invalid(
                        "invalidValue",
                        format!("emails[{i}]: must be an object"),
                    ));
                };
                let value = text(e, "value")?.ok_or_else(|| {
                    invalid("invalidValue", format!("emails[{i}].value: required"))
                })?;
                let (value, _) = normalize_email(&value)
                    .map_err(|err| invalid("invalidValue", format!("emails[{i}].value: {err}")))?;
                let kind = text(e, "type")?;
                if let Some(k) = &kind
                    && !EMAIL_TYPES.contains(&k.as_str())
                {
                    return Err(invalid(
                        "invalidValue",
                        format!(
                            "emails[{i}].type: '{k}' is not one of {}",
                            EMAIL_TYPES.join(", ")
                        ),
                    ));
                }
                let primary = match e.get("primary") {
                    None | Some(Value::Null) => false,
                    Some(Value::Bool(b)) => *b,
                    Some(_) => {
                        return Err(invalid(
                            "invalidValue",
                            format!("emails[{i}].primary: must be true or false"),
                        ));
                    }
                };
                if emails
                    .iter()
                    .any(|x: &Email| x.value.eq_ignore_ascii_case(&value))
                {
                    return Err(invalid(
                        "invalidValue",
                        format!("emails[{i}].value: '{value}' is listed twice"),
                    ));
                }
                emails.push(Email {
                    value,
                    kind,
                    primary,
                    display: text(e, "display")?,
                });
            }
        }
        Some(_) => return Err(invalid("invalidValue", "emails: must be an array")),
    }
    match emails.iter().filter(|e| e.primary).count() {
        0 if emails.is_empty() => emails.push(Email {
            value: user_name.clone(),
            kind: Some("work".into()),
            primary: true,
            display: None,
        }),
        0 => {
            return Err(invalid(
                "invalidValue",
                "emails: one must be primary (the userName)",
            ));
        }
        1 => {}
        _ => return Err(invalid("invalidValue", "emails: only one may be primary")),
    }
    let primary = emails
        .iter()
        .find(|e| e.primary)
        .map(|e| e.value.as_str())
        .unwrap_or("");
    if !primary.eq_ignore_ascii_case(&user_name) {
        return Err(invalid(
            "invalidValue",
            format!("userName: must equal the primary email ('{user_name}' is not '{primary}')"),
        ));
    }
    Ok(UserFields {
        roles: roles_of(body)?,
        enterprise: enterprise_of(body)?,
        user_name,
        display_name: text(body, "displayName")?,
        given_name,
        family_name,
        external_id: text(body, "externalId")?,
        active,
        emails,
    })
}

/// The enterprise extension of a body: its text attributes, and the manager's id
/// (`manager.value`).
fn enterprise_of(body: &Map<String, Value>) -> Result<Enterprise, ApiError> {
    let mut e = Enterprise::default();
    let found = body
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(ENTERPRISE_SCHEMA));
    let ext = match found.map(|(_, v)| v) {
        None | Some(Value::Null) => return Ok(e),
        Some(Value::Object(ext)) => ext,
        Some(_) => {
            return Err(invalid(
                "invalidValue",
                format!("{ENTERPRISE_SCHEMA}: must be an object"),
            ));
        }
    };
    for (name, slot) in e.attributes_mut() {
        let manager = name == "manager";
        let bad = || {
            let shape = if manager {
                "an object with a string value"
            } else {
                "a string"
            };
            invalid(
                "invalidValue",
                format!("{ENTERPRISE_SCHEMA}:{name}: must be {shape}"),
            )
        };
        let value = match ext.get(name) {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) if manager => m.get("value").filter(|v| !v.is_null()),
            Some(v) if !manager => Some(v),
            Some(_) => return Err(bad()),
        };
        *slot = match value {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(bad()),
        };
    }
    Ok(e)
}

/// The CI roles of a body's `roles` (`[{"value": "id_full_admin", "type": "ciRole"}]`; other
/// role types are Cisco's services', not kept here).
fn roles_of(body: &Map<String, Value>) -> Result<Vec<String>, ApiError> {
    let list = match body.get("roles") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(invalid("invalidValue", "roles: must be an array")),
    };
    let mut roles = Vec::with_capacity(list.len());
    for (i, r) in list.iter().enumerate() {
        let Some(r) = r.as_object() else {
            return Err(invalid(
                "invalidValue",
                format!("roles[{i}]: must be an object with a value"),
            ));
        };
        let value = text(r, "value")?
            .ok_or_else(|| invalid("invalidValue", format!("roles[{i}].value: required")))?;
        let well_formed = (1..=64).contains(&value.len())
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
        if !well_formed {
            return Err(invalid(
                "invalidValue",
                format!(
                    "roles[{i}].value: '{value}' is not a role name (1 to 64 letters, digits, \
                     '_', '-', '.', ':')"
                ),
            ));
        }
        if let Some(kind) = text(r, "type")?
            && kind != ROLE_TYPE
        {
            return Err(invalid(
                "invalidValue",
                format!("roles[{i}].type: '{kind}' is not {ROLE_TYPE} (the only type kept here)"),
            ));
        }
        if roles.contains(&value) {
            return Err(invalid(
                "invalidValue",
                format!("roles[{i}].value: '{value}' is listed twice"),
            ));
        }
        roles.push(value);
    }
    Ok(roles)
}

/// The body, with a malformed one refused in SCIM's terms.
fn body_of(body: Result<ApiJson<Value>, ApiError>) -> Result<Value, ApiError> {
    body.map(|ApiJson(v)| v).map_err(|e| {
        let scim_type = if e.status == StatusCode::BAD_REQUEST {
            "invalidSyntax"
        } else {
            "invalidValue"
        };
        e.scim(scim_type)
    })
}

pub async fn create_user(
    State(state): State<AppState>,
    Authorized(caller): Authorized,
    body: Result<ApiJson<Value>, ApiError>,
) -> Result<Response, ApiError> {
    let fields = fields_of(&body_of(body)?)?;
    let user = state
        .store
        .create_user(
            &caller.actor(),
            &caller.org,
            &fields,
            AccountStatus::Active,
            state.clock.now(),
        )
        .await
        .map_err(scim_refusal)?;
    let mut response = user_answer(&state, StatusCode::CREATED, &user);
    if let Ok(location) = HeaderValue::from_str(&user_url(&state, &user.org_id, &user.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

pub async fn get_user(
    State(state): State<AppState>,
    Authorized(caller): Authorized,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let user = state
        .store
        .find_user(&caller.org, &UserId::new(&id))
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(user_answer(&state, StatusCode::OK, &user))
}

pub async fn replace_user(
    State(state): State<AppState>,
    Authorized(caller): Authorized,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<ApiJson<Value>, ApiError>,
) -> Result<Response, ApiError> {
    let expected = if_match(&headers)?;
    let fields = fields_of(&body_of(body)?)?;
    let user = state
        .store
        .replace_user(
            &caller.actor(),
            &caller.org,
            &UserId::new(&id),
            &fields,
            expected,
            state.clock.now(),
        )
        .await
        .map_err(scim_refusal)?
        .ok_or_else(|| not_found(&id))?;
    Ok(user_answer(&state, StatusCode::OK, &user))
}

pub async fn delete_user(
    State(state): State<AppState>,
    Authorized(caller): Authorized,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let expected = if_match(&headers)?;
    if state
        .store
        .delete_user(
            &caller.actor(),
            &caller.org,
            &UserId::new(&id),
            expected,
            state.clock.now(),
        )
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(&id))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListParams {
    filter: Option<String>,
    start_index: Option<String>,
    count: Option<String>,
    sort_by: Option<String>,
    sort_order: Option<String>,
    attributes: Option<String>,
    excluded_attributes: Option<String>,
}

fn number(field: &str, value: Option<&str>, default: u64, max: u64) -> Result<u64, ApiError> {
    let Some(v) = value.filter(|v| !v.is_empty()) else {
        return Ok(default);
    };
    v.parse::<u64>().ok().filter(|n| *n <= max).ok_or_else(|| {
        invalid(
            "invalidValue",
            format!("{field}: '{v}' is not a whole number from 0 to {max}"),
        )
    })
}

/// Keeps (or drops) the named top-level attributes; `id`, `schemas` and `meta` always stay.
fn project(mut resource: Value, attributes: &[String], excluded: &[String]) -> Value {
    let first = |path: &str| path.split('.').next().unwrap_or(path).to_ascii_lowercase();
    let keep: Vec<String> = attributes.iter().map(|a| first(a)).collect();
    let drop: Vec<String> = excluded.iter().map(|a| first(a)).collect();
    if let Some(map) = resource.as_object_mut() {
        map.retain(|key, _| {
            let k = key.to_ascii_lowercase();
            let always = matches!(k.as_str(), "id" | "schemas" | "meta");
            always || ((keep.is_empty() || keep.contains(&k)) && !drop.contains(&k))
        });
    }
    resource
}

fn list_of(value: Option<&str>) -> Vec<String> {
    value
        .map(|v| {
            v.split(',')
                .map(|a| a.trim())
                .filter(|a| !a.is_empty())
                .map(|a| {
                    a.strip_prefix("urn:ietf:params:scim:schemas:core:2.0:User:")
                        .unwrap_or(a)
                        .to_owned()
                })
                .collect()
        })
        .unwrap_or_default()
}

pub async fn list_users(
    State(state): State<AppState>,
    Authorized(caller): Authorized,
    query: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = query.map_err(|e| invalid("invalidValue", e.body_text()))?;
    let filter = match p.filter.as_deref().map(str::trim).filter(|f| !f.is_empty()) {
        Some(f) => Some(parse_filter(f).map_err(|e| invalid("invalidFilter", e.to_string()))?),
        None => None,
    };
    let start_index = number(
        "startIndex",
        p.start_index.as_deref(),
        1,
        u64::from(u32::MAX),
    )?
    .max(1);
    let count = number(
        "count",
        p.count.as_deref(),
        u64::from(DEFAULT_COUNT),
        u64::from(MAX_COUNT),
    )?;
    let sort_by = match p.sort_by.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(FilterAttribute::named(s).ok_or_else(|| {
            invalid(
                "invalidValue",
                format!("sortBy: '{s}' is not an attribute users can be sorted by"),
            )
        })?),
        None => None,
    };
    let descending = match p.sort_order.as_deref() {
        None | Some("") | Some("ascending") => false,
        Some("descending") => true,
        Some(other) => {
            return Err(invalid(
                "invalidValue",
                format!("sortOrder: '{other}' is neither ascending nor descending"),
            ));
        }
    };
    let page = state
        .store
        .list_users(
            &caller.org,
            &UserQuery {
                filter,
                sort_by,
                descending,
                start_index,
                count: u32::try_from(count).unwrap_or(MAX_COUNT),
            },
        )
        .await?;
    let (keep, drop) = (
        list_of(p.attributes.as_deref()),
        list_of(p.excluded_attributes.as_deref()),
    );
    let resources: Vec<Value> = page
        .users
        .iter()
        .map(|u| project(resource(&state, u), &keep, &drop))
        .collect();
    let body = list_response(resources, page.total, start_index);
    Ok(answer(StatusCode::OK, &body, None))
}

/// A `schemas`/`attributes` entry of the User schema: what SCIM discovery says of an attribute.
fn attribute(name: &str, kind: &str, extra: Value) -> Value {
    let mut a = json!({
        "name": name, "type": kind, "multiValued": false, "required": false,
        "caseExact": false, "mutability": "readWrite", "returned": "default",
        "uniqueness": "none",
    });
    if let (Some(a), Some(extra)) = (a.as_object_mut(), extra.as_object()) {
        a.extend(extra.clone());
    }
    a
}

fn user_schema(state: &AppState, org: &str) -> Value {
    let sub = |name: &str| attribute(name, "string", json!({}));
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": USER_SCHEMA,
        "name": "User",
        "description": "A user of the organization",
        "attributes": [
            attribute("userName", "string", json!({"required": true, "uniqueness": "global",
                "description": "The primary email; unique across all organizations, ignoring case"})),
            attribute("name", "complex", json!({"subAttributes": [sub("givenName"), sub("familyName")]})),
            attribute("displayName", "string", json!({})),
            attribute("userType", "string", json!({"canonicalValues": ["user"],
                "description": "Cisco's user type; claimd's users are all of type user"})),
            attribute("active", "boolean", json!({})),
            attribute("externalId", "string", json!({"caseExact": true})),
            attribute("emails", "complex", json!({"multiValued": true, "subAttributes": [
                sub("value"), sub("display"),
                attribute("type", "string", json!({"canonicalValues": EMAIL_TYPES})),
                attribute("primary", "boolean", json!({})),
            ]})),
            attribute("roles", "complex", json!({"multiValued": true,
                "description": "Cisco's CI roles (id_full_admin, id_user_admin, \
                    id_readonly_admin, …); an organization's last active id_full_admin is kept \
                    (the admin lock-out guard)",
                "subAttributes": [
                    sub("value"),
                    attribute("type", "string", json!({"canonicalValues": [ROLE_TYPE]})),
                ]})),
        ],
        "meta": schema_meta(state, org, USER_SCHEMA),
    })
}

/// The `meta` of a schema `id` served for `org`.
fn schema_meta(state: &AppState, org: &str, id: &str) -> Value {
    json!({
        "resourceType": "Schema",
        "location": format!("{}{PREFIX}{org}/v2/Schemas/{id}", state.config.public_url),
    })
}

/// Cisco's extension, as far as claimd fills it: the account status it decides.
fn cisco_schema(state: &AppState, org: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": CISCO_SCHEMA,
        "name": "WebexIdentityUser",
        "description": "Webex identity extension",
        "attributes": [attribute("accountStatus", "string", json!({
            "multiValued": true, "mutability": "readOnly",
            "canonicalValues": ["active", "transient"],
            "description": "Set by claimd: transient outside the organization's verified domains, or in a domain another organization has claimed",
        }))],
        "meta": schema_meta(state, org, CISCO_SCHEMA),
    })
}

/// The enterprise extension, as far as claimd keeps it.
fn enterprise_schema(state: &AppState, org: &str) -> Value {
    let mut attributes: Vec<Value> = Enterprise::default()
        .attributes()
        .iter()
        .filter(|(name, _)| *name != "manager")
        .map(|(name, _)| attribute(name, "string", json!({})))
        .collect();
    attributes.push(attribute(
        "manager",
        "complex",
        json!({"subAttributes": [attribute("value", "string", json!({
            "description": "The id of the user's manager"}))]}),
    ));
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": ENTERPRISE_SCHEMA,
        "name": "EnterpriseUser",
        "description": "Enterprise user",
        "attributes": attributes,
        "meta": schema_meta(state, org, ENTERPRISE_SCHEMA),
    })
}

fn resource_type(state: &AppState, org: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": "User",
        "name": "User",
        "endpoint": "/Users",
        "schema": USER_SCHEMA,
        "schemaExtensions": [
            {"schema": ENTERPRISE_SCHEMA, "required": false},
            {"schema": CISCO_SCHEMA, "required": false},
        ],
        "meta": {
            "resourceType": "ResourceType",
            "location": format!("{}{PREFIX}{org}/v2/ResourceTypes/User", state.config.public_url),
        },
    })
}

/// A SCIM ListResponse: one page of `total` resources, starting at `start_index` (1-based).
fn list_response(resources: Vec<Value>, total: u64, start_index: u64) -> Value {
    json!({
        "schemas": [LIST_SCHEMA],
        "totalResults": total,
        "itemsPerPage": resources.len(),
        "startIndex": start_index,
        "Resources": resources,
    })
}

/// A list that is whole on one page.
fn whole_list(resources: Vec<Value>) -> Value {
    let total = resources.len() as u64;
    list_response(resources, total, 1)
}

/// `GET …/v2/ServiceProviderConfig`: what this SCIM service supports.
pub async fn service_provider_config(
    State(state): State<AppState>,
    Authorized(caller): Authorized,
) -> Response {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": format!("{}/docs/", state.config.public_url),
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": MAX_COUNT},
        "changePassword": {"supported": false},
        "sort": {"supported": true},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "A claimd credential or a JWT from the configured identity provider, \
                            with scope identity:people_rw or identity:people_read",
            "primary": true,
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!(
                "{}{PREFIX}{}/v2/ServiceProviderConfig",
                state.config.public_url,
                caller.org.as_str()
            ),
        },
    });
    answer(StatusCode::OK, &body, None)
}

/// `GET …/v2/Schemas`: the User schema and Cisco's extension, as far as claimd keeps them.
pub async fn schemas(State(state): State<AppState>, Authorized(caller): Authorized) -> Response {
    let org = caller.org.as_str();
    let list = vec![
        user_schema(&state, org),
        enterprise_schema(&state, org),
        cisco_schema(&state, org),
    ];
    answer(StatusCode::OK, &whole_list(list), None)
}

/// `GET …/v2/ResourceTypes`: the one resource type, User.
pub async fn resource_types(
    State(state): State<AppState>,
    Authorized(caller): Authorized,
) -> Response {
    answer(
        StatusCode::OK,
        &whole_list(vec![resource_type(&state, caller.org.as_str())]),
        None,
    )
}

const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// The attributes a PATCH path may name, by their canonical spelling.
const PATCHABLE: &[&str] = &[
    "userName",
    "displayName",
    "active",
    "externalId",
    "name",
    "emails",
    "roles",
];

/// The multi-valued attributes, whose values a PATCH path may filter.
const MULTI_VALUED: &[&str] = &["emails", "roles"];

/// A PATCH path: an attribute, perhaps a filter on a multi-valued one's values, perhaps a
/// sub-attribute (`emails[type eq "work"].value`, `name.givenName`).
struct PatchPath {
    attribute: &'static str,
    /// `(sub-attribute, value)`: the values whose sub-attribute equals it.
    filter: Option<(String, Value)>,
    sub: Option<String>,
}

fn patch_path(path: &str) -> Result<PatchPath, ApiError> {
    let bad = |why: &str| invalid("invalidPath", format!("path '{path}': {why}"));
    let path = path.trim();
    // The enterprise extension, whole or one attribute: `urn:…:enterprise:2.0:User[:attr]`.
    if let Some(rest) = path
        .get(..ENTERPRISE_SCHEMA.len())
        .filter(|head| head.eq_ignore_ascii_case(ENTERPRISE_SCHEMA))
        .map(|_| &path[ENTERPRISE_SCHEMA.len()..])
    {
        let sub = match rest.strip_prefix(':') {
            None if rest.is_empty() => None,
            Some(attr) => {
                let known = Enterprise::default()
                    .attributes()
                    .iter()
                    .map(|(name, _)| *name)
                    .chain(["manager.value"])
                    .find(|name| name.eq_ignore_ascii_case(attr))
                    .ok_or_else(|| bad("not an attribute of the enterprise extension"))?;
                Some(known.to_owned())
            }
            None => return Err(bad("not an attribute a client may change")),
        };
        return Ok(PatchPath {
            attribute: ENTERPRISE_SCHEMA,
            filter: None,
            sub,
        });
    }
    let bare = path
        .strip_prefix(USER_SCHEMA)
        .and_then(|p| p.strip_prefix(':'))
        .unwrap_or(path);
    let (head, filter, rest) = match bare.find('[') {
        Some(open) => {
            let close = bare
                .rfind(']')
                .ok_or_else(|| bad("a '[' is never closed"))?;
            (
                &bare[..open],
                Some(&bare[open + 1..close]),
                &bare[close + 1..],
            )
        }
        None => match bare.split_once('.') {
            Some((head, sub)) => (head, None, &bare[head.len()..][..sub.len() + 1]),
            None => (bare, None, ""),
        },
    };
    let attribute = PATCHABLE
        .iter()
        .find(|a| a.eq_ignore_ascii_case(head))
        .copied()
        .ok_or_else(|| bad("not an attribute a client may change"))?;
    let sub = match rest.strip_prefix('.') {
        Some(sub) if !sub.is_empty() => Some(sub.to_owned()),
        Some(_) => return Err(bad("nothing after '.'")),
        None if rest.is_empty() => None,
        None => return Err(bad("unexpected text after ']'")),
    };
    let filter = match filter {
        None => None,
        Some(f) => {
            if !MULTI_VALUED.contains(&attribute) {
                return Err(bad("only emails and roles can be filtered"));
            }
            // `sub eq value`: the one comparison value filters need here.
            let mut words = f.splitn(3, ' ');
            let (Some(sub), Some(op), Some(value)) = (words.next(), words.next(), words.next())
            else {
                return Err(bad("expected [attribute eq value]"));
            };
            if !op.eq_ignore_ascii_case("eq") {
                return Err(bad("value filters support eq only"));
            }
            let value: Value = serde_json::from_str(value.trim())
                .map_err(|_| bad("the filter's value must be a quoted string or true/false"))?;
            Some((sub.to_owned(), value))
        }
    };
    if attribute == "name" && filter.is_none() {
        if let Some(s) = &sub
            && !["givenName", "familyName"]
                .iter()
                .any(|k| k.eq_ignore_ascii_case(s))
        {
            return Err(bad("name has givenName and familyName"));
        }
    } else if sub.is_some() && filter.is_none() && !MULTI_VALUED.contains(&attribute) {
        return Err(bad("this attribute has no sub-attributes"));
    }
    Ok(PatchPath {
        attribute,
        filter,
        sub,
    })
}

/// Does the email value `v` match the filter `(sub, value)` (strings ignoring case)?
fn matches(v: &Value, (sub, want): &(String, Value)) -> bool {
    let key = v
        .as_object()
        .and_then(|o| o.keys().find(|k| k.eq_ignore_ascii_case(sub)).cloned());
    match (key.and_then(|k| v.get(k)), want) {
        (Some(Value::String(a)), Value::String(b)) => a.eq_ignore_ascii_case(b),
        (Some(a), b) => a == b,
        (None, _) => false,
    }
}

/// Applies one operation to the user's SCIM representation.
fn apply(
    user: &mut Map<String, Value>,
    op: &str,
    path: Option<&str>,
    value: Option<Value>,
) -> Result<(), ApiError> {
    let op = op.to_ascii_lowercase();
    if !matches!(op.as_str(), "add" | "replace" | "remove") {
        return Err(invalid(
            "invalidSyntax",
            format!("op: '{op}' is not add, replace or remove"),
        ));
    }
    let Some(path) = path.filter(|p| !p.trim().is_empty()) else {
        // No path: the value's attributes are set.
        if op == "remove" {
            return Err(invalid("noTarget", "remove needs a path"));
        }
        let Some(Value::Object(set)) = value else {
            return Err(invalid(
                "invalidValue",
                "value: without a path, an object of attributes",
            ));
        };
        for (key, v) in set {
            let p = patch_path(&key)?;
            apply(user, &op, Some(p.attribute), Some(v))?;
        }
        return Ok(());
    };
    let p = patch_path(path)?;
    let needs_value = || {
        value
            .clone()
            .ok_or_else(|| invalid("invalidValue", format!("value: required to {op} {path}")))
    };
    match (p.attribute, &p.filter, &p.sub) {
        (attribute @ ("emails" | "roles"), Some(filter), sub) => {
            let Some(Value::Array(emails)) = user.get_mut(attribute) else {
                return Err(invalid(
                    "noTarget",
                    format!("path '{path}': the user has no {attribute}"),
                ));
            };
            if !emails.iter().any(|e| matches(e, filter)) {
                return Err(invalid(
                    "noTarget",
                    format!("path '{path}': no value of {attribute} matches"),
                ));
            }
            match (op.as_str(), sub) {
                ("remove", None) => emails.retain(|e| !matches(e, filter)),
                ("remove", Some(sub)) => {
                    for e in emails.iter_mut().filter(|e| matches(e, filter)) {
                        if let Some(o) = e.as_object_mut() {
                            o.retain(|k, _| !k.eq_ignore_ascii_case(sub));
                        }
                    }
                }
                (_, Some(sub)) => {
                    let v = needs_value()?;
                    for e in emails.iter_mut().filter(|e| matches(e, filter)) {
                        if let Some(o) = e.as_object_mut() {
                            o.retain(|k, _| !k.eq_ignore_ascii_case(sub));
                            o.insert(sub.clone(), v.clone());
                        }
                    }
                }
                (_, None) => {
                    let Value::Object(v) = needs_value()? else {
                        return Err(invalid(
                            "invalidValue",
                            format!("value: an object of {attribute} for {path}"),
                        ));
                    };
                    for e in emails.iter_mut().filter(|e| matches(e, filter)) {
                        if let Some(o) = e.as_object_mut() {
                            o.extend(v.clone());
                        }
                    }
                }
            }
        }
        (ENTERPRISE_SCHEMA, None, Some(sub)) => {
            let ext = user.entry(ENTERPRISE_SCHEMA).or_insert_with(|| json!({}));
            let Some(ext) = ext.as_object_mut() else {
                return Err(invalid(
                    "invalidValue",
                    format!("{ENTERPRISE_SCHEMA}: must be an object"),
                ));
            };
            // `manager.value` is the manager's id inside `manager`.
            let (key, value) = match sub.as_str() {
                "manager.value" => ("manager", needs_value().map(|v| json!({"value": v}))),
                other => (other, needs_value()),
            };
            if op == "remove" {
                ext.remove(key);
            } else {
                ext.insert(key.to_owned(), value?);
            }
        }
        (ENTERPRISE_SCHEMA, None, None) if op == "add" => {
            let Value::Object(set) = needs_value()? else {
                return Err(invalid(
                    "invalidValue",
                    format!("value: {ENTERPRISE_SCHEMA} must be an object"),
                ));
            };
            match user.entry(ENTERPRISE_SCHEMA).or_insert_with(|| json!({})) {
                Value::Object(ext) => ext.extend(set),
                _ => {
                    return Err(invalid(
                        "invalidValue",
                        format!("{ENTERPRISE_SCHEMA}: must be an object"),
                    ));
                }
            }
        }
        ("name", None, Some(sub)) => {
            let name = user.entry("name").or_insert_with(|| json!({}));
            let Some(name) = name.as_object_mut() else {
                return Err(invalid("invalidValue", "name: must be an object"));
            };
            let key = if sub.eq_ignore_ascii_case("givenName") {
                "givenName"
            } else {
                "familyName"
            };
            if op == "remove" {
                name.remove(key);
            } else {
                name.insert(key.to_owned(), needs_value()?);
            }
        }
        (attribute @ ("emails" | "roles"), None, None) if op == "add" => {
            let added = match needs_value()? {
                Value::Array(list) => list,
                one => vec![one],
            };
            match user.entry(attribute).or_insert_with(|| json!([])) {
                Value::Array(list) => list.extend(added),
                _ => {
                    return Err(invalid(
                        "invalidValue",
                        format!("{attribute}: must be an array"),
                    ));
                }
            }
        }
        ("name", None, None) if op == "add" => {
            let Value::Object(set) = needs_value()? else {
                return Err(invalid("invalidValue", "value: name must be an object"));
            };
            match user.entry("name").or_insert_with(|| json!({})) {
                Value::Object(name) => name.extend(set),
                _ => return Err(invalid("invalidValue", "name: must be an object")),
            }
        }
        (attribute, None, None) => {
            if op == "remove" {
                if attribute == "userName" {
                    return Err(invalid(
                        "mutability",
                        "userName: required, it cannot be removed",
                    ));
                }
                user.remove(attribute);
            } else {
                user.insert(attribute.to_owned(), needs_value()?);
            }
        }
        _ => {
            return Err(invalid(
                "invalidPath",
                format!("path '{path}': not supported"),
            ));
        }
    }
    Ok(())
}

/// The user after the operations of a PATCH body, as a PUT body.
fn patched(current: Value, body: &Value) -> Result<Value, ApiError> {
    let Some(body) = body.as_object() else {
        return Err(invalid(
            "invalidSyntax",
            "the request body must be a JSON object",
        ));
    };
    let schemas_ok = body
        .get("schemas")
        .and_then(Value::as_array)
        .is_some_and(|s| {
            s.iter().any(|s| {
                s.as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case(PATCH_SCHEMA))
            })
        });
    if !schemas_ok {
        return Err(invalid(
            "invalidValue",
            format!("schemas: must be [\"{PATCH_SCHEMA}\"]"),
        ));
    }
    let operations = body
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Operations"))
        .and_then(|(_, v)| v.as_array())
        .filter(|o| !o.is_empty())
        .ok_or_else(|| invalid("invalidValue", "Operations: required, a non-empty array"))?;
    let Value::Object(mut user) = current else {
        return Err(ApiError::internal("a user resource is not an object"));
    };
    for (i, operation) in operations.iter().enumerate() {
        let o = operation.as_object().ok_or_else(|| {
            invalid(
                "invalidSyntax",
                format!("Operations[{i}]: must be an object"),
            )
        })?;
        let op = o
            .get("op")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("invalidSyntax", format!("Operations[{i}].op: required")))?;
        let path = match o.get("path") {
            None | Some(Value::Null) => None,
            Some(Value::String(p)) => Some(p.as_str()),
            Some(_) => {
                return Err(invalid(
                    "invalidPath",
                    format!("Operations[{i}].path: must be a string"),
                ));
            }
        };
        apply(&mut user, op, path, o.get("value").cloned()).map_err(|mut e| {
            if let Some(d) = e.descriptions.first_mut() {
                *d = format!("Operations[{i}]: {d}");
            }
            e
        })?;
    }
    user.insert("schemas".into(), json!([USER_SCHEMA]));
    Ok(Value::Object(user))
}

pub async fn patch_user(
    State(state): State<AppState>,
    Authorized(caller): Authorized,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<ApiJson<Value>, ApiError>,
) -> Result<Response, ApiError> {
    let asked = if_match(&headers)?;
    let body = body_of(body)?;
    let user_id = UserId::new(&id);
    let current = state
        .store
        .find_user(&caller.org, &user_id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    if asked.is_some_and(|v| v != current.version) {
        return Err(claimd_store::StoreError::VersionMismatch.into());
    }
    let fields = fields_of(&patched(resource(&state, &current), &body)?)?;
    // Against the version read: a change made meanwhile is refused, not overwritten.
    let user = state
        .store
        .replace_user(
            &caller.actor(),
            &caller.org,
            &user_id,
            &fields,
            Some(current.version),
            state.clock.now(),
        )
        .await
        .map_err(scim_refusal)?
        .ok_or_else(|| not_found(&id))?;
    Ok(user_answer(&state, StatusCode::OK, &user))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(extra: Value) -> Value {
        let mut b = json!({"schemas": [USER_SCHEMA], "userName": "Ann@Example.COM"});
        if let (Some(b), Some(e)) = (b.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        b
    }

    #[test]
    fn a_body_becomes_fields_with_the_primary_email_as_user_name() {
        let f = fields_of(&body(
            json!({"displayName": "Ann", "name": {"givenName": "A"}}),
        ))
        .unwrap();
        assert_eq!(f.user_name, "Ann@example.com");
        assert_eq!(f.emails.len(), 1);
        assert!(f.emails[0].primary && f.active);
        assert_eq!(f.given_name.as_deref(), Some("A"));
    }

    #[test]
    fn bad_bodies_name_their_field() {
        let refused = |b: Value, says: &str| {
            let e = fields_of(&b).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            assert!(e.scim_type.is_some());
            assert!(
                e.descriptions[0].contains(says),
                "{}: {}",
                b,
                e.descriptions[0]
            );
        };
        refused(json!({"userName": "a@example.com"}), "schemas: required");
        refused(
            json!({"schemas": ["urn:x"], "userName": "a@example.com"}),
            "unknown schema 'urn:x'",
        );
        refused(json!({"schemas": [USER_SCHEMA]}), "userName: required");
        refused(body(json!({"userName": 7})), "userName: must be a string");
        refused(body(json!({"userName": "nobody"})), "userName:");
        refused(body(json!({"active": "yes"})), "active:");
        refused(
            body(json!({"emails": [{"value": "b@example.com", "primary": true}]})),
            "must equal the primary email",
        );
        refused(
            body(
                json!({"emails": [{"value": "ann@example.com", "primary": true}, {"value": "ANN@example.com"}]}),
            ),
            "listed twice",
        );
        refused(
            body(
                json!({"emails": [{"value": "ann@example.com", "type": "pager", "primary": true}]}),
            ),
            "emails[0].type",
        );
        refused(
            body(json!({"emails": [{"value": "ann@example.com"}]})),
            "one must be primary",
        );
        refused(body(json!({"name": "Ann"})), "name: must be an object");
    }

    #[test]
    fn projection_keeps_what_is_asked_and_always_the_id() {
        let r = json!({"id": "1", "schemas": [], "meta": {}, "userName": "a", "emails": [], "displayName": "A"});
        let kept = project(r.clone(), &["userName".into()], &[]);
        assert_eq!(kept.as_object().unwrap().len(), 4);
        let dropped = project(r, &[], &["emails".into(), "displayName".into()]);
        assert!(dropped.get("emails").is_none() && dropped.get("userName").is_some());
    }
}
