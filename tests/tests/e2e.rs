//! Workspace-level end-to-end tests: the real `chaoshub` binary as a process (so it can be
//! killed with SIGKILL), the real Python `fsfault` plugin, real files as the fault's effect.

mod e2e {
    pub mod agent;
    pub mod cli;
    pub mod console;
    pub mod console_builder;
    pub mod crash;
    pub mod crash_matrix;
    pub mod docker;
    pub mod envoy;
    pub mod kubernetes;
    pub mod matrix;
    pub mod netns;
    pub mod plugin;
    pub mod portable;
    pub mod replicas;
    pub mod suites;
    pub mod support;
    pub mod webdriver;
}
