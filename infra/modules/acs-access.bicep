// Deployed into the existing ACS resource's resource group: the role the app's identity needs to read (and, with
// RECORDINGS_DELETE_AFTER_ARCHIVE, delete) recordings, and the resource's endpoint.
param acsName string
param principalId string

// The README (Archiving recordings, Microsoft Entra ID): Contributor on the resource allows call recording's data
// actions, as in ACS's own Entra ID samples; a narrower built-in role could not be confirmed.
var contributor = 'b24988ac-6180-42a0-ab88-20f7382dd24c' // Contributor

resource acs 'Microsoft.Communication/communicationServices@2023-04-01' existing = {
  name: acsName
}

resource reader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(acs.id, principalId, contributor)
  scope: acs
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', contributor)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output endpoint string = 'https://${acs.properties.hostName}'
