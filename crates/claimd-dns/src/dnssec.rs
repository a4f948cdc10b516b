//! DNSSEC: whether lookups are validated and against which trust anchor, what one answer's
//! validation concluded ([`Dnssec`]), and — when an answer is bogus — a walk down the chain of
//! trust that says what exactly is wrong, for the people who run the zone.
//!
//! Validation itself is hickory's (`DnssecDnsHandle`): it decides. The walk here only explains:
//! it fetches the same records with checking disabled and re-checks every signature, validity
//! window and DS digest from the answer up to the trust anchor, stopping at the first fault.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use claimd_domain::Timestamp;
use hickory_proto::dnssec::rdata::{DNSKEY, DNSSECRData, DS, RRSIG};
use hickory_proto::dnssec::{TrustAnchors, Verifier as _};
use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::time::Instant;

/// Whether proving lookups are DNSSEC-validated.
#[derive(Clone, Debug)]
pub enum DnssecMode {
    /// Every answer is validated up to `anchor`.
    Validate(TrustAnchor),
    /// No validation (closed networks only): every report says so.
    Off,
}

impl Default for DnssecMode {
    fn default() -> Self {
        Self::Validate(TrustAnchor::iana_root())
    }
}

impl DnssecMode {
    /// One line for reports and readiness: what is validated against what.
    pub fn describe(&self) -> String {
        match self {
            Self::Validate(anchor) => format!("validating against {}", anchor.source),
            Self::Off => "off: answers are not DNSSEC-validated".to_owned(),
        }
    }
}

/// The keys validation starts from, and where they came from.
#[derive(Clone)]
pub struct TrustAnchor {
    /// The root's trusted DNSKEYs.
    keys: Arc<TrustAnchors>,
    /// DS records of the root's trusted keys: the DNSKEYs they match are fetched at first use.
    digests: Vec<DS>,
    /// `the IANA root trust anchor` or the file's path.
    pub source: String,
}

impl std::fmt::Debug for TrustAnchor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustAnchor")
            .field("source", &self.source)
            .field("root_keys", &self.keys.len())
            .field("root_digests", &self.digests.len())
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("trust anchor {path}: {reason}")]
pub struct TrustAnchorError {
    pub path: String,
    pub reason: String,
}

impl TrustAnchor {
    /// The IANA root zone's key-signing keys (KSK-2017 and KSK-2024), built in.
    pub fn iana_root() -> Self {
        Self {
            keys: Arc::new(TrustAnchors::default()),
            digests: Vec::new(),
            source: "the IANA root trust anchor".to_owned(),
        }
    }

