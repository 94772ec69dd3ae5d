// What tells an operator that a recording is lost or at risk: an action group (e-mail, when an address is given), one
// scheduled query rule over Application Insights for each loss record the handler writes (src/loss.rs), a rule on
// failed function executions, and a workbook. The Event Grid system topic's metric alerts are in events.bicep, beside
// the topic. tests/deployment/alerts.rs holds every rule's event to one the handler writes, and every loss record to a
// rule or to a reason written below. docs/OPERATIONS.md says what to do for each.
param name string
param location string
param tags object

@description('The Application Insights component the handler\'s records reach (through the Functions host).')
param appInsightsId string

@description('The e-mail address alerts go to; empty: the action group has no receiver (alerts show in the portal only).')
param alertEmail string

// One rule per loss record, matched by its `event` name. Severity: 1 (error) for a chunk lost or about to be lost, 2
// (warning) for what still leaves time, 3 (informational) for files left at ACS. The frequency fits the urgency; the
// window is twice the frequency, so that a record ingested late is still seen, and notifications are muted for a
// window so that one record notifies once. A chunk at risk (RECORDINGS_AT_RISK_HOURS, 6 by default, before ACS deletes
// its files) is written by the sweep every ten minutes: the alert comes within about 40 minutes, hours before the
// deadline.
var lossAlerts = [
  {
    event: 'chunk_expired'
    severity: 1
    frequency: 'PT5M'
    window: 'PT10M'
    title: 'A recording chunk expired at ACS before it was archived'
  }
  {
    event: 'chunk_failed'
    severity: 1
    frequency: 'PT5M'
    window: 'PT10M'
    title: 'A recording chunk\'s archive failed for good'
  }
  {
    event: 'archive_job_poisoned'
    severity: 1
    frequency: 'PT5M'
    window: 'PT10M'
    title: 'The queue gave up on a chunk\'s archive job'
  }
  {
    event: 'chunk_past_deadline'
    severity: 1
    frequency: 'PT10M'
    window: 'PT20M'
    title: 'A pending chunk is past ACS\'s 24-hour deadline'
  }
  {
    event: 'chunk_at_risk'
    severity: 2
    frequency: 'PT10M'
    window: 'PT20M'
    title: 'A pending chunk is close to ACS\'s 24-hour deadline'
  }
  {
    event: 'payload_quarantined'
    severity: 2
    frequency: 'PT15M'
    window: 'PT30M'
    title: 'An event payload was quarantined'
  }
  {
    event: 'acs_delete_skipped'
    severity: 3
    frequency: 'PT30M'
    window: 'PT1H'
    title: 'An archived chunk\'s files were left at ACS'
  }
]

// The records that have no rule, each with its reason.
var unalerted = [
  {
    event: 'recording_erased'
    reason: 'The audit record of an erase someone asked for (DELETE /api/recordings, handler erase): deliberate, not a loss.'
  }
]

// The query of a loss record's rule, EVENT_NAME replaced by the record's name. The record is the message of a
// Host.Function.Console trace (the handler's stderr); the deployment writes JSON lines (RECORDINGS_LOG_FORMAT=json),
// whose fields.event is the name, and a text line is read by its `event="NAME"`. `has` is a cheap prefilter on the
// term index, never the match. Warning and above: the host files an ERROR line holding "warn" anywhere at Warning.
var lossQuery = '''
traces
| where tostring(customDimensions.Category) == "Host.Function.Console" and severityLevel >= 2
| where message has "EVENT_NAME"
| extend record = parse_json(message)
| extend event = coalesce(tostring(record.fields.event), extract(@'(^|\s)event="([a-z_]+)"', 2, message))
| where event == "EVENT_NAME"
| project timestamp, event, call_id = tostring(record.fields.call_id), recording_id = tostring(record.fields.recording_id), chunk_id = tostring(record.fields.chunk_id), reason = tostring(record.fields.reason)
'''

// Failed executions, by function. The handler fails an invocation on purpose when a retry can help (a store or ACS
// that does not answer), so a few are normal: the rule fires above ten in half an hour for one function.
var failuresQuery = '''
requests
| where success == false
| summarize failures = count() by operation_Name
'''

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: 'ag-${name}'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'recordings'
    enabled: true
    emailReceivers: empty(alertEmail) ? [] : [{ name: 'operator', emailAddress: alertEmail, useCommonAlertSchema: true }]
  }
}

resource lossAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [
  for alert in lossAlerts: {
    name: 'alert-${name}-${replace(alert.event, '_', '-')}'
    location: location
    tags: tags
    kind: 'LogAlert'
    properties: {
      displayName: alert.title
      description: 'The handler wrote a ${alert.event} record: see docs/OPERATIONS.md for what it means and what to do.'
      severity: alert.severity
      enabled: true
      scopes: [appInsightsId]
      evaluationFrequency: alert.frequency
      windowSize: alert.window
      criteria: {
        allOf: [
          {
            query: replace(lossQuery, 'EVENT_NAME', alert.event)
            timeAggregation: 'Count'
            operator: 'GreaterThan'
            threshold: 0
            failingPeriods: {
              numberOfEvaluationPeriods: 1
              minFailingPeriodsToAlert: 1
            }
          }
        ]
      }
      autoMitigate: false
      muteActionsDuration: alert.window
      actions: {
        actionGroups: [actionGroup.id]
      }
    }
  }
]

