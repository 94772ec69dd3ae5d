// Cosmos DB: one write region, Entra ID only (disableLocalAuth), the database and the two containers the handler
// opens. The recordings container indexes only the paths the store's queries filter on (src/store/cosmos/queries.rs;
// tests/deployment/index.rs holds each query to this list): every other path is left out, which makes each write cheaper.
param name string
param location string
param tags object

@description('0 for serverless; otherwise the database\'s provisioned RU/s (400 or more, in steps of 100).')
param throughput int

@description('The app\'s identity: reads, creates, replaces, queries and deletes items.')
param appPrincipalId string

@description('The deploying user or group; empty for none.')
param deployerPrincipalId string

param workspaceId string

var cosmosDataContributor = '00000000-0000-0000-0000-000000000002' // Cosmos DB Built-in Data Contributor

resource account 'Microsoft.DocumentDB/databaseAccounts@2024-11-15' = {
  // checkov:skip=CKV_AZURE_99: Flex Consumption without a virtual network reaches Cosmos DB publicly; every request needs an Entra ID token (local auth is off)
  // checkov:skip=CKV_AZURE_101: as CKV_AZURE_99
  name: name
  location: location
  tags: tags
  kind: 'GlobalDocumentDB'
  properties: {
    databaseAccountOfferType: 'Standard'
    locations: [{ locationName: location, failoverPriority: 0, isZoneRedundant: false }]
    // The handler refuses an account that takes writes in several regions (docs/DOCUMENT.md, The Cosmos DB store).
    enableMultipleWriteLocations: false
    consistencyPolicy: { defaultConsistencyLevel: 'Session' }
    capabilities: throughput == 0 ? [{ name: 'EnableServerless' }] : []
    disableLocalAuth: true
    disableKeyBasedMetadataWriteAccess: true
    minimalTlsVersion: 'Tls12'
    publicNetworkAccess: 'Enabled'
  }
}

resource database 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases@2024-11-15' = {
  parent: account
  name: 'recordings'
  properties: {
    resource: { id: 'recordings' }
    options: throughput == 0 ? {} : { throughput: throughput }
  }
}

resource recordings 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-11-15' = {
  parent: database
  name: 'recordings'
  properties: {
    resource: {
      id: 'recordings'
      partitionKey: { paths: ['/callId'], kind: 'Hash' }
      // Time to live on, with no default: documents stay for good, and an erased recording's tombstone goes after
      // its own `ttl` (30 days, TOMBSTONE_TTL_SECONDS in src/store/cosmos/mod.rs).
      defaultTtl: -1
      indexingPolicy: {
        indexingMode: 'consistent'
        automatic: true
        includedPaths: [
          { path: '/callId/?' }
          { path: '/serverCallId/?' }
          { path: '/chunks/[]/archive/state/?' }
          { path: '/chunks/[]/archive/retryable/?' }
        ]
        excludedPaths: [{ path: '/*' }]
      }
    }
  }
}

resource quarantine 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-11-15' = {
  parent: database
  name: 'quarantine'
  properties: {
    resource: {
      id: 'quarantine'
      partitionKey: { paths: ['/id'], kind: 'Hash' }
    }
  }
}

resource appData 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-11-15' = {
  parent: account
  name: guid(account.id, appPrincipalId, cosmosDataContributor)
  properties: {
    roleDefinitionId: '${account.id}/sqlRoleDefinitions/${cosmosDataContributor}'
    principalId: appPrincipalId
    scope: account.id
  }
}

resource deployerData 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-11-15' = if (!empty(deployerPrincipalId)) {
  parent: account
  name: guid(account.id, deployerPrincipalId, cosmosDataContributor)
  properties: {
    roleDefinitionId: '${account.id}/sqlRoleDefinitions/${cosmosDataContributor}'
    principalId: deployerPrincipalId
    scope: account.id
  }
}

// Data-plane requests (with their status, charge and caller) and control-plane changes, into Log Analytics.
resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'cosmos-requests'
  scope: account
  properties: {
    workspaceId: workspaceId
    logAnalyticsDestinationType: 'Dedicated'
    logs: [
      { category: 'DataPlaneRequests', enabled: true }
      { category: 'ControlPlaneRequests', enabled: true }
    ]
    metrics: [{ category: 'Requests', enabled: true }]
  }
}

output endpoint string = account.properties.documentEndpoint
