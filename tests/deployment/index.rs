//! The recordings container indexes what the Cosmos DB store's queries filter on, and nothing else.

use super::*;

/// The indexing policy's included and excluded paths of a Cosmos DB container in cosmos.bicep; `None` for a
/// container without a policy (Cosmos DB's default indexes every path).
fn indexing_policy(cosmos: &str, container: &str) -> Option<(Vec<String>, Vec<String>)> {
    let block = cosmos
        .match_indices("'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@")
        .map(|(at, _)| block_at(cosmos, at))
        .find(|block| block.contains(&format!("id: '{container}'")))
        .unwrap_or_else(|| panic!("cosmos.bicep makes no container {container}"));
    let policy_at = block.find("indexingPolicy:")?;
    let policy = block_at(block, policy_at);
    let paths = |key: &str| -> Vec<String> {
        let list = enclosed(policy, policy.find(key).unwrap(), b'[', b']');
        list.split("path: '")
            .skip(1)
            .map(|p| p.split('\'').next().unwrap().to_owned())
            .collect()
    };
    Some((paths("includedPaths"), paths("excludedPaths")))
}

/// The query with its outermost projection (from `SELECT` to the `FROM` outside every parenthesis) blanked out: a
/// projection is computed on the documents the query selects, filters none of them, and needs no index.
fn without_projection(sql: &str) -> String {
    let mut depth = 0usize;
    let bytes = sql.as_bytes();
    for (at, byte) in bytes.iter().enumerate() {
        match byte {
            b'(' => depth += 1,
            b')' => depth = depth.saturating_sub(1),
            _ if depth == 0 && sql[at..].starts_with(" FROM ") => {
                return format!("{}{}", " ".repeat(at), &sql[at..]);
            }
            _ => {}
        }
    }
    sql.to_owned()
}

