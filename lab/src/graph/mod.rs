//! Microsoft Graph v1.0, the routes the controller uses.

use std::sync::Arc;

use axum::Router;

use crate::LabState;

/// Builds the Graph router.
pub fn router(state: Arc<LabState>) -> Router {
    // TODO: Graph is not served yet.
    Router::new().with_state(state)
}
