// Log Analytics and Application Insights with local authentication off: telemetry is accepted only with the app
// identity's token, which the Monitoring Metrics Publisher role allows. The other modules' diagnostic settings (the
// archive's blob service, Cosmos DB, the Event Grid system topic) send their logs to this workspace.
param name string
param location string
param tags object

@description('The app\'s identity, which sends the telemetry.')
param appPrincipalId string

var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb' // Monitoring Metrics Publisher

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-${name}'
  location: location
  tags: tags
  properties: {
    sku: { name: 'PerGB2018' }
    retentionInDays: 30
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-${name}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    DisableLocalAuth: true
  }
}

resource appTelemetry 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, appPrincipalId, monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Not a secret: the ingestion endpoint and the component's id. With local authentication off, telemetry sent with
// it alone is refused; the app adds APPLICATIONINSIGHTS_AUTHENTICATION_STRING (its identity).
output connectionString string = appInsights.properties.ConnectionString

output workspaceId string = workspace.id

output appInsightsId string = appInsights.id
