//! The HTTP client of the hub's `/api/v1` and the mapping of every failure onto an exit code.

use std::time::Duration;

use chaoshub_schema::api::{ErrorBody, Page};
use chaoshub_schema::FieldError;
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::ExitCode;

/// How long to wait for a TCP connection before calling the hub unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything that can make a client command fail. Each variant maps onto one exit code
/// (see [`CliError::exit_code`]); scripts rely on that mapping, so keep it stable.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line or an input file is unusable.
    #[error("{0}")]
    Usage(String),
    /// No connection to the hub could be made.
    #[error("cannot reach the hub at {server}")]
    Unreachable {
        server: String,
        #[source]
        source: reqwest::Error,
    },
    /// The hub accepted the connection but did not answer in time.
    #[error("the hub at {server} did not answer within {timeout}")]
    RequestTimedOut { server: String, timeout: String },
    /// The hub answered with a 4xx or 5xx status.
    #[error("{}: {}", .body.code, .body.message)]
    Api { status: u16, body: ErrorBody },
    /// The hub answered with something this client does not understand.
    #[error("unexpected answer from the hub: {0}")]
    Protocol(String),
    /// The operation ran but did not succeed (for instance an experiment failed under `--wait`).
    #[error("{0}")]
    Failed(String),
    /// Waiting for an outcome took longer than allowed.
    #[error("{0}")]
    TimedOut(String),
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Usage(_) => ExitCode::Usage,
            CliError::Unreachable { .. } | CliError::RequestTimedOut { .. } => {
                ExitCode::Unreachable
            }
            CliError::Api { status: 404, .. } => ExitCode::NotFound,
            CliError::Api { .. } | CliError::Protocol(_) | CliError::Failed(_) => ExitCode::Failure,
            CliError::TimedOut(_) => ExitCode::TimedOut,
        }
    }

    /// Whether the error came from a 404 answer.
    pub fn is_not_found(&self) -> bool {
        matches!(self, CliError::Api { status: 404, .. })
    }
}

/// Renders an error for stderr: `error: <code>: <message>`, then one indented line per field
/// detail, and for transport errors the root cause plus a hint on what to check.
pub fn render_error(error: &CliError) -> String {
    let mut out = format!("error: {error}\n");
    match error {
        CliError::Api { body, .. } => {
            out.push_str(&render_details(&body.details));
        }
        CliError::Unreachable { source, .. } => {
            // reqwest wraps the OS error several times; the innermost cause is the useful one.
            let mut cause: &dyn std::error::Error = source;
            while let Some(inner) = cause.source() {
                cause = inner;
            }
            out.push_str(&format!("  cause: {cause}\n"));
            let text = format!("{source:?} {cause}").to_ascii_lowercase();
            if text.contains("certificate") || text.contains("unknownissuer") {
                out.push_str(
                    "  hint: the hub's TLS certificate is not trusted by this client; pass --ca-file (or CHAOSHUB_CA_FILE) with the CA that signed it (`chaoshub serve --tls-self-signed` prints its path)\n",
                );
            } else {
                out.push_str(
                    "  hint: is `chaoshub serve` running there? Set --server or CHAOSHUB_SERVER\n",
                );
            }
        }
        _ => {}
    }
    out
}

/// One line per field error, indented under the `error:` line.
pub fn render_details(details: &[FieldError]) -> String {
    let mut out = String::new();
    for detail in details {
        if detail.path.is_empty() {
            out.push_str(&format!("  {}\n", detail.message));
        } else {
            out.push_str(&format!("  {}: {}\n", detail.path, detail.message));
        }
    }
    out
}

