//! One client connection: HTTP/1.1 requests over TLS, keep-alive, and the API's answers.
//!
//! A request is answered in full (`Content-Length`) or, for a watch, as a chunked stream of
//! newline-delimited JSON events until `timeoutSeconds`, the client going away or the server
//! stopping.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::selector::{FieldSelector, LabelSelector};
use super::store::{EventType, Resource};
use super::{Served, discovery};

/// Longest request head or body podpath reads.
const MAX_REQUEST: usize = 1 << 20;
/// How often a watch that asked for bookmarks gets one while nothing changes.
pub const BOOKMARK_INTERVAL: Duration = Duration::from_secs(10);
/// How long a watch lasts when it gives no `timeoutSeconds` (kube-apiserver: 30 to 60 min).
const DEFAULT_WATCH: Duration = Duration::from_secs(1800);

/// A parsed request.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: HashMap<String, String>,
    pub authorization: Option<String>,
    pub close: bool,
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Splits a request target into its decoded path and query parameters.
pub fn split_target(target: &str) -> (String, HashMap<String, String>) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    (percent_decode(path), query)
}

/// Reads one request (head and body, the body dropped); `Ok(None)` when the client closed.
fn read_request(stream: &mut impl Read, buf: &mut Vec<u8>) -> io::Result<Option<Request>> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Request::new(&mut headers);
        match parsed.parse(buf) {
            Ok(httparse::Status::Complete(head_len)) => {
                let mut request = Request {
                    method: parsed.method.unwrap_or("GET").to_string(),
                    ..Request::default()
                };
                (request.path, request.query) = split_target(parsed.path.unwrap_or("/"));
                let mut body_len = 0usize;
                for h in parsed.headers.iter() {
                    let value = String::from_utf8_lossy(h.value).trim().to_string();
                    match h.name.to_ascii_lowercase().as_str() {
                        "authorization" => request.authorization = Some(value),
                        "content-length" => body_len = value.parse().unwrap_or(0),
                        "connection" => request.close |= value.eq_ignore_ascii_case("close"),
                        // Chunked request bodies are not read: answer, then close.
                        "transfer-encoding" => request.close = true,
                        _ => {}
                    }
                }
                if body_len > MAX_REQUEST {
                    return Err(io::Error::other("request body too large"));
                }
                buf.drain(..head_len);
                while buf.len() < body_len {
                    let mut chunk = [0u8; 16384];
                    let n = stream.read(&mut chunk)?;
                    if n == 0 {
                        return Ok(None);
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                buf.drain(..body_len);
                return Ok(Some(request));
            }
            Ok(httparse::Status::Partial) => {}
            Err(e) => return Err(io::Error::other(format!("bad request: {e}"))),
        }
        if buf.len() > MAX_REQUEST {
            return Err(io::Error::other("request head too large"));
        }
        let mut chunk = [0u8; 16384];
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A `Status` object, as the API answers failures.
pub fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": if code < 400 { "Success" } else { "Failure" },
        "message": message, "reason": reason, "code": code,
    })
}

fn reason_phrase(code: u16) -> &'static str {
    match code {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        410 => "Gone",
        _ => "Internal Server Error",
    }
}

fn write_full(
    stream: &mut impl Write,
    code: u16,
    content_type: &str,
    body: &[u8],
) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {code} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-cache, private\r\n\r\n",
        reason_phrase(code),
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()
}

fn write_json(stream: &mut impl Write, code: u16, body: &Value) -> io::Result<()> {
    write_full(
        stream,
        code,
        "application/json",
        body.to_string().as_bytes(),
    )
}

fn write_chunk(stream: &mut impl Write, data: &[u8]) -> io::Result<()> {
    stream.write_all(format!("{:x}\r\n", data.len()).as_bytes())?;
    stream.write_all(data)?;
    stream.write_all(b"\r\n")?;
    stream.flush()
}

