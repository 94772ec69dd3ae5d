//! The ACS test server itself: signatures checked as ACS's SDKs make them (against the official SDK's vectors),
//! files served whole and in ranges, every fault as specified, deletion, expiry, bearer tokens and the trap.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use hyper::Request;
use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;
use support::acs::{
    AcsOptions, AcsServer, AuthError, ContentReader, DEFAULT_ACCESS_KEY, DEFAULT_ACS_HOST, EMPTY_BODY_SHA256, FRAME,
    Fault, FileKind, RequestRecord, TRAP_BODY, Trap, content_sha256, expected_signature, hmac_headers, sha256_hex,
    string_to_sign, verify,
};
use support::{project_root, read_json};

const ID: &str = "0-eus-d10-598a3ea36bfbc27e68c026b17982af22";
/// Long enough for several frames, and not a multiple of the frame or of the generator's word.
const LEN: u64 = 300_003;

fn vectors() -> Value {
    read_json(project_root().join("tests/fixtures/acs-hmac.json"))
}

/// A vector's request, as the server would receive it.
fn vector_request(case: &Value) -> Request<Bytes> {
    let mut request = Request::builder()
        .method(case["method"].as_str().unwrap())
        .uri(case["url"].as_str().unwrap());
    for name in ["x-ms-date", "x-ms-content-sha256", "x-ms-host", "Authorization"] {
        request = request.header(name, case[name].as_str().unwrap());
    }
    request.body(Bytes::new()).unwrap()
}

fn vector_date(case: &Value) -> SystemTime {
    httpdate::parse_http_date(case["x-ms-date"].as_str().unwrap()).unwrap()
}

fn client() -> Client {
    Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A request signed with `options`' key at `date`.
fn signed_at(options: &AcsOptions, method: Method, url: &str, date: SystemTime) -> RequestBuilder {
    let headers = hmac_headers(options, method.as_str(), url, b"", date);
    headers
        .into_iter()
        .fold(client().request(method, url), |request, (name, value)| {
            request.header(name, value)
        })
}

fn signed(options: &AcsOptions, method: Method, url: &str) -> RequestBuilder {
    signed_at(options, method, url, SystemTime::now())
}

async fn get(server: &AcsServer, url: &str) -> Response {
    signed(server.options(), Method::GET, url).send().await.unwrap()
}

async fn get_range(server: &AcsServer, url: &str, range: &str) -> Response {
    signed(server.options(), Method::GET, url)
        .header("range", range)
        .send()
        .await
        .unwrap()
}

fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

async fn error_code(response: Response) -> String {
    let body: Value = response.json().await.unwrap();
    body["error"]["code"].as_str().unwrap().to_owned()
}

/// Sends a signed GET over a plain socket and reads the answer's head, leaving the socket at the body's start.
fn raw_get(server: &AcsServer, url: &str) -> (String, TcpStream) {
    let path = url.split_once(&format!(":{}", server.port())).unwrap().1;
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n", server.port());
    for (name, value) in hmac_headers(server.options(), "GET", url, b"", SystemTime::now()) {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let mut stream = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    (String::from_utf8(head).unwrap(), stream)
}

/// Everything a socket yields until it ends, and how it ended: `Ok` for a clean close, the error for a reset.
fn read_until_closed(stream: &mut TcpStream) -> (Vec<u8>, std::io::Result<()>) {
    let mut body = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return (body, Ok(())),
            Ok(n) => body.extend_from_slice(&buffer[..n]),
            Err(e) => return (body, Err(e)),
        }
    }
}

// Signatures.

#[test]
fn every_official_sdk_signature_verifies_and_our_signer_makes_the_same_headers() {
    let vectors = vectors();
    assert_eq!(vectors["accessKey"], DEFAULT_ACCESS_KEY);
    assert_eq!(vectors["acsEndpoint"], format!("https://{DEFAULT_ACS_HOST}/"));
    let options = AcsOptions::default();
    let cases = vectors["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    for case in cases {
        assert_eq!(case["x-ms-content-sha256"], EMPTY_BODY_SHA256);
        let request = vector_request(case);
        assert_eq!(verify(&options, &request, vector_date(case)), Ok(()), "{case}");

        let (method, url) = (case["method"].as_str().unwrap(), case["url"].as_str().unwrap());
        for (name, value) in hmac_headers(&options, method, url, b"", vector_date(case)) {
            let name = if name == "authorization" { "Authorization" } else { name };
            assert_eq!(case[name], value, "{name} of {case}");
        }
    }
}

