//! EWS and Autodiscover of the on-premises Exchange server, and EWS of Exchange Online.

use std::sync::Arc;

use axum::Router;

use crate::LabState;

/// Builds the on-premises Exchange router: `/EWS/Exchange.asmx` and Autodiscover.
pub fn on_premises_router(state: Arc<LabState>) -> Router {
    // TODO: EWS is not served yet.
    Router::new().with_state(state)
}

/// Builds the Exchange Online router: `/EWS/Exchange.asmx` with Bearer tokens.
pub fn online_router(state: Arc<LabState>) -> Router {
    // TODO: EWS is not served yet.
    Router::new().with_state(state)
}
