use consul_lock::consul_lock;

// 65 keys: one Consul transaction locks at most 64.
#[consul_lock(key = "k/0", key = "k/1", key = "k/2", key = "k/3", key = "k/4", key = "k/5", key = "k/6", key = "k/7", key = "k/8", key = "k/9", key = "k/10", key = "k/11", key = "k/12", key = "k/13", key = "k/14", key = "k/15", key = "k/16", key = "k/17", key = "k/18", key = "k/19", key = "k/20", key = "k/21", key = "k/22", key = "k/23", key = "k/24", key = "k/25", key = "k/26", key = "k/27", key = "k/28", key = "k/29", key = "k/30", key = "k/31", key = "k/32", key = "k/33", key = "k/34", key = "k/35", key = "k/36", key = "k/37", key = "k/38", key = "k/39", key = "k/40", key = "k/41", key = "k/42", key = "k/43", key = "k/44", key = "k/45", key = "k/46", key = "k/47", key = "k/48", key = "k/49", key = "k/50", key = "k/51", key = "k/52", key = "k/53", key = "k/54", key = "k/55", key = "k/56", key = "k/57", key = "k/58", key = "k/59", key = "k/60", key = "k/61", key = "k/62", key = "k/63", key = "k/64")]
fn f() -> Result<(), consul_lock::Error> {
    Ok(())
}

fn main() {
    let _ = f();
}