/// Serves requests on one connection until the client closes it or the server stops.
pub fn serve_connection(stream: &mut (impl Read + Write), served: &Served) -> io::Result<()> {
    let mut buf = Vec::new();
    while !served.store.stopped() {
        let Some(request) = read_request(stream, &mut buf)? else {
            return Ok(());
        };
        let expected = format!("Bearer {}", served.token);
        if request.authorization.as_deref() != Some(expected.as_str()) {
            write_json(stream, 401, &status(401, "Unauthorized", "Unauthorized"))?;
        } else {
            answer(stream, &request, served)?;
        }
        if request.close {
            return Ok(());
        }
    }
    Ok(())
}

/// What a path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Version,
    Health,
    ApiVersions,
    ApiGroups,
    /// The resources of a group version (`""` for core).
    Resources(String),
    /// Events: accepted and dropped.
    Events,
    /// A collection or one object of a served resource.
    Objects {
        resource: Resource,
        namespace: Option<String>,
        name: Option<String>,
    },
    NotFound,
}

/// Maps a path to what it names.
pub fn route(path: &str) -> Route {
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let (group, rest) = match parts.as_slice() {
        ["version"] => return Route::Version,
        ["healthz" | "readyz" | "livez", ..] => return Route::Health,
        ["api"] => return Route::ApiVersions,
        ["apis"] => return Route::ApiGroups,
        ["api", "v1"] => return Route::Resources(String::new()),
        ["apis", g, "v1"] if discovery::GROUPS.contains(g) => {
            return Route::Resources((*g).to_string());
        }
        ["api", "v1", rest @ ..] => ("", rest),
        ["apis", g, "v1", rest @ ..] if discovery::GROUPS.contains(g) => (*g, rest),
        _ => return Route::NotFound,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some((*ns).to_string()), rest),
        _ => (None, rest),
    };
    let (plural, name) = match rest {
        [plural] => (*plural, None),
        [plural, name] => (*plural, Some((*name).to_string())),
        _ => return Route::NotFound,
    };
    if plural == "events" && (group.is_empty() || group == "events.k8s.io") {
        return Route::Events;
    }
    match Resource::find(group, plural) {
        Some(resource) if namespace.is_none() || resource.namespaced() => Route::Objects {
            resource,
            namespace,
            name,
        },
        _ => Route::NotFound,
    }
}

fn truthy(v: Option<&String>) -> bool {
    v.is_some_and(|v| v == "1" || v == "true")
}

fn answer(stream: &mut (impl Read + Write), request: &Request, served: &Served) -> io::Result<()> {
    let route = route(&request.path);
    let read_only = request.method == "GET" || request.method == "HEAD";
    match (&route, read_only) {
        (Route::Events, false) if matches!(request.method.as_str(), "POST" | "PATCH" | "PUT") => {
            // The client's event is dropped; it gets an answer of the shape it expects.
            let code = if request.method == "POST" { 201 } else { 200 };
            return write_json(
                stream,
                code,
                &json!({ "kind": "Event", "apiVersion": "v1", "metadata": {} }),
            );
        }
        (Route::NotFound, _) => {
            let message = format!(
                "the server could not find the requested resource ({})",
                request.path
            );
            return write_json(stream, 404, &status(404, "NotFound", &message));
        }
        (_, false) => {
            let message = format!(
                "{} is not allowed: podpath serves its cluster read-only",
                request.method
            );
            return write_json(stream, 405, &status(405, "MethodNotAllowed", &message));
        }
        _ => {}
    }
    match route {
        Route::Version => write_json(stream, 200, &discovery::version()),
        Route::Health => write_full(stream, 200, "text/plain; charset=utf-8", b"ok"),
        Route::ApiVersions => write_json(stream, 200, &discovery::api_versions(served.address)),
        Route::ApiGroups => write_json(stream, 200, &discovery::api_groups()),
        Route::Resources(group) => write_json(stream, 200, &discovery::resources(&group)),
        Route::Events => write_json(
            stream,
            200,
            &json!({ "kind": "EventList", "apiVersion": "v1", "metadata": { "resourceVersion": served.store.resource_version().to_string() }, "items": [] }),
        ),
        Route::Objects {
            resource,
            namespace,
            name,
        } => objects(stream, request, served, resource, namespace, name),
        Route::NotFound => Ok(()),
    }
}

