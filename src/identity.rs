//! Microsoft Entra ID credentials, shared by every Azure service the handler signs in to.

use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use azure_identity::{AzureCliCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId};

/// The app's managed identity: the system-assigned one, or the user-assigned one with this client id.
pub fn managed_identity(client_id: Option<&str>) -> Result<Arc<dyn TokenCredential>, String> {
    let options = ManagedIdentityCredentialOptions {
        user_assigned_id: client_id.map(|id| UserAssignedId::ClientId(id.to_owned())),
        ..Default::default()
    };
    let credential: Arc<dyn TokenCredential> =
        ManagedIdentityCredential::new(Some(options)).map_err(|e| format!("cannot use the managed identity: {e}"))?;
    Ok(credential)
}

/// The developer's own sign-in (`az login`), outside Azure.
pub fn developer() -> Result<Arc<dyn TokenCredential>, String> {
    let credential: Arc<dyn TokenCredential> =
        AzureCliCredential::new(None).map_err(|e| format!("cannot use the Azure CLI sign-in: {e}"))?;
    Ok(credential)
}
