//! The fencing token carried by an engine pass's writes.
//!
//! The engine runs each pass inside [`scope`] with the token of its replica's lease grant
//! (`crate::leadership`); a store shared by several replicas reads it with [`current`] on every
//! write it makes in that task and refuses the write (`StoreError::Fenced`) when another replica
//! has been granted the lease since. A write made outside a pass (a user's submission, pause or
//! stop on any replica) carries no fence and is never refused for it.

use std::future::Future;

tokio::task_local! {
    static FENCE: Fence;
}

/// The lease a write depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub lease: &'static str,
    pub holder: String,
    pub token: i64,
}

/// Runs `f` with `fence` on every store write it makes (none: as is).
pub async fn scope<F: Future>(fence: Option<Fence>, f: F) -> F::Output {
    match fence {
        Some(fence) => FENCE.scope(fence, f).await,
        None => f.await,
    }
}

/// The fence of the running task, if it runs inside [`scope`].
pub fn current() -> Option<Fence> {
    FENCE.try_with(Fence::clone).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_fence_is_seen_inside_its_scope_only() {
        assert_eq!(current(), None);
        let fence = Fence {
            lease: "engine",
            holder: "a".into(),
            token: 4,
        };
        let seen = scope(Some(fence.clone()), async {
            tokio::task::yield_now().await;
            current()
        })
        .await;
        assert_eq!(seen, Some(fence));
        assert_eq!(scope(None, async { current() }).await, None);
        assert_eq!(current(), None);
    }
}
