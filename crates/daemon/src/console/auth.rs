//! Who may use the console, and the headers every response carries.
//!
//! - On a loopback address without a console token, the console is open (as the status page
//!   always was); each browser still gets a session cookie, so actions carry a CSRF token.
//! - With a console token (`daemon.console_token_file` / `_env`), every page and action needs it:
//!   `Authorization: Bearer TOKEN`, or a session from the login form (`POST /login`), kept in an
//!   `HttpOnly; SameSite=Strict` cookie (`Secure` when configured, behind a TLS-terminating
//!   proxy). Sessions last 12 hours, in the daemon's memory.
//! - Off loopback without a token the console refuses every request (the status page's probes and
//!   metrics keep their own rules).
//!
//! An action (`POST`) from a session must carry the session's CSRF token in its form; a bearer
//! request carries its proof in a header a browser never adds by itself. Tokens and session ids
//! are compared in constant time and never logged or rendered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use rand::RngCore as _;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use super::Console;
use super::html::{esc, page};

/// The session cookie's name.
pub const COOKIE: &str = "duoprov_console";
/// How long a session lasts.
pub const SESSION_MS: i64 = 12 * 3600 * 1000;
/// Sessions kept at most (the oldest go first).
const MAX_SESSIONS: usize = 1000;

/// How the console is reached.
#[derive(Clone)]
pub enum Mode {
    /// Loopback, no token: open.
    Open,
    /// Everything needs the token.
    Token(Arc<SecretString>),
    /// Off loopback without a token: closed.
    Closed,
}

/// The console's authentication settings, as configured.
#[derive(Clone, Default)]
pub struct ConsoleAccess {
    pub token: Option<Arc<SecretString>>,
    /// Mark the session cookie `Secure` (the console is reached over HTTPS through a proxy).
    pub secure_cookie: bool,
}

impl std::fmt::Debug for ConsoleAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleAccess").field("token", &self.token.as_ref().map(|_| "[redacted]")).field("secure_cookie", &self.secure_cookie).finish()
    }
}

#[derive(Debug, Clone)]
struct Session {
    csrf: String,
    who: String,
    expires_ms: i64,
}

/// Who is asking: shown in the action log, and the CSRF token their forms carry.
#[derive(Debug, Clone)]
pub struct Caller {
    pub who: String,
    /// `None` for a bearer request (no session, no form to protect).
    pub csrf: Option<String>,
}

/// The console's gate.
pub struct Guard {
    mode: Mode,
    secure_cookie: bool,
    sessions: Mutex<HashMap<String, Session>>,
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn equal(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
}

impl Guard {
    pub fn new(mode: Mode, secure_cookie: bool) -> Guard {
        Guard { mode, secure_cookie, sessions: Mutex::new(HashMap::new()) }
    }

    pub fn mode(&self) -> &Mode {
        &self.mode
    }

    fn bearer_ok(&self, headers: &HeaderMap) -> bool {
        let Mode::Token(token) = &self.mode else { return false };
        let presented = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        presented.is_some_and(|p| equal(p, token.expose_secret()))
    }

    /// The live session the request's cookie names.
    fn session(&self, headers: &HeaderMap, now_ms: i64) -> Option<(String, Session)> {
        let id = cookie_value(headers)?;
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        sessions.retain(|_, s| s.expires_ms > now_ms);
        // Constant time per comparison: the id is the secret.
        sessions.iter().find(|(k, _)| equal(k, &id)).map(|(k, s)| (k.clone(), s.clone()))
    }

    /// A new session for `who`; its `Set-Cookie` value.
    fn open_session(&self, who: &str, now_ms: i64) -> (Session, HeaderValue) {
        let id = random_hex();
        let session = Session { csrf: random_hex(), who: who.to_owned(), expires_ms: now_ms + SESSION_MS };
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions.iter().min_by_key(|(_, s)| s.expires_ms).map(|(k, _)| k.clone())
        {
            sessions.remove(&oldest);
        }
        sessions.insert(id.clone(), session.clone());
        let secure = if self.secure_cookie { "; Secure" } else { "" };
        let cookie = format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}", SESSION_MS / 1000);
        (session, HeaderValue::from_str(&cookie).expect("a cookie of hex digits is a header value"))
    }

    fn close_session(&self, id: &str) {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner).remove(id);
    }

    /// Whether `presented` is the console token.
    fn token_ok(&self, presented: &str) -> bool {
        matches!(&self.mode, Mode::Token(t) if equal(presented, t.expose_secret()))
    }
}

fn closed() -> Response {
    let body = page(
        "Console closed",
        "<p>The daemon listens off loopback without a console token, so the console is closed. Set <code>daemon.console_token_file</code> \
         (or <code>daemon.console_token_env</code>) and restart, or listen on 127.0.0.1 behind a reverse proxy (see docs/console.md).</p>",
    );
    (StatusCode::FORBIDDEN, axum::response::Html(body)).into_response()
}