/// The selectors of a request, or the 400 that says which one is wrong.
fn selectors(request: &Request) -> Result<(LabelSelector, FieldSelector), Value> {
    let labels = LabelSelector::parse(request.query.get("labelSelector").map_or("", |s| s))
        .map_err(|e| status(400, "BadRequest", &format!("labelSelector: {e}")))?;
    let fields = FieldSelector::parse(request.query.get("fieldSelector").map_or("", |s| s))
        .map_err(|e| status(400, "BadRequest", &format!("fieldSelector: {e}")))?;
    Ok((labels, fields))
}

fn objects(
    stream: &mut (impl Read + Write),
    request: &Request,
    served: &Served,
    resource: Resource,
    namespace: Option<String>,
    name: Option<String>,
) -> io::Result<()> {
    let store = &served.store;
    let watch = truthy(request.query.get("watch"));
    if let (Some(name), false) = (&name, watch) {
        let ns = namespace.as_deref().unwrap_or_default();
        return match store.get(resource, ns, name) {
            Some(object) => write_json(stream, 200, &object),
            None => {
                let message = format!("{} \"{name}\" not found", resource.plural());
                let mut s = status(404, "NotFound", &message);
                s["details"] = json!({ "name": name, "kind": resource.plural() });
                write_json(stream, 404, &s)
            }
        };
    }
    let (labels, mut fields) = match selectors(request) {
        Ok(s) => s,
        Err(s) => return write_json(stream, 400, &s),
    };
    if let Some(name) = name {
        // A watch of one object is a watch of its collection by name, as client-go's.
        fields.0.push(("metadata.name".into(), true, name));
    }
    let rv_param = request
        .query
        .get("resourceVersion")
        .cloned()
        .unwrap_or_default();
    let rv = if rv_param.is_empty() {
        None
    } else {
        match rv_param.parse::<u64>() {
            Ok(v) => Some(v),
            Err(_) => {
                let message = format!("invalid resourceVersion {rv_param:?}");
                return write_json(stream, 400, &status(400, "BadRequest", &message));
            }
        }
    };
    let matching = |o: &Value| {
        labels.matches(o)
            && fields.matches(o)
            && namespace.as_deref().is_none_or(|ns| {
                o.pointer("/metadata/namespace").and_then(Value::as_str) == Some(ns)
            })
    };
    if !watch {
        let exact = request
            .query
            .get("resourceVersionMatch")
            .map(String::as_str)
            == Some("Exact");
        let (current, items) = store.list(resource, namespace.as_deref());
        if let Some(rv) = rv.filter(|&v| v != 0 && exact && v != current) {
            // Only the current state is kept: an older one has been compacted.
            let message = format!("The resourceVersion for the provided list is too old. ({rv})");
            return write_json(stream, 410, &status(410, "Expired", &message));
        }
        let items: Vec<Value> = items.into_iter().filter(|o| matching(o)).collect();
        let list = json!({
            "kind": format!("{}List", resource.kind()),
            "apiVersion": resource.api_version(),
            "metadata": { "resourceVersion": current.to_string() },
            "items": items,
        });
        return write_json(stream, 200, &list);
    }
    watch_stream(stream, request, served, resource, rv, &matching)
}

