//! The domain-name parser: any input is either a valid, normalized name that parses to itself
//! again, or a refusal with a reason; nothing panics.
#![no_main]

use claimd_domain::DomainName;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    for parsed in [DomainName::parse(input), DomainName::parse_plain_or_base64(input)] {
        match parsed {
            Ok(name) => {
                let s = name.as_str();
                assert!(s.len() <= 253 && s.split('.').count() >= 2, "{s:?}");
                assert!(s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'));
                assert_eq!(DomainName::parse(s).as_ref(), Ok(&name), "not idempotent: {input:?}");
                assert_eq!(DomainName::from_resource_id(&name.resource_id()).as_ref(), Some(&name));
                let _ = name.registrable();
            }
            Err(reason) => assert!(!reason.to_string().is_empty()),
        }
    }
    let _ = DomainName::from_resource_id(input);
});
