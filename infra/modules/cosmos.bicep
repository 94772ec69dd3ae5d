// Cosmos DB: one write region, Entra ID only (disableLocalAuth), the database and the two containers the handler
// opens, and the built-in data-plane role for each principal given.
param name string
param location string
param tags object

@description('0 for serverless; otherwise the database\'s provisioned RU/s.')
param throughput int

param principalIds array

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
    // The handler refuses an account that takes writes in several regions (README, The Cosmos DB store).
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

resource dataContributor 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-11-15' = [
  for principal in principalIds: {
    parent: account
    name: guid(account.id, principal, cosmosDataContributor)
    properties: {
      roleDefinitionId: '${account.id}/sqlRoleDefinitions/${cosmosDataContributor}'
      principalId: principal
      scope: account.id
    }
  }
]

output endpoint string = account.properties.documentEndpoint
