//! The OpenAPI 3.1 document of what claimd serves (`GET /openapi.json`) and the Swagger UI
//! that browses it (`GET /docs/`, every file embedded in the binary).
//!
//! The document is built from the route table ([`crate::routes`]): each row carries its
//! [`Doc`] — the request body, query parameters and answer types, whose schemas come from the
//! very structs the handlers read and write (`#[derive(ToSchema)]`), and the errors it can
//! answer with, all in the Webex error shape ([`ErrorBody`]). A route cannot be served without
//! being described, and a field cannot change without the document changing with it.

use std::borrow::Cow;
use std::sync::{Arc, LazyLock};

use axum::Extension;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Serialize;
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, Parameter, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ComponentsBuilder, Schema};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, PathsBuilder, Ref, RefOr, Required,
    ResponseBuilder, ServerBuilder,
};
use utoipa::{IntoParams, PartialSchema, ToSchema};

use crate::error::ApiError;
use crate::routes::Endpoint;

/// The Webex error body every failure is answered with (rendered by [`crate::wire`]).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// The first problem, for a person.
    pub message: String,
    /// Every problem, one entry each.
    pub errors: Vec<ErrorDescription>,
    /// The request's tracking id, also in the `TrackingID` header; quote it when reporting.
    pub tracking_id: String,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDescription {
    pub description: String,
}

/// What the document says about one route.
#[derive(Default)]
pub struct Doc {
    operation_id: &'static str,
    tag: &'static str,
    summary: &'static str,
    description: Option<&'static str>,
    /// Not in the document (the Swagger UI's own files).
    hidden: bool,
    body: Option<Cow<'static, str>>,
    query: Vec<Parameter>,
    /// The success status and the schema of its body (`None`: no body).
    success: Option<(u16, Option<Cow<'static, str>>)>,
    /// A success answered with a non-JSON body: its media type.
    success_media: Option<&'static str>,
    /// Errors this route answers with, beyond those every route of its kind can.
    errors: Vec<u16>,
    schemas: Vec<(String, RefOr<Schema>)>,
}

fn collect<T: ToSchema>(schemas: &mut Vec<(String, RefOr<Schema>)>) -> Cow<'static, str> {
    let name = T::name();
    schemas.push((name.to_string(), T::schema()));
    T::schemas(schemas);
    name
}

impl Doc {
    pub fn new(operation_id: &'static str, tag: &'static str, summary: &'static str) -> Self {
        Self {
            operation_id,
            tag,
            summary,
            ..Self::default()
        }
    }

    pub fn hidden() -> Self {
        Self {
            hidden: true,
            ..Self::default()
        }
    }

    pub fn description(mut self, text: &'static str) -> Self {
        self.description = Some(text);
        self
    }

    /// The JSON body the route reads.
    pub fn body<T: ToSchema>(mut self) -> Self {
        self.body = Some(collect::<T>(&mut self.schemas));
        self
    }

    /// A schema the description names beside the success's (another shape of answer).
    pub fn schema<T: ToSchema>(mut self) -> Self {
        collect::<T>(&mut self.schemas);
        self
    }

    /// The query parameters the route reads.
    pub fn query<T: IntoParams>(mut self) -> Self {
        self.query = T::into_params(|| Some(ParameterIn::Query));
        self
    }

    /// The JSON body of a success.
    pub fn answers<T: ToSchema>(mut self, status: u16) -> Self {
        self.success = Some((status, Some(collect::<T>(&mut self.schemas))));
        self
    }

    /// A success without a body.
    pub fn empty(mut self, status: u16) -> Self {
        self.success = Some((status, None));
        self
    }

    /// A success whose body is not JSON.
    pub fn media(self, media_type: &'static str) -> Self {
        self.media_with(200, media_type)
    }

    /// A success with `status` whose body is of `media_type` (e.g. SCIM's).
    pub fn media_with(mut self, status: u16, media_type: &'static str) -> Self {
        self.success = Some((status, None));
        self.success_media = Some(media_type);
        self
    }

    pub fn errors(mut self, statuses: &[u16]) -> Self {
        self.errors.extend_from_slice(statuses);
        self
    }
}

/// The scheme every organization route is called with.
const BEARER: &str = "bearer";