#[test]
fn a_vector_changed_in_any_signed_part_does_not_verify() {
    let case = &vectors()["cases"][0];
    let now = vector_date(case);
    let options = AcsOptions::default();
    let changed = |change: &dyn Fn(&mut Request<Bytes>)| {
        let mut request = vector_request(case);
        change(&mut request);
        verify(&options, &request, now)
    };
    let set = |name: &'static str, value: &str| {
        let value = value.to_owned();
        move |request: &mut Request<Bytes>| {
            request.headers_mut().insert(name, value.parse().unwrap());
        }
    };

    assert_eq!(
        changed(&|r| *r.method_mut() = hyper::Method::DELETE),
        Err(AuthError::Signature)
    );
    let other_path = case["url"].as_str().unwrap().replace("/video", "/audio");
    assert_eq!(
        changed(&|r| *r.uri_mut() = other_path.parse().unwrap()),
        Err(AuthError::Signature)
    );
    let with_query = format!("{}?x=1", case["url"].as_str().unwrap());
    assert_eq!(
        changed(&|r| *r.uri_mut() = with_query.parse().unwrap()),
        Err(AuthError::Signature)
    );
    assert_eq!(
        changed(&set("x-ms-date", "Sat, 28 Nov 2026 15:20:35 GMT")),
        Err(AuthError::Signature)
    );
    assert_eq!(
        changed(&set("x-ms-host", "fabrikam-acs.communication.azure.com")),
        Err(AuthError::WrongHost("fabrikam-acs.communication.azure.com".to_owned()))
    );
    assert_eq!(
        changed(&set("x-ms-content-sha256", &content_sha256(b"x"))),
        Err(AuthError::ContentHash)
    );
    assert_eq!(
        changed(&|r| *r.body_mut() = Bytes::from_static(b"x")),
        Err(AuthError::ContentHash)
    );
    let twice = |r: &mut Request<Bytes>| {
        r.headers_mut()
            .append("x-ms-host", "fabrikam-acs.communication.azure.com".parse().unwrap());
    };
    assert_eq!(changed(&twice), Err(AuthError::Repeated("x-ms-host")));
    let signature = case["Authorization"].as_str().unwrap().split_once("&").unwrap().1;
    assert_eq!(
        changed(&set(
            "authorization",
            &format!("HMAC-SHA256 SignedHeaders=x-ms-date;host&{signature}")
        )),
        Err(AuthError::SignedHeaders("x-ms-date;host".to_owned()))
    );
    assert_eq!(
        changed(&|r| {
            r.headers_mut().remove("x-ms-date");
        }),
        Err(AuthError::Missing("x-ms-date"))
    );
    let other_key = AcsOptions {
        access_key: content_sha256(b"another key"),
        ..AcsOptions::default()
    };
    assert_eq!(
        verify(&other_key, &vector_request(case), now),
        Err(AuthError::Signature)
    );
}

#[test]
fn a_date_is_accepted_only_within_fifteen_minutes_of_the_clock_and_only_in_rfc_1123() {
    let case = &vectors()["cases"][0];
    let (options, date) = (AcsOptions::default(), vector_date(case));
    let minutes = |n: u64| Duration::from_secs(60 * n);
    assert_eq!(verify(&options, &vector_request(case), date + minutes(14)), Ok(()));
    assert_eq!(verify(&options, &vector_request(case), date - minutes(14)), Ok(()));
    assert_eq!(
        verify(&options, &vector_request(case), date + minutes(16)),
        Err(AuthError::StaleDate(960))
    );
    assert_eq!(
        verify(&options, &vector_request(case), date - minutes(16)),
        Err(AuthError::StaleDate(960))
    );

    // The same instant in RFC 850's form, signed as such: still refused.
    let rfc_850 = "Saturday, 28-Nov-26 15:20:34 GMT";
    let url: hyper::Uri = case["url"].as_str().unwrap().parse().unwrap();
    let to_sign = string_to_sign("GET", url.path(), rfc_850, DEFAULT_ACS_HOST, &content_sha256(b""));
    let mut request = vector_request(case);
    request.headers_mut().insert("x-ms-date", rfc_850.parse().unwrap());
    let authorization = format!(
        "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={}",
        expected_signature(DEFAULT_ACCESS_KEY, &to_sign)
    );
    request
        .headers_mut()
        .insert("authorization", authorization.parse().unwrap());
    assert_eq!(
        verify(&options, &request, date),
        Err(AuthError::UnreadableDate(rfc_850.to_owned()))
    );
}

