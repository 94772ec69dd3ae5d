// The whole deployment in one resource group: storage for the Functions host and for the archive, Cosmos DB,
// monitoring, the Flex Consumption app with its user-assigned identity and roles, and (second pass, after the code
// is deployed) the Event Grid subscription on the existing ACS resource. No key or connection string anywhere.
targetScope = 'subscription'

@minLength(1)
@maxLength(48)
@description('The azd environment name: every resource name derives from it.')
param environmentName string

@minLength(1)
@description('The region of every resource but the Event Grid system topic (ACS topics are global).')
param location string

@description('The existing ACS resource whose recordings are kept: /subscriptions/…/resourceGroups/…/providers/Microsoft.Communication/communicationServices/NAME.')
param acsResourceId string

@description('The deploying user or group (azd sets AZURE_PRINCIPAL_ID): given data access to Cosmos DB and the archive for local debugging and dead-letter replay. Empty for none.')
param principalId string = ''

@allowed(['User', 'Group', 'ServicePrincipal'])
@description('What principalId is.')
param principalType string = 'User'

@description('Cosmos DB throughput: 0 for serverless (the default: nothing to pay while idle), else the database\'s provisioned RU/s (400 or more).')
param cosmosThroughput int = 0

@allowed(['', 'Hot', 'Cool', 'Cold', 'Archive'])
@description('RECORDINGS_ARCHIVE_ACCESS_TIER: the tier each archived file is committed in; empty for the account\'s default (Hot).')
param archiveAccessTier string = 'Cool'

@description('RECORDINGS_DELETE_AFTER_ARCHIVE: delete a chunk\'s files at ACS once both are archived and verified.')
param deleteAfterArchive bool = false

@minValue(1)
@maxValue(10080)
@description('RECORDINGS_LINK_MINUTES: how long a read link to an archived file works.')
param linkMinutes int = 15

@description('Create the Event Grid subscription. The postdeploy hook sets it once the RecordingEvent function exists.')
param subscribeToEvents bool = false

@description('The most instances the Flex Consumption plan scales out to.')
param maximumInstanceCount int = 40

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-${resourceToken}'
    location: location
    tags: tags
  }
}

module hostStorage 'modules/storage.bicep' = {
  name: 'host-storage'
  scope: rg
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    containers: ['app-package']
    queues: ['recording-archive', 'recording-archive-poison']
  }
}

module archiveStorage 'modules/storage.bicep' = {
  name: 'archive-storage'
  scope: rg
  params: {
    name: 'starc${resourceToken}'
    location: location
    tags: tags
    containers: ['recordings', 'deadletter']
    queues: []
  }
}

module cosmos 'modules/cosmos.bicep' = {
  name: 'cosmos'
  scope: rg
  params: {
    name: 'cosmos-${resourceToken}'
    location: location
    tags: tags
    throughput: cosmosThroughput
    principalIds: empty(principalId) ? [identity.outputs.principalId] : [identity.outputs.principalId, principalId]
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    name: resourceToken
    location: location
    tags: tags
    principalId: identity.outputs.principalId
  }
}

module acs 'modules/acs-access.bicep' = {
  name: 'acs-access'
  scope: resourceGroup(split(acsResourceId, '/')[2], split(acsResourceId, '/')[4])
  params: {
    acsName: last(split(acsResourceId, '/'))
    principalId: identity.outputs.principalId
  }
}

module roles 'modules/storage-roles.bicep' = {
  name: 'storage-roles'
  scope: rg
  params: {
    hostStorageName: hostStorage.outputs.name
    archiveStorageName: archiveStorage.outputs.name
    archiveContainer: 'recordings'
    principalId: identity.outputs.principalId
    userPrincipalId: principalId
    userPrincipalType: principalType
  }
}

module app 'modules/function-app.bicep' = {
  name: 'function-app'
  scope: rg
  params: {
    name: 'func-${resourceToken}'
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    hostBlobEndpoint: hostStorage.outputs.blobEndpoint
    hostQueueEndpoint: hostStorage.outputs.queueEndpoint
    deploymentContainer: 'app-package'
    archiveBlobEndpoint: archiveStorage.outputs.blobEndpoint
    cosmosEndpoint: cosmos.outputs.endpoint
    acsEndpoint: acs.outputs.endpoint
    acsResourceId: acsResourceId
    appInsightsConnectionString: monitoring.outputs.connectionString
    archiveAccessTier: archiveAccessTier
    deleteAfterArchive: deleteAfterArchive
    linkMinutes: linkMinutes
    maximumInstanceCount: maximumInstanceCount
  }
  dependsOn: [roles]
}

module events 'modules/events.bicep' = if (subscribeToEvents) {
  name: 'events'
  scope: rg
  params: {
    name: 'evgt-${resourceToken}'
    tags: tags
    acsResourceId: acsResourceId
    functionAppId: app.outputs.id
    deadLetterStorageName: archiveStorage.outputs.name
  }
}

output AZURE_LOCATION string = location
output AZURE_RESOURCE_GROUP string = rg.name
output FUNCTION_APP_NAME string = app.outputs.name
output COSMOS_ENDPOINT string = cosmos.outputs.endpoint
output ARCHIVE_BLOB_ENDPOINT string = archiveStorage.outputs.blobEndpoint
output ACS_ENDPOINT string = acs.outputs.endpoint
