//! The alert rules hold to the records the handler writes (`src/loss.rs`): every rule and workbook query matches an
//! event the handler writes, by its exact name; every loss record has a rule, or a reason written beside the rules;
//! each rule's urgency fits its record; the action group mails only an address given; the Event Grid topic and failed
//! executions alert too.

use acs_recording_handler::loss::{self, Record};

use super::*;

/// The entries of the array `var {name} = [ … ]` in a template, each as its `key: value` pairs (quotes removed).
fn entries(text: &str, name: &str) -> Vec<BTreeMap<String, String>> {
    let start = text
        .find(&format!("var {name} = ["))
        .unwrap_or_else(|| panic!("no array var {name}"));
    let array = enclosed(text, start, b'[', b']');
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(open) = array[at..].find('{') {
        let entry = block_at(array, at + open);
        let pairs = entry[1..entry.len() - 1]
            .lines()
            .filter_map(|line| line.trim().split_once(": "))
            .map(|(key, value)| (key.to_owned(), value.trim_matches('\'').replace("\\'", "'")))
            .collect();
        found.push(pairs);
        at += open + entry.len();
    }
    found
}

/// The `'''…'''` string of `var {name}` in a template.
fn verbatim(text: &str, name: &str) -> String {
    let start = text
        .find(&format!("var {name} = '''"))
        .unwrap_or_else(|| panic!("no verbatim var {name}"))
        + format!("var {name} = '''").len();
    let end = start + text[start..].find("'''").unwrap();
    text[start..end].to_owned()
}

/// Every event name a query compares `event` with: `event == "NAME"` and `event in ("A", "B")`.
fn compared_events(query: &str) -> Vec<String> {
    let mut names = Vec::new();
    for (at, _) in query.match_indices("event == \"") {
        let rest = &query[at + "event == \"".len()..];
        names.push(rest[..rest.find('"').unwrap()].to_owned());
    }
    for (at, _) in query.match_indices("event in (") {
        let rest = &query[at + "event in (".len()..];
        let list = &rest[..rest.find(')').unwrap()];
        names.extend(list.split(',').map(|name| name.trim().trim_matches('"').to_owned()));
    }
    names
}

fn record(event: &str) -> Option<Record> {
    loss::ALL.into_iter().find(|record| record.event == event)
}

/// An ISO 8601 duration of minutes or hours (`PT5M`, `PT1H`), in minutes.
fn minutes(duration: &str) -> u32 {
    let value = duration.strip_prefix("PT").unwrap_or_else(|| panic!("{duration}"));
    match value.split_at(value.len() - 1) {
        (n, "M") => n.parse().unwrap(),
        (n, "H") => n.parse::<u32>().unwrap() * 60,
        _ => panic!("{duration}"),
    }
}

#[test]
fn every_loss_record_has_an_alert_rule_or_a_reason_and_every_rule_an_event_the_handler_writes() {
    let alerts = read("infra/modules/alerts.bicep");
    let rules = entries(&alerts, "lossAlerts");
    let unalerted = entries(&alerts, "unalerted");
    let ruled: Vec<&str> = rules.iter().map(|rule| rule["event"].as_str()).collect();
    for rule in &rules {
        let event = &rule["event"];
        let record = record(event).unwrap_or_else(|| panic!("a rule matches {event}, which the handler never writes"));
        assert!(loss::RECORDS.contains(&record), "{event} is no loss record");
        assert!(
            record.level <= tracing::Level::WARN,
            "{event} is written at {}: the rule's query (Warning and above) never sees it",
            record.level
        );
        assert!(!rule["title"].is_empty(), "{event}'s rule has no title");
    }
    for entry in &unalerted {
        assert!(record(&entry["event"]).is_some(), "{}: no such record", entry["event"]);
        assert!(entry["reason"].len() > 20, "{}: the reason is missing", entry["event"]);
        assert!(
            !ruled.contains(&entry["event"].as_str()),
            "{} has a rule and a reason",
            entry["event"]
        );
    }
    for record in loss::RECORDS {
        assert!(
            ruled.contains(&record.event) || unalerted.iter().any(|entry| entry["event"] == record.event),
            "{} has no rule and no reason for none",
            record.event
        );
    }
    let mut unique = ruled.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ruled.len(), "one rule per record: {ruled:?}");

    // Every rule of the array runs the one query, with its own event's name in it.
    let rule = enclosed(&alerts, alerts.find("resource lossAlert ").unwrap(), b'[', b']');
    assert!(rule.contains("for alert in lossAlerts"), "{rule}");
    assert!(
        rule.contains("query: replace(lossQuery, 'EVENT_NAME', alert.event)"),
        "{rule}"
    );
    assert!(rule.contains("scopes: [appInsightsId]") && rule.contains("actionGroups: [actionGroup.id]"));
    let query = verbatim(&alerts, "lossQuery");
    for event in ruled {
        let query = query.replace("EVENT_NAME", event);
        assert_eq!(compared_events(&query), [event], "{query}");
    }
}