// Serving.

#[tokio::test]
async fn a_signed_request_gets_the_whole_content_and_metadata() {
    let server = AcsServer::start(AcsOptions::default());
    let urls = server.add_chunk(ID, LEN);
    assert_eq!(
        urls.content,
        format!("http://127.0.0.1:{}/v1/objects/{ID}/content/video", server.port())
    );

    let response = get(&server, &urls.content).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "content-type"), Some("video/mp4"));
    assert_eq!(header(&response, "content-length"), Some(LEN.to_string().as_str()));
    let body = response.bytes().await.unwrap();
    assert_eq!(body.len() as u64, server.content_len(ID));
    assert_eq!(sha256_hex(&body[..]), server.content_sha256_hex(ID));
    let mut expected = Vec::new();
    server.content_reader(ID).read_to_end(&mut expected).unwrap();
    assert!(body[..] == expected[..]);

    let response = get(&server, &urls.metadata).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "content-type"), Some("application/json"));
    let body = response.bytes().await.unwrap();
    assert_eq!(body[..], server.metadata_bytes(ID)[..]);
    assert_eq!(sha256_hex(&body[..]), server.metadata_sha256_hex(ID));
}

#[tokio::test]
async fn a_wrong_key_host_date_or_body_hash_is_refused_with_401_and_consumes_no_fault() {
    let server = AcsServer::start(AcsOptions::default());
    let url = server.add_chunk(ID, LEN).content;
    server.inject(ID, FileKind::Content, Fault::Status(500));
    let wrong_key = AcsOptions {
        access_key: content_sha256(b"another key"),
        ..AcsOptions::default()
    };
    let wrong_host = AcsOptions {
        acs_host: "fabrikam-acs.communication.azure.com".to_owned(),
        ..AcsOptions::default()
    };
    let stale = SystemTime::now() - Duration::from_secs(20 * 60);
    let signed_for_another_body = hmac_headers(server.options(), "GET", &url, b"x", SystemTime::now())
        .into_iter()
        .fold(client().get(&url), |request, (name, value)| request.header(name, value));
    let refused = [
        signed(&wrong_key, Method::GET, &url),
        signed(&wrong_host, Method::GET, &url),
        signed_at(server.options(), Method::GET, &url, stale),
        signed_for_another_body,
        client().get(&url),
    ];
    for request in refused {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(header(&response, "content-type"), Some("application/json"));
        assert_eq!(error_code(response).await, "Unauthorized");
    }
    let statuses: Vec<_> = server.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [Some(401); 5]);

    assert_eq!(get(&server, &url).await.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(get(&server, &url).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn ranges_get_206_with_the_bytes_and_content_range_asked_for() {
    let server = AcsServer::start(AcsOptions::default());
    let urls = server.add_chunk(ID, LEN);
    let cases = [
        ("bytes=100000-", 100_000, LEN),
        ("bytes=5-9", 5, 10),
        ("bytes=299990-400000", 299_990, LEN),
        ("bytes=-10", LEN - 10, LEN),
        ("bytes=0-0", 0, 1),
    ];
    for (range, start, end) in cases {
        let response = get_range(&server, &urls.content, range).await;
        assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        let content_range = format!("bytes {start}-{}/{LEN}", end - 1);
        assert_eq!(header(&response, "content-range"), Some(content_range.as_str()));
        assert_eq!(
            header(&response, "content-length"),
            Some((end - start).to_string().as_str())
        );
        let body = response.bytes().await.unwrap();
        assert!(body[..] == server.content_bytes(ID, start..end)[..], "{range}");
    }

    let metadata = server.metadata_bytes(ID);
    let response = get_range(&server, &urls.metadata, "bytes=10-").await;
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(response.bytes().await.unwrap()[..], metadata[10..]);

    // Several ranges at once are not served as such: the whole file is.
    let response = get_range(&server, &urls.content, "bytes=0-1,5-6").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.bytes().await.unwrap().len() as u64, LEN);
}

#[tokio::test]
async fn a_range_starting_at_or_past_the_end_gets_416() {
    let server = AcsServer::start(AcsOptions::default());
    let urls = server.add_chunk(ID, LEN);
    for range in [format!("bytes={LEN}-"), format!("bytes={}-{}", LEN + 5, LEN + 9)] {
        let response = get_range(&server, &urls.content, &range).await;
        assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(
            header(&response, "content-range"),
            Some(format!("bytes */{LEN}").as_str())
        );
    }
    let metadata_len = server.metadata_bytes(ID).len();
    let response = get_range(&server, &urls.metadata, &format!("bytes={metadata_len}-")).await;
    assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        header(&response, "content-range"),
        Some(format!("bytes */{metadata_len}").as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_mib_chunk_streams_whole_with_the_right_hash() {
    const BIG: u64 = 64 * 1024 * 1024;
    let server = AcsServer::start(AcsOptions::default());
    let url = server.add_chunk("big", BIG).content;
    let mut response = get(&server, &url).await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
    let mut received = 0u64;
    while let Some(piece) = response.chunk().await.unwrap() {
        received += piece.len() as u64;
        sha2::Digest::update(&mut hasher, &piece);
    }
    assert_eq!(received, BIG);
    assert_eq!(
        format!("{:x}", sha2::Digest::finalize(hasher)),
        server.content_sha256_hex("big")
    );
}

// Faults.

#[tokio::test]
async fn status_faults_answer_once_each_in_the_order_injected_and_only_for_their_file() {
    let server = AcsServer::start(AcsOptions::default());
    let urls = server.add_chunk(ID, LEN);
    for status in [503, 500, 401] {
        server.inject(ID, FileKind::Content, Fault::Status(status));
    }
    server.inject(
        ID,
        FileKind::Content,
        Fault::RetryAfter {
            status: 429,
            seconds: 0,
        },
    );

    assert_eq!(get(&server, &urls.metadata).await.status(), StatusCode::OK);
    let response = get(&server, &urls.content).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&response, "retry-after"), Some("1"));
    assert_eq!(error_code(response).await, "InjectedFault");
    let response = get(&server, &urls.content).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(header(&response, "retry-after"), None);
    assert_eq!(get(&server, &urls.content).await.status(), StatusCode::UNAUTHORIZED);
    let response = get(&server, &urls.content).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&response, "retry-after"), Some("0"));
    assert_eq!(get(&server, &urls.content).await.status(), StatusCode::OK);
}

