//! Support code for the reliability tests.
