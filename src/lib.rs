//! edge-presigner: a Cloudflare Worker that hands out presigned upload URLs.
pub mod presign;
pub mod secret;
