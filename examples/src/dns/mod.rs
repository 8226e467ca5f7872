//! An authoritative DNS server for one zone: the zone, the rules that turn
//! a query into an answer, and the datagram handler (`dns-server`).
//!
//! Contract:
//! - the zone is a master file (RFC 1035 §5) read with hickory-proto's
//!   parser; the wire format is hickory-proto's too: nothing of DNS is
//!   parsed by hand here;
//! - [`Zone::answer`] takes any bytes and never panics: a datagram shorter
//!   than a header, or one that is itself a response, gets no answer (no
//!   reflection loops); a query that does not decode, or that carries more
//!   or less than one question, or records in its answer or authority
//!   sections, or additional records other than one OPT, gets FORMERR; an
//!   opcode other than QUERY gets NOTIMP; EDNS versions above 0 get
//!   BADVERS; a class other than IN, or a name outside the zone, REFUSED;
//! - names are looked up case-insensitively: the records of the name and
//!   type, else its CNAME (followed inside the zone, at most 8 links) and
//!   the target's records; a name with no records gets NXDOMAIN, a name with
//!   records of other types (or a branch of the tree with names below it)
//!   NOERROR with no answer; both with the zone's SOA as authority; every
//!   answer is authoritative (AA);
//! - an answer larger than the client can take (512 bytes, or its EDNS
//!   payload size up to 4096) is sent with its answer and authority
//!   sections emptied and the TC bit set, so that the client retries over
//!   TCP;
//! - answers over UDP are rate-limited per client prefix and answer
//!   ([`rrl`], as BIND's response-rate limiting): a forged flood does not
//!   make this server an amplifier.

// Lengths and counts here come from peers: no arithmetic on them may wrap.
#![cfg_attr(not(test), warn(clippy::arithmetic_side_effects))]

pub mod rrl;

use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Instant;

use hickory_proto::op::{Edns, Message, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordSet, RecordType, RrKey};
use hickory_proto::serialize::txt::Parser;
use weft_core::{Context, DatagramPacket, Error, Handler, Msg};

/// The zone `dns-server` serves unless given another.
pub const EXAMPLE_ZONE: &str = include_str!("example.zone");

/// The most CNAME links followed for one answer.
const MAX_CNAME_LINKS: usize = 8;
/// The UDP payload size a client without EDNS can take (RFC 1035 §4.2.1).
const CLASSIC_UDP: usize = 512;
/// The largest UDP answer sent, whatever a client's EDNS says.
const MAX_UDP: usize = 4096;
/// The payload size this server announces in its own OPT record.
const OUR_UDP: u16 = 1232;

/// One zone's records, ready to answer from.
#[derive(Debug)]
pub struct Zone {
    origin: LowerName,
    records: BTreeMap<RrKey, RecordSet>,
    /// Every name that exists: owners of records and the names between them
    /// and the origin (empty non-terminals).
    names: HashSet<LowerName>,
    soa: Option<Record>,
}

impl Zone {
    /// Reads a master file; `origin` is used for a file without `$ORIGIN`.
    ///
    /// ```
    /// use weft_examples::dns::{Zone, EXAMPLE_ZONE};
    ///
    /// let zone = Zone::parse(EXAMPLE_ZONE, Some("example.test.")).unwrap();
    /// assert_eq!(zone.origin().to_string(), "example.test.");
    /// ```
    pub fn parse(text: &str, origin: Option<&str>) -> Result<Zone, Error> {
        let origin = match origin {
            Some(o) => Some(Name::from_ascii(o).map_err(|e| bad_zone(e.to_string()))?),
            None => None,
        };
        let (origin, records) = Parser::new(text, None, origin)
            .parse()
            .map_err(|e| bad_zone(e.to_string()))?;
        let origin = LowerName::new(&origin);
        let mut names = HashSet::new();
        for key in records.keys() {
            if !origin.zone_of(&key.name) {
                return Err(bad_zone(format!(
                    "{} is outside the zone {origin}",
                    key.name
                )));
            }
            let mut n = key.name.clone();
            while n != origin && names.insert(n.clone()) {
                n = n.base_name();
            }
        }
        names.insert(origin.clone());
        let soa = records
            .get(&RrKey::new(origin.clone(), RecordType::SOA))
            .and_then(|rs| rs.records_without_rrsigs().next().cloned());
        Ok(Zone {
            origin,
            records,
            names,
            soa,
        })
    }

