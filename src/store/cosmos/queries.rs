//! Every query the Cosmos DB store sends, in one place: the recordings container's indexing policy in the deployment
//! template (`infra/modules/cosmos.bicep`) indexes only the paths these filter on, and `tests/deployment/index.rs`
//! holds each of [`all`] to it. A new query goes into [`all`] too.

/// The container a query runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// Recording documents and tombstones, partitioned by `/callId`.
    Recordings,
    /// Quarantined payloads, partitioned by `/id`.
    Quarantine,
}

/// A query the store sends, by what it is for.
#[derive(Debug, Clone)]
pub struct SentQuery {
    pub name: &'static str,
    pub container: Container,
    pub sql: String,
}

/// The recordings with a chunk the archive sweep may queue (`RecordingDocument::has_chunks_to_sweep`), in one query
/// over the container, read a page at a time.
pub(super) const UNFINISHED_ARCHIVES: &str = "SELECT * FROM c WHERE EXISTS(SELECT VALUE ch FROM ch IN c.chunks WHERE \
                                              ch.archive.state = 'pending' OR (ch.archive.state = 'failed' AND \
                                              ch.archive.retryable = true))";

/// Every recording document (tombstones have no `chunks`).
pub(super) const ALL_RECORDINGS: &str = "SELECT * FROM c WHERE IS_DEFINED(c.chunks)";

/// A listing's conditions, added to [`ALL_RECORDINGS`] for the filters given, each with its parameter.
const BY_SERVER_CALL: &str = " AND c.serverCallId = @serverCallId";
const BY_ARCHIVE_STATE: &str =
    " AND EXISTS(SELECT VALUE ch FROM ch IN c.chunks WHERE ch.archive.state = @archiveState)";

/// A partition's tombstones.
pub(super) const TOMBSTONES: &str = "SELECT * FROM c WHERE NOT IS_DEFINED(c.chunks)";

/// The quarantined payloads that may name a call; `QuarantineEntry::names_call` decides on each. Text holding the
/// call id as it is or as UTF-16 reads it (`@utf16le`, `@utf16be`: a zero after or before each character), and
/// every payload kept as base64, which only decoding can read.
pub(super) const QUARANTINE_NAMING: &str = "SELECT * FROM c WHERE CONTAINS(c.payload, @call) OR CONTAINS(c.payload, @utf16le) \
     OR CONTAINS(c.payload, @utf16be) OR IS_DEFINED(c.payloadBase64)";

/// The health summary's reading of the recordings container: one small row per document or tombstone — its ids, its
/// chunks counted by archive state and its pending chunks' announcements (`health::RecordingSummary`) — over the
/// whole container. The counts are made per document on the server; the SDK runs no aggregate across partitions
/// (see `docs/OPERATIONS.md`), so the rows are added up by the store. It filters no document: it needs no index.
pub(super) const STATUS_ROWS: &str = "SELECT c.callId, c.id, c.firstEventTime, IS_DEFINED(c.chunks) AS recording, \
     (SELECT VALUE COUNT(1) FROM k IN c.chunks WHERE IS_STRING(k.documentId) AND k.archive.state = 'pending') AS pending, \
     (SELECT VALUE COUNT(1) FROM k IN c.chunks WHERE IS_STRING(k.documentId) AND k.archive.state = 'archived') AS archived, \
     (SELECT VALUE COUNT(1) FROM k IN c.chunks WHERE IS_STRING(k.documentId) AND k.archive.state = 'failed') AS failed, \
     (SELECT VALUE COUNT(1) FROM k IN c.chunks WHERE IS_STRING(k.documentId) AND k.archive.state = 'expired') AS expired, \
     (SELECT VALUE COUNT(1) FROM k IN c.chunks WHERE IS_STRING(k.documentId) AND k.archive.state = 'external') AS external, \
     ARRAY(SELECT k.documentId, k.announcedAt FROM k IN c.chunks \
           WHERE IS_STRING(k.documentId) AND k.archive.state = 'pending') AS pendingChunks \
     FROM c";

/// The health summary's reading of the quarantine: a `1` per entry, nothing else of it.
pub(super) const STATUS_QUARANTINED: &str = "SELECT VALUE 1 FROM c";

/// A listing's query: every recording, narrowed to a server call id (`@serverCallId`) and to recordings with a chunk
/// in an archive state (`@archiveState`) when asked.
pub(super) fn listing(by_server_call: bool, by_archive_state: bool) -> String {
    let mut sql = ALL_RECORDINGS.to_owned();
    if by_server_call {
        sql.push_str(BY_SERVER_CALL);
    }
    if by_archive_state {
        sql.push_str(BY_ARCHIVE_STATE);
    }
    sql
}

/// Every query the store sends: each fixed one, and each listing's filter combination.
pub fn all() -> Vec<SentQuery> {
    let fixed = |name, container, sql: &str| SentQuery {
        name,
        container,
        sql: sql.to_owned(),
    };
    let listing = |name, by_server_call, by_archive_state| SentQuery {
        name,
        container: Container::Recordings,
        sql: listing(by_server_call, by_archive_state),
    };
    vec![
        fixed("unfinished archives", Container::Recordings, UNFINISHED_ARCHIVES),
        fixed("a call's or every recording", Container::Recordings, ALL_RECORDINGS),
        listing("listing by server call", true, false),
        listing("listing by archive state", false, true),
        listing("listing by server call and archive state", true, true),
        fixed("a call's tombstones", Container::Recordings, TOMBSTONES),
        fixed("quarantine naming a call", Container::Quarantine, QUARANTINE_NAMING),
        fixed("the health summary's rows", Container::Recordings, STATUS_ROWS),
        fixed(
            "the health summary's quarantine count",
            Container::Quarantine,
            STATUS_QUARANTINED,
        ),
    ]
}
