// The Flex Consumption plan and the Linux function app running the custom handler. Every connection is identity
// based: the user-assigned identity's client id, never a key. The handler's settings are the ones it reads
// (config::SETTINGS; tests/deployment/main.rs holds them together).
param name string
param planName string
param location string
param tags object
param identityId string
param identityClientId string
param hostBlobEndpoint string
param hostQueueEndpoint string
param deploymentContainer string
param archiveBlobEndpoint string
param cosmosEndpoint string
param acsEndpoint string
param acsResourceId string
param appInsightsConnectionString string
param archiveAccessTier string
param deleteAfterArchive bool
param linkMinutes int
param atRiskHours int
param maximumInstanceCount int

var appSettings = {
  AzureWebJobsStorage__blobServiceUri: hostBlobEndpoint
  AzureWebJobsStorage__queueServiceUri: hostQueueEndpoint
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  CosmosDbConnection__accountEndpoint: cosmosEndpoint
  CosmosDbConnection__credential: 'managedidentity'
  CosmosDbConnection__clientId: identityClientId
  RECORDINGS_DATABASE: 'recordings'
  RECORDINGS_CONTAINER: 'recordings'
  RECORDINGS_QUARANTINE_CONTAINER: 'quarantine'
  RECORDINGS_ALLOWED_SOURCES: acsResourceId
  AcsConnection__endpoint: acsEndpoint
  AcsConnection__credential: 'managedidentity'
  AcsConnection__clientId: identityClientId
  RECORDINGS_DELETE_AFTER_ARCHIVE: deleteAfterArchive ? 'true' : 'false'
  ArchiveStorage__blobServiceUri: archiveBlobEndpoint
  ArchiveStorage__credential: 'managedidentity'
  ArchiveStorage__clientId: identityClientId
  RECORDINGS_ARCHIVE_CONTAINER: 'recordings'
  RECORDINGS_ARCHIVE_ACCESS_TIER: archiveAccessTier
  RECORDINGS_LINK_MINUTES: string(linkMinutes)
  RECORDINGS_AT_RISK_HOURS: string(atRiskHours)
  RECORDINGS_LOG_FORMAT: 'json'
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: zone-redundant Flex Consumption plans exist only in some regions and bill always-ready instances; enable zoneRedundant where wanted
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: { name: 'FC1', tier: 'FlexConsumption' }
  properties: { reserved: true }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: Event Grid delivers to the function over its public endpoint (with the Event Grid extension's system key); closing it needs a virtual network and private endpoints
  // checkov:skip=CKV_AZURE_17: Event Grid does not present client certificates, so requiring them would refuse every delivery
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales from zero; a minimum instance count (always ready) would bill while idle, and Event Grid and the queue retry through a cold start
  // checkov:skip=CKV_AZURE_213: the handler serves no HTTP route to probe (it listens on 127.0.0.1 for the host only); the Functions host restarts a failed handler itself
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'handler' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identityId}': {} }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    keyVaultReferenceIdentity: identityId
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${hostBlobEndpoint}${deploymentContainer}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: 512
      }
      runtime: {
        name: 'custom'
        version: '1.0'
      }
    }
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: [for setting in items(appSettings): { name: setting.key, value: setting.value }]
    }
  }
}

resource ftp 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'ftp'
  properties: { allow: false }
}

resource scm 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'scm'
  properties: { allow: false }
}

output id string = app.id
output name string = app.name