#[test]
fn the_loss_query_reads_the_event_name_as_both_log_formats_write_it_and_at_warning_and_above() {
    let query = verbatim(&read("infra/modules/alerts.bicep"), "lossQuery");
    assert!(query.starts_with("\ntraces\n"), "over the component's traces: {query}");
    assert!(
        query.contains(r#"tostring(customDimensions.Category) == "Host.Function.Console""#),
        "the handler's own console, not an invocation's Logs: {query}"
    );
    // The host files an ERROR line holding "warn" anywhere at Warning: the query cannot ask for Error alone.
    assert!(query.contains("severityLevel >= 2") && !query.contains("severityLevel == 3"));
    // JSON lines (the deployment's format) by their field; text lines by `event="NAME"` at a token's start, so that
    // a sentence or another field's quoted value never matches.
    assert!(query.contains("tostring(record.fields.event)"), "{query}");
    assert!(
        query.contains(r#"extract(@'(^|\s)event="([a-z_]+)"', 2, message)"#),
        "{query}"
    );
    assert!(query.contains(r#"where message has "EVENT_NAME""#), "a prefilter only");
    assert_eq!(setting("RECORDINGS_LOG_FORMAT"), "'json'");
}

#[test]
fn each_rule_alerts_within_its_urgency_and_a_chunk_at_risk_hours_before_acs_deletes_it() {
    let alerts = read("infra/modules/alerts.bicep");
    for rule in entries(&alerts, "lossAlerts") {
        let (frequency, window) = (minutes(&rule["frequency"]), minutes(&rule["window"]));
        assert!(
            window >= 2 * frequency,
            "{}: a late record falls between windows",
            rule["event"]
        );
        let severity: u8 = rule["severity"].parse().unwrap();
        let lost = [
            "chunk_expired",
            "chunk_failed",
            "archive_job_poisoned",
            "chunk_past_deadline",
        ];
        if lost.contains(&rule["event"].as_str()) {
            assert!(
                severity <= 1 && frequency <= 10,
                "{}: a lost chunk waits",
                rule["event"]
            );
        } else {
            assert!(severity >= 2 && frequency <= 30, "{}", rule["event"]);
        }
    }
    // The sweep writes chunk_at_risk every ten minutes (ArchiveSweep's schedule) from RECORDINGS_AT_RISK_HOURS
    // (at least one hour) before ACS's deadline: the rule must notify well within that hour.
    let at_risk = entries(&alerts, "lossAlerts")
        .into_iter()
        .find(|rule| rule["event"] == "chunk_at_risk")
        .unwrap();
    let schedule = read("ArchiveSweep/function.json");
    assert!(schedule.contains("\"0 */10 * * * *\""), "{schedule}");
    assert!(10 + minutes(&at_risk["frequency"]) + minutes(&at_risk["window"]) <= 60);
    assert!(read("infra/main.bicep").contains("@minValue(1)\n@maxValue(23)\n@description('RECORDINGS_AT_RISK_HOURS"));
    assert_eq!(setting("RECORDINGS_AT_RISK_HOURS"), "string(atRiskHours)");
}

#[test]
fn the_action_group_mails_only_an_address_given_and_every_rule_notifies_it() {
    let alerts = read("infra/modules/alerts.bicep");
    let group = block_at(&alerts, alerts.find("resource actionGroup ").unwrap());
    assert!(
        group.contains(
            "emailReceivers: empty(alertEmail) ? [] : [{ name: 'operator', emailAddress: alertEmail, useCommonAlertSchema: true }]"
        ),
        "{group}"
    );
    assert!(group.contains("groupShortName: 'recordings'"), "at most 12 characters");
    let parameters: Value = serde_json::from_str(&read("infra/main.parameters.json")).unwrap();
    assert_eq!(parameters["parameters"]["alertEmail"]["value"], "${AZURE_ALERT_EMAIL=}");
    assert!(read("infra/main.bicep").contains("param alertEmail string = ''"));
    assert!(module_block("alerts").contains("alertEmail: alertEmail"));
    assert!(module_block("events").contains("actionGroupId: alerts.outputs.actionGroupId"));
    let failures = block_at(&alerts, alerts.find("resource failuresAlert ").unwrap());
    assert!(failures.contains("actionGroups: [actionGroup.id]"), "{failures}");
    assert!(verbatim(&alerts, "failuresQuery").contains("requests\n| where success == false"));
}

#[test]
fn the_event_grid_topic_alerts_on_dead_lettered_dropped_and_failed_deliveries() {
    let events = read("infra/modules/events.bicep");
    let metrics: Vec<String> = entries(&events, "topicAlerts")
        .into_iter()
        .map(|alert| alert["metric"].clone())
        .collect();
    assert_eq!(
        metrics,
        ["DeadLetteredCount", "DroppedEventCount", "DeliveryAttemptFailCount"]
    );
    let rule = enclosed(&events, events.find("resource topicAlert ").unwrap(), b'[', b']');
    for expected in [
        "for alert in topicAlerts",
        "scopes: [topic.id]",
        "metricNamespace: 'Microsoft.EventGrid/systemTopics'",
        "metricName: alert.metric",
        "actions: [{ actionGroupId: actionGroupId }]",
        "name: 'alert-${environmentName}-${toLower(alert.metric)}'",
    ] {
        assert!(rule.contains(expected), "{expected}:\n{rule}");
    }
}

#[test]
fn the_workbook_charts_only_events_the_handler_writes() {
    let alerts = read("infra/modules/alerts.bicep");
    let workbook = block_at(&alerts, alerts.find("var workbookContent = ").unwrap());
    let mut charted = Vec::new();
    for (at, _) in workbook.match_indices("query: '") {
        let query = &workbook[at + "query: '".len()..];
        charted.extend(compared_events(&query[..query.find("'\n").unwrap()]));
    }
    for event in [
        "archive_sweep",
        "chunk_failed",
        "chunk_expired",
        "chunk_at_risk",
        "archive_job_poisoned",
    ] {
        assert!(
            charted.iter().any(|name| name == event),
            "the workbook does not chart {event}"
        );
    }
    for event in &charted {
        assert!(
            record(event).is_some(),
            "the workbook charts {event}, which the handler never writes"
        );
    }
    assert!(alerts.contains("serializedData: string(workbookContent)"));
}