    /// The zone's origin.
    pub fn origin(&self) -> &LowerName {
        &self.origin
    }

    /// The answer to a datagram, or `None` when it deserves none (see the
    /// module contract). Never panics, whatever `query` holds.
    pub fn answer(&self, query: &[u8]) -> Option<Vec<u8>> {
        self.answer_within(query, true).map(|(a, _)| a)
    }

    /// The answer to a query that came over TCP: as [`answer`](Self::answer),
    /// without the datagram size limit (a message is at most 65,535 bytes).
    pub fn answer_stream(&self, query: &[u8]) -> Option<Vec<u8>> {
        self.answer_within(query, false).map(|(a, _)| a)
    }

    /// [`answer`](Self::answer), with what response-rate limiting counts
    /// it as.
    pub fn answer_counted(&self, query: &[u8]) -> Option<(Vec<u8>, rrl::Identity)> {
        self.answer_within(query, true)
    }

    /// The truncated form of `answer` (one of ours): its header and
    /// question with the TC bit set and no records, what a rate-limited
    /// answer slips out as so that the client retries over TCP.
    pub fn truncated(answer: &[u8]) -> Option<Vec<u8>> {
        let mut m = Message::from_vec(answer).ok()?;
        m.answers.clear();
        m.authorities.clear();
        m.additionals.clear();
        m.metadata.truncation = true;
        m.to_vec().ok()
    }

    fn answer_within(&self, query: &[u8], udp: bool) -> Option<(Vec<u8>, rrl::Identity)> {
        if query.len() < 12 || query[2] & 0x80 != 0 {
            return None;
        }
        let id = u16::from_be_bytes([query[0], query[1]]);
        let op = OpCode::from_u8((query[2] >> 3) & 0x0f);
        let req = match Message::from_vec(query) {
            Ok(m) => m,
            Err(_) => return encode(Message::error_msg(id, op, ResponseCode::FormErr)),
        };
        if req.metadata.op_code != OpCode::Query {
            return encode(Message::error_msg(id, op, ResponseCode::NotImp));
        }
        let well_formed = req.queries.len() == 1
            && req.answers.is_empty()
            && req.authorities.is_empty()
            && req.additionals.is_empty()
            && req.signature.is_none();
        if !well_formed {
            return encode(Message::error_msg(id, op, ResponseCode::FormErr));
        }
        let mut resp = Message::response(id, OpCode::Query);
        resp.metadata.recursion_desired = req.metadata.recursion_desired;
        resp.add_query(req.queries[0].clone());
        let limit = match &req.edns {
            Some(edns) => {
                let mut ours = Edns::new();
                ours.set_max_payload(OUR_UDP);
                resp.set_edns(ours);
                if edns.version() > 0 {
                    resp.metadata.response_code = ResponseCode::BADVERS;
                    return encode(resp);
                }
                usize::from(edns.max_payload()).clamp(CLASSIC_UDP, MAX_UDP)
            }
            None => CLASSIC_UDP,
        };
        let limit = if udp { limit } else { u16::MAX as usize };
        let q = &req.queries[0];
        let name = LowerName::new(q.name());
        if q.query_class() != DNSClass::IN || !self.origin.zone_of(&name) {
            resp.metadata.response_code = ResponseCode::Refused;
            return encode(resp);
        }
        resp.metadata.authoritative = true;
        self.resolve(name, q.query_type(), &mut resp);
        let bytes = resp.to_vec().ok()?;
        if bytes.len() <= limit {
            return Some((bytes, identity_of(&resp)));
        }
        resp.answers.clear();
        resp.authorities.clear();
        resp.metadata.truncation = true;
        encode(resp)
    }