/// Turns a non-2xx answer into an error body, whether or not the hub sent JSON.
pub fn error_body_from(status: StatusCode, text: &str) -> ErrorBody {
    if let Ok(body) = serde_json::from_str::<ErrorBody>(text) {
        return body;
    }
    // A proxy in front of the hub, or a route the hub does not have, answers without the JSON
    // error body; keep what it said, shortened, so the user still sees it.
    let trimmed = text.trim();
    let snippet: String = trimmed.chars().take(200).collect();
    let reason = status.canonical_reason().unwrap_or("error");
    let message = if snippet.is_empty() {
        format!("HTTP {} {reason}", status.as_u16())
    } else {
        format!("HTTP {} {reason}: {snippet}", status.as_u16())
    };
    let code = match status {
        StatusCode::NOT_FOUND => "not_found".to_string(),
        _ => format!("http_{}", status.as_u16()),
    };
    ErrorBody {
        code,
        message,
        details: Vec::new(),
    }
}

/// A connection to one hub.
#[derive(Debug, Clone)]
pub struct HubClient {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
    request_timeout: Duration,
}

impl HubClient {
    /// Builds a client; fails with a usage error when the server URL is not a URL.
    pub fn new(
        server: &str,
        token: Option<String>,
        request_timeout: Duration,
    ) -> Result<Self, CliError> {
        Self::with_ca(server, token, request_timeout, None)
    }

    /// Like `new`, trusting the PEM CA certificate(s) `ca_pem` for an https:// hub (and
    /// only them: a private CA is not mixed with the system's roots).
    pub fn with_ca(
        server: &str,
        token: Option<String>,
        request_timeout: Duration,
        ca_pem: Option<&[u8]>,
    ) -> Result<Self, CliError> {
        let base = Url::parse(server).map_err(|e| {
            CliError::Usage(format!(
                "--server {server:?} is not a URL ({e}); expected e.g. http://127.0.0.1:7070"
            ))
        })?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(CliError::Usage(format!(
                "--server {server:?} must be an http:// or https:// URL such as http://127.0.0.1:7070"
            )));
        }
        // The total request timeout is set per request, not on the client, so that the event
        // stream can stay open for as long as the user watches it.
        chaoshub_adapters::install_crypto_provider();
        let mut http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("chaoshub-cli/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| CliError::Usage(format!("--ca-file: not a PEM certificate ({e})")))?;
            if certs.is_empty() {
                return Err(CliError::Usage(
                    "--ca-file: no PEM certificate in the file".into(),
                ));
            }
            http = http.tls_certs_only(certs);
        }
        let http = http
            .build()
            .map_err(|e| CliError::Protocol(format!("cannot build the HTTP client: {e}")))?;
        let token = token.filter(|t| !t.trim().is_empty());
        Ok(Self {
            http,
            base,
            token,
            request_timeout,
        })
    }

    /// The hub URL as given.
    pub fn server(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// `base` + path segments (each percent-encoded) + query pairs.
    pub fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        build_url(&self.base, segments, query)
    }

    fn request(&self, method: Method, url: Url) -> RequestBuilder {
        let builder = self.http.request(method, url);
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    /// Sends a request and maps transport failures; the caller inspects the status.
    async fn send(&self, builder: RequestBuilder) -> Result<Response, CliError> {
        builder.send().await.map_err(|e| self.transport_error(e))
    }

    fn transport_error(&self, error: reqwest::Error) -> CliError {
        if error.is_timeout() {
            CliError::RequestTimedOut {
                server: self.server().to_string(),
                timeout: chaoshub_schema::duration::format_duration(self.request_timeout),
            }
        } else if error.is_decode() || error.is_body() {
            CliError::Protocol(error.to_string())
        } else {
            CliError::Unreachable {
                server: self.server().to_string(),
                source: error,
            }
        }
    }

    /// Sends a request with the request timeout and decodes a 2xx JSON answer.
    pub async fn call<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&B>,
    ) -> Result<T, CliError> {
        let mut builder = self
            .request(method, self.url(segments, query))
            .timeout(self.request_timeout);
        if let Some(body) = body {
            builder = builder.json(body);
        }
        let response = self.send(builder).await?;
        self.decode(response).await
    }

    /// Reads the answer: the JSON value on 2xx, an [`CliError::Api`] otherwise.
    async fn decode<T: DeserializeOwned>(&self, response: Response) -> Result<T, CliError> {
        let status = response.status();
        let text = response.text().await.map_err(|e| self.transport_error(e))?;
        if !status.is_success() {
            return Err(CliError::Api {
                status: status.as_u16(),
                body: error_body_from(status, &text),
            });
        }
        serde_json::from_str(&text).map_err(|e| {
            let snippet: String = text.chars().take(120).collect();
            CliError::Protocol(format!(
                "cannot decode the answer ({e}); it began with {snippet:?}"
            ))
        })
    }

    pub async fn get<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<T, CliError> {
        self.call::<T, ()>(Method::GET, segments, query, None).await
    }

    pub async fn post<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&B>,
    ) -> Result<T, CliError> {
        self.call(Method::POST, segments, query, body).await
    }

    pub async fn delete<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<T, CliError> {
        self.call::<T, ()>(Method::DELETE, segments, query, None)
            .await
    }

    /// Lists every item of a paged collection, following `continue` tokens.
    pub async fn list_all<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<Vec<T>, CliError> {
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        // A hub that keeps handing out the same token would loop forever; the cap is far above
        // any real listing.
        for _ in 0..10_000 {
            let mut q = query.to_vec();
            if let Some(t) = &token {
                q.push(("continue", t.clone()));
            }
            let page: Page<T> = self.get(segments, &q).await?;
            items.extend(page.items);
            match page.continue_token {
                Some(next) if !next.is_empty() && Some(&next) != token.as_ref() => {
                    token = Some(next)
                }
                _ => return Ok(items),
            }
        }
        Ok(items)
    }

    /// Opens a long-lived GET (no total timeout) and returns the response when it is 2xx.
    pub async fn open_stream(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<Response, CliError> {
        let builder = self
            .request(Method::GET, self.url(segments, query))
            .header(reqwest::header::ACCEPT, "text/event-stream");
        let response = self.send(builder).await?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        Err(CliError::Api {
            status: status.as_u16(),
            body: error_body_from(status, &text),
        })
    }

    /// Reads the next chunk of a streamed body; `None` at its end.
    pub async fn next_chunk(&self, response: &mut Response) -> Result<Option<Vec<u8>>, CliError> {
        match response.chunk().await {
            Ok(chunk) => Ok(chunk.map(|b| b.to_vec())),
            Err(e) => Err(self.transport_error(e)),
        }
    }
}

