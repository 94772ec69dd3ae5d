//! A managed identity endpoint for tests, as App Service and Azure Functions provide one: the handler finds it
//! through `IDENTITY_ENDPOINT` and `IDENTITY_HEADER`, and the official `azure_identity` crate asks it for tokens.
//! It hands out one fixed token and records what each request asked for, so that the Microsoft Entra ID paths run
//! end to end against the test servers.

use std::sync::{Arc, Mutex};

use tokio::io::AsyncWriteExt;

use super::ports::Port;

/// The secret App Service puts in `IDENTITY_HEADER`, which the endpoint requires.
pub const IDENTITY_HEADER: &str = "test-identity-header";

/// One token request: the resource it named, and the client id when a user-assigned identity was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    pub resource: Option<String>,
    pub client_id: Option<String>,
    pub header_ok: bool,
}

pub struct IdentityEndpoint {
    port: Port,
    requests: Arc<Mutex<Vec<TokenRequest>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl IdentityEndpoint {
    /// Serves `token` to every request that carries the identity header.
    pub fn start(token: &str) -> IdentityEndpoint {
        let port = Port::reserve();
        let requests: Arc<Mutex<Vec<TokenRequest>>> = Arc::default();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready, is_ready) = std::sync::mpsc::channel();
        let thread = {
            let (requests, token, port) = (requests.clone(), token.to_owned(), port.0);
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
                    ready.send(()).unwrap();
                    let serve = async {
                        while let Ok((socket, _)) = listener.accept().await {
                            tokio::spawn(answer(socket, requests.clone(), token.clone()));
                        }
                    };
                    tokio::select! {
                        _ = serve => {}
                        _ = stopped => {}
                    }
                });
            })
        };
        is_ready.recv().unwrap();
        IdentityEndpoint {
            port,
            requests,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The settings that point the handler's managed identity here.
    pub fn settings(&self) -> Vec<(String, String)> {
        vec![
            (
                "IDENTITY_ENDPOINT".into(),
                format!("http://127.0.0.1:{}/msi/token", self.port.0),
            ),
            ("IDENTITY_HEADER".into(), IDENTITY_HEADER.into()),
        ]
    }

    pub fn requests(&self) -> Vec<TokenRequest> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for IdentityEndpoint {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn answer(mut socket: tokio::net::TcpStream, requests: Arc<Mutex<Vec<TokenRequest>>>, token: String) {
    let Some(request) = super::read_request_head(&mut socket).await else {
        return;
    };
    let text = String::from_utf8_lossy(&request).into_owned();
    let target = text.split_whitespace().nth(1).unwrap_or_default();
    let query = url::Url::parse(&format!("http://x{target}")).ok();
    let param = |name: &str| {
        query
            .as_ref()
            .and_then(|q| q.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned()))
    };
    let header_ok = text
        .lines()
        .any(|line| line.to_ascii_lowercase() == format!("x-identity-header: {IDENTITY_HEADER}"));
    let resource = param("resource");
    requests.lock().unwrap().push(TokenRequest {
        resource: resource.clone(),
        client_id: param("client_id"),
        header_ok,
    });
    let expires_on = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let (status, body) = if header_ok {
        let body = serde_json::json!({
            "access_token": token,
            "expires_on": expires_on.to_string(),
            "resource": resource.unwrap_or_default(),
            "token_type": "Bearer",
        });
        ("200 OK", body.to_string())
    } else {
        ("400 Bad Request", r#"{"error":"missing x-identity-header"}"#.to_owned())
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = socket.write_all(reply.as_bytes()).await;
    let _ = socket.shutdown().await;
}

/// A token as Microsoft Entra ID issues one for Blob Storage, as far as Azurite looks: its audience, issuer and
/// lifetime (Azurite checks no signature), and the identity's object and tenant ids, which a user delegation key
/// names.
pub fn storage_token() -> String {
    use base64::Engine;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let part = |value: serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string());
    format!(
        "{}.{}.{}",
        part(serde_json::json!({"typ": "JWT", "alg": "RS256"})),
        part(serde_json::json!({
            "aud": "https://storage.azure.com",
            "iss": "https://sts.windows.net/11111111-2222-3333-4444-555555555555/",
            "iat": now - 300,
            "nbf": now - 300,
            "exp": now + 3600,
            "oid": "66666666-7777-8888-9999-000000000000",
            "tid": "11111111-2222-3333-4444-555555555555",
        })),
        "c2lnbmF0dXJl"
    )
}