/// What each path parameter is.
fn path_parameter(name: &str) -> Parameter {
    let description = match name {
        "orgId" => "The organization's id.",
        "domainId" => {
            "The domain: the unpadded base64url of its name (the last segment of the `url` \
             the actions answer with), or the name itself."
        }
        "webhookId" => "The webhook's id.",
        "userId" => "The user's id (SCIM `id`).",
        other => panic!("route table: path parameter {{{other}}} has no description"),
    };
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(description))
        .schema(Some(String::schema()))
        .build()
}

/// Routes about an organization without it in the path take it as `orgId` in the query
/// ([`crate::auth`]).
fn org_in_query(endpoint: &Endpoint) -> Option<Parameter> {
    let needed = endpoint.access.is_some() && !path_names(endpoint.path).any(|n| n == "orgId");
    needed.then(|| {
        ParameterBuilder::new()
            .name("orgId")
            .parameter_in(ParameterIn::Query)
            .required(Required::False)
            .description(Some(
                "The organization; by default the credential's own (required with an operator \
                 credential, which is valid for every organization).",
            ))
            .schema(Some(String::schema()))
            .build()
    })
}

/// The `{name}`s of a path template.
fn path_names(path: &str) -> impl Iterator<Item = &str> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
}

fn error_reason(status: u16) -> &'static str {
    match status {
        400 => "The request is invalid; the message names the field or value at fault.",
        401 => "No credential, or one that is not valid.",
        403 => "The credential may not do this to this organization.",
        404 => "No such organization or resource (for this credential).",
        409 => {
            "The change conflicts with the state of the resource (a domain claimed elsewhere, a parent or child claimed; a userName taken)."
        }
        412 => "The resource has changed since the version in `If-Match`.",
        413 => "The request body is too large.",
        415 => "The body is not JSON (`Content-Type: application/json`).",
        429 => "Too many requests; `Retry-After` says when to try again.",
        500 => "An internal error; quote the tracking id when reporting it.",
        502 => "The DNS answered with a failure (SERVFAIL, REFUSED); retry later.",
        503 => {
            "The service or its database is unavailable, or the request took too long; `Retry-After` says when to try again."
        }
        504 => "The DNS lookup timed out; retry later.",
        _ => "Refused.",
    }
}

fn json_of(schema: &str) -> utoipa::openapi::Content {
    ContentBuilder::new()
        .schema(Some(Ref::from_schema_name(schema)))
        .build()
}

/// What one route is: parameters, body, answers and errors, and who may call it.
fn operation(
    endpoint: &Endpoint,
    doc: &Doc,
    error_schema: &str,
) -> utoipa::openapi::path::Operation {
    let mut description = doc.description.map(str::to_owned);
    if let Some(access) = endpoint.access {
        let needs = format!(
            "Needs a credential with one of the scopes `{}` and one of the roles `{}`, \
             for the organization the request is about.",
            access.scopes().join("`, `"),
            access.roles().join("`, `"),
        );
        description = Some(match description {
            Some(text) => format!("{text}\n\n{needs}"),
            None => needs,
        });
    }
    let mut op = OperationBuilder::new()
        .operation_id(Some(doc.operation_id))
        .tag(doc.tag)
        .summary(Some(doc.summary))
        .description(description)
        .parameters(Some(
            path_names(endpoint.path)
                .map(path_parameter)
                .chain(org_in_query(endpoint))
                .chain(doc.query.iter().cloned()),
        ));
    if let Some(body) = &doc.body {
        op = op.request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content("application/json", json_of(body))
                .build(),
        ));
    }
    let (status, answer) = doc.success.clone().unwrap_or((200, None));
    let mut success = ResponseBuilder::new().description(match status {
        204 => "Done; no body.",
        _ => "Done.",
    });
    if let Some(name) = &answer {
        success = success.content("application/json", json_of(name));
    }
    if let Some(media) = doc.success_media {
        success = success.content(media, ContentBuilder::new().build());
    }
    op = op.response(status.to_string(), success.build());

    let mut errors = Vec::new();
    if endpoint.access.is_some() {
        errors.extend([400, 401, 403, 404, 429]);
        op = op.security(SecurityRequirement::new(BEARER, [""; 0]));
    }
    if doc.body.is_some() {
        errors.extend([400, 413, 415]);
    }
    errors.extend(doc.errors.iter().copied());
    errors.extend([500, 503]);
    errors.sort_unstable();
    errors.dedup();
    for status in errors {
        op = op.response(
            status.to_string(),
            ResponseBuilder::new()
                .description(error_reason(status))
                .content("application/json", json_of(error_schema))
                .build(),
        );
    }
    op.build()
}

