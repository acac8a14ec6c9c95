//! Stored credentials of connectors: per user, per workspace and per organization, sealed by
//! the vault, with one default per authentication method in each set, and the selection of
//! the credential a request uses (named, else the default: user → workspace → organization).

mod model;
mod rules;
mod service;

pub use model::{
    Credential, CredentialInput, CredentialName, CredentialScope, CredentialSecrets, OAuthClient,
    OAuthTokens, SelectedCredential,
};
pub use rules::RuleError;
pub use service::{Choice, CredentialFilter, Credentials, CredentialsError};