resource failuresAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-${name}-function-failures'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'A function keeps failing'
    description: 'More than ten failed executions of one function in 30 minutes: see docs/OPERATIONS.md.'
    severity: 2
    enabled: true
    scopes: [appInsightsId]
    evaluationFrequency: 'PT10M'
    windowSize: 'PT30M'
    criteria: {
      allOf: [
        {
          query: failuresQuery
          timeAggregation: 'Total'
          metricMeasureColumn: 'failures'
          dimensions: [
            {
              name: 'operation_Name'
              operator: 'Include'
              values: ['*']
            }
          ]
          operator: 'GreaterThan'
          threshold: 10
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [actionGroup.id]
    }
  }
}

// The workbook: loss records over time, the archive sweep's counts (pending, at risk, past the deadline) and the
// oldest pending chunk's age over time, failures by reason, and failed executions. It charts what the records say;
// the exact counts by archive state are the health summary's (GET /api/status, handler status).
var recordsBase = 'traces | where tostring(customDimensions.Category) == "Host.Function.Console" | extend record = parse_json(message) | extend event = tostring(record.fields.event)'
var workbookContent = {
  version: 'Notebook/1.0'
  items: [
    {
      type: 1
      name: 'title'
      content: {
        json: '## Recording archive health\nWhat the handler\'s records say: losses and risks over time, the pending chunks each archive sweep read, and failures by reason. Exact counts by archive state: `GET /api/status` or `handler status`.'
      }
    }
    {
      type: 3
      name: 'loss-records'
      content: {
        version: 'KqlItem/1.0'
        title: 'Loss records by event'
        query: '${recordsBase} | where event in ("chunk_failed", "chunk_expired", "chunk_at_risk", "chunk_past_deadline", "payload_quarantined", "archive_job_poisoned", "acs_delete_skipped") | summarize records = count() by event, bin(timestamp, 1h) | render timechart'
        size: 0
        timeContext: { durationMs: 604800000 }
        queryType: 0
        resourceType: 'microsoft.insights/components'
        crossComponentResources: [appInsightsId]
        visualization: 'timechart'
      }
    }
    {
      type: 3
      name: 'pending-chunks'
      content: {
        version: 'KqlItem/1.0'
        title: 'Pending chunks at each archive sweep'
        query: '${recordsBase} | where event == "archive_sweep" | project timestamp, pending = toint(record.fields.pending), at_risk = toint(record.fields.at_risk), past_deadline = toint(record.fields.past_deadline) | render timechart'
        size: 0
        timeContext: { durationMs: 604800000 }
        queryType: 0
        resourceType: 'microsoft.insights/components'
        crossComponentResources: [appInsightsId]
        visualization: 'timechart'
      }
    }
    {
      type: 3
      name: 'oldest-pending'
      content: {
        version: 'KqlItem/1.0'
        title: 'Age of the oldest pending chunk (hours; ACS deletes at 24)'
        query: '${recordsBase} | where event == "archive_sweep" | project timestamp, hours = todouble(record.fields.oldest_pending_age_seconds) / 3600 | render timechart'
        size: 0
        timeContext: { durationMs: 604800000 }
        queryType: 0
        resourceType: 'microsoft.insights/components'
        crossComponentResources: [appInsightsId]
        visualization: 'timechart'
      }
    }
    {
      type: 3
      name: 'failures-by-reason'
      content: {
        version: 'KqlItem/1.0'
        title: 'Failures by reason'
        query: '${recordsBase} | where event in ("chunk_failed", "chunk_expired", "archive_job_poisoned", "payload_quarantined") | summarize records = count() by event, reason = tostring(record.fields.reason) | order by records desc'
        size: 0
        timeContext: { durationMs: 604800000 }
        queryType: 0
        resourceType: 'microsoft.insights/components'
        crossComponentResources: [appInsightsId]
        visualization: 'table'
      }
    }
    {
      type: 3
      name: 'function-failures'
      content: {
        version: 'KqlItem/1.0'
        title: 'Failed executions by function'
        query: 'requests | where success == false | summarize failures = count() by operation_Name, bin(timestamp, 1h) | render timechart'
        size: 0
        timeContext: { durationMs: 604800000 }
        queryType: 0
        resourceType: 'microsoft.insights/components'
        crossComponentResources: [appInsightsId]
        visualization: 'timechart'
      }
    }
  ]
  isLocked: false
  fallbackResourceIds: [appInsightsId]
}

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, name, 'recording-archive-health')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'Recording archive health (${name})'
    category: 'workbook'
    sourceId: appInsightsId
    version: 'Notebook/1.0'
    serializedData: string(workbookContent)
  }
}

output actionGroupId string = actionGroup.id
output unalerted array = unalerted
