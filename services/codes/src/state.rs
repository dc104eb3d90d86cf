use std::sync::Arc;

use huoke_shared::wecom::WecomClient;
use tokio::sync::OnceCell;

use crate::flood::FloodGuard;
use crate::leases::CapLeases;
use crate::pick::Cursors;
use crate::recorder::Recorder;
use crate::snapshot::SnapshotCache;
use crate::sticky::StickyKey;

/// Process-wide state of the codes service, shared by every HTTP worker.
pub struct CodesState {
    pub snapshots: SnapshotCache,
    pub cursors: Cursors,
    pub recorder: Recorder,
    pub wecom: WecomClient,
    pub flood: FloodGuard,
    pub leases: Arc<CapLeases>,
    /// Made or read by a task at start, off the scan path (the service starts
    /// without the store).
    pub sticky_key: OnceCell<StickyKey>,
}
