//! The calls the signer itself makes to the object store, without doing any I/O.
//!
//! Most of the signer's work is presigning: the client talks to the store. A multipart
//! upload, though, needs the signer to create, list, complete and abort it. This module
//! builds those requests, signed in the `Authorization` header
//! ([`crate::presign::headers`]), and reads the store's answers (XML, read with
//! `quick-xml`). The Worker glue sends the requests with `fetch` through the [`Store`]
//! trait and retries them as [`retry`] says.
//!
//! <https://docs.aws.amazon.com/AmazonS3/latest/API/API_CreateMultipartUpload.html>

#![forbid(unsafe_code)]

pub mod retry;
pub mod s3;
mod xml;

use std::fmt;
use std::future::Future;

/// A request for the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreRequest {
    /// The HTTP method.
    pub method: &'static str,
    /// The full URL.
    pub url: String,
    /// Headers to send, the signature among them.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// Whether sending it twice does no harm, so that it may be retried after a network
    /// error or a 5xx answer.
    pub idempotent: bool,
}

/// The store's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreResponse {
    /// The HTTP status.
    pub status: u16,
    /// The headers, names lowercase.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl StoreResponse {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The store could not be reached (after retries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreachable(pub String);

/// Sends requests to the store. The Worker implements it with `fetch`.
pub trait Store {
    /// Sends one request, with retries; `Err` when no answer came.
    fn send(
        &self,
        request: StoreRequest,
    ) -> impl Future<Output = Result<StoreResponse, Unreachable>>;
}

/// An error answer of the store, read from its XML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError {
    /// The HTTP status.
    pub status: u16,
    /// S3's error code, such as `NoSuchUpload`.
    pub code: String,
    /// The store's message.
    pub message: String,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the store answered {} {}", self.status, self.code)?;
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for StoreError {}
