//! One request: authentication, then the method. Only OPTIONS, GET, HEAD and PROPFIND are
//! served; every method that would change something is refused with 405 before anything is
//! looked up, so nothing in the store can change. Store calls run on blocking threads.

use std::sync::Arc;

use base64::Engine;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::body::{self, Body};
use super::href::{self, Client};
use super::propfind::{self, Item};
use super::resolve::resolve;
use super::status::status_of;
use super::{Credentials, get, html};
use crate::error::ViewError;
use crate::view::{Kind, View};

/// The methods served.
const ALLOW: &str = "OPTIONS, GET, HEAD, PROPFIND";
/// Largest PROPFIND body read.
const MAX_BODY: usize = 1 << 20;

/// What every request needs.
pub(super) struct Ctx {
    pub view: Arc<View>,
    pub credentials: Option<Credentials>,
}

fn text(status: StatusCode, msg: impl Into<String>) -> Response<Body> {
    let mut msg = msg.into();
    msg.push('\n');
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(body::full(msg))
        .expect("a valid response")
}

/// The response for a view error during `what` of `path`; damage is logged with both.
pub(super) fn error_response(e: &ViewError, what: &str, path: &str) -> Response<Body> {
    if e.is_damage() {
        eprintln!("backup-fs serve: {what} {path}: {e}");
    }
    let status = status_of(e.class());
    if status == StatusCode::NOT_FOUND {
        return text(status, "not found");
    }
    text(status, e.to_string())
}

fn describe(path: &[Vec<u8>]) -> String {
    let names: Vec<String> = path.iter().map(|n| String::from_utf8_lossy(n).into_owned()).collect();
    format!("/{}", names.join("/"))
}

/// Compares in time independent of where the bytes differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// True when the request's `Host` is `localhost` or a loopback address (any port).
fn loopback_host(h: &HeaderMap) -> bool {
    let Some(host) = h.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        // HTTP/1.0 without Host: only a local client can have reached a loopback socket.
        return true;
    };
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(n, _)| n),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn authorized(h: &HeaderMap, c: &Credentials) -> bool {
    let Some(value) = h.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    // The scheme is case-insensitive (RFC 9110 §11.1).
    let Some(encoded) = value
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .map(|(_, rest)| rest)
    else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let Some(colon) = decoded.iter().position(|&b| b == b':') else {
        return false;
    };
    let (user, pass) = (&decoded[..colon], &decoded[colon + 1..]);
    same(user, c.user.as_bytes()) & same(pass, c.password.as_bytes())
}

/// Serves one request.
pub(super) async fn handle(ctx: Arc<Ctx>, req: Request<Incoming>) -> Response<Body> {
    // Without a password only loopback names are served: a web page whose name was re-pointed at
    // 127.0.0.1 (DNS rebinding) sends its own host name and gets nothing.
    if ctx.credentials.is_none() && !loopback_host(req.headers()) {
        return text(
            StatusCode::MISDIRECTED_REQUEST,
            "without a password this server answers only requests for localhost or a loopback address",
        );
    }
    if let Some(c) = &ctx.credentials
        && !authorized(req.headers(), c)
    {
        let mut r = text(StatusCode::UNAUTHORIZED, "a user name and password are needed");
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"backup-fs\", charset=\"UTF-8\""),
        );
        return r;
    }
    let client = Client::of(req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()));
    match req.method().as_str() {
        "OPTIONS" => Response::builder()
            .header("DAV", "1")
            .header("MS-Author-Via", "DAV")
            .header(header::ALLOW, ALLOW)
            .header(header::CONTENT_LENGTH, 0)
            .body(body::empty())
            .expect("a valid response"),
        "GET" | "HEAD" => get_or_head(ctx, req, client).await,
        "PROPFIND" => propfind(ctx, req, client).await,
        _ => {
            let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "this server is read-only");
            r.headers_mut().insert(header::ALLOW, HeaderValue::from_static(ALLOW));
            r
        }
    }
}

/// What a request path names: a node, or the answer saying why nothing is there.
enum Target {
    Node(crate::view::Attr),
    Answer(Response<Body>),
}

fn target(view: &View, path: &[Vec<u8>]) -> Target {
    match resolve(view, path) {
        Ok(Some(a)) => Target::Node(a),
        Ok(None) => Target::Answer(text(StatusCode::NOT_FOUND, "not found")),
        Err(e) => Target::Answer(error_response(&e, "lookup of", &describe(path))),
    }
}

/// Runs `f` on a blocking thread.
async fn blocking(f: impl FnOnce() -> Response<Body> + Send + 'static) -> Response<Body> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|_| text(StatusCode::INTERNAL_SERVER_ERROR, "the request failed"))
}