/// What a watch with these selectors sees of a change, as kube-apiserver's watch cache has
/// it: a MODIFIED object that stops matching is DELETED for it, one that starts ADDED.
pub fn seen_as(
    event: &super::store::Event,
    matching: &dyn Fn(&Value) -> bool,
) -> Option<EventType> {
    let now = matching(&event.object);
    let before = event.previous.as_ref().is_some_and(matching);
    match (event.kind, before, now) {
        (EventType::Modified, true, false) => Some(EventType::Deleted),
        (EventType::Modified, false, true) => Some(EventType::Added),
        (_, _, true) => Some(event.kind),
        _ => None,
    }
}

fn event_line(kind: &str, object: &Value) -> Vec<u8> {
    let mut line = json!({ "type": kind, "object": object })
        .to_string()
        .into_bytes();
    line.push(b'\n');
    line
}

fn bookmark(resource: Resource, rv: u64, initial_end: bool) -> Value {
    let mut meta = json!({ "resourceVersion": rv.to_string() });
    if initial_end {
        meta["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
    }
    json!({ "kind": resource.kind(), "apiVersion": resource.api_version(), "metadata": meta })
}

fn watch_stream(
    stream: &mut (impl Read + Write),
    request: &Request,
    served: &Served,
    resource: Resource,
    rv: Option<u64>,
    matching: &dyn Fn(&Value) -> bool,
) -> io::Result<()> {
    let store = &served.store;
    let q = &request.query;
    let bookmarks = truthy(q.get("allowWatchBookmarks"));
    let initial = truthy(q.get("sendInitialEvents"));
    if initial && q.get("resourceVersionMatch").map(String::as_str) != Some("NotOlderThan") {
        let message = "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan";
        return write_json(stream, 400, &status(400, "BadRequest", message));
    }
    if initial && !bookmarks {
        let message = "sendInitialEvents requires allowWatchBookmarks";
        return write_json(stream, 400, &status(400, "BadRequest", message));
    }
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map_or(DEFAULT_WATCH, Duration::from_secs);
    let deadline = Instant::now() + timeout;
    stream.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nCache-Control: no-cache, private\r\n\r\n",
    )?;
    stream.flush()?;
    let mut since = match rv {
        // From "any" version, or with the initial events: the current state as ADDED events.
        None | Some(0) => {
            let (current, items) = store.list(resource, None);
            for item in items.iter().filter(|o| matching(o)) {
                write_chunk(stream, &event_line("ADDED", item))?;
            }
            if initial {
                write_chunk(
                    stream,
                    &event_line("BOOKMARK", &bookmark(resource, current, true)),
                )?;
            }
            current
        }
        Some(v) if initial => {
            // NotOlderThan v: the current state is not older than any version we gave out.
            let (current, items) = store.list(resource, None);
            let _ = v;
            for item in items.iter().filter(|o| matching(o)) {
                write_chunk(stream, &event_line("ADDED", item))?;
            }
            write_chunk(
                stream,
                &event_line("BOOKMARK", &bookmark(resource, current, true)),
            )?;
            current
        }
        Some(v) => v,
    };
    let mut last_bookmark = Instant::now();
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let wait = (deadline - now).min(BOOKMARK_INTERVAL);
        let Some((current, events)) = store.changes_after(since, wait) else {
            if store.stopped() {
                break;
            }
            let message = format!("too old resource version: {since} ({})", store.floor());
            write_chunk(
                stream,
                &event_line("ERROR", &status(410, "Expired", &message)),
            )?;
            break;
        };
        for event in events.iter().filter(|e| e.resource == resource) {
            if let Some(kind) = seen_as(event, matching) {
                write_chunk(stream, &event_line(kind.as_str(), &event.object))?;
            }
        }
        since = current;
        if bookmarks && last_bookmark.elapsed() >= BOOKMARK_INTERVAL {
            write_chunk(
                stream,
                &event_line("BOOKMARK", &bookmark(resource, current, false)),
            )?;
            last_bookmark = Instant::now();
        }
    }
    write_chunk(stream, b"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_what_they_serve() {
        assert_eq!(route("/version"), Route::Version);
        assert_eq!(route("/api/v1"), Route::Resources(String::new()));
        assert_eq!(
            route("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"),
            Route::Objects {
                resource: Resource::EndpointSlices,
                namespace: Some("default".into()),
                name: None
            }
        );
        assert_eq!(
            route("/api/v1/nodes/node1"),
            Route::Objects {
                resource: Resource::Nodes,
                namespace: None,
                name: Some("node1".into())
            }
        );
        assert_eq!(
            route("/api/v1/namespaces/kube-system"),
            Route::Objects {
                resource: Resource::Namespaces,
                namespace: None,
                name: Some("kube-system".into())
            }
        );
        assert_eq!(
            route("/apis/events.k8s.io/v1/namespaces/default/events"),
            Route::Events
        );
        assert_eq!(route("/api/v1/namespaces/default/nodes"), Route::NotFound);
        assert_eq!(route("/api/v1/secrets"), Route::NotFound);
        assert_eq!(route("/apis/apps/v1"), Route::NotFound);
    }

    #[test]
    fn a_change_of_labels_moves_an_object_in_and_out_of_a_watch() {
        use super::super::store::Event;
        let svc = |labels: Value| json!({ "metadata": { "name": "web", "labels": labels } });
        let sel = LabelSelector::parse("!service.kubernetes.io/headless").unwrap();
        let matching = |o: &Value| sel.matches(o);
        let event = |previous: Option<Value>, object: Value| Event {
            rv: 2,
            resource: Resource::Services,
            kind: if previous.is_some() {
                EventType::Modified
            } else {
                EventType::Added
            },
            object,
            previous,
        };
        let headless = json!({ "service.kubernetes.io/headless": "" });
        let plain = json!({ "app": "web" });
        assert_eq!(
            seen_as(
                &event(Some(svc(plain.clone())), svc(headless.clone())),
                &matching
            ),
            Some(EventType::Deleted)
        );
        assert_eq!(
            seen_as(
                &event(Some(svc(headless.clone())), svc(plain.clone())),
                &matching
            ),
            Some(EventType::Added)
        );
        assert_eq!(
            seen_as(
                &event(Some(svc(plain.clone())), svc(plain.clone())),
                &matching
            ),
            Some(EventType::Modified)
        );
        assert_eq!(
            seen_as(&event(None, svc(headless.clone())), &matching),
            None
        );
        assert_eq!(
            seen_as(&event(None, svc(plain)), &matching),
            Some(EventType::Added)
        );
    }

    #[test]
    fn query_parameters_are_decoded() {
        let (path, q) = split_target(
            "/api/v1/services?labelSelector=%21service.kubernetes.io%2Fheadless&watch=true&x",
        );
        assert_eq!(path, "/api/v1/services");
        assert_eq!(q["labelSelector"], "!service.kubernetes.io/headless");
        assert_eq!(q["watch"], "true");
        assert_eq!(q["x"], "");
        assert_eq!(split_target("/a?b=%zz%4").1["b"], "%zz%4");
    }

    #[test]
    fn requests_are_read_with_their_bodies_dropped() {
        let text = b"POST /api/v1/namespaces/default/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\nContent-Length: 4\r\n\r\n{}{}GET /version HTTP/1.1\r\nConnection: close\r\n\r\n";
        let mut input = &text[..];
        let mut buf = Vec::new();
        let first = read_request(&mut input, &mut buf).unwrap().unwrap();
        assert_eq!(
            (first.method.as_str(), first.authorization.as_deref()),
            ("POST", Some("Bearer t"))
        );
        let second = read_request(&mut input, &mut buf).unwrap().unwrap();
        assert_eq!((second.path.as_str(), second.close), ("/version", true));
        assert!(read_request(&mut input, &mut buf).unwrap().is_none());
        let mut garbage = &b"\x00\x01 nonsense\r\n\r\n"[..];
        assert!(read_request(&mut garbage, &mut Vec::new()).is_err());
    }
}