#[test]
fn an_unstated_length_fault_sends_a_chunked_body_and_an_unknown_total_fault_a_star() {
    let server = AcsServer::start(AcsOptions::default());
    let url = server.add_chunk(ID, LEN).content;
    server.inject(ID, FileKind::Content, Fault::UnstatedLength(1000));
    let (head, mut stream) = raw_get(&server, &url);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(!head.contains("content-length"), "{head}");
    assert!(head.contains("transfer-encoding: chunked\r\n"), "{head}");
    let mut body = Vec::new();
    let mut byte = [0u8; 1];
    while !body.ends_with(b"\r\n0\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        body.push(byte[0]);
        assert!(body.len() < 100_000, "the chunked body never ended");
    }
    let framing = body.len() - 1000;
    assert!(
        framing < 100,
        "1000 bytes in chunked framing: {} bytes in all",
        body.len()
    );

    server.inject(ID, FileKind::Content, Fault::UnknownTotal(1000));
    let (head, mut stream) = raw_get(&server, &url);
    assert!(head.starts_with("HTTP/1.1 206 Partial Content\r\n"), "{head}");
    assert!(head.contains("content-range: bytes 0-999/*\r\n"), "{head}");
    assert!(head.contains("content-length: 1000\r\n"), "{head}");
    let mut body = vec![0u8; 1000];
    stream.read_exact(&mut body).unwrap();
    assert_eq!(body, server.content_bytes(ID, 0..1000));
}

