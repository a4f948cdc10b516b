//! The console's pages: HTML rendered on the server from the API's JSON answers. Every page
//! works without JavaScript; the one script only adds copy buttons.

use maud::{DOCTYPE, Markup, html};
use serde_json::Value;

use super::session::Flash;

/// What every page of a signed-in session shows in its header.
pub struct Frame<'a> {
    pub org_name: &'a str,
    pub org_id: &'a str,
    pub label: &'a str,
    pub csrf: &'a str,
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// `2026-12-03T10:00:00Z` as `2026-12-03 10:00 UTC`.
fn when(t: &str) -> String {
    if t.len() >= 16 && t.as_bytes()[10] == b'T' {
        format!("{} {} UTC", &t[..10], &t[11..16])
    } else {
        t.to_owned()
    }
}

fn layout(title: &str, frame: Option<&Frame<'_>>, flash: Option<&Flash>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · claimd" }
                link rel="icon" href="/console/assets/favicon.svg" type="image/svg+xml";
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body {
                a class="skip" href="#main" { "Skip to content" }
                header class="top" {
                    a class="brand" href="/console/domains" { "claimd" }
                    @if let Some(f) = frame {
                        span class="org" { (f.org_name) " " span class="muted" { "(" (f.org_id) ")" } }
                        form method="post" action="/console/logout" class="inline" {
                            input type="hidden" name="csrf" value=(f.csrf);
                            span class="muted who" { "Signed in as " (f.label) }
                            button type="submit" class="secondary" { "Sign out" }
                        }
                    }
                }
                main id="main" tabindex="-1" {
                    @match flash {
                        Some(Flash::Done(m)) => p class="flash done" role="status" { (m) },
                        Some(Flash::Refused(m)) => p class="flash refused" role="alert" { (m) },
                        _ => {},
                    }
                    (body)
                }
            }
        }
    }
}

pub fn login(csrf: &str, error: Option<&str>, oidc: bool) -> Markup {
    let body = html! {
        h1 { "Sign in" }
        @if let Some(e) = error {
            p class="flash refused" role="alert" id="login-error" { (e) }
        }
        form method="post" action="/console/login" class="card" {
            input type="hidden" name="csrf" value=(csrf);
            label for="token" { "API credential" }
            input id="token" name="token" type="password" autocomplete="off" required
                aria-describedby="token-help";
            p id="token-help" class="muted" {
                "A credential from " code { "claimd token create" } " or your identity provider. "
                "The console acts with exactly its rights."
            }
            label for="org" { "Organization ID " span class="muted" { "(only for an operator credential)" } }
            input id="org" name="org" type="text" autocomplete="off";
            button type="submit" { "Sign in" }
        }
        @if oidc {
            p { a class="button secondary" href="/console/oidc/start" { "Sign in with your identity provider" } }
        }
    };
    layout("Sign in", None, None, body)
}

fn status_badge(status: &str) -> Markup {
    let label = match status {
        "pending" => "Pending",
        "expired" => "Token expired",
        "verified" => "Verified",
        "claimed" => "Claimed",
        "at_risk" => "At risk",
        "lapsed" => "Lapsed",
        "not_checkable" => "Not checkable",
        "ok" => "OK",
        other => other,
    };
    html! { span class={ "badge " (status) } { (label) } }
}

