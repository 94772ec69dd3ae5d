// The deployment: the app's resource group (rg-ENV: storage for the Functions host, Cosmos DB, monitoring and the
// alerts, the Flex Consumption app with its user-assigned identity), the archive in a resource group of its own that
// `azd down` leaves (rg-ENV-archive, made by the preprovision hook), the role on the existing ACS resource and its
// Event Grid system topic with its metric alerts (in the ACS resource's subscription). The postdeploy hook subscribes
// the RecordingEvent function to the topic once the code is deployed (azure.yaml). No key or connection string
// anywhere.
targetScope = 'subscription'

@minLength(1)
@maxLength(48)
@description('The azd environment name: every resource name derives from it.')
param environmentName string

// The regions with Flex Consumption, as the official Flex Consumption quickstarts list them
// (Azure-Samples/functions-quickstart-python-http-azd, infra/main.bicep); `az functionapp list-flexconsumption-locations`
// gives today's list.
@minLength(1)
@description('The region of every resource but the Event Grid system topic (ACS topics are global).')
@allowed([
  'australiaeast'
  'australiasoutheast'
  'brazilsouth'
  'canadacentral'
  'centralindia'
  'centralus'
  'eastasia'
  'eastus'
  'eastus2'
  'eastus2euap'
  'francecentral'
  'germanywestcentral'
  'italynorth'
  'japaneast'
  'koreacentral'
  'northcentralus'
  'northeurope'
  'norwayeast'
  'southafricanorth'
  'southcentralus'
  'southeastasia'
  'southindia'
  'spaincentral'
  'swedencentral'
  'uaenorth'
  'uksouth'
  'ukwest'
  'westcentralus'
  'westeurope'
  'westus'
  'westus2'
  'westus3'
])
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@minLength(1)
@description('The existing ACS resource whose recordings are kept: /subscriptions/…/resourceGroups/…/providers/Microsoft.Communication/communicationServices/NAME.')
param acsResourceId string

@description('The deploying user or group (azd sets AZURE_PRINCIPAL_ID). Given data access to Cosmos DB and the archive only when grantDeployerDataAccess is true.')
param principalId string = ''

@allowed(['User', 'Group', 'ServicePrincipal'])
@description('What principalId is.')
param principalType string = 'User'

@description('Give principalId data access to Cosmos DB and the archive account (local debugging, dead-letter replay).')
param grantDeployerDataAccess bool = false

@minValue(0)
@maxValue(1000000)
@description('Cosmos DB throughput: 0 for serverless (the default: nothing to pay while idle), else the database\'s provisioned RU/s (400 or more, in steps of 100).')
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

@minValue(1)
@maxValue(23)
@description('RECORDINGS_AT_RISK_HOURS: a pending chunk with less than this left before ACS deletes its files is at risk.')
param atRiskHours int = 6

@description('The e-mail address the alerts go to; empty for none (alerts then show in the portal only).')
param alertEmail string = ''

@minValue(40)
@maxValue(1000)
@description('The most instances the Flex Consumption plan scales out to (Flex Consumption takes 40 to 1000).')
param maximumInstanceCount int = 40

@description('The archive\'s resource group, which the preprovision hook makes when it is missing and `azd down` leaves. Empty for rg-ENV-archive.')
param archiveResourceGroup string = ''

@description('The ACS resource\'s existing Event Grid system topic (the preprovision hook finds it); empty to create one.')
param eventGridSystemTopicName string = ''

@description('The existing system topic\'s resource group; empty for the ACS resource\'s.')
param eventGridSystemTopicResourceGroup string = ''

@minValue(0)
@description('Archived files move to the Cool tier this many days after they were archived; 0 for never.')
param archiveCoolAfterDays int = 0

@minValue(0)
@description('Archived files move to the Cold tier this many days after they were archived; 0 for never.')
param archiveColdAfterDays int = 0

@minValue(0)
@description('Archived files move to the Archive tier this many days after they were archived; 0 for never.')
param archiveArchiveAfterDays int = 0

@minValue(0)
@description('Archived files are deleted this many days after they were archived (the retention period); 0 for never.')
param archiveDeleteAfterDays int = 0

@minValue(1)
@maxValue(365)
@description('Deleted files and their earlier versions stay recoverable this many days, then are gone for good.')
param archiveDeletedRetentionDays int = 7

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }

// What a decorator cannot say, refused before any resource is deployed (the preprovision hook refuses the same).
var acsIdParts = split(acsResourceId, '/')
var acsIdShaped = length(acsIdParts) == 9 && empty(acsIdParts[0]) && toLower(acsIdParts[1]) == 'subscriptions' && toLower(acsIdParts[3]) == 'resourcegroups' && toLower(acsIdParts[5]) == 'providers' && toLower(acsIdParts[6]) == 'microsoft.communication' && toLower(acsIdParts[7]) == 'communicationservices' && !empty(acsIdParts[8])
var acsIdValid = acsIdShaped ? true : fail('acsResourceId must be /subscriptions/SUB/resourceGroups/GROUP/providers/Microsoft.Communication/communicationServices/NAME')
var acs = { subscriptionId: acsIdValid ? acsIdParts[2] : '', resourceGroup: acsIdParts[4], name: acsIdParts[8] }
var throughputValid = cosmosThroughput == 0 || (cosmosThroughput >= 400 && cosmosThroughput % 100 == 0)
var throughput = throughputValid ? cosmosThroughput : fail('cosmosThroughput must be 0 (serverless) or 400 RU/s or more, in steps of 100')

