//! One DNS message in, one out: what CoreDNS's server does around the plugin (message checks,
//! class and EDNS version checks, the reply header, the OPT record, truncation), on top of
//! `hickory-proto`'s wire format. Pure: no sockets.

use hickory_proto::op::{Edns, Header, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{self, DNSClass, Name};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use super::records::{Answer, RData, Rcode, Record, RecordTable, RecordType};

/// How a message came, which bounds the size of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// 512 bytes, or the EDNS buffer size the client advertises (never less than 512).
    Udp,
    /// 65535 bytes.
    Tcp,
}

/// The largest message over UDP without EDNS (RFC 1035).
pub const UDP_MIN_SIZE: usize = 512;
/// The largest message over TCP.
pub const TCP_MAX_SIZE: usize = 65535;

/// Answers one request; `None` when nothing must be sent (not a DNS header, or a response).
///
/// As miekg/dns's server (under CoreDNS) accepts messages: a response is ignored; an opcode
/// other than QUERY or NOTIFY is NOTIMP; anything but one question (at most one answer and one
/// authority record, two additional) or a message that does not parse is FORMERR. Then as
/// CoreDNS's server: a class other than IN is REFUSED, an EDNS version other than 0 is BADVERS,
/// and the answer is cut to the client's buffer (`request.Scrub`).
pub fn respond(table: &RecordTable, request: &[u8], transport: Transport) -> Option<Vec<u8>> {
    let header = Header::read(&mut BinDecoder::new(request)).ok()?;
    if header.message_type() == MessageType::Response {
        return None;
    }
    if !matches!(header.op_code(), OpCode::Query | OpCode::Notify) {
        return rejection(&header, ResponseCode::NotImp);
    }
    if header.query_count() != 1
        || header.answer_count() > 1
        || header.name_server_count() > 1
        || header.additional_count() > 2
    {
        return rejection(&header, ResponseCode::FormErr);
    }
    let Ok(query) = Message::from_vec(request) else {
        return rejection(&header, ResponseCode::FormErr);
    };
    let question = query.queries()[0].clone();
    let limit = match transport {
        Transport::Tcp => TCP_MAX_SIZE,
        Transport::Udp => query.extensions().as_ref().map_or(UDP_MIN_SIZE, |e| {
            usize::from(e.max_payload()).max(UDP_MIN_SIZE)
        }),
    };

    let mut reply = reply_to(&query, &question);
    if question.query_class() != DNSClass::IN {
        reply.set_response_code(ResponseCode::Refused);
        return encode(reply, limit);
    }
    if query
        .extensions()
        .as_ref()
        .is_some_and(|e| e.version() != 0)
    {
        // CoreDNS answers with a fresh OPT record of version 0 and nothing else.
        reply.set_response_code(ResponseCode::BADVERS);
        reply.set_edns(Edns::new());
        return encode(reply, limit);
    }

    let answer = table.lookup(
        &question.name().to_ascii(),
        RecordType::from(u16::from(question.query_type())),
    );
    match answer_message(reply.clone(), &answer) {
        Ok(message) => encode(message, limit),
        Err(_) => {
            reply.set_response_code(ResponseCode::ServFail);
            encode(reply, limit)
        }
    }
}

/// miekg/dns's `SetReply` (id, opcode, RD, CD, the question), plus CoreDNS's `SizeAndDo`: the
/// request's OPT record comes back with version 0, the client's buffer size and DO bit, and no
/// options.
fn reply_to(query: &Message, question: &Query) -> Message {
    let mut reply = Message::new();
    reply
        .set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_op_code(query.op_code())
        .add_query(question.clone());
    if query.op_code() == OpCode::Query {
        reply
            .set_recursion_desired(query.recursion_desired())
            .set_checking_disabled(query.checking_disabled());
    }
    if let Some(edns) = query.extensions() {
        let mut opt = Edns::new();
        opt.set_max_payload(edns.max_payload())
            .set_version(0)
            .set_dnssec_ok(edns.flags().dnssec_ok);
        reply.set_edns(opt);
    }
    reply
}

/// miekg/dns's rejection of a message it will not read: the request's header with QR set and
/// the rcode, no sections.
fn rejection(request: &Header, rcode: ResponseCode) -> Option<Vec<u8>> {
    let mut header = *request;
    header
        .set_message_type(MessageType::Response)
        .set_authoritative(false)
        .set_response_code(rcode)
        .set_query_count(0)
        .set_answer_count(0)
        .set_name_server_count(0)
        .set_additional_count(0);
    if rcode == ResponseCode::FormErr {
        header.set_op_code(OpCode::Query);
    }
    let mut message = Message::new();
    message.set_header(header);
    message.to_vec().ok()
}

fn answer_message(mut reply: Message, answer: &Answer) -> Result<Message, String> {
    reply
        .set_authoritative(answer.authoritative)
        .set_response_code(response_code(answer.rcode));
    for r in &answer.answers {
        reply.add_answer(to_wire(r)?);
    }
    for r in &answer.authority {
        reply.add_name_server(to_wire(r)?);
    }
    for r in &answer.additional {
        reply.add_additional(to_wire(r)?);
    }
    Ok(reply)
}

