//! A Consul-compatible server for tests.