    /// Fills the answer (and, for a negative one, the authority) section.
    fn resolve(&self, mut name: LowerName, qtype: RecordType, resp: &mut Message) {
        for _ in 0..=MAX_CNAME_LINKS {
            let found: Vec<&RecordSet> = if qtype == RecordType::ANY {
                self.records
                    .range(RrKey::new(name.clone(), RecordType::Unknown(0))..)
                    .take_while(|(k, _)| k.name == name)
                    .map(|(_, rs)| rs)
                    .collect()
            } else {
                self.records
                    .get(&RrKey::new(name.clone(), qtype))
                    .into_iter()
                    .collect()
            };
            if !found.is_empty() {
                for rs in found {
                    resp.add_answers(rs.records_without_rrsigs().cloned());
                }
                return;
            }
            let cname = self
                .records
                .get(&RrKey::new(name.clone(), RecordType::CNAME))
                .and_then(|rs| rs.records_without_rrsigs().next());
            match cname {
                Some(rec) if qtype != RecordType::CNAME => {
                    resp.add_answer(rec.clone());
                    let RData::CNAME(target) = &rec.data else {
                        return;
                    };
                    let target = LowerName::new(&target.0);
                    if !self.origin.zone_of(&target) {
                        return; // the client follows it elsewhere
                    }
                    name = target;
                }
                _ => {
                    if resp.answers.is_empty() {
                        if !self.names.contains(&name) {
                            resp.metadata.response_code = ResponseCode::NXDomain;
                        }
                        resp.add_authorities(self.soa.iter().cloned());
                    }
                    return;
                }
            }
        }
    }
}

/// The answer's bytes and what response-rate limiting counts it as.
fn encode(m: Message) -> Option<(Vec<u8>, rrl::Identity)> {
    let identity = identity_of(&m);
    Some((m.to_vec().ok()?, identity))
}

/// What response-rate limiting counts answer `m` as: its question when it
/// is positive or empty, the zone for NXDOMAIN, one identity for errors.
fn identity_of(m: &Message) -> rrl::Identity {
    match m.metadata.response_code {
        ResponseCode::NoError => {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            if let Some(q) = m.queries.first() {
                LowerName::new(q.name()).hash(&mut h);
                u16::from(q.query_type()).hash(&mut h);
            }
            rrl::Identity::Question(h.finish())
        }
        ResponseCode::NXDomain => rrl::Identity::NxDomain,
        _ => rrl::Identity::Error,
    }
}

fn bad_zone(msg: String) -> Error {
    Error::invalid_argument(format!("zone file: {msg}"))
}

/// The datagram handler: answers each query from the zone, from the address
/// it was asked on, rate-limited per client prefix and answer ([`rrl`]); a
/// batch of answers leaves with one flush.
#[derive(Debug)]
pub struct DnsHandler {
    zone: Arc<Zone>,
    rrl: rrl::ResponseRateLimit,
    /// The time of the batch being read (one clock read per batch).
    now: Option<Instant>,
}

impl DnsHandler {
    /// A handler answering from `zone`, with the default rate limit
    /// ([`rrl::RrlConfig::default`]).
    pub fn new(zone: Arc<Zone>) -> DnsHandler {
        DnsHandler::with_rate_limit(zone, rrl::RrlConfig::default())
    }

    /// A handler answering from `zone`, limited by `config` (rate 0: not
    /// limited).
    pub fn with_rate_limit(zone: Arc<Zone>, config: rrl::RrlConfig) -> DnsHandler {
        DnsHandler {
            zone,
            rrl: rrl::ResponseRateLimit::new(config),
            now: None,
        }
    }
}

#[weft_core::handler]
impl Handler for DnsHandler {
    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        let Ok(p) = msg.downcast::<DatagramPacket>() else {
            return;
        };
        let Some((answer, identity)) = self.zone.answer_counted(p.content()) else {
            return;
        };
        if !self.rrl.is_on() {
            ctx.write(p.reply(answer));
            return;
        }
        let now = *self.now.get_or_insert_with(Instant::now);
        match self.rrl.check(p.remote().ip(), identity, now) {
            rrl::Verdict::Send => ctx.write(p.reply(answer)),
            rrl::Verdict::Slip => {
                if let Some(small) = Zone::truncated(&answer) {
                    ctx.write(p.reply(small));
                }
            }
            rrl::Verdict::Drop => {
                tracing::trace!(client = %p.remote(), "answer rate-limited");
            }
        }
    }
    fn channel_read_complete(&mut self, ctx: &mut Context<'_>) {
        self.now = None;
        ctx.flush();
    }
}

