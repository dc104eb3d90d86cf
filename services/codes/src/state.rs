use huoke_shared::wecom::WecomClient;

use crate::flood::FloodGuard;
use crate::pick::Cursors;
use crate::recorder::Recorder;
use crate::snapshot::SnapshotCache;

/// Process-wide state of the codes service, shared by every HTTP worker.
pub struct CodesState {
    pub snapshots: SnapshotCache,
    pub cursors: Cursors,
    pub recorder: Recorder,
    pub wecom: WecomClient,
    pub flood: FloodGuard,
}
