// Deployed into the existing ACS resource's resource group: the role the app's identity needs to download (and, with
// RECORDINGS_DELETE_AFTER_ARCHIVE, delete) recordings with Microsoft Entra ID, and the resource's endpoint.
param acsName string

@description('The app\'s identity.')
param appPrincipalId string

// Azure publishes no data action for call recording downloads or deletes, and no built-in role narrower than
// Contributor that is documented to allow them; ACS's own Entra ID samples use Contributor. Its consequence, in the
// docs/ARCHIVE.md (Microsoft Entra ID): the identity could also list the resource's access keys.
var contributor = 'b24988ac-6180-42a0-ab88-20f7382dd24c' // Contributor

resource acs 'Microsoft.Communication/communicationServices@2023-04-01' existing = {
  name: acsName
}

resource appRecordings 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(acs.id, appPrincipalId, contributor)
  scope: acs
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', contributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

output endpoint string = 'https://${acs.properties.hostName}'