/// The property paths a query filters on: `(path, existence)`, where `existence` marks an IS_DEFINED test. `c.a.b`
/// is `/a/b`; an alias of `FROM x IN c.list` stands for `/list/[]`.
fn query_paths(sql: &str) -> Vec<(String, bool)> {
    let mut aliases = BTreeMap::from([("c".to_owned(), String::new())]);
    let words: Vec<&str> = sql.split_whitespace().collect();
    for window in words.windows(4) {
        if (window[0] == "FROM" || window[0] == "JOIN") && window[2] == "IN" {
            let source = window[3].trim_end_matches(')');
            let (alias, rest) = source.split_once('.').unwrap();
            aliases.insert(
                window[1].to_owned(),
                format!("{}/{}/[]", aliases[alias], rest.replace('.', "/")),
            );
        }
    }
    let sql = &without_projection(sql);
    let mut found = Vec::new();
    let bytes = sql.as_bytes();
    let mut i = 0;
    while i < sql.len() {
        let starts_word =
            i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_' || bytes[i - 1] == b'.');
        let end = sql[i..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .map_or(sql.len(), |n| i + n);
        let token = &sql[i..end];
        if starts_word && token.contains('.') {
            let (alias, rest) = token.split_once('.').unwrap();
            let source_of_alias = sql[..i].trim_end().ends_with(" IN");
            if let (Some(base), false) = (aliases.get(alias), source_of_alias) {
                let path = format!("{base}/{}", rest.replace('.', "/"));
                let existence = sql[..i].trim_end().ends_with("IS_DEFINED(");
                found.push((path, existence));
            }
        }
        i = if end > i { end } else { i + 1 };
    }
    found
}

/// Whether the policy indexes the scalar at `path` (Cosmos DB applies the most precise matching path; `/?` beats
/// `/*` on the same prefix).
fn indexes_value(included: &[String], excluded: &[String], path: &str) -> bool {
    let precision = |pattern: &str| -> Option<usize> {
        if let Some(prefix) = pattern.strip_suffix("/?") {
            (prefix == path).then_some(prefix.len() * 2 + 1)
        } else {
            let prefix = pattern.strip_suffix("/*").unwrap();
            (path.starts_with(&format!("{prefix}/")) || prefix.is_empty()).then_some(prefix.len() * 2)
        }
    };
    let best = |patterns: &[String]| patterns.iter().filter_map(|p| precision(p)).max();
    match (best(included), best(excluded)) {
        (Some(i), Some(e)) => i > e,
        (Some(_), None) => true,
        _ => false,
    }
}

/// Every (query, path) the recordings container's policy does not serve: a value a query compares must be indexed;
/// an IS_DEFINED test needs an indexed path at or under the property tested.
fn unindexed(included: &[String], excluded: &[String]) -> Vec<String> {
    let mut missing = Vec::new();
    for query in queries::all()
        .into_iter()
        .filter(|q| q.container == Container::Recordings)
    {
        for (path, existence) in query_paths(&query.sql) {
            let served = indexes_value(included, excluded, &path)
                || (existence && included.iter().any(|p| p != "/*" && p.starts_with(&format!("{path}/"))));
            if !served {
                missing.push(format!("{}: {path}", query.name));
            }
        }
    }
    missing
}

#[test]
fn every_query_the_store_sends_filters_on_paths_the_container_indexes() {
    let cosmos = read("infra/modules/cosmos.bicep");
    let (included, excluded) =
        indexing_policy(&cosmos, DEFAULT_CONTAINER).expect("the recordings container indexes everything");
    assert!(
        excluded.contains(&"/*".to_owned()),
        "the recordings container indexes every path: {excluded:?}"
    );
    let missing = unindexed(&included, &excluded);
    assert!(
        missing.is_empty(),
        "queries filter on paths the container does not index:\n{}",
        missing.join("\n")
    );

    // Every path indexed is one a query filters on, or the partition key (which Cosmos DB does not index by
    // itself): none costs writes for nothing.
    let queried: BTreeSet<String> = queries::all()
        .iter()
        .filter(|q| q.container == Container::Recordings)
        .flat_map(|q| query_paths(&q.sql))
        .map(|(path, _)| path)
        .collect();
    for path in &included {
        let scalar = path.strip_suffix("/?").unwrap_or(path);
        assert!(
            queried.contains(scalar) || scalar == RECORDINGS_PARTITION_KEY,
            "{path} is indexed, but no query filters on it"
        );
    }
    assert!(included.contains(&format!("{RECORDINGS_PARTITION_KEY}/?")));

    // The quarantine keeps Cosmos DB's default policy (it is queried by payload text): every path indexed.
    assert!(indexing_policy(&cosmos, DEFAULT_QUARANTINE_CONTAINER).is_none());
    assert!(queries::all().iter().any(|q| q.container == Container::Quarantine));
}

#[test]
fn the_index_check_reads_each_querys_paths_and_fails_for_a_path_left_out() {
    let paths = |sql: &str| {
        query_paths(sql)
            .into_iter()
            .map(|(p, e)| format!("{p}{}", if e { "?" } else { "" }))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        paths("SELECT * FROM c WHERE IS_DEFINED(c.chunks) AND c.serverCallId = @serverCallId"),
        ["/chunks?", "/serverCallId"]
    );
    assert_eq!(
        paths(
            "SELECT * FROM c WHERE EXISTS(SELECT VALUE ch FROM ch IN c.chunks WHERE ch.archive.state = 'pending' OR ch.archive.retryable = true)"
        ),
        ["/chunks/[]/archive/state", "/chunks/[]/archive/retryable"]
    );
    // What a query projects filters nothing (the health summary's counts are computed on every document), but its
    // source and conditions do.
    assert_eq!(
        paths(
            "SELECT c.id, (SELECT VALUE COUNT(1) FROM k IN c.chunks WHERE k.archive.state = 'pending') AS pending FROM c \
             WHERE IS_DEFINED(c.chunks)"
        ),
        ["/chunks?"]
    );
    assert_eq!(paths("SELECT VALUE 1 FROM c"), Vec::<String>::new());
    // A query that orders by a chunk's time, say, names that path too.
    assert_eq!(
        paths("SELECT * FROM c JOIN ch IN c.chunks WHERE ch.announcedAt < @before ORDER BY c._ts"),
        ["/chunks/[]/announcedAt", "/_ts"]
    );

    let cosmos = read("infra/modules/cosmos.bicep");
    let (included, excluded) = indexing_policy(&cosmos, DEFAULT_CONTAINER).unwrap();
    for left_out in [
        "/serverCallId/?",
        "/chunks/[]/archive/state/?",
        "/chunks/[]/archive/retryable/?",
    ] {
        let fewer: Vec<String> = included.iter().filter(|p| *p != left_out).cloned().collect();
        assert!(
            !unindexed(&fewer, &excluded).is_empty(),
            "leaving {left_out} out went unnoticed"
        );
    }
    assert!(!indexes_value(&included, &excluded, "/chunks/[]/contentLocation"));
    assert!(indexes_value(&["/*".to_owned()], &[], "/anything/at/all"));
}