    /// Reads DNSKEY or DS records of the trust point in zone-file form, one per line
    /// (`. 3600 IN DNSKEY 257 3 13 <base64>`, `. IN DS 20326 8 2 <hex>`), as unbound's
    /// `trust-anchor-file`; `;` starts a comment. Only the root can be a trust point (claimd
    /// validates whole names).
    pub fn from_file(path: &Path) -> Result<Self, TrustAnchorError> {
        let error = |reason: String| TrustAnchorError {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
        let mut lines = Vec::new();
        let mut digests = Vec::new();
        for (n, raw) in text.lines().enumerate() {
            let line = raw.split(';').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.first() != Some(&".") {
                return Err(error(format!(
                    "line {}: the trust point must be the root (\".\"), not {:?}",
                    n + 1,
                    fields.first().unwrap_or(&"")
                )));
            }
            if fields.iter().any(|f| f.eq_ignore_ascii_case("DNSKEY")) {
                lines.push(line.to_owned());
            } else if let Some(at) = fields.iter().position(|f| f.eq_ignore_ascii_case("DS")) {
                digests.push(
                    parse_ds(&fields[at + 1..])
                        .map_err(|e| error(format!("line {}: {e}", n + 1)))?,
                );
            } else {
                return Err(error(format!(
                    "line {}: expected a DNSKEY or DS record (\". 3600 IN DNSKEY 257 3 13 \
                     <base64>\" or \". IN DS 20326 8 2 <hex>\")",
                    n + 1
                )));
            }
        }
        if lines.is_empty() && digests.is_empty() {
            return Err(error("holds no DNSKEY or DS record".to_owned()));
        }
        let keys = if lines.is_empty() {
            TrustAnchors::empty()
        } else {
            lines
                .join("\n")
                .parse()
                .map_err(|e| error(format!("{e}")))?
        };
        Ok(Self {
            keys: Arc::new(keys),
            digests,
            source: format!("the trust anchor in {}", path.display()),
        })
    }

    /// Whether keys must be fetched before the first validation (DS anchors).
    pub(crate) fn needs_keys(&self) -> bool {
        !self.digests.is_empty()
    }

    /// The trusted keys, as known without asking anyone (DNSKEY anchors).
    pub(crate) fn known_keys(&self) -> Arc<TrustAnchors> {
        self.keys.clone()
    }

    /// The trusted keys, with the root's DNSKEYs that the DS anchors match fetched through
    /// `server`. (The DNSKEY set itself is then validated like any other: it must be signed by
    /// one of these keys.)
    pub(crate) async fn resolve(&self, server: SocketAddr) -> Result<Arc<TrustAnchors>, String> {
        if self.digests.is_empty() {
            return Ok(self.keys.clone());
        }
        let root = Name::root();
        let answer = fetch(server, &root, RecordType::DNSKEY).await?;
        let published: Vec<DNSKEY> = dnskeys(&answer.answers, &root);
        let mut keys = (*self.keys).clone();
        let mut matched = false;
        for key in &published {
            if self.trusts(key) {
                keys.insert(key.public_key());
                matched = true;
            }
        }
        if !matched {
            return Err(format!(
                "none of the root's DNSKEYs (key tags {}) matches the DS records of {} (key tags {})",
                tags(&published),
                self.source,
                self.digests
                    .iter()
                    .map(|d| d.key_tag().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Ok(Arc::new(keys))
    }

    /// Whether `key` (a DNSKEY of the root) is a trust anchor, by key or by digest.
    fn trusts(&self, key: &DNSKEY) -> bool {
        self.keys.contains(key.public_key())
            || self
                .digests
                .iter()
                .any(|d| d.covers(&Name::root(), key).unwrap_or(false))
    }
}

/// `<key tag> <algorithm> <digest type> <hex digest, maybe split>`.
fn parse_ds(fields: &[&str]) -> Result<DS, String> {
    use hickory_proto::dnssec::{Algorithm, DigestType};
    let [tag, algorithm, digest_type, hex @ ..] = fields else {
        return Err("a DS record needs a key tag, an algorithm, a digest type and a digest".into());
    };
    let number = |s: &str, what: &str| -> Result<u32, String> {
        s.parse()
            .map_err(|_| format!("{what} {s:?} is not a number"))
    };
    let tag = u16::try_from(number(tag, "key tag")?).map_err(|_| "key tag out of range")?;
    let algorithm = u8::try_from(number(algorithm, "algorithm")?).map_err(|_| "bad algorithm")?;
    let digest_type =
        u8::try_from(number(digest_type, "digest type")?).map_err(|_| "bad digest type")?;
    let hex: String = hex.concat();
    if hex.is_empty() || !hex.len().is_multiple_of(2) {
        return Err(format!("the digest {hex:?} is not hexadecimal"));
    }
    let digest = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| format!("the digest {hex:?} is not hexadecimal"))?;
    let want = match DigestType::from(digest_type) {
        DigestType::SHA1 => 20,
        DigestType::SHA256 => 32,
        DigestType::SHA384 => 48,
        _ => return Err(format!("digest type {digest_type} is not supported")),
    };
    if digest.len() != want {
        return Err(format!(
            "the digest is {} bytes; one of digest type {digest_type} has {want}",
            digest.len()
        ));
    }
    let digest_type = DigestType::from(digest_type);
    Ok(DS::new(
        tag,
        Algorithm::from_u8(algorithm),
        digest_type,
        digest,
    ))
}

/// What DNSSEC validation concluded about one answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dnssec {
    /// Signed, and every signature valid up to the trust anchor.
    Secure,
    /// Provably unsigned: a parent proves the zone has no DS.
    Insecure,
    /// Signed, but something in the chain fails: never proves anything.
    Bogus,
    /// The validation could not be completed (keys or proofs could not be fetched).
    Indeterminate,
    /// Validation is turned off.
    Off,
}

impl Dnssec {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Secure => "secure",
            Self::Insecure => "insecure",
            Self::Bogus => "bogus",
            Self::Indeterminate => "indeterminate",
            Self::Off => "off",
        }
    }

    /// For a person, after "DNSSEC: ".
    pub fn describe(self) -> &'static str {
        match self {
            Self::Secure => "signed and valid",
            Self::Insecure => "the zone is not signed",
            Self::Bogus => "the signatures do not validate",
            Self::Indeterminate => "validation could not be completed",
            Self::Off => "not validated (DNSSEC validation is off)",
        }
    }

