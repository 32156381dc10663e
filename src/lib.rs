//! edge-presigner: a Cloudflare Worker that hands out presigned upload URLs for R2 and S3.
//!
//! A browser or a server authenticates to the Worker and gets back presigned URLs; the
//! bytes then go straight from the client to the object store. The storage credentials
//! stay in Worker secrets: the Worker only decides who may upload what, where, how big,
//! of which type and for how long, and signs exactly that.
//!
//! The crate is a pure core and a thin edge:
//!
//! - [`presign`]: SigV4 signing (presigned URLs, and the signer's own store calls) and
//!   URI encoding;
//! - [`policy`]: profiles, content types, sizes, expiry, key templates;
//! - [`auth`]: API keys and JWTs;
//! - [`config`]: loading and checking the settings and secrets;
//! - [`api`]: the HTTP API as pure functions, and its errors;
//! - [`multipart`]: part plans, upload tokens, part-list checks;
//! - [`store`]: the signer's own calls to the store (create, list, complete, abort);
//! - [`json`]: reading JSON with errors that name the member at fault;
//! - [`cors`], [`audit`]: CORS headers and the audit log line;
//! - `edge`: the Workers runtime glue, the only code that touches `Env`, `Request`,
//!   `Response`, the clock and randomness.

pub mod api;
pub mod audit;
pub mod auth;
pub mod config;
pub mod cors;
mod edge;
pub mod json;
pub mod multipart;
pub mod policy;
pub mod presign;
pub mod secret;
pub mod store;
pub mod time;