/// DNS over TCP (RFC 1035 §4.2.2, RFC 7766): each message behind a 2-byte
/// length, several per connection, answered in order; a message that
/// deserves no answer closes the connection.
pub fn tcp_pipeline(p: &mut weft_core::Pipeline, zone: Arc<Zone>) -> Result<(), Error> {
    use weft_codec::{DecoderHandler, LengthFieldBasedFrameDecoder, LengthFieldPrepender};
    /// A message over TCP: its 2-byte length and up to 64 KiB.
    const TCP_FRAME_MAX: usize = 2 + u16::MAX as usize;
    p.add_last(
        "frames",
        DecoderHandler::new(
            LengthFieldBasedFrameDecoder::builder()
                .length_field_length(2)
                .max_frame_length(TCP_FRAME_MAX)
                .initial_bytes_to_strip(2)
                .build()?,
        ),
    )?;
    p.add_last("length", LengthFieldPrepender::new(2)?)?;
    p.add_last("dns", DnsStream { zone })
}

/// Answers the framed queries of one TCP connection.
#[derive(Debug)]
struct DnsStream {
    zone: Arc<Zone>,
}

#[weft_core::handler]
impl Handler for DnsStream {
    /// An idle timeout or a bad frame ends the connection: routine for a
    /// DNS client (RFC 7766 §6.2.3), so not worth a warning each.
    fn exception_caught(&mut self, ctx: &mut Context<'_>, err: Error) {
        tracing::debug!(error = %err, "closing a DNS connection");
        ctx.close();
    }
    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        let Ok(query) = msg.downcast::<bytes::Bytes>() else {
            return;
        };
        match self.zone.answer_stream(&query) {
            Some(answer) => ctx.write(bytes::Bytes::from(answer)),
            None => ctx.close(),
        }
    }
    fn channel_read_complete(&mut self, ctx: &mut Context<'_>) {
        ctx.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{MessageType, Query};
    use std::str::FromStr;

    fn zone() -> Zone {
        Zone::parse(EXAMPLE_ZONE, None).unwrap()
    }

    fn ask(zone: &Zone, name: &str, ty: RecordType, edns: Option<u16>) -> Message {
        let mut m = Message::query();
        m.metadata.id = 0x4242;
        m.add_query(Query::query(Name::from_str(name).unwrap(), ty));
        if let Some(size) = edns {
            let mut e = Edns::new();
            e.set_max_payload(size);
            m.set_edns(e);
        }
        let answer = zone.answer(&m.to_vec().unwrap()).expect("an answer");
        let a = Message::from_vec(&answer).unwrap();
        assert_eq!(a.metadata.id, 0x4242);
        assert_eq!(a.metadata.message_type, MessageType::Response);
        a
    }

    #[test]
    fn every_record_type_of_the_example_zone() {
        let z = zone();
        let a = ask(&z, "www.example.test.", RecordType::A, None);
        assert_eq!(a.metadata.response_code, ResponseCode::NoError);
        assert!(a.metadata.authoritative);
        assert_eq!(a.answers.len(), 1);
        assert_eq!(a.answers[0].data.to_string(), "192.0.2.10");
        let a = ask(&z, "WWW.Example.TEST.", RecordType::AAAA, None);
        assert_eq!(a.answers[0].data.to_string(), "2001:db8::10");
        let a = ask(&z, "txt.example.test.", RecordType::TXT, None);
        assert!(a.answers[0].data.to_string().contains("hello from weft"));
        // CNAME chains are followed inside the zone.
        let a = ask(&z, "chain.example.test.", RecordType::A, None);
        let types: Vec<RecordType> = a.answers.iter().map(|r| r.record_type()).collect();
        assert_eq!(types, [RecordType::CNAME, RecordType::CNAME, RecordType::A]);
        let a = ask(&z, "alias.example.test.", RecordType::CNAME, None);
        assert_eq!(a.answers.len(), 1);
        // ANY: every record set of the name.
        let a = ask(&z, "www.example.test.", RecordType::ANY, None);
        let mut types: Vec<RecordType> = a.answers.iter().map(|r| r.record_type()).collect();
        types.sort();
        assert_eq!(types, [RecordType::A, RecordType::AAAA]);
    }

    #[test]
    fn missing_names_and_types_and_foreign_names() {
        let z = zone();
        let a = ask(&z, "nope.example.test.", RecordType::A, None);
        assert_eq!(a.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(a.authorities[0].record_type(), RecordType::SOA);
        let a = ask(&z, "www.example.test.", RecordType::MX, None);
        assert_eq!(a.metadata.response_code, ResponseCode::NoError);
        assert!(a.answers.is_empty());
        assert_eq!(a.authorities.len(), 1);
        // An empty non-terminal exists.
        let a = ask(&z, "deep.example.test.", RecordType::A, None);
        assert_eq!(a.metadata.response_code, ResponseCode::NoError);
        let a = ask(&z, "example.org.", RecordType::A, None);
        assert_eq!(a.metadata.response_code, ResponseCode::Refused);
        assert!(!a.metadata.authoritative);
    }

    #[test]
    fn a_large_answer_is_truncated_unless_edns_makes_room() {
        let z = zone();
        let a = ask(&z, "big.example.test.", RecordType::TXT, None);
        assert!(a.metadata.truncation);
        assert!(a.answers.is_empty());
        let mut m = Message::query();
        m.add_query(Query::query(
            Name::from_str("big.example.test.").unwrap(),
            RecordType::TXT,
        ));
        let a = Message::from_vec(&z.answer_stream(&m.to_vec().unwrap()).unwrap()).unwrap();
        assert!(!a.metadata.truncation, "TCP has room");
        assert_eq!(a.answers.len(), 6);
        let a = ask(&z, "big.example.test.", RecordType::TXT, Some(4096));
        assert!(!a.metadata.truncation);
        assert_eq!(a.answers.len(), 6);
        assert_eq!(a.edns.as_ref().unwrap().max_payload(), OUR_UDP);
    }

    #[test]
    fn bad_queries_get_their_error_codes() {
        let z = zone();
        // Two questions.
        let mut m = Message::query();
        m.add_query(Query::query(
            Name::from_str("www.example.test.").unwrap(),
            RecordType::A,
        ));
        m.add_query(Query::query(
            Name::from_str("txt.example.test.").unwrap(),
            RecordType::TXT,
        ));
        let a = Message::from_vec(&z.answer(&m.to_vec().unwrap()).unwrap()).unwrap();
        assert_eq!(a.metadata.response_code, ResponseCode::FormErr);
        // A response is never answered; nor is less than a header.
        let mut r = m.clone();
        r.metadata.message_type = MessageType::Response;
        assert_eq!(z.answer(&r.to_vec().unwrap()), None);
        assert_eq!(z.answer(&[0u8; 11]), None);
        // A header and garbage.
        let mut g = vec![0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
        g.extend_from_slice(&[0xff; 20]);
        let a = Message::from_vec(&z.answer(&g).unwrap()).unwrap();
        assert_eq!(
            (a.metadata.id, a.metadata.response_code),
            (0x1234, ResponseCode::FormErr)
        );
        // Another opcode.
        let mut n = Message::query();
        n.metadata.op_code = OpCode::Notify;
        n.add_query(Query::query(
            Name::from_str("www.example.test.").unwrap(),
            RecordType::SOA,
        ));
        let a = Message::from_vec(&z.answer(&n.to_vec().unwrap()).unwrap()).unwrap();
        assert_eq!(a.metadata.response_code, ResponseCode::NotImp);
    }

    #[test]
    fn seeded_garbage_never_panics() {
        let z = zone();
        let mut valid = Message::query();
        valid.add_query(Query::query(
            Name::from_str("www.example.test.").unwrap(),
            RecordType::A,
        ));
        let valid = valid.to_vec().unwrap();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..20_000 {
            let d: Vec<u8> = if round % 2 == 0 {
                let len = (next() % 600) as usize;
                (0..len).map(|_| next() as u8).collect()
            } else {
                // A valid query with a few bytes changed, cut or extended.
                let mut d = valid.clone();
                for _ in 0..=(next() % 4) {
                    let i = (next() as usize) % d.len();
                    d[i] = next() as u8;
                }
                d.truncate(12 + (next() as usize) % (d.len() + 8).saturating_sub(11));
                d
            };
            if let Some(a) = z.answer(&d) {
                assert!(a.len() <= MAX_UDP);
                assert_eq!(a[..2], d[..2], "the answer carries the query's id");
            }
        }
        assert!(z.answer(&valid).is_some());
    }

    #[test]
    fn a_zone_with_names_outside_its_origin_is_refused() {
        let text = "$ORIGIN a.test.\n@ 300 IN SOA ns hm 1 2 3 4 5\nx.b.test. 300 IN A 10.0.0.1\n";
        assert!(Zone::parse(text, None).is_err());
        assert!(Zone::parse("this is not a zone", Some("a.test.")).is_err());
    }
}