    /// The status of the records of one answer (RRSIGs aside): bogus if any is, secure if all
    /// are, indeterminate if any is, insecure otherwise.
    pub(crate) fn of_records<'a>(records: impl Iterator<Item = &'a Record>) -> Self {
        use hickory_proto::dnssec::Proof;
        let mut all_secure = true;
        let mut indeterminate = false;
        let mut any = false;
        for r in records.filter(|r| r.record_type() != RecordType::RRSIG) {
            any = true;
            match r.proof {
                Proof::Bogus => return Self::Bogus,
                Proof::Secure => {}
                Proof::Indeterminate => {
                    indeterminate = true;
                    all_secure = false;
                }
                Proof::Insecure => all_secure = false,
            }
        }
        match (any, all_secure, indeterminate) {
            (true, true, _) => Self::Secure,
            (_, _, true) => Self::Indeterminate,
            _ => Self::Insecure,
        }
    }
}

/// Walks the chain of trust for TXT at `name` through `server` (checking disabled, so a
/// validating resolver hands the records over as they are) and says what fails first, from the
/// answer up to the trust anchor. Best effort, bounded by `deadline`.
pub(crate) async fn diagnose(
    server: SocketAddr,
    name: &str,
    anchor: &TrustAnchor,
    deadline: Instant,
) -> String {
    let Ok(qname) = Name::from_ascii(name) else {
        return format!("{name} is not a DNS name");
    };
    let walk = Walk {
        server,
        now: Timestamp::now().as_millis() / 1000,
        anchor,
    };
    match tokio::time::timeout_at(deadline, walk.run(qname)).await {
        Ok(Ok(())) => "re-checked step by step, the chain of trust validated: the failure may be \
                       transient, or on the path between claimd and its resolver"
            .to_owned(),
        Ok(Err(fault)) => fault,
        Err(_) => "the chain of trust could not be re-checked in time".to_owned(),
    }
}

/// An RRset and the signatures that came with it.
struct Signed {
    name: Name,
    rtype: RecordType,
    records: Vec<Record>,
    rrsigs: Vec<RRSIG>,
}

impl Signed {
    fn from_section(records: &[Record], name: &Name, rtype: RecordType) -> Self {
        let of_set = |r: &&Record| &r.name == name;
        Self {
            name: name.clone(),
            rtype,
            records: records
                .iter()
                .filter(of_set)
                .filter(|r| r.record_type() == rtype)
                .cloned()
                .collect(),
            rrsigs: records
                .iter()
                .filter(of_set)
                .filter_map(|r| match &r.data {
                    RData::DNSSEC(DNSSECRData::RRSIG(sig)) if sig.input().type_covered == rtype => {
                        Some(sig.clone())
                    }
                    _ => None,
                })
                .collect(),
        }
    }