/// The console's gate as middleware: pages and actions need a caller ([`Caller`] is put in the
/// request's extensions); a new session's cookie is set on the response.
pub async fn gate(State(console): State<Arc<Console>>, mut req: Request, next: Next) -> Response {
    let now = duoprov_sync::now_ms();
    let guard = &console.guard;
    let mut set_cookie = None;
    let caller = match guard.mode() {
        Mode::Closed => return closed(),
        _ if guard.bearer_ok(req.headers()) => Caller { who: "console token".into(), csrf: None },
        mode => match guard.session(req.headers(), now) {
            Some((_, s)) => Caller { who: s.who, csrf: Some(s.csrf) },
            None => match mode {
                Mode::Open => {
                    let (s, cookie) = guard.open_session("loopback", now);
                    set_cookie = Some(cookie);
                    Caller { who: s.who, csrf: Some(s.csrf) }
                }
                _ if req.method() == Method::GET || req.method() == Method::HEAD => return Redirect::to("/login").into_response(),
                _ => {
                    return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer realm=\"duoprov console\"")], "this action needs the console token: sign in at /login, or send `Authorization: Bearer TOKEN`\n")
                        .into_response();
                }
            },
        },
    };
    // A browser says where a request comes from: a POST from another site is refused whatever
    // it carries.
    if req.method() == Method::POST
        && let Some(site) = req.headers().get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return (StatusCode::FORBIDDEN, "refused: this action came from another site\n").into_response();
    }
    req.extensions_mut().insert(caller);
    let mut response = next.run(req).await;
    if let Some(cookie) = set_cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// Checks an action's CSRF token against the caller's session (bearer callers have none to
/// check): `None` when it matches, else the refusal to send.
pub fn csrf_refusal(caller: &Caller, presented: &str) -> Option<Response> {
    match &caller.csrf {
        None => None,
        Some(expected) if equal(expected, presented) => None,
        Some(_) => Some((StatusCode::FORBIDDEN, "refused: the form's CSRF token is missing or belongs to another session; reload the page and try again\n").into_response()),
    }
}

/// `GET /login`: the form.
pub async fn login_form(State(console): State<Arc<Console>>) -> Response {
    match console.guard.mode() {
        Mode::Token(_) => axum::response::Html(page(
            "Sign in",
            "<form method=\"post\" action=\"/login\"><p><label>Console token <input type=\"password\" name=\"token\" autocomplete=\"current-password\" required></label> \
             <button type=\"submit\">Sign in</button></p></form><p class=\"note\">The token is in the file named by <code>daemon.console_token_file</code>.</p>",
        ))
        .into_response(),
        Mode::Open => Redirect::to("/").into_response(),
        Mode::Closed => closed(),
    }
}

#[derive(serde::Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    token: String,
}

/// `POST /login`: a session for whoever presents the token.
pub async fn login(State(console): State<Arc<Console>>, headers: HeaderMap, axum::Form(form): axum::Form<LoginForm>) -> Response {
    let guard = &console.guard;
    if matches!(guard.mode(), Mode::Closed) {
        return closed();
    }
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return (StatusCode::FORBIDDEN, "refused: this sign-in came from another site\n").into_response();
    }
    if !guard.token_ok(&form.token) {
        tracing::warn!("Console: a sign-in with a wrong token was refused.");
        let body = page("Sign in", "<p class=\"bad\">That is not the console token.</p><p><a href=\"/login\">Try again</a></p>");
        return (StatusCode::UNAUTHORIZED, axum::response::Html(body)).into_response();
    }
    let (_, cookie) = guard.open_session("console token", duoprov_sync::now_ms());
    let mut response = Redirect::to("/").into_response();
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
}

#[derive(serde::Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

/// `POST /logout`: ends the session.
pub async fn logout(State(console): State<Arc<Console>>, headers: HeaderMap, axum::Extension(caller): axum::Extension<Caller>, axum::Form(form): axum::Form<CsrfForm>) -> Response {
    if let Some(refused) = csrf_refusal(&caller, &form.csrf) {
        return refused;
    }
    if let Some((id, _)) = console.guard.session(&headers, duoprov_sync::now_ms()) {
        console.guard.close_session(&id);
    }
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().append(header::SET_COOKIE, HeaderValue::from_static("duoprov_console=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"));
    response
}

/// The headers every response of the daemon carries.
pub async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// A hidden field with the caller's CSRF token, for a form.
pub fn csrf_field(caller: &Caller) -> String {
    caller.csrf.as_deref().map(|t| format!("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", esc(t))).unwrap_or_default()
}
