// The Event Grid system topic of the existing ACS resource, deployed in the resource group that holds (or will hold)
// it: a system topic lives in its source's subscription, and an ACS resource has at most one, so an existing topic is
// taken by name (the preprovision hook finds it) and updated in place. The subscription to RecordingEvent is made by
// the postdeploy hook once the function exists (scripts/subscription.py). The topic outlives `azd down`: it belongs to
// the ACS resource, and a later `azd up` takes it again.
param name string
param acsResourceId string
param workspaceId string

@description('The azd environment: environments that share an ACS resource share its topic, each with its own logs and alerts.')
param environmentName string

@description('The action group the topic\'s metric alerts notify (alerts.bicep).')
param actionGroupId string

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: name
  location: 'global'
  // Its own identity writes dead-lettered events into the archive (deadletter-access.bicep). This replaces a
  // user-assigned identity an existing topic may have had.
  identity: { type: 'SystemAssigned' }
  properties: {
    source: acsResourceId
    topicType: 'Microsoft.Communication.CommunicationServices'
  }
}

// Events Event Grid could not deliver (DeliveryFailures, the one log category of a system topic) and its metrics,
// dead-lettered events among them, into Log Analytics.
resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'recording-events-${environmentName}'
  scope: topic
  properties: {
    workspaceId: workspaceId
    logs: [{ category: 'DeliveryFailures', enabled: true }]
    metrics: [{ category: 'AllMetrics', enabled: true }]
  }
}

// Events that Event Grid gave up on or could not deliver, as the topic's metrics count them (Microsoft.EventGrid/
// systemTopics: DeadLetteredCount, DroppedEventCount, DeliveryAttemptFailCount). A dead-lettered event's recording is
// only in the archive's deadletter container until it is replayed; a dropped one is gone. Failed delivery attempts
// are retried for 24 hours, so only a burst alerts. Beside the topic, in its resource group, like its diagnostic
// setting: `azd down` leaves them with the topic.
var topicAlerts = [
  {
    metric: 'DeadLetteredCount'
    severity: 1
    threshold: 0
    window: 'PT15M'
    title: 'Recording events were dead-lettered'
  }
  {
    metric: 'DroppedEventCount'
    severity: 0
    threshold: 0
    window: 'PT15M'
    title: 'Recording events were dropped'
  }
  {
    metric: 'DeliveryAttemptFailCount'
    severity: 3
    threshold: 10
    window: 'PT30M'
    title: 'Deliveries of recording events keep failing'
  }
]

resource topicAlert 'Microsoft.Insights/metricAlerts@2018-03-01' = [
  for alert in topicAlerts: {
    name: 'alert-${environmentName}-${toLower(alert.metric)}'
    location: 'global'
    properties: {
      description: '${alert.title}: see docs/OPERATIONS.md.'
      severity: alert.severity
      enabled: true
      scopes: [topic.id]
      evaluationFrequency: 'PT5M'
      windowSize: alert.window
      criteria: {
        'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
        allOf: [
          {
            name: alert.metric
            criterionType: 'StaticThresholdCriterion'
            metricNamespace: 'Microsoft.EventGrid/systemTopics'
            metricName: alert.metric
            operator: 'GreaterThan'
            threshold: alert.threshold
            timeAggregation: 'Total'
          }
        ]
      }
      autoMitigate: true
      actions: [{ actionGroupId: actionGroupId }]
    }
  }
]

output id string = topic.id
output principalId string = topic.identity.principalId
