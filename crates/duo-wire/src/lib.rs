//! The Duo Admin API protocol without I/O: canonical parameters, canonical requests for
//! signature versions 2, 4 and 5, HMAC signing and verifying, the `Date` format, and the JSON
//! envelope. Shared by the client (which signs) and the emulator (which verifies).