/// Appends percent-encoded path segments and query pairs to a base URL that may itself carry a
/// path prefix (a hub behind a reverse proxy at `/chaos/`).
pub fn build_url(base: &Url, segments: &[&str], query: &[(&str, String)]) -> Url {
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty();
        for segment in segments {
            path.push(segment);
        }
    }
    if !query.is_empty() {
        let mut pairs = url.query_pairs_mut();
        for (key, value) in query {
            pairs.append_pair(key, value);
        }
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: &str) -> CliError {
        CliError::Api {
            status,
            body: ErrorBody {
                code: code.into(),
                message: "m".into(),
                details: vec![],
            },
        }
    }

    #[test]
    fn exit_codes_follow_the_documented_table() {
        assert_eq!(CliError::Usage("x".into()).exit_code(), ExitCode::Usage);
        assert_eq!(api(404, "not_found").exit_code(), ExitCode::NotFound);
        for status in [400, 409, 413, 422, 500, 503] {
            assert_eq!(
                api(status, "x").exit_code(),
                ExitCode::Failure,
                "status {status}"
            );
        }
        assert_eq!(
            CliError::Protocol("x".into()).exit_code(),
            ExitCode::Failure
        );
        assert_eq!(CliError::Failed("x".into()).exit_code(), ExitCode::Failure);
        assert_eq!(
            CliError::TimedOut("x".into()).exit_code(),
            ExitCode::TimedOut
        );
        let timed_out = CliError::RequestTimedOut {
            server: "s".into(),
            timeout: "30s".into(),
        };
        assert_eq!(timed_out.exit_code(), ExitCode::Unreachable);
        assert_eq!(ExitCode::Success as i32, 0);
        assert_eq!(ExitCode::Failure as i32, 1);
        assert_eq!(ExitCode::Usage as i32, 2);
        assert_eq!(ExitCode::Unreachable as i32, 3);
        assert_eq!(ExitCode::NotFound as i32, 4);
        assert_eq!(ExitCode::TimedOut as i32, 5);
    }

    #[tokio::test]
    async fn connection_refused_is_unreachable() {
        // Bind then drop a listener so the port is (almost certainly) closed.
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let client = HubClient::new(
            &format!("http://127.0.0.1:{port}"),
            None,
            Duration::from_secs(2),
        )
        .unwrap();
        let err = client
            .get::<serde_json::Value>(&["healthz"], &[])
            .await
            .unwrap_err();
        assert_eq!(err.exit_code(), ExitCode::Unreachable, "{err:?}");
        let text = render_error(&err);
        assert!(text.starts_with(&format!(
            "error: cannot reach the hub at http://127.0.0.1:{port}\n"
        )));
        assert!(text.contains("  cause: "), "{text}");
    }

    #[test]
    fn error_body_renders_code_message_and_details() {
        let err = CliError::Api {
            status: 400,
            body: ErrorBody {
                code: "invalid_manifest".into(),
                message: "the manifest is invalid".into(),
                details: vec![
                    FieldError::new("spec.delay.latency", "must be a duration such as 30s"),
                    FieldError::new("", "the document as a whole is wrong"),
                ],
            },
        };
        assert_eq!(
            render_error(&err),
            "error: invalid_manifest: the manifest is invalid\n\
             \x20 spec.delay.latency: must be a duration such as 30s\n\
             \x20 the document as a whole is wrong\n"
        );
    }

    #[test]
    fn non_json_error_answers_keep_the_status_and_text() {
        let body = error_body_from(StatusCode::BAD_GATEWAY, "<html>upstream down</html>\n");
        assert_eq!(body.code, "http_502");
        assert_eq!(
            body.message,
            "HTTP 502 Bad Gateway: <html>upstream down</html>"
        );
        let body = error_body_from(StatusCode::NOT_FOUND, "");
        assert_eq!(body.code, "not_found");
        assert_eq!(body.message, "HTTP 404 Not Found");
        let json = r#"{"code":"halted","message":"chaos is halted","details":[]}"#;
        let body = error_body_from(StatusCode::CONFLICT, json);
        assert_eq!(body.code, "halted");
    }

    #[test]
    fn urls_encode_segments_and_keep_a_path_prefix() {
        let base = Url::parse("http://hub:7070/chaos/").unwrap();
        let url = build_url(
            &base,
            &["api", "v1", "experiments", "a b/c"],
            &[("namespace", "team a".into())],
        );
        assert_eq!(
            url.as_str(),
            "http://hub:7070/chaos/api/v1/experiments/a%20b%2Fc?namespace=team+a"
        );
        let base = Url::parse("http://127.0.0.1:7070").unwrap();
        assert_eq!(
            build_url(&base, &["healthz"], &[]).as_str(),
            "http://127.0.0.1:7070/healthz"
        );
    }

    #[test]
    fn bad_server_urls_are_usage_errors() {
        let err = HubClient::new("127.0.0.1:7070", None, Duration::from_secs(1)).unwrap_err();
        assert_eq!(err.exit_code(), ExitCode::Usage);
        let err = HubClient::new("not a url", None, Duration::from_secs(1)).unwrap_err();
        assert_eq!(err.exit_code(), ExitCode::Usage);
    }
}
