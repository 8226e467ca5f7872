//! dns-server's query rules (`weft_examples::dns::Zone::answer`) on any
//! bytes: no panic; an answer only to what has a query's header, carrying
//! its id, within the UDP limit; the TCP rules within a DNS message's.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use weft_examples::dns::{Zone, EXAMPLE_ZONE};

fn zone() -> &'static Zone {
    static ZONE: OnceLock<Zone> = OnceLock::new();
    ZONE.get_or_init(|| Zone::parse(EXAMPLE_ZONE, None).expect("the example zone parses"))
}

fuzz_target!(|data: &[u8]| {
    if let Some(a) = zone().answer(data) {
        assert!(data.len() >= 12 && data[2] & 0x80 == 0, "answered a non-query");
        assert_eq!(a[..2], data[..2], "the answer carries the query's id");
        assert!(a.len() <= 4096, "an answer over the UDP limit");
    }
    if let Some(a) = zone().answer_stream(data) {
        assert!(a.len() <= u16::MAX as usize);
    }
});