async fn get_or_head(ctx: Arc<Ctx>, req: Request<Incoming>, client: Client) -> Response<Body> {
    let head = req.method() == Method::HEAD;
    let Ok(path) = href::components(req.uri().path(), client) else {
        return text(StatusCode::BAD_REQUEST, "bad path");
    };
    let headers = req.headers().clone();
    let view = Arc::clone(&ctx.view);
    blocking(move || {
        let attr = match target(&view, &path) {
            Target::Node(a) => a,
            Target::Answer(r) => return r,
        };
        if attr.kind == Kind::Dir {
            let entries = match view.shown_children(&attr) {
                Ok(e) => e,
                Err(e) => return error_response(&e, "listing of", &describe(&path)),
            };
            let page = html::index(&path, &entries, client);
            let r = Response::builder()
                .header(header::CONTENT_TYPE, get::HTML)
                .header(header::CONTENT_LENGTH, page.len());
            let b = if head { body::empty() } else { body::full(page) };
            return r.body(b).expect("a valid response");
        }
        let name = path.last().cloned().unwrap_or_default();
        get::file(Arc::clone(&view), &attr, &name, &headers, head, describe(&path))
    })
    .await
}

async fn propfind(ctx: Arc<Ctx>, req: Request<Incoming>, client: Client) -> Response<Body> {
    let depth = match req.headers().get("Depth").and_then(|v| v.to_str().ok()) {
        Some("0") => 0,
        Some("1") => 1,
        _ => {
            return Response::builder()
                .status(StatusCode::FORBIDDEN)
                .header(header::CONTENT_TYPE, "application/xml; charset=utf-8")
                .body(body::full(
                    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
                     <D:error xmlns:D=\"DAV:\"><D:propfind-finite-depth/></D:error>\n",
                ))
                .expect("a valid response");
        }
    };
    let Ok(path) = href::components(req.uri().path(), client) else {
        return text(StatusCode::BAD_REQUEST, "bad path");
    };
    let bytes = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return text(StatusCode::PAYLOAD_TOO_LARGE, "the PROPFIND body is too large"),
    };
    let wanted = match propfind::parse(&bytes) {
        Ok(w) => w,
        Err(propfind::BadBody(why)) => return text(StatusCode::BAD_REQUEST, why),
    };
    let view = Arc::clone(&ctx.view);
    blocking(move || {
        let attr = match target(&view, &path) {
            Target::Node(a) => a,
            Target::Answer(r) => return r,
        };
        let dir = attr.kind == Kind::Dir;
        let entries = if depth == 1 && dir {
            match view.shown_children(&attr) {
                Ok(e) => e,
                Err(e) => return error_response(&e, "listing of", &describe(&path)),
            }
        } else {
            Vec::new()
        };
        let here = href::href(&path, client, dir);
        let mut items = Vec::with_capacity(1 + entries.len());
        items.push(Item {
            href: here.clone(),
            name: path.last().map_or(&b""[..], |n| n.as_slice()),
            attr,
        });
        let base = if here.ends_with('/') { here } else { format!("{here}/") };
        for (name, a) in &entries {
            let mut h = format!("{base}{}", href::segment(name, client));
            if a.kind == Kind::Dir {
                h.push('/');
            }
            items.push(Item {
                href: h,
                name,
                attr: *a,
            });
        }
        let xml = propfind::multistatus(&items, &wanted, client);
        Response::builder()
            .status(StatusCode::MULTI_STATUS)
            .header(header::CONTENT_TYPE, "application/xml; charset=utf-8")
            .header(header::CONTENT_LENGTH, xml.len())
            .body(body::full(xml))
            .expect("a valid response")
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_checked() {
        let c = Credentials {
            user: "me".into(),
            password: "pa:ss".into(),
        };
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
            h
        };
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        assert!(authorized(&with(&format!("Basic {}", b64("me:pa:ss"))), &c));
        assert!(!authorized(&with(&format!("Basic {}", b64("me:pa:s"))), &c));
        assert!(!authorized(&with(&format!("Basic {}", b64("you:pa:ss"))), &c));
        assert!(!authorized(&with("Basic !!!"), &c));
        assert!(!authorized(&with(&format!("Bearer {}", b64("me:pa:ss"))), &c));
        assert!(!authorized(&HeaderMap::new(), &c));
        assert!(authorized(&with(&format!("basic {}", b64("me:pa:ss"))), &c));
    }

    #[test]
    fn only_loopback_names_are_served_without_a_password() {
        let host = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, HeaderValue::from_str(v).unwrap());
            h
        };
        for ok in ["127.0.0.1:8080", "localhost:8080", "LOCALHOST", "[::1]:80", "127.5.5.5"] {
            assert!(loopback_host(&host(ok)), "{ok}");
        }
        for bad in [
            "evil.example:8080",
            "192.168.1.2:8080",
            "[fe80::1]:80",
            "localhost.evil.example",
        ] {
            assert!(!loopback_host(&host(bad)), "{bad}");
        }
    }
}