fn response_code(rcode: Rcode) -> ResponseCode {
    match rcode {
        Rcode::NoError => ResponseCode::NoError,
        Rcode::FormErr => ResponseCode::FormErr,
        Rcode::ServFail => ResponseCode::ServFail,
        Rcode::NxDomain => ResponseCode::NXDomain,
        Rcode::NotImp => ResponseCode::NotImp,
        Rcode::Refused => ResponseCode::Refused,
    }
}

/// A table record in hickory's form.
pub fn to_wire(record: &Record) -> Result<rr::Record, String> {
    let name = |s: &str| Name::from_ascii(s).map_err(|e| format!("bad name {s:?}: {e}"));
    let data = match &record.data {
        RData::A(ip) => rr::RData::A(A(*ip)),
        RData::Aaaa(ip) => rr::RData::AAAA(AAAA(*ip)),
        RData::Srv {
            priority,
            weight,
            port,
            target,
        } => rr::RData::SRV(SRV::new(*priority, *weight, *port, name(target)?)),
        RData::Ptr(target) => rr::RData::PTR(PTR(name(target)?)),
        RData::Ns(target) => rr::RData::NS(NS(name(target)?)),
        RData::Txt(text) => rr::RData::TXT(TXT::new(vec![text.clone()])),
        RData::Soa {
            mname,
            rname,
            serial,
            refresh,
            retry,
            expire,
            minimum,
        } => rr::RData::SOA(SOA::new(
            name(mname)?,
            name(rname)?,
            *serial,
            *refresh as i32,
            *retry as i32,
            *expire as i32,
            *minimum,
        )),
    };
    Ok(rr::Record::from_rdata(
        name(&record.name)?,
        record.ttl,
        data,
    ))
}

/// Encodes `message` within `limit` bytes: when the whole does not fit, as many records as fit
/// are kept in order (answer, authority, additional; the OPT record always) and TC is set, as
/// miekg/dns's `Msg.Truncate` does.
fn encode(mut message: Message, limit: usize) -> Option<Vec<u8>> {
    let whole = message.to_vec().ok()?;
    if whole.len() <= limit {
        return Some(whole);
    }
    let answers = message.take_answers();
    let authority = message.take_name_servers();
    let additional = message.take_additionals();
    let (na, nn) = (answers.len(), authority.len());
    let records: Vec<rr::Record> = answers
        .into_iter()
        .chain(authority)
        .chain(additional)
        .collect();
    let with_prefix = |keep: usize| {
        let mut m = message.clone();
        for (i, r) in records.iter().take(keep).enumerate() {
            match i {
                i if i < na => m.add_answer(r.clone()),
                i if i < na + nn => m.add_name_server(r.clone()),
                _ => m.add_additional(r.clone()),
            };
        }
        m.set_truncated(true);
        m.to_vec().ok()
    };
    // The encoded size grows with every record kept: find the longest prefix that fits.
    let (mut fits, mut too_many) = (0, records.len());
    while too_many - fits > 1 {
        let mid = (fits + too_many) / 2;
        match with_prefix(mid) {
            Some(bytes) if bytes.len() <= limit => fits = mid,
            _ => too_many = mid,
        }
    }
    with_prefix(fits)
}

#[cfg(test)]
mod tests;

/// A DNS message in one line, as a capture shows it: `query A web.default.svc.cluster.local.`
/// or `answer NOERROR web.default.svc.cluster.local. A 10.96.0.2`; `None` when the bytes are
/// not a DNS message.
pub fn summary(bytes: &[u8]) -> Option<String> {
    let message = Message::from_vec(bytes).ok()?;
    let question = message
        .queries()
        .first()
        .map(|q| format!(" {} {}", q.query_type(), q.name()))
        .unwrap_or_default();
    if message.message_type() == MessageType::Query {
        return Some(format!("query{question}"));
    }
    let mut line = format!("answer {}", rcode_name(message.response_code()));
    if message.truncated() {
        line.push_str(" truncated");
    }
    line.push_str(&question);
    for record in message.answers() {
        line.push_str(&format!(" {} {}", record.record_type(), record.data()));
    }
    Some(line)
}

/// An rcode's mnemonic as dig prints it: `NOERROR`, `NXDOMAIN`, `SERVFAIL`, `REFUSED`...
pub fn rcode_name(code: ResponseCode) -> String {
    match code {
        ResponseCode::NoError => "NOERROR".into(),
        ResponseCode::FormErr => "FORMERR".into(),
        ResponseCode::ServFail => "SERVFAIL".into(),
        ResponseCode::NXDomain => "NXDOMAIN".into(),
        ResponseCode::NotImp => "NOTIMP".into(),
        ResponseCode::Refused => "REFUSED".into(),
        other => format!("{other:?}").to_uppercase(),
    }
}