#[test]
fn a_cut_resets_the_connection_after_the_bytes_it_allows() {
    let server = AcsServer::start(AcsOptions::default());
    let url = server.add_chunk(ID, LEN).content;
    server.inject(ID, FileKind::Content, Fault::CutAfter(1000));
    let (head, mut stream) = raw_get(&server, &url);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains(&format!("content-length: {LEN}\r\n")), "{head}");
    let (body, end) = read_until_closed(&mut stream);
    assert_eq!(body, server.content_bytes(ID, 0..1000));
    assert_eq!(end.map_err(|e| e.kind()), Err(ErrorKind::ConnectionReset));
}

#[test]
fn a_short_body_closes_the_connection_cleanly_after_the_bytes_it_allows() {
    let server = AcsServer::start(AcsOptions::default());
    let url = server.add_chunk(ID, LEN).content;
    server.inject(ID, FileKind::Content, Fault::ShortBody(FRAME as u64 + 7));
    let (head, mut stream) = raw_get(&server, &url);
    assert!(head.contains(&format!("content-length: {LEN}\r\n")), "{head}");
    let (body, end) = read_until_closed(&mut stream);
    assert!(body == server.content_bytes(ID, 0..FRAME as u64 + 7));
    assert!(end.is_ok(), "{end:?}");
}

#[tokio::test]
async fn a_cut_or_short_body_is_a_body_error_to_an_http_client_and_a_range_after_it_resumes() {
    let server = AcsServer::start(AcsOptions::default());
    let url = server.add_chunk(ID, LEN).content;
    server.inject(ID, FileKind::Content, Fault::CutAfter(100_000));
    server.inject(ID, FileKind::Content, Fault::ShortBody(100_000));
    for _ in 0..2 {
        let response = get(&server, &url).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.bytes().await.is_err());
    }
    let response = get_range(&server, &url, "bytes=100000-").await;
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert!(response.bytes().await.unwrap()[..] == server.content_bytes(ID, 100_000..LEN)[..]);
}

#[tokio::test]
async fn a_cut_inside_a_range_promises_the_range_and_sends_part_of_it() {
    let server = AcsServer::start(AcsOptions::default());
    let url = server.add_chunk(ID, LEN).content;
    server.inject(ID, FileKind::Content, Fault::CutAfter(10));
    let response = get_range(&server, &url, "bytes=1000-1999").await;
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&response, "content-length"), Some("1000"));
    assert!(response.bytes().await.is_err());
}

#[tokio::test]
async fn an_empty_body_fault_answers_200_with_nothing_once() {
    let server = AcsServer::start(AcsOptions::default());
    let urls = server.add_chunk(ID, LEN);
    server.inject(ID, FileKind::Metadata, Fault::EmptyBody);
    let response = get(&server, &urls.metadata).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "content-length"), Some("0"));
    assert!(response.bytes().await.unwrap().is_empty());
    let response = get(&server, &urls.metadata).await;
    assert_eq!(response.bytes().await.unwrap()[..], server.metadata_bytes(ID)[..]);
}

#[tokio::test]
async fn a_slow_fault_sleeps_between_frames_and_sends_every_byte() {
    let server = AcsServer::start(AcsOptions::default());
    let url = server.add_chunk(ID, 4 * FRAME as u64).content;
    let delay = Duration::from_millis(60);
    server.inject(ID, FileKind::Content, Fault::Slow { delay_per_frame: delay });
    let started = Instant::now();
    let body = get(&server, &url).await.bytes().await.unwrap();
    assert!(started.elapsed() >= 3 * delay, "{:?}", started.elapsed());
    assert_eq!(sha256_hex(&body[..]), server.content_sha256_hex(ID));
}

