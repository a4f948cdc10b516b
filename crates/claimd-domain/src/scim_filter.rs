//! SCIM filters (RFC 7644, section 3.4.2.2) over the user attributes claimd can search:
//! parsed into a tree, validated against each attribute's type, never spliced into SQL (the
//! stores turn the tree into a statement with bound parameters).
//!
//! Grammar: `attrPath op value`, `attrPath pr`, `not ( filter )`, `( filter )`, joined with
//! `and` (binding tighter) and `or`. Attribute names and operators are case-insensitive, and
//! an attribute may carry its schema's URN (`urn:ietf:params:scim:schemas:core:2.0:User:userName`).

use std::fmt;

use crate::Timestamp;

/// The attributes a filter may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Attribute {
    Id,
    UserName,
    EmailsValue,
    DisplayName,
    GivenName,
    FamilyName,
    ExternalId,
    Active,
    Created,
    LastModified,
}

/// What an attribute holds, which decides the operators and literals it takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Compared without regard to case (SCIM `caseExact: false`).
    Text,
    /// Compared exactly (`id`, `externalId`).
    ExactText,
    Boolean,
    DateTime,
}

const CORE_USER: &str = "urn:ietf:params:scim:schemas:core:2.0:user:";

impl Attribute {
    /// The attribute a (case-insensitive, possibly URN-qualified) path names.
    pub fn named(path: &str) -> Option<Self> {
        let lower = path.to_ascii_lowercase();
        let bare = lower.strip_prefix(CORE_USER).unwrap_or(&lower);
        Some(match bare {
            "id" => Self::Id,
            "username" => Self::UserName,
            "emails" | "emails.value" => Self::EmailsValue,
            "displayname" => Self::DisplayName,
            "name.givenname" => Self::GivenName,
            "name.familyname" => Self::FamilyName,
            "externalid" => Self::ExternalId,
            "active" => Self::Active,
            "meta.created" => Self::Created,
            "meta.lastmodified" => Self::LastModified,
            _ => return None,
        })
    }

    pub fn kind(self) -> Kind {
        match self {
            Self::Id | Self::ExternalId => Kind::ExactText,
            Self::Active => Kind::Boolean,
            Self::Created | Self::LastModified => Kind::DateTime,
            _ => Kind::Text,
        }
    }

    /// The attribute's name as SCIM spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::UserName => "userName",
            Self::EmailsValue => "emails.value",
            Self::DisplayName => "displayName",
            Self::GivenName => "name.givenName",
            Self::FamilyName => "name.familyName",
            Self::ExternalId => "externalId",
            Self::Active => "active",
            Self::Created => "meta.created",
            Self::LastModified => "meta.lastModified",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    fn named(word: &str) -> Option<Self> {
        Some(match word.to_ascii_lowercase().as_str() {
            "eq" => Self::Eq,
            "ne" => Self::Ne,
            "co" => Self::Co,
            "sw" => Self::Sw,
            "ew" => Self::Ew,
            "gt" => Self::Gt,
            "ge" => Self::Ge,
            "lt" => Self::Lt,
            "le" => Self::Le,
            _ => return None,
        })
    }
}

/// A comparison's value, already of the attribute's type. Text of a case-insensitive
/// attribute is lowercased, as the stores keep those attributes' search keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Text(String),
    Boolean(bool),
    Time(Timestamp),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filter {
    /// `attr pr`: the attribute has a value.
    Present(Attribute),
    Compare(Attribute, Op, Value),
    /// `attr eq null` is "has no value"; `attr ne null` is `attr pr`.
    Absent(Attribute),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
}

/// Why a filter was refused; the SCIM `scimType` is `invalidFilter`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("filter: {0}")]
pub struct FilterError(pub String);

fn refuse<T>(message: impl Into<String>) -> Result<T, FilterError> {
    Err(FilterError(message.into()))
}

