use consul_lock::{consul_lock, Error, MultiLockGuard};

struct Account {
    id: u64,
}

impl Account {
    fn id(&self) -> u64 {
        self.id
    }
}

#[consul_lock(key = "accounts/<from.id()>", key = "accounts/<to.id>", guard = lock)]
async fn transfer(from: &Account, to: &Account, amount: u64) -> Result<Vec<u64>, Error> {
    let guard: &MultiLockGuard = lock;
    let _ = amount;
    Ok(guard.fencing_tokens().iter().map(|(_, t)| *t).collect())
}

#[consul_lock(key = "a/<x>", key = "b/<y>", key = "c", fail_soft, acquire_timeout_ms = 100, renew)]
fn sync_soft(x: u32, y: &str) -> Option<u32> {
    Some(x + y.len() as u32)
}

struct Ledger;

impl Ledger {
    #[consul_lock(key = "ledger/<a>", key = "ledger/<b>", lock_timeout_seconds = 30)]
    async fn post(&self, a: u32, b: u32) -> Result<u32, Error> {
        Ok(a + b)
    }
}

fn main() {
    let (from, to) = (Account { id: 1 }, Account { id: 2 });
    let _ = transfer(&from, &to, 5);
    let _ = sync_soft(1, "y");
    let _ = Ledger.post(1, 2);
}
