use consul_lock::consul_lock;

#[consul_lock(key = "jobs")]
struct Job;

fn main() {}