var topicGroup = empty(eventGridSystemTopicResourceGroup) ? acs.resourceGroup : eventGridSystemTopicResourceGroup
var archiveGroupName = empty(archiveResourceGroup) ? 'rg-${environmentName}-archive' : archiveResourceGroup
var recordingsContainer = 'recordings'
var deadLetterContainer = 'deadletter'
var deployerPrincipalId = grantDeployerDataAccess ? principalId : ''

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

// Not declared here: `azd down` deletes the resource groups the template creates, and only those.
resource archiveGroup 'Microsoft.Resources/resourceGroups@2024-03-01' existing = {
  name: archiveGroupName
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

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    name: resourceToken
    location: location
    tags: tags
    appPrincipalId: identity.outputs.principalId
  }
}

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  scope: rg
  params: {
    name: resourceToken
    location: location
    tags: tags
    appInsightsId: monitoring.outputs.appInsightsId
    alertEmail: alertEmail
  }
}

module hostStorage 'modules/host-storage.bicep' = {
  name: 'host-storage'
  scope: rg
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    deploymentContainer: 'app-package'
    queues: ['recording-archive', 'recording-archive-poison']
    appPrincipalId: identity.outputs.principalId
  }
}

module archive 'modules/archive.bicep' = {
  name: 'archive'
  scope: archiveGroup
  params: {
    name: 'starc${resourceToken}'
    location: location
    tags: tags
    recordingsContainer: recordingsContainer
    deadLetterContainer: deadLetterContainer
    appPrincipalId: identity.outputs.principalId
    deployerPrincipalId: deployerPrincipalId
    deployerPrincipalType: principalType
    coolAfterDays: archiveCoolAfterDays
    coldAfterDays: archiveColdAfterDays
    archiveAfterDays: archiveArchiveAfterDays
    deleteAfterDays: archiveDeleteAfterDays
    deletedRetentionDays: archiveDeletedRetentionDays
    workspaceId: monitoring.outputs.workspaceId
  }
}

module cosmos 'modules/cosmos.bicep' = {
  name: 'cosmos'
  scope: rg
  params: {
    name: 'cosmos-${resourceToken}'
    location: location
    tags: tags
    throughput: throughput
    appPrincipalId: identity.outputs.principalId
    deployerPrincipalId: deployerPrincipalId
    workspaceId: monitoring.outputs.workspaceId
  }
}

module acsAccess 'modules/acs-access.bicep' = {
  name: 'acs-access'
  scope: resourceGroup(acs.subscriptionId, acs.resourceGroup)
  params: {
    acsName: acs.name
    appPrincipalId: identity.outputs.principalId
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
    archiveBlobEndpoint: archive.outputs.blobEndpoint
    cosmosEndpoint: cosmos.outputs.endpoint
    acsEndpoint: acsAccess.outputs.endpoint
    acsResourceId: acsResourceId
    appInsightsConnectionString: monitoring.outputs.connectionString
    archiveAccessTier: archiveAccessTier
    deleteAfterArchive: deleteAfterArchive
    linkMinutes: linkMinutes
    atRiskHours: atRiskHours
    maximumInstanceCount: maximumInstanceCount
  }
}

module events 'modules/events.bicep' = {
  name: 'events'
  scope: resourceGroup(acs.subscriptionId, topicGroup)
  params: {
    name: empty(eventGridSystemTopicName) ? 'evgt-${resourceToken}' : eventGridSystemTopicName
    acsResourceId: acsResourceId
    workspaceId: monitoring.outputs.workspaceId
    environmentName: environmentName
    actionGroupId: alerts.outputs.actionGroupId
  }
}

module deadLetterAccess 'modules/deadletter-access.bicep' = {
  name: 'deadletter-access'
  scope: archiveGroup
  params: {
    archiveAccountName: archive.outputs.name
    deadLetterContainer: deadLetterContainer
    topicPrincipalId: events.outputs.principalId
  }
}

output AZURE_LOCATION string = location
output AZURE_RESOURCE_GROUP string = rg.name
output FUNCTION_APP_NAME string = app.outputs.name
output FUNCTION_APP_ID string = app.outputs.id
output COSMOS_ENDPOINT string = cosmos.outputs.endpoint
output ARCHIVE_BLOB_ENDPOINT string = archive.outputs.blobEndpoint
output ARCHIVE_STORAGE_ACCOUNT_ID string = archive.outputs.id
output ACS_ENDPOINT string = acsAccess.outputs.endpoint
output EVENT_GRID_SYSTEM_TOPIC_ID string = events.outputs.id
output ALERT_ACTION_GROUP_ID string = alerts.outputs.actionGroupId
