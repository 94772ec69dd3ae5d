// The Event Grid system topic of the existing ACS resource, deployed in the resource group that holds (or will hold)
// it: a system topic lives in its source's subscription, and an ACS resource has at most one, so an existing topic is
// taken by name (the preprovision hook finds it) and updated in place. The subscription to RecordingEvent is made by
// the postdeploy hook once the function exists (scripts/subscription.py). The topic outlives `azd down`: it belongs to
// the ACS resource, and a later `azd up` takes it again.
param name string
param acsResourceId string
param workspaceId string

@description('The azd environment: environments that share an ACS resource share its topic, each with its own logs.')
param environmentName string

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

output id string = topic.id
output principalId string = topic.identity.principalId