#[tokio::test]
async fn a_redirect_fault_answers_302_and_the_trap_records_who_followed_it_with_what() {
    let server = AcsServer::start(AcsOptions::default());
    let trap = Trap::start();
    let url = server.add_chunk(ID, LEN).content;
    let elsewhere = trap.url("/elsewhere?sig=1");
    server.inject(ID, FileKind::Content, Fault::Redirect(elsewhere.clone()));

    let response = get(&server, &url).await;
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(header(&response, "location"), Some(elsewhere.as_str()));
    assert!(trap.requests().is_empty());

    // Followed once without a credential and once with one: the trap tells them apart.
    let response = client().get(&elsewhere).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), TRAP_BODY);
    signed(server.options(), Method::GET, &elsewhere).send().await.unwrap();
    let received = trap.requests();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].method, "GET");
    assert_eq!(received[0].path, "/elsewhere?sig=1");
    assert_eq!(received[0].header("authorization"), None);
    assert!(received[1].header("authorization").unwrap().starts_with("HMAC-SHA256 "));
    assert_eq!(received[1].header("x-ms-host"), Some(DEFAULT_ACS_HOST));
}

// Deletion and the end of a recording.

#[tokio::test]
async fn a_delete_is_recorded_and_the_chunk_answers_404_after_it() {
    let server = AcsServer::start(AcsOptions::default());
    let urls = server.add_chunk(ID, LEN);
    assert!(!server.deleted(ID));
    let response = signed(server.options(), Method::DELETE, &urls.delete)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(server.deleted(ID));
    assert_eq!(get(&server, &urls.content).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(get(&server, &urls.metadata).await.status(), StatusCode::NOT_FOUND);
    let again = signed(server.options(), Method::DELETE, &urls.delete)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_cut_delete_is_done_but_never_answered_and_a_refused_one_is_not_done() {
    let server = AcsServer::start(AcsOptions::default());
    let urls = server.add_chunk(ID, LEN);
    server.inject(ID, FileKind::Delete, Fault::Status(503));
    server.inject(ID, FileKind::Delete, Fault::CutAfter(0));
    let delete = || signed(server.options(), Method::DELETE, &urls.delete).send();

    assert_eq!(delete().await.unwrap().status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(!server.deleted(ID));
    assert!(delete().await.is_err());
    assert!(server.deleted(ID));
    let statuses: Vec<_> = server.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [Some(503), None]);
}

#[tokio::test]
async fn an_expired_chunk_answers_404_and_a_gone_one_410_to_everything() {
    let server = AcsServer::start(AcsOptions::default());
    let expired = server.add_chunk("expired", LEN);
    let gone = server.add_chunk("gone", LEN);
    server.expire("expired");
    server.gone("gone");
    for (urls, status) in [(expired, StatusCode::NOT_FOUND), (gone, StatusCode::GONE)] {
        assert_eq!(get(&server, &urls.content).await.status(), status);
        assert_eq!(get(&server, &urls.metadata).await.status(), status);
        let response = signed(server.options(), Method::DELETE, &urls.delete)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status);
    }
    assert!(!server.deleted("expired"));
}

#[tokio::test]
async fn unknown_chunks_and_paths_answer_404_and_wrong_methods_405() {
    let server = AcsServer::start(AcsOptions::default());
    let urls = server.add_chunk(ID, LEN);
    let base = server.base_url();
    for url in [
        format!("{base}/v1/objects/unknown/content/video"),
        format!("{base}/v1/objects/{ID}/content/audio"),
        format!("{base}/elsewhere"),
    ] {
        assert_eq!(get(&server, &url).await.status(), StatusCode::NOT_FOUND, "{url}");
    }
    let response = signed(server.options(), Method::DELETE, &urls.content)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        get(&server, &urls.delete).await.status(),
        StatusCode::METHOD_NOT_ALLOWED
    );
}

// Bearer tokens, the log, the server's life.