pub fn domains(
    frame: &Frame<'_>,
    flash: Option<&Flash>,
    items: &[Value],
    next: Option<&str>,
) -> Markup {
    let body = html! {
        h1 { "Domains" }
        form method="post" action="/console/domains" class="card add" {
            input type="hidden" name="csrf" value=(frame.csrf);
            label for="domain" { "Add a domain" }
            div class="row" {
                input id="domain" name="domain" type="text" inputmode="url" autocomplete="off"
                    placeholder="example.com" required aria-describedby="domain-help";
                button type="submit" { "Add" }
            }
            p id="domain-help" class="muted" {
                "claimd answers a token to publish as a TXT record at the domain."
            }
        }
        @if items.is_empty() {
            p { "No domains yet." }
        } @else {
            div class="scroll" {
                table class="stack" {
                    caption class="visually-hidden" { "Domains of this organization" }
                    thead { tr {
                        th scope="col" { "Domain" }
                        th scope="col" { "Status" }
                        th scope="col" { "Re-check" }
                        th scope="col" { "Last check" }
                        th scope="col" { "Token expires" }
                    } }
                    tbody {
                        @for d in items {
                            tr {
                                td data-label="Domain" { a href={ "/console/domains/" (text(d, "id")) } { (text(d, "domain")) } }
                                td data-label="Status" { (status_badge(text(d, "status"))) }
                                td data-label="Re-check" {
                                    @match d.get("recheck").filter(|r| r.is_object()) {
                                        Some(r) => (status_badge(text(r, "status"))),
                                        None => span class="muted" { "—" },
                                    }
                                }
                                td data-label="Last check" {
                                    @match d.get("lastCheck").filter(|r| r.is_object()) {
                                        Some(c) => { (when(text(c, "time"))) " · " (text(c, "outcome")) },
                                        None => span class="muted" { "never" },
                                    }
                                }
                                td data-label="Token expires" { (when(text(d, "tokenExpires"))) }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(cursor) = next {
            p { a href={ "/console/domains?cursor=" (cursor) } { "Next page" } }
        }
    };
    layout("Domains", Some(frame), flash, body)
}

/// A value with a copy button (shown when JavaScript runs; the text is selectable anyway).
fn copyable(id: &str, label: &str, value: &str) -> Markup {
    html! {
        div class="copy" {
            label for=(id) { (label) }
            div class="row" {
                input id=(id) type="text" readonly value=(value);
                button type="button" class="secondary" data-copy=(id) hidden { "Copy" }
            }
        }
    }
}

/// The buttons a domain in `status` offers.
fn actions(status: &str) -> &'static [(&'static str, &'static str)] {
    match status {
        "pending" => &[("verify", "Verify"), ("remove", "Remove")],
        "expired" => &[("renew", "Request a new token"), ("remove", "Remove")],
        "verified" => &[("claim", "Claim"), ("unverify", "Unverify")],
        "claimed" => &[("unclaim", "Unclaim")],
        _ => &[],
    }
}

pub fn domain(
    frame: &Frame<'_>,
    flash: Option<&Flash>,
    d: &Value,
    history: &[Value],
    users: Option<&Value>,
) -> Markup {
    let name = text(d, "domain");
    let id = text(d, "id");
    let status = text(d, "status");
    let txt = text(d, "txtRecordValue");
    let checked = match flash {
        Some(Flash::Checked(c)) => Some(c),
        _ => None,
    };
    let body = html! {
        p { a href="/console/domains" { "← All domains" } }
        h1 { (name) " " (status_badge(status)) }
        dl class="facts" {
            dt { "Status" } dd { (status) }
            @if let Some(v) = d.get("verified").and_then(Value::as_str) { dt { "Verified" } dd { (when(v)) } }
            @if let Some(v) = d.get("claimed").and_then(Value::as_str) { dt { "Claimed" } dd { (when(v)) } }
            @if matches!(status, "pending" | "expired") { dt { "Token expires" } dd { (when(text(d, "tokenExpires"))) } }
            @if let Some(c) = d.get("lastCheck").filter(|c| c.is_object()) {
                dt { "Last check" } dd { (when(text(c, "time"))) " · " (text(c, "outcome")) }
            }
            @if let Some(r) = d.get("recheck").filter(|r| r.is_object()) {
                dt { "Re-check" } dd { (status_badge(text(r, "status"))) }
                @if let Some(t) = r.get("nextCheck").and_then(Value::as_str) { dt { "Next check" } dd { (when(t)) } }
                @if let Some(t) = r.get("failingSince").and_then(Value::as_str) { dt { "Failing since" } dd { (when(t)) } }
                @if let Some(t) = r.get("lapsesAt").and_then(Value::as_str) { dt { "Lapses at" } dd { (when(t)) } }
            }
        }
        @if matches!(status, "pending" | "expired") {
            section class="card" aria-labelledby="publish" {
                h2 id="publish" { "Publish this record" }
                p { "Add one TXT record at " strong { (name) } " with your DNS provider, then check it." }
                (copyable("txt-value", "Value (TXT)", txt))
                (copyable("txt-host", "Host or name (use @ if your provider asks for it relative to the domain)", name))
                (copyable("txt-zone", "As a zone-file line", &format!("{name}. 3600 IN TXT \"{txt}\"")))
                form method="post" action={ "/console/domains/" (id) "/check" } {
                    input type="hidden" name="csrf" value=(frame.csrf);
                    button type="submit" { "Check now" }
                }
            }
        }
        @if let Some(c) = checked { (check_result(c)) }
        @let offered = actions(status);
        @if !offered.is_empty() {
            section aria-labelledby="act" {
                h2 id="act" { "Actions" }
                div class="row wrap" {
                    @for (action, label) in offered {
                        a class={ "button" @if matches!(*action, "remove" | "unverify" | "unclaim") { " secondary" } }
                            href={ "/console/domains/" (id) "/" (action) } { (label) }
                    }
                }
            }
        }
        (covered(name, users))
        section aria-labelledby="history" {
            h2 id="history" { "History" }
            @if history.is_empty() {
                p class="muted" { "No events yet." }
            } @else {
                div class="scroll" {
                    table {
                        caption class="visually-hidden" { "Events of " (name) }
                        thead { tr {
                            th scope="col" { "When" }
                            th scope="col" { "What" }
                            th scope="col" { "Status after" }
                            th scope="col" { "Detail" }
                        } }
                        tbody {
                            @for e in history {
                                tr {
                                    td { (when(text(e, "created"))) }
                                    td { (text(e, "description")) }
                                    td { (text(e, "status")) }
                                    td {
                                        @if let Some(ev) = e.get("evidence").filter(|v| v.is_object()) {
                                            "DNS: " (text(ev, "outcome"))
                                        } @else {
                                            (text(e, "detail"))
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    layout(name, Some(frame), flash, body)
}

/// The organization's users in the domain (SCIM's list), with their account status.
fn covered(name: &str, users: Option<&Value>) -> Markup {
    const CISCO: &str = "urn:scim:schemas:extension:cisco:webexidentity:2.0:User";
    let list = users
        .and_then(|u| u.get("Resources"))
        .and_then(Value::as_array);
    let total = users
        .and_then(|u| u.get("totalResults"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    html! {
        section aria-labelledby="users" {
            h2 id="users" { "Users in " (name) }
            @match list {
                None => p class="muted" { "This sign-in may not read the organization's users." },
                Some(list) if list.is_empty() => p class="muted" { "No user of this organization has an address here." },
                Some(list) => {
                    div class="scroll" {
                        table {
                            caption class="visually-hidden" { "Users with addresses in " (name) }
                            thead { tr {
                                th scope="col" { "User" }
                                th scope="col" { "Name" }
                                th scope="col" { "Status" }
                            } }
                            tbody {
                                @for u in list {
                                    tr {
                                        td { (text(u, "userName")) }
                                        td { (text(u, "displayName")) }
                                        td {
                                            @let status = u.get(CISCO)
                                                .and_then(|c| c.get("accountStatus"))
                                                .and_then(|s| s.get(0))
                                                .and_then(Value::as_str)
                                                .unwrap_or("");
                                            span class={ "badge " @if status == "active" { "ok" } @else { "at_risk" } } { (status) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    @if total > list.len() as u64 {
                        p class="muted" { (total - list.len() as u64) " more (search them with SCIM)." }
                    }
                }
            }
        }
    }
}

/// What a dry run saw, for a person.
fn check_result(c: &Value) -> Markup {
    let verified = c.get("verified").and_then(Value::as_bool).unwrap_or(false);
    let perspectives = c.get("perspectives").and_then(Value::as_array);
    let hints = c.get("hints").and_then(Value::as_array);
    html! {
        section class={ "card check " @if verified { "ok" } @else { "fail" } } aria-labelledby="check" id="check-result" {
            h2 id="check" {
                @if verified { "The record is published" } @else { "The record is not there yet" }
            }
            p class="explain" { (text(c, "description")) }
            @if let Some(hints) = hints.filter(|h| !h.is_empty()) {
                ul class="hints" { @for h in hints { li { (h.as_str().unwrap_or("")) } } }
            }
            @if let Some(ps) = perspectives.filter(|p| !p.is_empty()) {
                div class="scroll" {
                    table {
                        caption { "What each resolver saw" }
                        thead { tr {
                            th scope="col" { "Resolver" }
                            th scope="col" { "Outcome" }
                            th scope="col" { "TXT records seen" }
                        } }
                        tbody {
                            @for p in ps {
                                tr {
                                    td { (text(p, "name")) }
                                    td { (text(p, "outcome")) @if let Some(r) = p.get("rcode").and_then(Value::as_str) { " (" (r) ")" } }
                                    td {
                                        @match p.get("seen").and_then(Value::as_array).filter(|s| !s.is_empty()) {
                                            Some(seen) => ul class="plain" { @for s in seen { li { code { (s.as_str().unwrap_or("")) } } } },
                                            None => span class="muted" { "none" },
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            (copyable("dig", "Repeat the lookup yourself", text(c, "dig")))
        }
    }
}

/// What an action will do, and the button that does it.
pub fn confirm(
    frame: &Frame<'_>,
    d: &Value,
    action: &str,
    title: &str,
    consequence: &str,
) -> Markup {
    let name = text(d, "domain");
    let id = text(d, "id");
    let body = html! {
        p { a href={ "/console/domains/" (id) } { "← " (name) } }
        h1 { (title) }
        p class="consequence" { (consequence) }
        form method="post" action={ "/console/domains/" (id) "/" (action) } class="card" {
            input type="hidden" name="csrf" value=(frame.csrf);
            @if action == "verify" {
                div class="check-option" {
                    input id="claim" name="claim" type="checkbox" value="true";
                    label for="claim" { "Also claim it once verified" }
                }
            }
            div class="row wrap" {
                button type="submit" { (title) }
                a class="button secondary" href={ "/console/domains/" (id) } { "Cancel" }
            }
        }
    };
    layout(title, Some(frame), None, body)
}

/// After a sign-in through the identity provider: on to the domains, by a navigation that
/// starts on this site.
pub fn signed_in() -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="refresh" content="0; url=/console/domains";
                title { "Signed in · claimd" }
                link rel="stylesheet" href="/console/assets/console.css";
            }
            body { main id="main" { h1 { "Signed in" } p { a href="/console/domains" { "Continue to the domains" } } } }
        }
    }
}

/// A page for a refusal that has no page of its own (not found, forbidden).
pub fn problem(frame: Option<&Frame<'_>>, title: &str, message: &str) -> Markup {
    let body = html! {
        h1 { (title) }
        p role="alert" { (message) }
        p { a href="/console/domains" { "Back to the domains" } }
    };
    layout(title, frame, None, body)
}

/// The stylesheet and script, served from the binary.
pub const CSS: &str = include_str!("assets/console.css");
pub const JS: &str = include_str!("assets/console.js");
pub const ICON: &str = include_str!("assets/favicon.svg");
