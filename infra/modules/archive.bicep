// The archive: the storage account that keeps every recording's files (`recordings`) and Event Grid's dead-lettered
// events (`deadletter`). Deployed into a resource group of its own that the template does not create, so `azd down`
// leaves it; a CanNotDelete lock keeps it from being deleted by mistake with that group. Deleted files and earlier
// versions stay recoverable for `deletedRetentionDays`, then a lifecycle rule removes them; the recordings themselves
// move to colder tiers and are deleted on the schedule the parameters give (each step off when 0).
param name string
param location string
param tags object

@description('The container of archived recordings (RECORDINGS_ARCHIVE_CONTAINER).')
param recordingsContainer string

@description('The container Event Grid dead-letters undeliverable events into.')
param deadLetterContainer string

@description('The app\'s identity: writes, reads, lists and deletes recordings, and signs read links.')
param appPrincipalId string

@description('The deploying user or group; empty for none. Given data access to the whole account when set.')
param deployerPrincipalId string

param deployerPrincipalType string

@minValue(0)
param coolAfterDays int

@minValue(0)
param coldAfterDays int

@minValue(0)
param archiveAfterDays int

@minValue(0)
param deleteAfterDays int

@minValue(1)
@maxValue(365)
param deletedRetentionDays int

param workspaceId string

var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe' // Storage Blob Data Contributor
var storageBlobDelegator = 'db58b8e5-c6ad-4a2a-8342-4190687cbf4a' // Storage Blob Delegator

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: Flex Consumption without a virtual network reaches its storage over the public endpoint; access needs an Entra ID token (shared keys are off)
  // checkov:skip=CKV_AZURE_59: as CKV_AZURE_35: the app and Event Grid reach the account publicly, with identities
  // checkov:skip=CKV_AZURE_206: locally redundant by default to keep the template cheap; pick GRS/ZRS for production
  // checkov:skip=CKV_AZURE_33: the account has no queues; its blob service's reads, writes and deletes go to Log Analytics (diagnostics below)
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    supportsHttpsTrafficOnly: true
    minimumTlsVersion: 'TLS1_2'
    defaultToOAuthAuthentication: true
    publicNetworkAccess: 'Enabled'
    isLocalUserEnabled: false
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

// Deleting the account, or the resource group with it, fails until this lock is removed: the recordings are removed
// on purpose only (docs/DEPLOYMENT.md, Deploy with azd). It does not stop the app from deleting files (data access is not locked).
resource keep 'Microsoft.Authorization/locks@2020-05-01' = {
  name: 'keep-recordings'
  scope: account
  properties: {
    level: 'CanNotDelete'
    notes: 'The archived call recordings. azd down leaves this account; remove the lock to delete it on purpose.'
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    isVersioningEnabled: true
    deleteRetentionPolicy: { enabled: true, days: deletedRetentionDays }
    containerDeleteRetentionPolicy: { enabled: true, days: deletedRetentionDays }
  }
}

resource recordings 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: recordingsContainer
  properties: { publicAccess: 'None' }
}

resource deadletter 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deadLetterContainer
  properties: { publicAccess: 'None' }
}

// A recording's lifecycle, from the parameters: each step counts days since the file was archived, and is left out
// when its parameter is 0.
var recordingSteps = union(
  coolAfterDays > 0 ? { tierToCool: { daysAfterCreationGreaterThan: coolAfterDays } } : {},
  coldAfterDays > 0 ? { tierToCold: { daysAfterCreationGreaterThan: coldAfterDays } } : {},
  archiveAfterDays > 0 ? { tierToArchive: { daysAfterCreationGreaterThan: archiveAfterDays } } : {},
  deleteAfterDays > 0 ? { delete: { daysAfterCreationGreaterThan: deleteAfterDays } } : {}
)

var recordingRule = {
  name: 'recordings'
  enabled: true
  type: 'Lifecycle'
  definition: {
    filters: { blobTypes: ['blockBlob'], prefixMatch: ['${recordingsContainer}/'] }
    actions: { baseBlob: recordingSteps }
  }
}

// The archive never overwrites a file, so an earlier version exists only for a file deleted (by an erase, or by the
// rule above): removed `deletedRetentionDays` after it became one, so that an erase is complete then.
var earlierVersionsRule = {
  name: 'earlier-versions'
  enabled: true
  type: 'Lifecycle'
  definition: {
    filters: { blobTypes: ['blockBlob'] }
    actions: { version: { delete: { daysAfterCreationGreaterThan: deletedRetentionDays } } }
  }
}

resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    policy: {
      rules: empty(recordingSteps) ? [earlierVersionsRule] : [recordingRule, earlierVersionsRule]
    }
  }
}

// Who read, wrote or deleted a recording, into Log Analytics.
resource blobDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'recordings-access'
  scope: blobService
  properties: {
    workspaceId: workspaceId
    logs: [
      { category: 'StorageRead', enabled: true }
      { category: 'StorageWrite', enabled: true }
      { category: 'StorageDelete', enabled: true }
    ]
    metrics: [{ category: 'Transaction', enabled: true }]
  }
}

// The app writes, reads, lists and deletes files in the recordings container only.
resource appRecordings 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(recordings.id, appPrincipalId, storageBlobDataContributor)
  scope: recordings
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Read links are user delegation SAS: the key is asked of the blob service, which a role granted on a container
// cannot allow (generateUserDelegationKey is authorized at the storage account or above).
resource appDelegator 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, appPrincipalId, storageBlobDelegator)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDelegator)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource deployerArchive 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(deployerPrincipalId)) {
  name: guid(account.id, deployerPrincipalId, storageBlobDataContributor)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
    principalId: deployerPrincipalId
    principalType: deployerPrincipalType
  }
}

output name string = account.name
output id string = account.id
output blobEndpoint string = account.properties.primaryEndpoints.blob