#[tokio::test]
async fn a_bearer_token_is_accepted_only_when_configured_and_equal() {
    let server = AcsServer::start(AcsOptions {
        bearer_token: Some("entra-token".to_owned()),
        ..AcsOptions::default()
    });
    let url = server.add_chunk(ID, LEN).metadata;
    let bearer = |token: &str| client().get(&url).bearer_auth(token).send();
    assert_eq!(bearer("entra-token").await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        bearer("another-token").await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(get(&server, &url).await.status(), StatusCode::OK, "HMAC still works");

    let hmac_only = AcsServer::start(AcsOptions::default());
    let url = hmac_only.add_chunk(ID, LEN).metadata;
    let response = client().get(&url).bearer_auth("entra-token").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_request_log_says_what_was_asked_and_answered() {
    let server = AcsServer::start(AcsOptions::default());
    let url = format!("{}?x=1", server.add_chunk(ID, LEN).content);
    get_range(&server, &url, "bytes=0-9").await.bytes().await.unwrap();
    client().get(&url).send().await.unwrap();
    assert_eq!(
        server.requests(),
        [
            RequestRecord {
                method: "GET".to_owned(),
                path: format!("/v1/objects/{ID}/content/video?x=1"),
                range: Some("bytes=0-9".to_owned()),
                has_authorization: true,
                x_ms_host: Some(DEFAULT_ACS_HOST.to_owned()),
                status: Some(206),
            },
            RequestRecord {
                method: "GET".to_owned(),
                path: format!("/v1/objects/{ID}/content/video?x=1"),
                range: None,
                has_authorization: false,
                x_ms_host: None,
                status: Some(401),
            },
        ]
    );
}

#[test]
fn the_server_serves_a_plain_thread_and_closes_its_connections_when_dropped() {
    let server = AcsServer::start(AcsOptions::default());
    let url = server.add_chunk(ID, 10).content;
    let (head, mut stream) = raw_get(&server, &url);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let mut body = [0u8; 10];
    stream.read_exact(&mut body).unwrap();
    assert_eq!(body[..], server.content_bytes(ID, 0..10)[..]);

    // The connection is kept alive, until the server goes.
    drop(server);
    let mut rest = [0u8; 1];
    assert!(matches!(stream.read(&mut rest), Ok(0) | Err(_)));
}

// Generated files.

#[test]
fn content_is_the_same_whichever_piece_is_asked_for_and_differs_between_chunks() {
    let server = AcsServer::start(AcsOptions::default());
    server.add_chunk("a", 1000);
    server.add_chunk("b", 1000);
    let mut whole = Vec::new();
    server.content_reader("a").read_to_end(&mut whole).unwrap();
    assert_eq!(whole.len(), 1000);
    for (start, end) in [(0, 1), (3, 17), (8, 16), (999, 1000), (5, 1000)] {
        assert_eq!(
            server.content_bytes("a", start..end),
            whole[start as usize..end as usize]
        );
    }
    // A reader read in odd pieces yields the same bytes.
    let mut reader = ContentReader::new("a", 1000);
    let mut pieces = Vec::new();
    let mut buffer = [0u8; 13];
    loop {
        let n = reader.read(&mut buffer).unwrap();
        if n == 0 {
            break;
        }
        pieces.extend_from_slice(&buffer[..n]);
    }
    assert_eq!(pieces, whole);
    assert_ne!(server.content_bytes("b", 0..1000), whole);
    assert_eq!(server.content_sha256_hex("a"), sha256_hex(&whole[..]));
}

#[test]
fn metadata_is_real_shaped_and_the_same_for_the_same_chunk() {
    let (one, other) = (
        AcsServer::start(AcsOptions::default()),
        AcsServer::start(AcsOptions::default()),
    );
    one.add_chunk(ID, 1);
    other.add_chunk(ID, 1);
    other.add_chunk("another", 1);
    assert_eq!(one.metadata_bytes(ID), other.metadata_bytes(ID));

    let metadata: Value = serde_json::from_slice(&one.metadata_bytes(ID)).unwrap();
    let another: Value = serde_json::from_slice(&other.metadata_bytes("another")).unwrap();
    assert_eq!(metadata["chunkDocumentId"], ID);
    assert_eq!(metadata["recordingInfo"]["format"], "mp4");
    assert_eq!(metadata["recordingInfo"]["channelType"], "audioVideo");
    assert!(metadata["recordingInfo"]["audioConfiguration"]["sampleRate"].is_u64());
    assert_eq!(metadata["participants"].as_array().unwrap().len(), 2);
    for field in ["resourceId", "callId", "chunkIndex", "chunkStartTime", "chunkDuration"] {
        assert!(!metadata[field].is_null(), "{field}");
    }
    assert_ne!(metadata["callId"], another["callId"]);
}
