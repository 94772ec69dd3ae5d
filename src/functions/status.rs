//! `Status` (GET): the health summary ([`crate::health`]) over HTTP, `GET /api/status` with a function key — the
//! same JSON `handler status` prints. With forwarding on, the host forwards the request as it is
//! (`host::server` serves it); otherwise it posts `/Status` with the request in `Data.req`, and the answer goes back
//! in `Outputs.res`, as for the recordings API ([`super::recordings`]).

use std::time::Duration;

use async_trait::async_trait;
use tracing::error;

use super::recordings::{in_time, reply, request};
use super::{Function, FunctionError};
use crate::api::{ApiResponse, Problem};
use crate::error::error_chain;
use crate::health::Health;
use crate::host::InvocationReply;

/// The function's folder, its payload route, and its HTTP route (under the `api` prefix).
pub const NAME: &str = "Status";
pub const ROUTE: &str = "status";

/// The summary reads every recording's row (see `docs/OPERATIONS.md`); a large store takes a while. The answer is
/// a 503 a few seconds before, so that the host never answers the caller with its own 500.
pub const BUDGET: Duration = Duration::from_secs(100);

/// The summary as the API answers it: `200` with the JSON, or `503` when the store cannot answer in time (the cause
/// logged here, never told).
pub async fn answer(health: &Health) -> ApiResponse {
    let summary = async {
        match health.status().await {
            Ok(status) => ApiResponse::json(200, &serde_json::to_value(status).unwrap_or_default()),
            Err(e) => {
                error!(error = %error_chain(&e), "cannot read the health summary; answered 503");
                Problem::unavailable().into()
            }
        }
    };
    in_time(BUDGET, summary).await
}

pub struct Status {
    health: Health,
}

impl Status {
    pub fn new(health: Health) -> Self {
        Self { health }
    }
}

#[async_trait]
impl Function for Status {
    fn name(&self) -> &'static str {
        NAME
    }

    fn budget(&self) -> Duration {
        BUDGET
    }

    async fn invoke(&self, body: &[u8], _invocation_id: &str) -> Result<InvocationReply, FunctionError> {
        let response = match request(body) {
            Ok(_) => answer(&self.health).await,
            Err(response) => response,
        };
        Ok(reply(&response))
    }
}
