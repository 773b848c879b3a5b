use consul_lock::consul_lock;

struct Order {
    lines: Vec<u32>,
}

impl Order {
    fn line(&self, i: usize) -> u32 {
        self.lines[i]
    }
}

#[consul_lock(key = "orders/<order.line(1)>")]
fn f(order: &Order) -> Result<u32, consul_lock::Error> {
    Ok(order.line(0))
}

fn main() {
    let _ = f(&Order { lines: vec![1, 2] });
}