    /// The zone that signed this set, by its signatures.
    fn signer(&self) -> Option<Name> {
        self.rrsigs.first().map(|s| s.input().signer_name.clone())
    }
}

struct Walk<'a> {
    server: SocketAddr,
    /// Seconds since the epoch.
    now: i64,
    anchor: &'a TrustAnchor,
}

const MAX_DEPTH: usize = 12;

impl Walk<'_> {
    async fn run(&self, qname: Name) -> Result<(), String> {
        let answer = self.query(&qname, RecordType::TXT).await?;
        let mut pending = sets(&answer.answers, &[RecordType::CNAME, RecordType::TXT]);
        if pending.is_empty() {
            // A denial: the NSEC or NSEC3 records that prove it, signed by the zone.
            pending = sets(&answer.authorities, &[RecordType::NSEC, RecordType::NSEC3]);
            if pending.is_empty() {
                return Err(format!(
                    "the answer for TXT {qname} denies the record without an NSEC or NSEC3 proof"
                ));
            }
        }
        let Some(mut zone) = pending.iter().find_map(Signed::signer) else {
            let set = &pending[0];
            return Err(format!(
                "{} {} came without a signature (RRSIG), though its zone is signed",
                set.rtype, set.name
            ));
        };
        for _ in 0..MAX_DEPTH {
            let keys = self.query(&zone, RecordType::DNSKEY).await?;
            let dnskeys = Signed::from_section(&keys.answers, &zone, RecordType::DNSKEY);
            let keyset = dnskeys_of(&dnskeys.records);
            if keyset.is_empty() {
                return Err(format!(
                    "zone {zone} publishes no DNSKEY, yet records are signed in its name"
                ));
            }
            pending.push(dnskeys);
            for set in pending.drain(..) {
                self.check(&set, &zone, &keyset)?;
            }
            if zone.is_root() {
                return if keyset
                    .iter()
                    .any(|k| self.anchor.keys.contains(k.public_key()))
                {
                    Ok(())
                } else {
                    Err(format!(
                        "none of the root's DNSKEYs (key tags {}) is in {}",
                        tags(&keyset),
                        self.anchor.source
                    ))
                };
            }
            let ds = self.query(&zone, RecordType::DS).await?;
            let dsset = Signed::from_section(&ds.answers, &zone, RecordType::DS);
            let digests: Vec<DS> = dsset
                .records
                .iter()
                .filter_map(|r| match &r.data {
                    RData::DNSSEC(DNSSECRData::DS(d)) => Some(d.clone()),
                    _ => None,
                })
                .collect();
            if digests.is_empty() {
                return Err(format!(
                    "zone {zone} is signed but its parent holds no DS record for it: the chain \
                     of trust is broken there (publish the DS at the registrar or parent zone, or \
                     stop signing)"
                ));
            }
            let matched = digests
                .iter()
                .any(|d| keyset.iter().any(|k| d.covers(&zone, k).unwrap_or(false)));
            if !matched {
                let ds_tags: Vec<String> =
                    digests.iter().map(|d| d.key_tag().to_string()).collect();
                return Err(format!(
                    "the DS records for {zone} in its parent (key tags {}) match none of the \
                     zone's DNSKEYs (key tags {}): the zone was re-keyed without updating the DS \
                     at the parent",
                    ds_tags.join(", "),
                    tags(&keyset)
                ));
            }
            let parent = dsset.signer().unwrap_or_else(|| zone.base_name());
            pending.push(dsset);
            zone = parent;
        }
        Err("the chain of trust is deeper than claimd follows".to_owned())
    }

    /// Whether one of `set`'s signatures is in its validity window and made by one of `keys`.
    fn check(&self, set: &Signed, zone: &Name, keys: &[DNSKEY]) -> Result<(), String> {
        let what = format!("{} {}", set.rtype, set.name);
        if set.rrsigs.is_empty() {
            return Err(format!(
                "{what} came without a signature (RRSIG), though zone {zone} is signed"
            ));
        }
        let mut faults = Vec::new();
        for sig in &set.rrsigs {
            let input = sig.input();
            let by = format!("key tag {} ({})", input.key_tag, input.algorithm);
            let expires = i64::from(input.sig_expiration.get());
            let incepts = i64::from(input.sig_inception.get());
            if expires < self.now {
                faults.push(format!(
                    "the signature over {what} by {by} expired at {}",
                    at(expires)
                ));
                continue;
            }
            if incepts > self.now {
                faults.push(format!(
                    "the signature over {what} by {by} is not valid before {}",
                    at(incepts)
                ));
                continue;
            }
            let candidates: Vec<&DNSKEY> = keys
                .iter()
                .filter(|k| {
                    k.algorithm() == input.algorithm
                        && k.calculate_key_tag().ok() == Some(input.key_tag)
                })
                .collect();
            if candidates.is_empty() {
                faults.push(format!(
                    "{what} is signed by {by}, which is not among zone {zone}'s DNSKEYs (key tags {})",
                    tags(keys)
                ));
                continue;
            }
            let valid = candidates.iter().any(|k| {
                k.verify_rrsig(&set.name, DNSClass::IN, sig, set.records.iter())
                    .is_ok()
            });
            if valid {
                return Ok(());
            }
            faults.push(format!(
                "the signature over {what} by {by} does not match the data: the answer was \
                 altered on the way, or the zone signed other data than it serves"
            ));
        }
        Err(faults.join("; "))
    }

    async fn query(&self, name: &Name, rtype: RecordType) -> Result<Message, String> {
        fetch(self.server, name, rtype).await
    }
}

