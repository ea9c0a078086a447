//! The `kubernetes` adapter against real API servers: etcd and kube-apiserver v1.26.1 started
//! by `../shared/tools/kubernetes/kube-testserver` (found through `chaoshub-testkit`: a SKIP
//! line outside CI when missing, a failure under `CI=true`), with Chaos Mesh's CRDs from
//! `../shared/reference/chaos-mesh/crd/`. Server-side apply, conflicts, watches, RBAC,
//! finalizers and namespaces are the API server's own. There is no kubelet or scheduler (pods
//! stay Pending) and no Chaos Mesh controller: `kubernetes/standin.rs` is a stand-in for the
//! latter, said so in its name and doc comment, that writes the status Chaos Mesh 2.x writes.
//!
//! One server with the CRDs (and one without, for the tests that need a cluster without Chaos
//! Mesh) is started per test binary and shared; every test works in namespaces of its own,
//! removed when it ends.

#![cfg(feature = "kubernetes")]

mod kubernetes {
    pub mod standin;
    pub mod support;

    mod federation;
    mod native;
    mod registration;
}
