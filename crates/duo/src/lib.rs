//! The asynchronous Duo Admin API client: signed transport, paging, pacing, retries, bulk
//! operations and the masked HTTP traffic log.