/// Longest filter accepted, and deepest nesting: a filter is a query, not a program.
const MAX_LEN: usize = 4096;
const MAX_DEPTH: usize = 32;
/// Most comparisons in one filter.
const MAX_TERMS: usize = 64;

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Word(String),
    Str(String),
    Open,
    Close,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Word(w) => write!(f, "'{w}'"),
            Self::Str(s) => write!(f, "\"{s}\""),
            Self::Open => f.write_str("'('"),
            Self::Close => f.write_str("')'"),
        }
    }
}

fn tokens(input: &str) -> Result<Vec<Token>, FilterError> {
    let mut out = Vec::new();
    let mut chars = input.char_indices().peekable();
    while let Some(&(at, c)) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                out.push(Token::Open);
            }
            ')' => {
                chars.next();
                out.push(Token::Close);
            }
            '"' => {
                // A JSON string, escapes and all.
                let mut end = None;
                let mut escaped = false;
                for (i, c) in input[at + 1..].char_indices() {
                    match c {
                        _ if escaped => escaped = false,
                        '\\' => escaped = true,
                        '"' => {
                            end = Some(at + 1 + i);
                            break;
                        }
                        _ => {}
                    }
                }
                let Some(end) = end else {
                    return refuse(format!("unterminated string at character {}", at + 1));
                };
                let text: String = serde_json::from_str(&input[at..=end]).map_err(|_| {
                    FilterError(format!("malformed string at character {}", at + 1))
                })?;
                out.push(Token::Str(text));
                while chars.peek().is_some_and(|&(i, _)| i <= end) {
                    chars.next();
                }
            }
            '[' | ']' => {
                return refuse(format!(
                    "value paths ('[...]', at character {}) are not supported in filters; use emails.value",
                    at + 1
                ));
            }
            _ => {
                let mut word = String::new();
                while let Some(&(_, c)) = chars.peek() {
                    if c.is_whitespace() || matches!(c, '(' | ')' | '"' | '[' | ']') {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                out.push(Token::Word(word));
            }
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    terms: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
    }

    fn or(&mut self, depth: usize) -> Result<Filter, FilterError> {
        let mut left = self.and(depth)?;
        while self.keyword("or") {
            self.at += 1;
            let right = self.and(depth)?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self, depth: usize) -> Result<Filter, FilterError> {
        let mut left = self.unary(depth)?;
        while self.keyword("and") {
            self.at += 1;
            let right = self.unary(depth)?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self, depth: usize) -> Result<Filter, FilterError> {
        if depth > MAX_DEPTH {
            return refuse(format!("nested deeper than {MAX_DEPTH} levels"));
        }
        if self.keyword("not") {
            self.at += 1;
            if self.peek() != Some(&Token::Open) {
                return refuse("'not' must be followed by a parenthesized filter");
            }
            return Ok(Filter::Not(Box::new(self.unary(depth + 1)?)));
        }
        if self.peek() == Some(&Token::Open) {
            self.at += 1;
            let inner = self.or(depth + 1)?;
            return match self.next() {
                Some(Token::Close) => Ok(inner),
                Some(t) => refuse(format!("expected ')' but found {t}")),
                None => refuse("a '(' is never closed"),
            };
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Filter, FilterError> {
        self.terms += 1;
        if self.terms > MAX_TERMS {
            return refuse(format!("more than {MAX_TERMS} comparisons"));
        }
        let path = match self.next() {
            Some(Token::Word(w)) => w,
            Some(t) => return refuse(format!("expected an attribute but found {t}")),
            None => return refuse("expected an attribute but the filter ends"),
        };
        let Some(attr) = Attribute::named(&path) else {
            return refuse(format!(
                "unknown or unsearchable attribute '{path}' (searchable: id, userName, \
                 emails.value, displayName, name.givenName, name.familyName, externalId, \
                 active, meta.created, meta.lastModified)"
            ));
        };
        let op = match self.next() {
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("pr") => {
                return Ok(Filter::Present(attr));
            }
            Some(Token::Word(w)) => Op::named(&w)
                .ok_or_else(|| FilterError(format!("unknown operator '{w}' after {path}")))?,
            Some(t) => return refuse(format!("expected an operator after {path} but found {t}")),
            None => return refuse(format!("expected an operator after {path}")),
        };
        let literal = self
            .next()
            .ok_or_else(|| FilterError(format!("expected a value after {path}")))?;
        value(attr, op, literal)
    }
}

/// The comparison `attr op literal`, or why it makes no sense for the attribute.
fn value(attr: Attribute, op: Op, literal: Token) -> Result<Filter, FilterError> {
    let name = attr.name();
    if let Token::Word(w) = &literal
        && w == "null"
    {
        return match op {
            Op::Eq => Ok(Filter::Absent(attr)),
            Op::Ne => Ok(Filter::Present(attr)),
            _ => refuse(format!("{name}: null can only be compared with eq or ne")),
        };
    }
    let ordering = matches!(op, Op::Gt | Op::Ge | Op::Lt | Op::Le);
    let substring = matches!(op, Op::Co | Op::Sw | Op::Ew);
    let v = match (attr.kind(), literal) {
        (Kind::Boolean, Token::Word(w)) if w == "true" || w == "false" => {
            if ordering || substring {
                return refuse(format!("{name} is a boolean: use eq, ne or pr"));
            }
            Value::Boolean(w == "true")
        }
        (Kind::Boolean, t) => return refuse(format!("{name} is a boolean, not {t}")),
        (Kind::DateTime, Token::Str(s)) => {
            if substring {
                return refuse(format!(
                    "{name} is a date-time: use eq, ne, gt, ge, lt, le or pr"
                ));
            }
            let t = time::OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339)
                .map_err(|_| {
                    FilterError(format!("{name}: \"{s}\" is not an RFC 3339 date-time"))
                })?;
            let ms = i64::try_from(t.unix_timestamp_nanos() / 1_000_000)
                .map_err(|_| FilterError(format!("{name}: \"{s}\" is out of range")))?;
            Value::Time(Timestamp::from_millis(ms))
        }
        (Kind::Text, Token::Str(s)) => Value::Text(s.to_lowercase()),
        (Kind::ExactText, Token::Str(s)) => Value::Text(s),
        (_, t) => return refuse(format!("{name} takes a quoted string, not {t}")),
    };
    Ok(Filter::Compare(attr, op, v))
}

/// Parses a SCIM filter.
pub fn parse_filter(input: &str) -> Result<Filter, FilterError> {
    if input.len() > MAX_LEN {
        return refuse(format!("longer than {MAX_LEN} characters"));
    }
    let tokens = tokens(input)?;
    if tokens.is_empty() {
        return refuse("empty");
    }
    let mut parser = Parser {
        tokens,
        at: 0,
        terms: 0,
    };
    let filter = parser.or(0)?;
    match parser.next() {
        None => Ok(filter),
        Some(t) => refuse(format!("unexpected {t} after a complete filter")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(attr: Attribute, op: Op, text: &str) -> Filter {
        Filter::Compare(attr, op, Value::Text(text.into()))
    }

    #[test]
    fn comparisons_of_every_operator_and_presence() {
        use Attribute::*;
        assert_eq!(
            parse_filter(r#"userName eq "Bjensen@Example.com""#).unwrap(),
            cmp(UserName, Op::Eq, "bjensen@example.com")
        );
        for (word, op) in [
            ("eq", Op::Eq),
            ("NE", Op::Ne),
            ("co", Op::Co),
            ("Sw", Op::Sw),
            ("ew", Op::Ew),
            ("gt", Op::Gt),
            ("ge", Op::Ge),
            ("lt", Op::Lt),
            ("le", Op::Le),
        ] {
            assert_eq!(
                parse_filter(&format!(r#"displayName {word} "B""#)).unwrap(),
                cmp(DisplayName, op, "b")
            );
        }
        assert!(parse_filter("title pr").is_err());
        assert_eq!(
            parse_filter("externalId pr").unwrap(),
            Filter::Present(ExternalId)
        );
        assert_eq!(
            parse_filter(r#"externalId eq "AbC""#).unwrap(),
            cmp(ExternalId, Op::Eq, "AbC"),
            "externalId is case-exact"
        );
        assert_eq!(
            parse_filter("urn:ietf:params:scim:schemas:core:2.0:User:userName sw \"j\"").unwrap(),
            cmp(UserName, Op::Sw, "j")
        );
        assert_eq!(
            parse_filter(r#"emails.value co "@example.com""#).unwrap(),
            cmp(EmailsValue, Op::Co, "@example.com")
        );
        assert_eq!(
            parse_filter("active eq false").unwrap(),
            Filter::Compare(Active, Op::Eq, Value::Boolean(false))
        );
        assert_eq!(
            parse_filter(r#"meta.lastModified gt "2011-05-13T04:42:34Z""#).unwrap(),
            Filter::Compare(
                LastModified,
                Op::Gt,
                Value::Time(Timestamp::from_millis(1_305_261_754_000))
            )
        );
        assert_eq!(
            parse_filter("displayName eq null").unwrap(),
            Filter::Absent(DisplayName)
        );
        assert_eq!(
            parse_filter("displayName ne null").unwrap(),
            Filter::Present(DisplayName)
        );
        assert_eq!(
            parse_filter(r#"displayName eq "say \"hi\"""#).unwrap(),
            cmp(DisplayName, Op::Eq, "say \"hi\"")
        );
    }

    #[test]
    fn and_binds_tighter_than_or_and_parentheses_and_not_group() {
        use Attribute::*;
        let a = || cmp(UserName, Op::Eq, "a");
        let b = || Filter::Present(DisplayName);
        let c = || Filter::Compare(Active, Op::Eq, Value::Boolean(true));
        let and = |l, r| Filter::And(Box::new(l), Box::new(r));
        let or = |l, r| Filter::Or(Box::new(l), Box::new(r));
        assert_eq!(
            parse_filter(r#"userName eq "a" or displayName pr and active eq true"#).unwrap(),
            or(a(), and(b(), c()))
        );
        assert_eq!(
            parse_filter(r#"(userName eq "a" or displayName pr) and active eq true"#).unwrap(),
            and(or(a(), b()), c())
        );
        assert_eq!(
            parse_filter(r#"not (userName eq "a") AND displayName pr"#).unwrap(),
            and(Filter::Not(Box::new(a())), b())
        );
    }

    #[test]
    fn nonsense_is_refused_with_what_is_wrong() {
        let refused = |f: &str, says: &str| {
            let e = parse_filter(f).unwrap_err().to_string();
            assert!(e.contains(says), "{f}: {e}");
        };
        refused("", "empty");
        refused("userName", "expected an operator");
        refused("userName eq", "expected a value");
        refused(r#"userName xx "a""#, "unknown operator 'xx'");
        refused(
            r#"password eq "a""#,
            "unknown or unsearchable attribute 'password'",
        );
        refused(r#"userName eq "a"#, "unterminated string");
        refused(r#"userName eq a"#, "takes a quoted string");
        refused(r#"(userName eq "a""#, "never closed");
        refused(r#"userName eq "a")"#, "unexpected ')'");
        refused(r#"userName eq "a" userName eq "b""#, "unexpected");
        refused(r#"active eq "yes""#, "boolean");
        refused("active gt true", "use eq, ne or pr");
        refused(r#"meta.lastModified co "2011""#, "date-time");
        refused(r#"meta.lastModified gt "yesterday""#, "not an RFC 3339");
        refused(r#"userName gt null"#, "null can only");
        refused(r#"not userName eq "a""#, "parenthesized");
        refused(r#"emails[type eq "work"]"#, "value paths");
        refused(&"(".repeat(100), "deeper");
        let many = vec![r#"userName eq "a""#; 70].join(" or ");
        refused(&many, "more than 64");
        refused(&"x".repeat(5000), "longer than");
    }
}
