//! The agent side of the request fuzzer (`chaoshub_testkit::fuzz::agent`), shared by the long
//! run (`native/benches/fuzz_rest.rs`) and the short one (`native/tests/fuzz_rest.rs`): the
//! agent's local REST router as a loopback TCP listener serves it (bearer token required), over
//! a real fault table and journal in a temporary state dir, with the real injectors' `plan`
//! (which validates a fault and only reads the host) and an `apply` / `verify` / `remove` that
//! do nothing. No fault reaches the host whatever the fuzzer sends; everything up to the host
//! call — JSON parsing, the REST layer's checks, each injector's validation, the journal, the
//! lease and conflict rules — is the real code.

use std::collections::BTreeMap;
use std::sync::Arc;

use chaos_agent::daemon::faults::FaultTable;
use chaos_agent::daemon::hub_link::{Identity, LinkState};
use chaos_agent::daemon::Daemon;
use chaos_agent::inject::{Applied, InjectError, Injector, Plan};
use chaos_agent::injectors::{self, InjectorOptions};
use chaos_agent::journal::Journal;
use chaoshub_schema::agent::{AgentFault, KernelMechanisms};

/// A real injector whose host-changing steps do nothing.
struct PlanOnly(Box<dyn Injector>);

impl Injector for PlanOnly {
    fn handles(&self, fault: &AgentFault) -> bool {
        self.0.handles(fault)
    }
    fn plan(&self, id: &str, fault: &AgentFault) -> Result<Plan, InjectError> {
        self.0.plan(id, fault)
    }
    fn apply(&self, _plan: &Plan, _fault: &AgentFault) -> Result<Applied, InjectError> {
        Ok(Applied::nothing_running())
    }
    fn verify(&self, _plan: &Plan) -> Result<bool, InjectError> {
        Ok(true)
    }
    fn remove(&self, _plan: &Plan) -> Result<(), InjectError> {
        Ok(())
    }
}

pub struct FuzzAgent {
    pub router: axum::Router,
    pub token: String,
    /// The fault table behind the router (the hub's commands reach it directly).
    pub table: Arc<FaultTable>,
    _state: tempfile::TempDir,
    _link: tokio::sync::watch::Sender<LinkState>,
}

pub fn start() -> FuzzAgent {
    let state = tempfile::tempdir().unwrap();
    // Every mechanism claimed, so network faults reach each planning path; the opt-ins off, as
    // an agent starts by default.
    let mechanisms = KernelMechanisms {
        netem: true,
        tbf: true,
        htb: true,
        u32_filter: true,
        ingress_ifb: true,
        nftables: true,
        nft_numgen: true,
        iptables: true,
        iptables_statistic: true,
        nfqueue: true,
        stress_ng: false,
        notes: vec![],
    };
    let options = InjectorOptions::default();
    let injectors = injectors::all(&mechanisms, &options, state.path())
        .into_iter()
        .map(|i| Box::new(PlanOnly(i)) as Box<dyn Injector>)
        .collect();
    let table = Arc::new(FaultTable::new(
        injectors,
        Journal::open(state.path()).unwrap(),
        mechanisms,
    ));
    let (link, link_rx) = tokio::sync::watch::channel(LinkState::default());
    let daemon = Arc::new(Daemon {
        table: table.clone(),
        identity: Identity {
            name: "fuzz".into(),
            environment: "fuzz".into(),
            labels: BTreeMap::new(),
            capabilities: vec![],
            allowed: options.allowed(),
            hostname: "fuzz".into(),
            addresses: vec![],
        },
        link: link_rx,
    });
    let token = chaos_agent::local_api::new_token();
    FuzzAgent {
        router: chaos_agent::rest::router_with_token(daemon, token.clone()),
        token,
        table,
        _state: state,
        _link: link,
    }
}
