//! Retrying an idempotent call to an environment: the errors the caller deems transient are
//! tried again with a doubling backoff, capped at 5 s.

use std::future::Future;
use std::time::Duration;

/// The longest pause between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Runs `call` up to `retries + 1` times while `transient` says its error is worth another
/// try. `environment` and `what` only label the debug log of each retry.
pub async fn with_retries<T, E, Fut>(
    retries: u32,
    first_backoff: Duration,
    environment: &str,
    what: &str,
    transient: impl Fn(&E) -> bool,
    mut call: impl FnMut() -> Fut,
) -> Result<T, E>
where
    Fut: Future<Output = Result<T, E>>,
{
    let attempts = retries + 1;
    let mut backoff = first_backoff;
    let mut attempt = 1;
    loop {
        let result = call().await;
        match &result {
            Err(e) if transient(e) && attempt < attempts => {}
            _ => return result,
        }
        tracing::debug!(
            environment,
            what,
            attempt,
            backoff_ms = backoff.as_millis() as u64,
            "retrying a call to the environment"
        );
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
        attempt += 1;
    }
}