/// The OpenAPI document of `endpoints`, served from `public_url`.
pub fn document<'a>(
    endpoints: impl IntoIterator<Item = (&'a Endpoint, &'a Doc)>,
    public_url: &str,
) -> OpenApi {
    let mut schemas = Vec::new();
    let error_schema = collect::<ErrorBody>(&mut schemas);
    let mut paths = PathsBuilder::new();
    let mut tags: Vec<&str> = Vec::new();
    for (endpoint, doc) in endpoints {
        if doc.hidden {
            continue;
        }
        schemas.extend(doc.schemas.iter().cloned());
        if !tags.contains(&doc.tag) {
            tags.push(doc.tag);
        }
        let method = match endpoint.method {
            "GET" => HttpMethod::Get,
            "POST" => HttpMethod::Post,
            "PUT" => HttpMethod::Put,
            "PATCH" => HttpMethod::Patch,
            "DELETE" => HttpMethod::Delete,
            other => panic!("route table: {other} has no OpenAPI method"),
        };
        let op = operation(endpoint, doc, &error_schema);
        paths = paths.path(endpoint.path, PathItem::new(method, op));
    }

    let components = ComponentsBuilder::new()
        .schemas_from_iter(schemas)
        .security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API credential (`claimd token create`) or a JWT from the configured \
                         identity provider.",
                    ))
                    .build(),
            ),
        )
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("claimd")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Domain ownership: an organization proves it controls a DNS domain by \
                     publishing a token as a TXT record, then claims it. The five actions under \
                     `/v1/identity/organizations/{orgId}/actions/` follow the Webex Common \
                     Identity Domain Management contract; the rest (domain resources, \
                     organization, audit events, webhooks) are claimd's own or follow Webex's \
                     shapes.",
                ))
                .build(),
        )
        .servers(Some([ServerBuilder::new().url(public_url).build()]))
        .paths(paths.build())
        .components(Some(components))
        .tags(Some(
            tags.into_iter()
                .map(|name| TagBuilder::new().name(name).build()),
        ))
        .build()
}

/// The document as served, rendered once when the router is built.
#[derive(Clone)]
pub struct Served(pub Arc<str>);

pub async fn openapi_json(Extension(Served(json)): Extension<Served>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        json.to_string(),
    )
        .into_response()
}

/// Swagger UI, pointed at the document next to it (relative, so a path prefix added by a
/// reverse proxy keeps working).
static SWAGGER: LazyLock<Arc<utoipa_swagger_ui::Config<'static>>> =
    LazyLock::new(|| Arc::new(utoipa_swagger_ui::Config::new(["../openapi.json"])));

/// `/docs` → `/docs/`, where the UI's relative links resolve.
pub async fn docs_index() -> Redirect {
    Redirect::permanent("docs/")
}

pub async fn docs_home() -> Result<Response, ApiError> {
    swagger_file("")
}

pub async fn docs_file(Path(file): Path<String>) -> Result<Response, ApiError> {
    swagger_file(&file)
}

fn swagger_file(file: &str) -> Result<Response, ApiError> {
    match utoipa_swagger_ui::serve(file, SWAGGER.clone()) {
        Ok(Some(found)) => {
            let mut response = (
                StatusCode::OK,
                [(header::CONTENT_TYPE, found.content_type)],
                found.bytes.into_owned(),
            )
                .into_response();
            if found.gzpipped {
                response
                    .headers_mut()
                    .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            Ok(response)
        }
        Ok(None) => Err(ApiError::not_found("No such resource")),
        Err(e) => Err(ApiError::internal(format!("swagger ui: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_names_are_the_braced_segments() {
        let names: Vec<_> =
            path_names("/v1/identity/organizations/{orgId}/domains/{domainId}/check").collect();
        assert_eq!(names, ["orgId", "domainId"]);
    }
}
