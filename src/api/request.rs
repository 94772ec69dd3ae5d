//! What a request to the recordings API asks for, read from its route parameters and query string: pure, so that
//! both ways the host reaches the handler (a forwarded request, an invocation payload) read it the same.

use crate::recording::ArchiveStatus;
use crate::store::ListFilter;

use super::problem::Problem;
use super::token;

/// Recordings per page when the request does not say.
pub const DEFAULT_LIMIT: usize = 50;
/// The most recordings one page may hold.
pub const MAX_LIMIT: usize = 200;

/// A listing asked for: which recordings, how many, from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRequest {
    pub filter: ListFilter,
    pub limit: usize,
    /// The store's continuation, out of the request's token.
    pub continuation: Option<String>,
}

/// Reads a listing request: `call_id` from the route, the rest from the query's `(name, value)` pairs (decoded):
/// `limit`, `continuationToken`, `serverCallId` and `archiveState`. Any other parameter (the host's `code`, say)
/// is left alone.
pub fn list_request(call_id: Option<&str>, query: &[(String, String)]) -> Result<ListRequest, Problem> {
    let value = |name: &str| -> Result<Option<&str>, Problem> {
        let mut values = query
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.as_str());
        match (values.next(), values.next()) {
            (None, _) => Ok(None),
            (Some(_), Some(_)) => Err(Problem::bad_request(format!("{name} is given more than once"))),
            (Some(""), None) => Err(Problem::bad_request(format!("{name} is empty"))),
            (Some(value), None) => Ok(Some(value)),
        }
    };
    let limit = match value("limit")? {
        None => DEFAULT_LIMIT,
        Some(text) => match text.parse::<usize>() {
            Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => limit,
            _ => {
                return Err(Problem::bad_request(format!(
                    "limit must be a whole number from 1 to {MAX_LIMIT}, not {text:?}"
                )));
            }
        },
    };
    let archive_state = match value("archiveState")? {
        None => None,
        Some(text) => Some(archive_state(text).ok_or_else(|| {
            Problem::bad_request(format!(
                "archiveState must be one of pending, archived, expired, failed, external, not {text:?}"
            ))
        })?),
    };
    let filter = ListFilter {
        call_id: call_id.filter(|call| !call.is_empty()).map(str::to_owned),
        server_call_id: value("serverCallId")?.map(str::to_owned),
        archive_state,
    };
    let continuation = match value("continuationToken")? {
        None => None,
        Some(given) => Some(token::redeem(given, &filter).ok_or_else(Problem::unknown_token)?),
    };
    Ok(ListRequest {
        filter,
        limit,
        continuation,
    })
}

fn archive_state(text: &str) -> Option<ArchiveStatus> {
    [
        ArchiveStatus::Pending,
        ArchiveStatus::Archived,
        ArchiveStatus::Expired,
        ArchiveStatus::Failed,
        ArchiveStatus::External,
    ]
    .into_iter()
    .find(|state| state.as_str() == text)
}

/// The `(name, value)` pairs of a query string, percent-decoded.
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_bytes()).into_owned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(query: &str) -> Vec<(String, String)> {
        query_pairs(query)
    }

    #[test]
    fn a_listing_reads_its_filters_limit_and_token_and_leaves_the_key_alone() {
        let request = list_request(
            Some("c1"),
            &pairs("code=secret&serverCallId=s%2F1&archiveState=failed&limit=7"),
        )
        .unwrap();
        assert_eq!(
            request,
            ListRequest {
                filter: ListFilter {
                    call_id: Some("c1".into()),
                    server_call_id: Some("s/1".into()),
                    archive_state: Some(ArchiveStatus::Failed),
                },
                limit: 7,
                continuation: None,
            }
        );
        let all = list_request(None, &[]).unwrap();
        assert_eq!((all.filter, all.limit), (ListFilter::default(), DEFAULT_LIMIT));

        let token = token::issue(&request.filter, "next");
        let query = format!("serverCallId=s%2F1&archiveState=failed&continuationToken={token}");
        let next = list_request(Some("c1"), &pairs(&query)).unwrap();
        assert_eq!(next.continuation.as_deref(), Some("next"));
    }

    #[test]
    fn every_bad_value_is_a_400_that_names_it() {
        for (query, named) in [
            ("limit=abc", "limit"),
            ("limit=0", "limit"),
            ("limit=201", "limit"),
            ("limit=-1", "limit"),
            ("limit=1.5", "limit"),
            ("limit=", "limit"),
            ("limit=5&limit=6", "limit"),
            ("archiveState=lost", "archiveState"),
            ("archiveState=Archived", "archiveState"),
            ("serverCallId=", "serverCallId"),
            ("continuationToken=abc", "continuationToken"),
        ] {
            let problem = list_request(None, &pairs(query)).unwrap_err();
            assert_eq!(problem.status, 400, "{query}");
            assert!(problem.detail.contains(named), "{query}: {}", problem.detail);
        }
        assert_eq!(list_request(None, &pairs("limit=200")).unwrap().limit, 200);
        assert_eq!(list_request(None, &pairs("limit=1")).unwrap().limit, 1);
    }
}