/// One query with DO and CD set (the records as they are, signatures included), over UDP,
/// then TCP when the answer is truncated.
async fn fetch(server: SocketAddr, name: &Name, rtype: RecordType) -> Result<Message, String> {
    let mut msg = Message::query();
    msg.add_query(Query::query(name.clone(), rtype));
    msg.metadata.recursion_desired = true;
    msg.metadata.checking_disabled = true;
    let mut edns = Edns::new();
    edns.set_dnssec_ok(true);
    edns.set_max_payload(1232);
    msg.set_edns(edns);
    let id = msg.metadata.id;
    let bytes = msg.to_vec().map_err(|e| e.to_string())?;
    let fail = |e: std::io::Error| format!("{rtype} {name} could not be fetched: {e}");
    let socket = tokio::net::UdpSocket::bind(if server.ip().is_ipv6() {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    })
    .await
    .map_err(fail)?;
    socket.connect(server).await.map_err(fail)?;
    socket.send(&bytes).await.map_err(fail)?;
    let mut buf = vec![0u8; 65535];
    let reply = loop {
        let n = tokio::time::timeout(Duration::from_secs(2), socket.recv(&mut buf))
            .await
            .map_err(|_| format!("{rtype} {name} could not be fetched: no answer"))?
            .map_err(fail)?;
        if let Ok(reply) = Message::from_vec(&buf[..n])
            && reply.metadata.id == id
        {
            break reply;
        }
    };
    if !reply.metadata.truncation {
        return Ok(reply);
    }
    let mut tcp = tokio::net::TcpStream::connect(server).await.map_err(fail)?;
    let len = u16::try_from(bytes.len()).map_err(|_| "query too long".to_owned())?;
    tcp.write_all(&len.to_be_bytes()).await.map_err(fail)?;
    tcp.write_all(&bytes).await.map_err(fail)?;
    let mut len = [0u8; 2];
    tcp.read_exact(&mut len).await.map_err(fail)?;
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
    tcp.read_exact(&mut body).await.map_err(fail)?;
    Message::from_vec(&body).map_err(|e| format!("{rtype} {name}: malformed answer: {e}"))
}

