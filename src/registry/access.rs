//! Who may see and who may manage a connector.
//!
//! - `private`: its creator only.
//! - `shared_workspace`: every principal of its workspace.
//! - `shared_org`: every principal of its organization.
//!
//! Managing (update, delete) needs the creator, or an admin of the level it is shared with.

use super::connector::Connector;
use super::types::Visibility;
use crate::identity::Principal;

pub fn is_visible(c: &Connector, p: &Principal) -> bool {
    match c.visibility {
        Visibility::Private => c.creator_id == p.user_id,
        Visibility::SharedWorkspace => c.workspace_id == p.workspace_id,
        Visibility::SharedOrg => c.org_id == p.org_id,
    }
}

pub fn can_manage(c: &Connector, p: &Principal) -> bool {
    if c.creator_id == p.user_id {
        return true;
    }
    p.is_admin
        && match c.visibility {
            Visibility::Private => false,
            Visibility::SharedWorkspace => c.workspace_id == p.workspace_id,
            Visibility::SharedOrg => c.org_id == p.org_id,
        }
}
