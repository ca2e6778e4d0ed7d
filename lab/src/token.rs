//! The Entra token endpoint: `POST /{tenant}/oauth2/v2.0/token` with client credentials.

use std::sync::Arc;

use axum::Router;

use crate::LabState;

/// Builds the token endpoint's router.
pub fn router(state: Arc<LabState>) -> Router {
    // TODO: the token endpoint is not served yet.
    Router::new().with_state(state)
}