/// The RRsets of `types` in a section, with their signatures.
fn sets(section: &[Record], types: &[RecordType]) -> Vec<Signed> {
    types
        .iter()
        .flat_map(|&rtype| {
            owners(section, rtype)
                .into_iter()
                .map(move |owner| Signed::from_section(section, &owner, rtype))
        })
        .collect()
}

fn owners(records: &[Record], rtype: RecordType) -> Vec<Name> {
    let mut names: Vec<Name> = records
        .iter()
        .filter(|r| r.record_type() == rtype)
        .map(|r| r.name.clone())
        .collect();
    names.dedup();
    names
}

fn dnskeys(records: &[Record], owner: &Name) -> Vec<DNSKEY> {
    let own: Vec<Record> = records
        .iter()
        .filter(|r| &r.name == owner)
        .cloned()
        .collect();
    dnskeys_of(&own)
}

fn dnskeys_of(records: &[Record]) -> Vec<DNSKEY> {
    records
        .iter()
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::DNSKEY(k)) => Some(k.clone()),
            _ => None,
        })
        .collect()
}

fn tags(keys: &[DNSKEY]) -> String {
    let tags: Vec<String> = keys
        .iter()
        .filter_map(|k| k.calculate_key_tag().ok())
        .map(|t| t.to_string())
        .collect();
    tags.join(", ")
}

fn at(unix_seconds: i64) -> String {
    Timestamp::from_millis(unix_seconds.saturating_mul(1000)).rfc3339()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_anchor_files() {
        let dir = std::env::temp_dir().join(format!("claimd-anchor-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good");
        std::fs::write(
            &good,
            "; the test root\n. 3600 IN DNSKEY 257 3 13 \
             mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+KkxLbxILfDLUT0rAK9iUzy1L53eKGQ==\n",
        )
        .unwrap();
        let anchor = TrustAnchor::from_file(&good).unwrap();
        assert_eq!(anchor.keys.len(), 1);
        assert!(anchor.source.contains("good"));
        for (text, expect) in [
            ("", "holds no DNSKEY or DS"),
            (
                "example. 3600 IN DNSKEY 257 3 13 AAAA\n",
                "must be the root",
            ),
            (". 3600 IN A 192.0.2.1\n", "expected a DNSKEY or DS"),
            (
                ". IN DS 20326 8 2 E06D44B8\n",
                "4 bytes; one of digest type 2 has 32",
            ),
            (". IN DS 20326 8 2 XYZ1\n", "not hexadecimal"),
            (". IN DS 20326 8 9 E06D44B8\n", "digest type 9"),
            (". IN DS 20326 8\n", "needs a key tag"),
        ] {
            let bad = dir.join("bad");
            std::fs::write(&bad, text).unwrap();
            let e = TrustAnchor::from_file(&bad).unwrap_err().to_string();
            assert!(e.contains(expect), "{text:?}: {e}");
        }
        // The IANA root's KSK-2017 as unbound's root.key gives it, the digest split in two.
        let ds = dir.join("ds");
        std::fs::write(
            &ds,
            ". 172800 IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D084 \
             58E880409BBC683457104237C7F8EC8D\n",
        )
        .unwrap();
        let anchor = TrustAnchor::from_file(&ds).unwrap();
        assert!(anchor.needs_keys() && anchor.keys.is_empty());
        assert_eq!(anchor.digests[0].key_tag(), 20326);
        assert_eq!(anchor.digests[0].digest().len(), 32);
        let missing = TrustAnchor::from_file(&dir.join("missing")).unwrap_err();
        assert!(missing.to_string().contains("missing"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_default_is_the_iana_root() {
        match DnssecMode::default() {
            DnssecMode::Validate(a) => {
                assert_eq!(a.keys.len(), 2);
                assert!(DnssecMode::Validate(a).describe().contains("IANA root"));
            }
            DnssecMode::Off => panic!("validation must be the default"),
        }
        assert!(DnssecMode::Off.describe().contains("off"));
    }
}
