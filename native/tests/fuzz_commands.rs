//! The hub's commands to the agent, fuzzed: what arrives on the gRPC stream, as protobuf bytes
//! (valid `Command`s, then mutated: bit flips, truncation, splices) decoded and executed against
//! a real fault table with the real injectors' validation and an `apply` that does nothing
//! (`fuzz_agent`). Seeded, so a failure repeats. Every decoded command gets a reply naming it,
//! a refusal has a known kind and a message, nothing panics, and the table ends empty once the
//! fuzzer's own faults are recovered.

// Shared with the other fuzz test; its REST router and token serve tests/fuzz_rest.rs.
#[allow(dead_code)]
mod fuzz_agent;

use chaos_agent::daemon::hub_link::execute;
use chaoshub_schema::agent::proto::{command, Command, Inject, Recover, Renew, Status};
use chaoshub_testkit::fuzz::{
    agent::fault_seeds, mutate_bytes, mutate_value, random_segment, random_string, Rng,
};
use prost::Message;

const ENVIRONMENT: &str = "fuzz";
/// A second in a debug build.
const INPUTS: u32 = 20_000;
const IDS: [&str; 6] = ["f-0", "f-1", "f-2", "f-3", "f-4", "f-5"];

fn lease(rng: &mut Rng) -> i64 {
    let now = chrono::Utc::now().timestamp_millis();
    match rng.below(8) {
        0 => 0,
        1 => -1,
        2 => i64::MAX,
        3 => i64::MIN,
        4 => now - 1_000,
        _ => now + rng.range(1, 120_000) as i64,
    }
}

fn command(rng: &mut Rng, seeds: &[serde_json::Value]) -> Command {
    let fault_id = if rng.percent(85) {
        rng.pick(&IDS).to_string()
    } else {
        random_segment(rng, &IDS)
    };
    let op = match rng.below(10) {
        0..=4 => {
            let mut fault = rng.pick(seeds)["fault"].clone();
            for _ in 0..rng.below(3) {
                mutate_value(rng, &mut fault);
            }
            let mut fault_json = fault.to_string();
            if rng.percent(15) {
                let mut bytes = fault_json.into_bytes();
                let other = rng.pick(seeds).to_string();
                mutate_bytes(rng, &mut bytes, other.as_bytes());
                fault_json = String::from_utf8_lossy(&bytes).into_owned();
            }
            Some(command::Op::Inject(Inject {
                fault_id,
                fault_json,
                lease_until_unix_ms: lease(rng),
            }))
        }
        5 | 6 => Some(command::Op::Recover(Recover { fault_id })),
        7 => Some(command::Op::Status(Status { fault_id })),
        8 => Some(command::Op::Renew(Renew {
            fault_id,
            lease_until_unix_ms: lease(rng),
        })),
        _ => None,
    };
    Command {
        command_id: random_string(rng),
        environment: if rng.percent(90) {
            ENVIRONMENT.to_string()
        } else {
            random_string(rng)
        },
        op,
    }
}

#[test]
fn thousands_of_hub_commands_as_bytes_get_a_reply_and_never_panic() {
    let agent = fuzz_agent::start();
    let seeds = fault_seeds();
    let mut rng = Rng::new(23);
    let (mut decoded, mut undecodable, mut applied) = (0u32, 0u32, 0u32);
    let mut kinds = std::collections::BTreeMap::<String, u32>::new();
    for i in 0..INPUTS {
        let cmd = command(&mut rng, &seeds);
        let mut bytes = cmd.encode_to_vec();
        if rng.percent(30) {
            let other = command(&mut rng, &seeds).encode_to_vec();
            mutate_bytes(&mut rng, &mut bytes, &other);
        }
        let Ok(cmd) = Command::decode(bytes.as_slice()) else {
            undecodable += 1;
            continue;
        };
        decoded += 1;
        let id = cmd.command_id.clone();
        let wanted_inject = matches!(cmd.op, Some(command::Op::Inject(_)));
        let table = agent.table.clone();
        let reply = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            execute(&table, ENVIRONMENT, cmd)
        }))
        .unwrap_or_else(|_| panic!("input {i} panicked the agent"));
        assert_eq!(
            reply.command_id, id,
            "input {i}: the reply names its command"
        );
        if reply.ok {
            if wanted_inject {
                applied += 1;
            }
            if !reply.status_json.is_empty() {
                serde_json::from_str::<serde_json::Value>(&reply.status_json)
                    .unwrap_or_else(|e| panic!("input {i}: status_json is not JSON: {e}"));
            }
        } else {
            assert!(
                ["unsupported", "invalid", "not-found", "conflict", "failed"]
                    .contains(&reply.error_kind.as_str()),
                "input {i}: unknown error kind {:?} ({})",
                reply.error_kind,
                reply.error
            );
            assert!(!reply.error.is_empty(), "input {i}: a refusal says why");
            *kinds.entry(reply.error_kind).or_default() += 1;
        }
        // The table stays bounded: ids are drawn mostly from a small pool, and a conflict
        // or a lease decides the rest.
        assert!(
            agent.table.len() <= 64,
            "input {i}: {} faults held",
            agent.table.len()
        );
    }
    println!(
        "{INPUTS} inputs: {decoded} decoded, {undecodable} undecodable; {applied} injections accepted; refusals {kinds:?}"
    );
    assert!(
        decoded > 3_000 && undecodable > 0,
        "the mutations reach the decoder"
    );
    assert!(applied > 0, "valid injections get through to the table");
    assert!(kinds.contains_key("invalid") && kinds.contains_key("not-found"));
    agent.table.recover_all();
    assert_eq!(agent.table.len(), 0);
}
